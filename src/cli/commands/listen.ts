/**
 * `switchboard listen --user bob`: prints each message as it is delivered (and ACKs it). Exits 0 after
 * --count messages, or at --timeout: 0 without --count, 3 if --count was not reached (or it never
 * connected); a fatal server error prints `ERROR_NAME: message` and exits 2.
 */
import type { Command } from 'commander';
import type { Message } from '../../client/client.js';
import {
  addCommonOptions,
  type CommonFlags,
  describeError,
  durationFlag,
  EXIT,
  fail,
  formatTime,
  hex,
  makeClient,
  trackLastError,
} from '../client-options.js';

interface ListenFlags extends CommonFlags {
  count?: string;
  timeout: string;
  json?: boolean;
}

export function registerListen(program: Command): void {
  addCommonOptions(
    program
      .command('listen')
      .description('print messages as they arrive')
      .option('-n, --count <n>', 'exit after this many messages')
      .option('--timeout <duration>', 'exit after this long (0 = never)', '10s')
      .option('--json', 'one JSON object per message and line'),
    'cli-listen',
  ).action(async (flags: ListenFlags) => {
    process.exitCode = await runListen(flags);
  });
}

export function formatMessage(m: Message, json: boolean): string {
  if (json) {
    return JSON.stringify({
      seq: m.seq,
      from: m.from,
      fromDevice: m.fromDevice,
      clientMsgId: m.clientMsgId,
      to: m.to,
      timestamp: m.timestamp,
      text: m.text,
      ...(m.text === null ? { payloadHex: hex(m.payload) } : {}),
      ...(m.ephemeral ? { ephemeral: true } : {}),
    });
  }
  const body =
    m.text ??
    `<${m.payload.length} bytes: ${hex(m.payload.subarray(0, 64))}${m.payload.length > 64 ? '…' : ''}>`;
  return `${formatTime(m.timestamp)} ${m.from} → ${m.to}: ${body}${m.ephemeral ? ' (ephemeral)' : ''}`;
}

async function runListen(flags: ListenFlags): Promise<number> {
  const count = flags.count === undefined ? undefined : Number(flags.count);
  if (count !== undefined && (!Number.isInteger(count) || count < 1)) {
    fail('USAGE', `--count must be a positive integer, not "${flags.count}"`, EXIT.usage);
  }
  const timeoutMs = durationFlag(flags.timeout, '--timeout');
  const client = makeClient(flags, { backoff: { initialMs: 200, maxMs: 2_000 } });
  const lastError = trackLastError(client);
  let received = 0;
  const code = await new Promise<number>((resolve) => {
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            if (!client.info) {
              process.stderr.write(`TIMEOUT: could not connect to ${flags.server} (${lastError()})\n`);
              finish(EXIT.timeout);
            } else if (count !== undefined) {
              process.stderr.write(`TIMEOUT: ${received} of ${count} messages within ${flags.timeout}\n`);
              finish(EXIT.timeout);
            } else {
              finish(EXIT.ok);
            }
          }, timeoutMs)
        : undefined;
    const finish = (c: number): void => {
      clearTimeout(timer);
      // Closing at once (inside the listener) keeps later DELIVERs of the same chunk unprocessed and unACKed.
      void client.close();
      resolve(c);
    };
    client.on('message', (m) => {
      if (count !== undefined && received >= count) return;
      received++;
      process.stdout.write(`${formatMessage(m, !!flags.json)}\n`);
      if (count !== undefined && received >= count) finish(EXIT.ok);
    });
    client.on('error', (err) => {
      const { name, message } = describeError(err);
      process.stderr.write(`${name}: ${message}\n`);
      finish(EXIT.error);
    });
    process.once('SIGINT', () => finish(EXIT.ok));
    client.start();
  });
  await client.close();
  return code;
}
