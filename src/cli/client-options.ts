/** Flags shared by the client commands (send, listen, chat) and the SDK client they build from them. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { type ClientOptions, SwitchboardClient, SwitchboardError } from '../client/client.js';
import { defaultStateDir, FileStorage } from '../client/file-storage.js';
import { TcpTransport } from '../client/tcp-transport.js';
import { isValidAddress, isValidId } from '../protocol/index.js';
import { parseDuration } from '../util/duration.js';

export const DEFAULT_SERVER = '127.0.0.1:7070';

/** Exit codes of the client commands. */
export const EXIT = { ok: 0, usage: 1, error: 2, timeout: 3 } as const;

export interface CommonFlags {
  user: string;
  server: string;
  device?: string;
  token?: string;
  stateDir?: string;
  ca?: string;
}

export function addCommonOptions(cmd: Command, defaultDevice: string): Command {
  return cmd
    .requiredOption('-u, --user <id>', 'your user id')
    .option(
      '-s, --server <host:port>',
      'server address (tls://host:port for a server with --tls-cert)',
      DEFAULT_SERVER,
    )
    .option('--ca <file>', 'PEM certificate authority to trust for tls:// (e.g. a self-signed server)')
    .option('-d, --device <id>', 'device name', defaultDevice)
    .option('--token <jwt>', 'token for a server with a secret (or SWITCHBOARD_TOKEN)')
    .option(
      '--state-dir <dir>',
      `where the last clientMsgId and processed seq are kept (default ${defaultStateDir()})`,
    );
}

/** Prints `NAME: message` to stderr and exits with `code`. */
export function fail(name: string, message: string, code: number = EXIT.error): never {
  process.stderr.write(`${name}: ${message}\n`);
  process.exit(code);
}

export function describeError(err: unknown): { name: string; message: string } {
  if (err instanceof SwitchboardError) return { name: err.codeName, message: err.message };
  return { name: 'ERROR', message: err instanceof Error ? err.message : String(err) };
}

export function checkId(value: string, what: string): string {
  if (!isValidId(value))
    fail('USAGE', `${what} "${value}" is not a valid id ([A-Za-z0-9][A-Za-z0-9._-]{0,63})`, EXIT.usage);
  return value;
}

export function checkAddress(value: string, what: string): string {
  if (!isValidAddress(value)) fail('USAGE', `${what} "${value}" is not a user id or #group`, EXIT.usage);
  return value;
}

export function durationFlag(text: string, flag: string): number {
  try {
    return parseDuration(text);
  } catch (err) {
    return fail('USAGE', `${flag}: ${(err as Error).message}`, EXIT.usage);
  }
}

/** A client on TCP with its state in the state folder, from the common flags. */
export function makeClient(flags: CommonFlags, extra: Partial<ClientOptions> = {}): SwitchboardClient {
  const user = checkId(flags.user, '--user');
  const device = checkId(flags.device ?? 'cli', '--device');
  return new SwitchboardClient({
    endpoint: flags.server,
    user,
    device,
    token: flags.token ?? process.env.SWITCHBOARD_TOKEN ?? '',
    transport: new TcpTransport({
      connectTimeoutMs: 5_000,
      tls: flags.ca ? { ca: readFileSync(flags.ca) } : undefined,
    }),
    storage: new FileStorage(flags.stateDir ?? defaultStateDir(), flags.server, user, device),
    ...extra,
  });
}

/** Why the client has not connected yet, from its last 'reconnecting' event. */
export function trackLastError(client: SwitchboardClient): () => string {
  let last: Error | undefined;
  client.on('reconnecting', (r) => {
    if (r.lastError) last = r.lastError;
  });
  return () => (last ? last.message : 'no answer');
}

export function formatTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
