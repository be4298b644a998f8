/**
 * The primary process: spawns one worker per slot, hands them the connections (cluster round-robin:
 * the primary accepts and passes each socket on, so connections spread evenly), restarts a worker that
 * dies (at once, then with back-off if it keeps dying), replaces the workers one at a time on SIGHUP,
 * and orchestrates shutdown like the paper's kill packets: every worker drains (SHUTTING_DOWN to its
 * clients), then every worker commits its shards and exits, then the primary exits 0 — or, past the
 * shutdown timeout, kills what is left and exits 1. It holds no client connection itself.
 */
import cluster, { type Worker } from 'node:cluster';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { MetricsGatherer } from '../server/metrics/gather.js';
import type { PrimaryMessage, WorkerMessage } from './messages.js';

export interface PrimaryConfig {
  workers: number;
  shardCount: number;
  dataDir: string;
  shutdownTimeoutMs: number;
  /** V8's --max-semi-space-size for the workers, MiB. */
  semiSpaceMiB: number;
}

/** Environment a worker reads its place from. */
export const WORKER_ENV = {
  index: 'SWITCHBOARD_WORKER_INDEX',
  count: 'SWITCHBOARD_WORKERS',
  runDir: 'SWITCHBOARD_RUN_DIR',
  shards: 'SWITCHBOARD_SHARDS',
} as const;

/** The file in the data folder that names the running primary (for `switchboard reload`). */
export function pidFilePath(dataDir: string): string {
  return join(dataDir, 'switchboard.pid');
}

/** Run folders (bus sockets) of primaries that died without cleaning up (kill -9). */
function removeStaleRunDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    const m = /^switchboard-run-(\d+)-/.exec(name);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH')
        rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  }
}

interface Slot {
  index: number;
  worker: Worker;
  startedAt: number;
  prepared: boolean;
  listening: boolean;
  /** Consecutive deaths soon after start, for the restart back-off. */
  quickDeaths: number;
  /** Set while the primary itself is stopping or replacing this worker. */
  retiring: boolean;
  waiters: Record<'listening' | 'drained' | 'exited', (() => void)[]>;
}

/** A worker that lived this long before dying is restarted at once. */
const STABLE_AFTER_MS = 5000;
const MAX_RESTART_DELAY_MS = 5000;

export async function runPrimary(cfg: PrimaryConfig, log: Logger): Promise<void> {
  removeStaleRunDirs();
  const runDir = mkdtempSync(join(tmpdir(), `switchboard-run-${process.pid}-`));
  const slots: Slot[] = [];
  // GET /metrics reaches a worker, which asks us for every worker's metrics.
  const metrics = new MetricsGatherer(cfg.workers, () =>
    slots.filter((s) => s.worker.isConnected()).map((s) => s.worker),
  );
  let phase: 'starting' | 'running' | 'reloading' | 'stopping' = 'starting';
  let ports = { port: 0, httpPort: 0 };
  cluster.schedulingPolicy = cluster.SCHED_RR;
  // The young generation is sized per store (serve's --semi-space): what a loaded turn allocates must die
  // young, or it is copied and promoted.
  cluster.setupPrimary({ execArgv: [...process.execArgv, `--max-semi-space-size=${cfg.semiSpaceMiB}`] });

  const send = (slot: Slot, message: PrimaryMessage): void => {
    if (slot.worker.isConnected()) slot.worker.send(message);
  };

  const fire = (slot: Slot, what: keyof Slot['waiters']): void => {
    const callbacks = slot.waiters[what];
    slot.waiters[what] = [];
    for (const cb of callbacks) cb();
  };

  const fork = (index: number, quickDeaths = 0): Slot => {
    const worker = cluster.fork({
      [WORKER_ENV.index]: String(index),
      [WORKER_ENV.count]: String(cfg.workers),
      [WORKER_ENV.runDir]: runDir,
      [WORKER_ENV.shards]: String(cfg.shardCount),
    });
    const slot: Slot = {
      index,
      worker,
      startedAt: Date.now(),
      prepared: false,
      listening: false,
      quickDeaths,
      retiring: false,
      waiters: { listening: [], drained: [], exited: [] },
    };
    slots[index] = slot;
    worker.on('message', (m: WorkerMessage) => onMessage(slot, m));
    return slot;
  };

  const onMessage = (slot: Slot, m: WorkerMessage): void => {
    // A retiring worker may still be scraped, and still reports its metrics.
    if (metrics.onMessage(slot.worker, m)) return;
    if (slots[slot.index] !== slot) return;
    switch (m.type) {
      case 'prepared':
        slot.prepared = true;
        if (phase !== 'starting') send(slot, { type: 'listen' });
        else if (slots.every((s) => s.prepared)) for (const s of slots) send(s, { type: 'listen' });
        return;
      case 'listening':
        slot.listening = true;
        ports = { port: m.port, httpPort: m.httpPort };
        fire(slot, 'listening');
        if (phase === 'starting' && slots.every((s) => s.listening)) {
          phase = 'running';
          log.info({ ...ports, workers: cfg.workers, shards: cfg.shardCount, pid: process.pid }, 'listening');
        }
        return;
      case 'drained':
        fire(slot, 'drained');
        return;
    }
  };

  cluster.on('exit', (worker, code, signal) => {
    const slot = slots.find((s) => s.worker === worker);
    if (!slot) return;
    // Nobody waits forever on a dead worker.
    fire(slot, 'drained');
    fire(slot, 'listening');
    if (slot.retiring) {
      fire(slot, 'exited');
      return;
    }
    if (phase === 'starting' && !slot.prepared) {
      log.fatal({ worker: slot.index, code, signal }, 'a worker failed to start');
      for (const s of slots) if (s.worker !== worker) s.worker.process.kill('SIGKILL');
      cleanup();
      process.exit(1);
    }
    const livedMs = Date.now() - slot.startedAt;
    const quickDeaths = livedMs < STABLE_AFTER_MS ? slot.quickDeaths + 1 : 0;
    const delay = quickDeaths <= 1 ? 0 : Math.min(100 * 2 ** (quickDeaths - 1), MAX_RESTART_DELAY_MS);
    log.error(
      { worker: slot.index, code, signal, livedMs, restartInMs: delay },
      'worker died; restarting it',
    );
    metrics.workerRestarted();
    setTimeout(() => {
      if (phase !== 'stopping') fork(slot.index, quickDeaths);
    }, delay);
  });

  const until = (slot: Slot, what: keyof Slot['waiters']): Promise<void> =>
    new Promise((resolve) => {
      slot.waiters[what].push(resolve);
    });

  /** Stops one worker cleanly: drain its sessions, then let it commit its shards and exit. */
  const retire = async (slot: Slot): Promise<void> => {
    slot.retiring = true;
    const exited = until(slot, 'exited');
    if (slot.worker.isDead()) return;
    const drained = until(slot, 'drained');
    send(slot, { type: 'drain' });
    await drained;
    send(slot, { type: 'exit' });
    return exited;
  };

  const stopping = (): boolean => phase === 'stopping';

  const reload = async (): Promise<void> => {
    if (phase !== 'running') return;
    phase = 'reloading';
    log.info({ workers: cfg.workers }, 'replacing the workers one at a time');
    for (let i = 0; i < cfg.workers; i++) {
      await retire(slots[i]!);
      if (stopping()) return;
      await until(fork(i), 'listening');
      if (stopping()) return;
    }
    phase = 'running';
    log.info('every worker replaced');
  };

  const stop = async (signal: string): Promise<void> => {
    if (stopping()) return;
    phase = 'stopping';
    log.info({ signal }, 'shutting down');
    const killer = setTimeout(() => {
      const left = slots.filter((s) => !s.worker.isDead());
      log.error(
        { left: left.map((s) => s.index), timeoutMs: cfg.shutdownTimeoutMs },
        'shutdown timed out; killing',
      );
      for (const s of left) s.worker.process.kill('SIGKILL');
      cleanup();
      process.exit(1);
    }, cfg.shutdownTimeoutMs);
    // Every worker drains before any exits, so no home closes its shards while another still stores through it.
    const live = slots.filter((s) => !s.worker.isDead());
    for (const s of live) s.retiring = true;
    const exited = live.map((s) => until(s, 'exited'));
    const drained = live.map((s) => until(s, 'drained'));
    for (const s of live) send(s, { type: 'drain' });
    await Promise.all(drained);
    for (const s of live) send(s, { type: 'exit' });
    await Promise.all(exited);
    clearTimeout(killer);
    cleanup();
    log.info('stopped');
    process.exit(0);
  };

  const cleanup = (): void => {
    rmSync(runDir, { recursive: true, force: true });
    try {
      unlinkSync(pidFilePath(cfg.dataDir));
    } catch {
      /* already gone */
    }
  };

  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => void reload());

  mkdirSync(cfg.dataDir, { recursive: true });
  writeFileSync(pidFilePath(cfg.dataDir), `${process.pid}\n`);
  for (let i = 0; i < cfg.workers; i++) fork(i);
}
