/**
 * Loaded into the processes of a server under benchmark with `node --import` (see loop-delay.ts), never
 * by the server itself. In each cluster worker — the processes that hold sessions and do the fan-out;
 * the primary only hands out connections, and is left alone so the probe costs it nothing — a timer due
 * every PERIOD_MS records how late it fired and the process's CPU time since the previous sample
 * (process.cpuUsage: one cheap system call, every thread). The samples are appended to
 * `<LOOP_DELAY_DIR_ENV>/<pid>.jsonl` every FLUSH_MS and at exit. Its timers are unref'd, so it never
 * keeps a process alive. Without the folder in the environment it does nothing.
 */
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { WORKER_ENV } from '../../src/cluster/primary.js';
import { FLUSH_MS, LOOP_DELAY_DIR_ENV, type LoopDelayLine, PERIOD_MS } from './loop-delay.js';

const dir = process.env[LOOP_DELAY_DIR_ENV];
const index = process.env[WORKER_ENV.index];
if (dir && index !== undefined) {
  const node = `w${Number(index) + 1}`;
  const file = path.join(dir, `${process.pid}.jsonl`);
  let at: number[] = [];
  let late: number[] = [];
  let cpu: number[] = [];
  let last = performance.now();
  let cpuLast = process.cpuUsage();
  setInterval(() => {
    const now = performance.now();
    const cpuNow = process.cpuUsage();
    at.push(Math.round((performance.timeOrigin + now) * 10) / 10);
    late.push(Math.max(0, Math.round((now - last - PERIOD_MS) * 1000) / 1000));
    cpu.push((cpuNow.user - cpuLast.user + cpuNow.system - cpuLast.system) / 1000);
    last = now;
    cpuLast = cpuNow;
  }, PERIOD_MS).unref();
  const flush = (): void => {
    if (at.length === 0) return;
    const line: LoopDelayLine = { pid: process.pid, node, at, late, cpu };
    at = [];
    late = [];
    cpu = [];
    try {
      appendFileSync(file, `${JSON.stringify(line)}\n`);
    } catch {
      // The benchmark removed its folder: nothing left to report to.
    }
  };
  setInterval(flush, FLUSH_MS).unref();
  process.once('exit', flush);
}
