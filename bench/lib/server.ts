/**
 * A real `switchboard serve` process for a benchmark run: a fresh data folder in the temp dir, free
 * ports on 127.0.0.1, `--workers N`, `--durability`, optionally pinned to one CPU with taskset (the
 * primary and the workers it forks inherit the affinity). Every server started is stopped by PID
 * (SIGTERM, then SIGKILL to its whole tree after 10 s) and its data folder removed; `killAllServersNow` is the
 * synchronous last resort on an abrupt exit of the benchmark.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pinnedCommand } from './machine.js';
import { ManagedProcess, ProcessRegistry } from './managed-process.js';

export type Durability = 'normal' | 'full';

export interface ServerSpec {
  workers: number;
  durability: Durability;
  /** Shard files of the new data folder; undefined = the server's default. */
  shards?: number;
  /** The CPU the whole process tree runs on (taskset -c); undefined = not pinned. */
  cpu?: number;
  /** Further `serve` flags (e.g. `--store redis://…`, `--node-name n1`). */
  serveArgs?: readonly string[];
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = path.join(ROOT, 'bin', 'switchboard.js');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
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

const started = new ProcessRegistry();

/**
 * Stops every server still running the graceful way (SIGTERM, so each primary cleans up after itself),
 * giving up after `graceMs`; whatever is left is then killed.
 */
export function stopAllServers(graceMs: number): Promise<void> {
  return started.stopAll(graceMs);
}

/** Kills every server still running (SIGKILL) and removes its data folder; synchronous. */
export function killAllServersNow(): void {
  started.killAllNow();
}

export class ServerProcess extends ManagedProcess {
  private constructor(
    child: ChildProcess,
    pid: number,
    dir: string,
    readonly port: number,
    readonly httpPort: number,
    onListening: () => void,
  ) {
    super(child, pid, dir, started, (line) => {
      if (!line.includes('"listening"')) return;
      try {
        if ((JSON.parse(line) as { msg?: unknown }).msg === 'listening') onListening();
      } catch {
        // Not a JSON log line.
      }
    });
  }

  /** Starts `switchboard serve`; resolves once it logs "listening" or /healthz answers 200. */
  static async start(spec: ServerSpec): Promise<ServerProcess> {
    const port = await freePort();
    let httpPort = await freePort();
    while (httpPort === port) httpPort = await freePort();
    const dir = mkdtempSync(path.join(os.tmpdir(), `switchboard-bench-w${spec.workers}-${spec.durability}-`));
    // SWITCHBOARD_BENCH_NODE_ARGS: extra node flags for the server (e.g. "--cpu-prof --cpu-prof-dir=prof").
    const nodeArgs = (process.env.SWITCHBOARD_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
    const args = [
      ...nodeArgs,
      BIN,
      'serve',
      '--port',
      String(port),
      '--http-port',
      String(httpPort),
      '--data',
      dir,
      '--workers',
      String(spec.workers),
      '--durability',
      spec.durability,
      '--log-level',
      'warn',
      ...(spec.shards === undefined ? [] : ['--shards', String(spec.shards)]),
      ...(spec.serveArgs ?? []),
      // SWITCHBOARD_BENCH_SERVE_ARGS: extra `serve` flags (e.g. "--semi-space 4").
      ...(process.env.SWITCHBOARD_BENCH_SERVE_ARGS ?? '').split(/\s+/).filter(Boolean),
    ];
    const { command, args: argv } =
      spec.cpu === undefined ? { command: process.execPath, args } : pinnedCommand(spec.cpu, args);
    const child = spawn(command, argv, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid === undefined) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`could not start the server process (${command})`);
    }
    let listening = false;
    const server = new ServerProcess(child, child.pid, dir, port, httpPort, () => {
      listening = true;
    });
    // With --log-level warn the "listening" line may not be printed: /healthz decides then.
    await server.waitReady('the server', async () => listening || (await healthy(httpPort)));
    return server;
  }
}
