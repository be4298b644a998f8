/**
 * `switchboard send --user alice --to bob TEXT`: sends one message and exits 0 once the server has
 * ACCEPTED it (for --ephemeral: once written and a PING round trip showed no error for it). Anything
 * else prints `ERROR_NAME: message` to stderr and exits non-zero (2 for an error, 3 for the timeout);
 * a message not accepted in time is dropped from the state folder, so it is not re-sent later.
 */
import type { Command } from 'commander';
import {
  addCommonOptions,
  type CommonFlags,
  checkAddress,
  describeError,
  durationFlag,
  EXIT,
  makeClient,
  trackLastError,
} from '../client-options.js';

interface SendFlags extends CommonFlags {
  to: string;
  ephemeral?: boolean;
  json?: boolean;
  timeout: string;
}

export function registerSend(program: Command): void {
  addCommonOptions(
    program
      .command('send')
      .description('send one message and wait until the server has accepted it')
      .argument('<text...>', 'the message (words are joined with spaces)')
      .requiredOption('-t, --to <address>', 'recipient: a user id or #group')
      .option('--ephemeral', 'send as ephemeral (only to connected devices, never stored)')
      .option('--json', 'print {clientMsgId, timestamp, duplicate} once accepted')
      .option('--timeout <duration>', 'give up after this long', '10s'),
    'cli-send',
  ).action(async (words: string[], flags: SendFlags) => {
    process.exitCode = await runSend(words.join(' '), flags);
  });
}

async function runSend(text: string, flags: SendFlags): Promise<number> {
  const to = checkAddress(flags.to, '--to');
  const timeoutMs = durationFlag(flags.timeout, '--timeout');
  const client = makeClient(flags, { backoff: { initialMs: 200, maxMs: 2_000 } });
  const lastError = trackLastError(client);
  let id = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const why = client.info ? 'not accepted' : `could not connect to ${flags.server} (${lastError()})`;
      reject(Object.assign(new Error(`${why} within ${flags.timeout}`), { codeName: 'TIMEOUT' }));
    }, timeoutMs);
  });
  const fatal = new Promise<never>((_, reject) => client.on('error', reject));
  const work = async (): Promise<void> => {
    if (!flags.ephemeral) {
      client.start();
      const r = await client.send(to, text, { onId: (n) => (id = n) });
      if (flags.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      return;
    }
    await client.start();
    const requestError = new Promise<never>((_, reject) =>
      client.on('requestError', (e) => {
        if (e.ref === id) reject(e.error);
      }),
    );
    const r = await client.send(to, text, { ephemeral: true, onId: (n) => (id = n) });
    await Promise.race([client.ping(), requestError]);
    if (flags.json) process.stdout.write(`${JSON.stringify(r)}\n`);
  };
  try {
    await Promise.race([work(), timeout, fatal]);
    return EXIT.ok;
  } catch (err) {
    const e = err as { codeName?: string };
    const { name, message } = describeError(err);
    process.stderr.write(`${e.codeName ?? name}: ${message}\n`);
    return e.codeName === 'TIMEOUT' ? EXIT.timeout : EXIT.error;
  } finally {
    clearTimeout(timer);
    if (id) client.discard(id);
    await client.close();
  }
}
