/**
 * A server process a benchmark started: its output kept (the last 40 lines, both pipes always drained so
 * a chatty server never blocks), its exit noted, stopped by PID — SIGTERM, then SIGKILL to its whole
 * process tree after a grace period — and its temp folder removed. Each kind of server keeps its own
 * registry, so a benchmark can stop everything it started when it ends (or is interrupted).
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { processTree } from './proc.js';

const STOP_GRACE_MS = 10_000;
const START_TIMEOUT_MS = 30_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The processes of one kind still running: stopped together at the end of a benchmark. */
export class ProcessRegistry {
  readonly running = new Set<ManagedProcess>();

  /** Stops every process the graceful way (SIGTERM), giving up after `graceMs`; then kills the rest. */
  async stopAll(graceMs: number): Promise<void> {
    await Promise.race([Promise.all([...this.running].map((p) => p.stop())), sleep(graceMs)]);
    this.killAllNow();
  }

  /** SIGKILL to every process still running and removal of its folder; synchronous. */
  killAllNow(): void {
    for (const p of this.running) p.killNow();
    this.running.clear();
  }
}

export class ManagedProcess {
  private readonly output: string[] = [];
  exitInfo: string | null = null;
  private readonly exited: Promise<void>;

  constructor(
    child: ChildProcess,
    /** The spawned pid (taskset execs the server in place, so it is the server's). */
    readonly pid: number,
    /** Its temp folder (data, config), removed when it stops. */
    readonly dir: string,
    private readonly registry: ProcessRegistry,
    /** Sees every output line (e.g. to notice a "listening" log line). */
    onLine?: (line: string) => void,
  ) {
    registry.running.add(this);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
        resolve();
      });
    });
    const keep = (line: string): void => {
      if (line.trim() === '') return;
      onLine?.(line);
      this.output.push(line);
      if (this.output.length > 40) this.output.shift();
    };
    child.on('error', (err) => keep(`spawn error: ${err.message}`));
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

  /**
   * Waits until `ready()` (polled every 100 ms) for at most 30 s; if the process exits or the time runs
   * out, stops it and throws with the last lines of its output.
   */
  async waitReady(what: string, ready: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    let why = `${what} was not ready within ${START_TIMEOUT_MS / 1000} s`;
    while (Date.now() < deadline) {
      if (!this.alive) {
        why = `${what} exited during start-up (${this.exitInfo})`;
        break;
      }
      if (await ready()) return;
      await sleep(100);
    }
    const tail = this.tail();
    await this.stop();
    throw new Error(tail ? `${why}\nlast output:\n${tail}` : why);
  }

  tail(): string {
    return this.output.slice(-20).join('\n');
  }

  get alive(): boolean {
    return this.exitInfo === null;
  }

  /** SIGTERM, SIGKILL to the tree after 10 s; then removes the folder. */
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
    this.registry.running.delete(this);
  }

  /** Synchronous last resort on an abrupt exit of the benchmark. */
  killNow(): void {
    if (this.alive) this.killTree();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** SIGKILL to the process and every process under it (a primary's workers would outlive it). */
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
