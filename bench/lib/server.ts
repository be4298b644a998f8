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
import { processTree } from './proc.js';

export type Durability = 'normal' | 'full';

export interface ServerSpec {
  workers: number;
  durability: Durability;
  /** Shard files of the new data folder; undefined = the server's default. */
  shards?: number;
  /** The CPU the whole process tree runs on (taskset -c); undefined = not pinned. */
  cpu?: number;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = path.join(ROOT, 'bin', 'switchboard.js');
const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;

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

const started = new Set<ServerProcess>();

/**
 * Stops every server still running the graceful way (SIGTERM, so each primary cleans up after itself),
 * giving up after `graceMs`; whatever is left is then killed by `killAllServersNow`.
 */
export async function stopAllServers(graceMs: number): Promise<void> {
  const all = [...started];
  await Promise.race([Promise.all(all.map((s) => s.stop())), sleep(graceMs)]);
  killAllServersNow();
}

/** Kills every server still running (SIGKILL) and removes its data folder; synchronous. */
export function killAllServersNow(): void {
  for (const s of started) s.killNow();
  started.clear();
}

export class ServerProcess {
  private readonly output: string[] = [];
  private exitInfo: string | null = null;
  private readonly exited: Promise<void>;

  private constructor(
    readonly child: ChildProcess,
    /** The primary's pid (taskset execs node in place, so it is the spawned pid). */
    readonly pid: number,
    readonly dir: string,
    readonly port: number,
    readonly httpPort: number,
    private onListening: () => void,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
        resolve();
      });
    });
    child.on('error', (err) => this.output.push(`spawn error: ${err.message}`));
    const keep = (line: string): void => {
      if (line.trim() === '') return;
      if (line.includes('"listening"')) {
        try {
          if ((JSON.parse(line) as { msg?: unknown }).msg === 'listening') this.onListening();
        } catch {
          // Not a JSON log line.
        }
      }
      this.output.push(line);
      if (this.output.length > 40) this.output.shift();
    };
    // Always drain both pipes, so a chatty server never blocks on a full pipe.
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (text: string) => {
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) keep(line);
      });
    }
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
    started.add(server);
    // With --log-level warn the "listening" line may not be printed: /healthz decides then.
    const deadline = Date.now() + START_TIMEOUT_MS;
    let why = `the server did not answer /healthz within ${START_TIMEOUT_MS / 1000} s`;
    while (Date.now() < deadline) {
      if (!server.alive) {
        why = `the server exited during start-up (${server.exitInfo})`;
        break;
      }
      if (listening || (await healthy(httpPort))) return server;
      await sleep(100);
    }
    const tail = server.tail();
    await server.stop();
    throw new Error(tail ? `${why}\nlast server output:\n${tail}` : why);
  }

  tail(): string {
    return this.output.slice(-20).join('\n');
  }

  get alive(): boolean {
    return this.exitInfo === null;
  }

  /** SIGTERM, SIGKILL after 10 s; then removes the data dir. */
  async stop(): Promise<void> {
    if (this.alive) {
      try {
        process.kill(this.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), STOP_GRACE_MS).unref());
      if ((await Promise.race([this.exited.then(() => 'exited' as const), timer])) === 'timeout') {
        this.killTree();
        await Promise.race([this.exited, sleep(2000)]);
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    started.delete(this);
  }

  /** Synchronous last resort on an abrupt exit of the bench. */
  killNow(): void {
    if (this.alive) this.killTree();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** SIGKILL to the primary and every process under it (its workers would otherwise outlive it). */
  private killTree(): void {
    for (const pid of processTree([this.pid]).reverse()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}
