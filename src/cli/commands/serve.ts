/** `switchboard serve`: the server on its embedded default (SQLite in ./data, TCP 7070, HTTP 7071). */
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createSecureContext } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { type Command, Option } from 'commander';
import type { Logger } from 'pino';
import { runPrimary, WORKER_ENV } from '../../cluster/primary.js';
import { runWorker } from '../../cluster/worker.js';
import { isLoopbackHost, makeAuthenticator } from '../../server/auth.js';
import { type Limits, makeLimits } from '../../server/limits.js';
import { makeLogger } from '../../server/logger.js';
import { RedisInboxStore } from '../../store/redis.js';
import { DEFAULT_SHARD_COUNT } from '../../store/shard.js';
import { existingShardCount } from '../../store/sqlite.js';
import { parseBytes, parseDuration } from '../../util/duration.js';

/**
 * The workers' young generation (V8's semi-space, MiB), per store. It must hold what the messages in flight
 * allocate between two scavenges, or their objects are copied and promoted, and left to full collections.
 * On SQLite a loaded turn allocates 1–2 MiB before its commit answers it (≈ 4 KiB per message), so with
 * 1 MiB every turn's state was copied: measured pinned, 1 000 users at full load, 16 MiB (Node's default
 * maximum on 64-bit) −6 to −14 % CPU per message and a lower p99, the same below full load, and idle
 * connections about as cheap (100 000 held at 4.08 KiB each, docs/BENCHMARKS.md). On Redis every write
 * also waits a round trip, and 8 MiB measured best: −17 % CPU per message and p99 halved against 1 MiB
 * at 5 000 msg/s, where 16 MiB cost the same CPU at a p99 half again as high (docs/OPERATIONS.md).
 */
const SQLITE_SEMI_SPACE_MIB = 16;
const REDIS_SEMI_SPACE_MIB = 8;

interface ServeFlags {
  host: string;
  port: string;
  httpHost?: string;
  httpPort: string;
  data: string;
  store?: string;
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
  nodeName?: string;
  workers?: string;
  shutdownTimeout: string;
  semiSpace?: string;
  webRoot: string;
  tlsCert?: string;
  tlsKey?: string;
  logLevel: string;
}

/** The web client built beside the server (dist/web, by `npm run build`). */
const BUILT_WEB_CLIENT = fileURLToPath(new URL('../../../web', import.meta.url));

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the server (SBP/1 over TCP and WebSocket, health over HTTP, SQLite inboxes)')
    .option('--host <host>', 'address for SBP over TCP', '127.0.0.1')
    .option('--port <port>', 'SBP over TCP port', '7070')
    .option('--http-host <host>', 'address for the HTTP port (default: --host)')
    .option(
      '--http-port <port>',
      'HTTP port: SBP over WebSocket at /sbp, the web app, /healthz, /readyz and /metrics',
      '7071',
    )
    .option('--data <dir>', 'data folder (one SQLite file per shard)', './data')
    .option(
      '--store <url>',
      'redis://host:port[/db] or redis-cluster://host:port,host:port,… (or SWITCHBOARD_STORE); default: SQLite in --data',
    )
    .option('--web-root <dir>', 'the web client served at / on the HTTP port', BUILT_WEB_CLIENT)
    .option('--shards <n>', 'shard files of a new data folder (an existing one keeps its count)')
    .addOption(
      new Option(
        '--durability <mode>',
        'normal: survives a crash of the process; full: also power loss (fsync per commit), and on a Redis Cluster a failover (a replica has each write)',
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
    .option('--workers <n>', 'worker processes (default: one per core)')
    .option(
      '--semi-space <MiB>',
      `V8's young-generation semi-space per worker (default: ${SQLITE_SEMI_SPACE_MIB}, with --store ` +
        `${REDIS_SEMI_SPACE_MIB})`,
    )
    .option(
      '--shutdown-timeout <duration>',
      'how long a graceful shutdown may take before the rest is killed',
      '10s',
    )
    .option('--tls-cert <file>', 'PEM certificate (chain): TLS on both ports (SBP over TLS, https and wss)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--node-name <name>', "this machine's name in WELCOME's node (`<name>.w3`); none on one machine")
    .option('--log-level <level>', 'pino log level', 'info')
    .action(async (flags: ServeFlags) => {
      const log = makeLogger(flags.logLevel);
      try {
        if (cluster.isPrimary) await startPrimary(flags, log);
        else await startWorker(flags, log);
      } catch (err) {
        log.fatal({ err: err instanceof Error ? err.message : err }, 'cannot start');
        process.stderr.write(`switchboard serve: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      }
    });
}

/** Everything a worker needs, from the same flags the primary was given (workers re-run this command). */
function limitsFrom(flags: ServeFlags, workers: number, index = 0): Limits {
  const maxConnections = nonNegativeInt(flags.maxConnections, '--max-connections');
  return makeLimits({
    handshakeTimeoutMs: parseDuration(flags.handshakeTimeout),
    heartbeatMs: parseDuration(flags.heartbeat),
    window: positiveInt(flags.window, '--window'),
    maxPayload: positiveInt(String(parseBytes(flags.maxPayload)), '--max-payload'),
    maxConnections: maxConnections === 0 ? 0 : workerShare(maxConnections, workers, index),
    rateLimitPerSecond: nonNegativeInt(flags.rateLimit, '--rate-limit'),
    retentionMs: parseDuration(flags.retention),
    inboxMaxMessages: positiveInt(flags.inboxMaxMessages, '--inbox-max-messages'),
    inboxMaxBytes: parseBytes(flags.inboxMaxBytes),
  });
}

/**
 * Worker `index`'s share of a global connection cap: the cap split as evenly as whole numbers allow
 * (round-robin hands every worker the same share of connections), so the shares never add up to more.
 * A share of 0 is written -1: that worker takes no connection.
 */
function workerShare(cap: number, workers: number, index: number): number {
  const share = Math.floor(cap / workers) + (index < cap % workers ? 1 : 0);
  return share === 0 ? -1 : share;
}

function workerCount(flags: ServeFlags): number {
  return flags.workers === undefined ? availableParallelism() : positiveInt(flags.workers, '--workers');
}

/** Checks what can be checked once, before any worker starts, then runs the primary. */
async function startPrimary(flags: ServeFlags, log: Logger): Promise<void> {
  const workers = workerCount(flags);
  limitsFrom(flags, workers);
  tlsFrom(flags);
  const url = storeUrl(flags);
  if (url) {
    // Checked once here (reachable, and AOF as --durability asks) so a wrong store stops the start
    // with one clear message instead of workers failing one after another.
    const probe = await RedisInboxStore.open({
      url,
      durability: flags.durability,
      log,
      caps: { maxMessages: 1, maxBytes: 1, retentionMs: 1 },
    });
    await probe.close();
  }
  const secret = flags.authSecret ?? process.env.SWITCHBOARD_AUTH_SECRET;
  const exposed = [flags.host, flags.httpHost ?? flags.host].find((h) => !isLoopbackHost(h));
  if (!secret && exposed !== undefined) {
    throw new Error(
      `refusing to listen on ${exposed} without an auth secret: open mode lets anyone claim any user. ` +
        'Set --auth-secret (or SWITCHBOARD_AUTH_SECRET), or listen on 127.0.0.1.',
    );
  }
  const existing = existingShardCount(flags.data);
  const wanted = flags.shards === undefined ? undefined : positiveInt(flags.shards, '--shards');
  if (existing !== null && wanted !== undefined && existing !== wanted) {
    throw new Error(
      `${flags.data} holds ${existing} shards; --shards ${wanted} applies only to a new data folder`,
    );
  }
  await runPrimary(
    {
      workers,
      shardCount: existing ?? wanted ?? DEFAULT_SHARD_COUNT,
      dataDir: flags.data,
      shutdownTimeoutMs: parseDuration(flags.shutdownTimeout),
      semiSpaceMiB:
        flags.semiSpace === undefined
          ? url
            ? REDIS_SEMI_SPACE_MIB
            : SQLITE_SEMI_SPACE_MIB
          : positiveInt(flags.semiSpace, '--semi-space'),
    },
    log,
  );
}

async function startWorker(flags: ServeFlags, log: Logger): Promise<void> {
  const workers = Number(process.env[WORKER_ENV.count]);
  const index = Number(process.env[WORKER_ENV.index]);
  const limits = limitsFrom(flags, workers, index);
  await runWorker(
    {
      index,
      workers,
      shardCount: Number(process.env[WORKER_ENV.shards]),
      runDir: process.env[WORKER_ENV.runDir]!,
      dataDir: flags.data,
      durability: flags.durability,
      storeUrl: storeUrl(flags),
      limits,
      nodeName: flags.nodeName ?? '',
      server: {
        host: flags.host,
        port: portNumber(flags.port, '--port'),
        httpHost: flags.httpHost ?? flags.host,
        httpPort: portNumber(flags.httpPort, '--http-port'),
        auth: makeAuthenticator(flags.authSecret ?? process.env.SWITCHBOARD_AUTH_SECRET),
        purgeIntervalMs: parseDuration(flags.purgeInterval),
        webRoot: flags.webRoot,
        tls: tlsFrom(flags),
      },
    },
    log,
  );
}

/** The Redis store's URL (--store or SWITCHBOARD_STORE), or null for the embedded SQLite store. */
function storeUrl(flags: ServeFlags): string | null {
  const url = flags.store ?? process.env.SWITCHBOARD_STORE ?? '';
  if (url === '' || url === 'sqlite') return null;
  if (!/^redis(-cluster)?:\/\//.test(url)) {
    throw new Error(`--store must be redis://host:port[/db] or redis-cluster://host:port,…, not "${url}"`);
  }
  return url;
}

/** The certificate and key of --tls-cert / --tls-key (both or neither), checked to form a TLS context. */
function tlsFrom(flags: ServeFlags): { cert: Buffer; key: Buffer } | undefined {
  if (!flags.tlsCert && !flags.tlsKey) return undefined;
  if (!flags.tlsCert || !flags.tlsKey) throw new Error('--tls-cert and --tls-key go together');
  const tls = { cert: readFileSync(flags.tlsCert), key: readFileSync(flags.tlsKey) };
  try {
    createSecureContext(tls);
  } catch (err) {
    throw new Error(`--tls-cert / --tls-key: ${(err as Error).message}`);
  }
  return tls;
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

function portNumber(text: string, flag: string): number {
  const n = nonNegativeInt(text, flag);
  if (n > 65535) throw new Error(`${flag} must be a port number (0–65535), not "${text}"`);
  return n;
}
