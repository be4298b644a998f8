/**
 * The servers the peer benchmarks measure, each a fresh process on 127.0.0.1 with a stated
 * configuration, in a fresh temp folder, optionally pinned to one CPU (`taskset -c`, which execs the
 * server in place: the spawned pid is the server's):
 *
 * - Switchboard: `node bin/switchboard.js serve --workers N --durability mode` on free ports, a fresh
 *   data folder (ready when /healthz answers 200);
 * - Mosquitto: a config file with one loopback listener, anonymous access, persistence on in the temp
 *   folder and `max_queued_messages` high enough for the drain (ready when the port accepts);
 * - nats-server: a config file with a loopback listen address (ready when the port accepts).
 *
 * Every server started is stopped by PID: SIGTERM, then SIGKILL to its process tree after 10 s; its
 * folder is then removed. `killAllPeersNow` is the synchronous last resort on an abrupt exit.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManagedProcess, ProcessRegistry } from '../lib/managed-process.js';
import { freePort } from '../lib/server.js';

export { freePort };

export type ServerKind = 'switchboard' | 'mosquitto' | 'nats';

/** The package root (this file runs as dist/bench/drivers/servers.js). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SWITCHBOARD_BIN = path.join(ROOT, 'bin', 'switchboard.js');

/** The executable `name` on the PATH or in the sbin folders (Debian puts both servers in /usr/sbin). */
export function findBinary(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // Not here.
    }
  }
  return null;
}

/** "2.0.11" from `mosquitto -h`, "2.9.10" from `nats-server --version`; null when absent. */
export function serverVersion(kind: Exclude<ServerKind, 'switchboard'>): string | null {
  const bin = findBinary(kind === 'mosquitto' ? 'mosquitto' : 'nats-server');
  if (bin === null) return null;
  const r = spawnSync(bin, [kind === 'mosquitto' ? '-h' : '--version'], { encoding: 'utf8', timeout: 5000 });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const m = kind === 'mosquitto' ? /mosquitto version (\S+)/.exec(text) : /nats-server: v?(\S+)/.exec(text);
  return m ? m[1]! : null;
}

const running = new ProcessRegistry();

/** Stops every server still running (SIGTERM, up to `graceMs`), then kills the rest. */
export function stopAllPeers(graceMs: number): Promise<void> {
  return running.stopAll(graceMs);
}

/** SIGKILL to every server still running and removal of its folder; synchronous. */
export function killAllPeersNow(): void {
  running.killAllNow();
}

export interface StartOptions {
  /** The CPU the server runs on (taskset -c); undefined = not pinned. */
  cpu?: number;
}

export class PeerServer extends ManagedProcess {
  private constructor(
    readonly kind: ServerKind,
    child: ChildProcess,
    pid: number,
    dir: string,
    readonly port: number,
    /** The configuration as run: the config file's text, or the command line. */
    readonly config: string,
  ) {
    super(child, pid, dir, running);
  }

  /** Spawns `command args` (pinned when asked) in `dir` and waits until `ready()` is true. */
  static async spawn(
    kind: ServerKind,
    command: string,
    args: string[],
    dir: string,
    port: number,
    config: string,
    ready: () => Promise<boolean>,
    opts: StartOptions,
  ): Promise<PeerServer> {
    const [cmd, argv] =
      opts.cpu === undefined ? [command, args] : ['taskset', ['-c', String(opts.cpu), command, ...args]];
    const child = spawn(cmd, argv, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid === undefined) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`could not start ${kind} (${cmd})`);
    }
    const server = new PeerServer(kind, child, child.pid, dir, port, config);
    await server.waitReady(kind, ready);
    return server;
  }
}

/** True when something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.setTimeout(1000);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(false));
  });
}

async function healthy(httpPort: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ the three servers

export interface SwitchboardOptions extends StartOptions {
  workers?: number;
  durability?: 'normal' | 'full';
  /** Extra `serve` flags (e.g. ['--inbox-max-messages', '20000']). */
  args?: string[];
}

export async function startSwitchboard(opts: SwitchboardOptions = {}): Promise<PeerServer> {
  const port = await freePort();
  let httpPort = await freePort();
  while (httpPort === port) httpPort = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-peers-sbp-'));
  const flags = [
    '--workers',
    String(opts.workers ?? 1),
    '--durability',
    opts.durability ?? 'normal',
    '--log-level',
    'warn',
    ...(opts.args ?? []),
  ];
  const args = [
    SWITCHBOARD_BIN,
    'serve',
    '--port',
    String(port),
    '--http-port',
    String(httpPort),
    '--data',
    dir,
    ...flags,
  ];
  const config = `switchboard serve --port <free> --http-port <free> --data <fresh folder> ${flags.join(' ')}`;
  return PeerServer.spawn(
    'switchboard',
    process.execPath,
    args,
    dir,
    port,
    config,
    () => healthy(httpPort),
    opts,
  );
}

export interface MosquittoOptions extends StartOptions {
  /** max_queued_messages (per client, above the in-flight ones); at least the drain's M. */
  maxQueuedMessages?: number;
}

/** The config file of a benchmark Mosquitto (`dir` holds its persistence file). */
export function mosquittoConfig(port: number, dir: string, maxQueued: number): string {
  return [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    // Persistent sessions and QoS 1 messages are kept in memory and saved to mosquitto.db in this
    // folder every autosave_interval (default 1800 s) and at shutdown: no disk write per message.
    'persistence true',
    `persistence_location ${dir}${path.sep}`,
    `max_queued_messages ${maxQueued}`,
    // TCP_NODELAY on client sockets, as Switchboard and nats-server set on theirs. With Mosquitto's
    // default (false, Nagle on) the same generator spent ~1.4× the CPU per message here and the runs
    // measured ~30 % fewer msg/s, a cost of the client side rather than of the broker.
    'set_tcp_nodelay true',
    // When run as root, stay this user instead of switching to "mosquitto" (which could not write
    // the temp folder); without root this line has no effect.
    `user ${os.userInfo().username}`,
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    '',
  ].join('\n');
}

export async function startMosquitto(opts: MosquittoOptions = {}): Promise<PeerServer> {
  const bin = findBinary('mosquitto');
  if (bin === null) throw new Error('mosquitto is not installed (bash scripts/ensure-packages.sh mosquitto)');
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-peers-mosquitto-'));
  const config = mosquittoConfig(port, dir, opts.maxQueuedMessages ?? 1000);
  const file = path.join(dir, 'mosquitto.conf');
  writeFileSync(file, config);
  return PeerServer.spawn('mosquitto', bin, ['-c', file], dir, port, config, () => accepts(port), opts);
}

/** The config file of a benchmark nats-server. */
export function natsConfig(port: number): string {
  return [`listen: 127.0.0.1:${port}`, ''].join('\n');
}

export async function startNats(opts: StartOptions = {}): Promise<PeerServer> {
  const bin = findBinary('nats-server');
  if (bin === null)
    throw new Error('nats-server is not installed (bash scripts/ensure-packages.sh nats-server)');
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-peers-nats-'));
  const config = natsConfig(port);
  const file = path.join(dir, 'nats.conf');
  writeFileSync(file, config);
  return PeerServer.spawn('nats', bin, ['-c', file], dir, port, config, () => accepts(port), opts);
}
