/**
 * The event-loop delay inside the server's processes, measured without changing the server: the
 * benchmark starts `serve` with `node --import <loop-delay-probe.js>` (through
 * SWITCHBOARD_BENCH_NODE_ARGS, which cluster workers inherit with the rest of execArgv) and names a
 * folder in LOOP_DELAY_DIR_ENV. In each worker process the probe runs a timer every PERIOD_MS and records how
 * late it fired — how long a callback that was ready at that moment waited for the loop — with the
 * time it fired and the CPU time the process used since the previous sample (so a stall can be told
 * apart: the loop running code, or the process waiting for a core or the disk), and appends them to
 * `<folder>/<pid>.jsonl`. This module holds what the probe and the
 * benchmark share, and the benchmark's side: the node flags, and the samples of a time window.
 *
 * Only node builtins here: the probe imports this module inside the measured server.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** The folder the probe writes to; no probe runs without it. */
export const LOOP_DELAY_DIR_ENV = 'SWITCHBOARD_LOOP_DELAY_DIR';

/** How often the probe's timer is due, ms (Node's shortest timeout). */
export const PERIOD_MS = 1;

/** How often the probe appends what it sampled to its file, ms. */
export const FLUSH_MS = 100;

/** One line of a probe's file: the samples since its previous line. */
export interface LoopDelayLine {
  pid: number;
  /** The worker's WELCOME node name (`w1`, `w2`, …). */
  node: string;
  /** When each sample's timer fired, ms since the Unix epoch (performance.timeOrigin + now). */
  at: number[];
  /** How late it fired, ms. */
  late: number[];
  /** CPU time (user + system, every thread) the process used since the previous sample, ms. */
  cpu: number[];
}

/** The node flag that loads the probe into every process of a server (primary and workers). */
export function loopDelayNodeArgs(): string[] {
  return ['--import', new URL('./loop-delay-probe.js', import.meta.url).href];
}

export interface ProcessLoopDelay {
  pid: number;
  node: string;
  /** Timer samples whose wait overlapped the window. */
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /**
   * The CPU time the process used over the longest stall's sample (PERIOD_MS + maxMs long): the rest of
   * it the loop's thread was not running — waiting for a core, or blocked in a system call.
   */
  maxCpuMs: number;
}

/** Nearest-rank percentile of ascending `sorted` (0 when empty). */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/**
 * The delay of each process that wrote to `dir`, over the samples whose wait overlapped
 * [fromEpochMs, toEpochMs] (due at or before its end, fired at or after its start: a stall that runs
 * past the window's end still counts); processes sorted by name.
 */
export function readLoopDelay(dir: string, fromEpochMs: number, toEpochMs: number): ProcessLoopDelay[] {
  const byPid = new Map<number, { node: string; late: number[]; maxLate: number; maxCpuMs: number }>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.jsonl'))) {
    for (const text of readFileSync(path.join(dir, file), 'utf8').split('\n')) {
      if (text === '') continue;
      const line = JSON.parse(text) as LoopDelayLine;
      let entry = byPid.get(line.pid);
      if (!entry) {
        entry = { node: line.node, late: [], maxLate: -1, maxCpuMs: 0 };
        byPid.set(line.pid, entry);
      }
      for (let i = 0; i < line.at.length; i++) {
        const at = line.at[i]!;
        const late = line.late[i]!;
        if (at < fromEpochMs || at - late > toEpochMs) continue;
        if (late > entry.maxLate) {
          entry.maxLate = late;
          entry.maxCpuMs = line.cpu[i]!;
        }
        entry.late.push(late);
      }
    }
  }
  return [...byPid]
    .map(([pid, { node, late, maxCpuMs }]) => {
      late.sort((a, b) => a - b);
      return {
        pid,
        node,
        samples: late.length,
        p50Ms: percentile(late, 50),
        p99Ms: percentile(late, 99),
        maxMs: late.length === 0 ? 0 : late[late.length - 1]!,
        maxCpuMs: Math.round(maxCpuMs * 1000) / 1000,
      };
    })
    .sort((a, b) => a.node.localeCompare(b.node, 'en', { numeric: true }));
}
