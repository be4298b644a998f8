/** `switchboard serve`: the server on its embedded default (SQLite in ./data, TCP 7070, HTTP 7071). */
import { type Command, Option } from 'commander';
import { makeAuthenticator } from '../../server/auth.js';
import { makeLimits } from '../../server/limits.js';
import { makeLogger } from '../../server/logger.js';
import { SwitchboardServer } from '../../server/server.js';
import { SqliteInboxStore } from '../../store/sqlite.js';
import { parseBytes, parseDuration } from '../../util/duration.js';

interface ServeFlags {
  host: string;
  port: string;
  httpHost?: string;
  httpPort: string;
  data: string;
  shards?: string;
  durability: 'normal' | 'full';
  authSecret?: string;
  handshakeTimeout: string;
  heartbeat: string;
  window: string;
  maxPayload: string;
  maxConnections: string;
  rateLimit: string;
  retention: string;
  inboxMaxMessages: string;
  inboxMaxBytes: string;
  purgeInterval: string;
  nodeName: string;
  logLevel: string;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the server (SBP/1 over TCP, health over HTTP, SQLite inboxes)')
    .option('--host <host>', 'address for SBP over TCP', '127.0.0.1')
    .option('--port <port>', 'SBP over TCP port', '7070')
    .option('--http-host <host>', 'address for the HTTP port (default: --host)')
    .option('--http-port <port>', 'HTTP port (/healthz)', '7071')
    .option('--data <dir>', 'data folder (one SQLite file per shard)', './data')
    .option('--shards <n>', 'shard files of a new data folder (an existing one keeps its count)')
    .addOption(
      new Option(
        '--durability <mode>',
        'normal: survives a crash of the process; full: also power loss (fsync per commit)',
      )
        .choices(['normal', 'full'])
        .default('normal'),
    )
    .option(
      '--auth-secret <secret>',
      'HS256 secret for tokens (or SWITCHBOARD_AUTH_SECRET); none = open mode, loopback only',
    )
    .option('--handshake-timeout <duration>', 'time from accept to a complete HELLO', '5s')
    .option(
      '--heartbeat <duration>',
      'heartbeat told to clients; idle connections close after twice this',
      '30s',
    )
    .option('--window <n>', 'most unacknowledged DELIVERs per session', '1000')
    .option('--max-payload <size>', 'largest SEND payload', '64KiB')
    .option('--max-connections <n>', 'connection cap (0 = derived from the open-file limit)', '0')
    .option('--rate-limit <n>', 'SENDs per second per session (0 = none)', '0')
    .option('--retention <duration>', 'how long stored messages and accepted ids are kept', '7d')
    .option('--inbox-max-messages <n>', 'inbox cap in messages', '10000')
    .option('--inbox-max-bytes <size>', 'inbox cap in payload bytes', '64MiB')
    .option('--purge-interval <duration>', 'how often the retention sweep runs', '60s')
    .option('--node-name <name>', "WELCOME's node name of this process", 'w1')
    .option('--log-level <level>', 'pino log level', 'info')
    .action(async (flags: ServeFlags) => {
      const log = makeLogger(flags.logLevel);
      try {
        const limits = makeLimits({
          handshakeTimeoutMs: parseDuration(flags.handshakeTimeout),
          heartbeatMs: parseDuration(flags.heartbeat),
          window: positiveInt(flags.window, '--window'),
          maxPayload: positiveInt(String(parseBytes(flags.maxPayload)), '--max-payload'),
          maxConnections: nonNegativeInt(flags.maxConnections, '--max-connections'),
          rateLimitPerSecond: nonNegativeInt(flags.rateLimit, '--rate-limit'),
          retentionMs: parseDuration(flags.retention),
          inboxMaxMessages: positiveInt(flags.inboxMaxMessages, '--inbox-max-messages'),
          inboxMaxBytes: parseBytes(flags.inboxMaxBytes),
        });
        const auth = makeAuthenticator(flags.authSecret ?? process.env.SWITCHBOARD_AUTH_SECRET);
        const store = await SqliteInboxStore.open({
          dir: flags.data,
          shardCount: flags.shards === undefined ? undefined : positiveInt(flags.shards, '--shards'),
          durability: flags.durability,
          caps: {
            maxMessages: limits.inboxMaxMessages,
            maxBytes: limits.inboxMaxBytes,
            retentionMs: limits.retentionMs,
          },
        });
        const server = new SwitchboardServer({
          host: flags.host,
          port: positiveIntOrZero(flags.port, '--port'),
          httpHost: flags.httpHost ?? flags.host,
          httpPort: positiveIntOrZero(flags.httpPort, '--http-port'),
          limits,
          store,
          auth,
          log,
          nodeName: flags.nodeName,
          purgeIntervalMs: parseDuration(flags.purgeInterval),
        });
        await server.listen().catch(async (err) => {
          await store.close();
          throw err;
        });
        let stopping = false;
        const stop = (signal: string): void => {
          if (stopping) return;
          stopping = true;
          log.info({ signal }, 'signal received');
          server.shutdown().then(
            () => process.exit(0),
            (err) => {
              log.error({ err }, 'shutdown failed');
              process.exit(1);
            },
          );
        };
        process.on('SIGTERM', () => stop('SIGTERM'));
        process.on('SIGINT', () => stop('SIGINT'));
      } catch (err) {
        log.fatal({ err: err instanceof Error ? err.message : err }, 'cannot start');
        process.stderr.write(`switchboard serve: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      }
    });
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} must be a positive integer, not "${text}"`);
  return n;
}

function nonNegativeInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} must be a whole number ≥ 0, not "${text}"`);
  return n;
}

function positiveIntOrZero(text: string, flag: string): number {
  const n = nonNegativeInt(text, flag);
  if (n > 65535) throw new Error(`${flag} must be a port number (0–65535), not "${text}"`);
  return n;
}
