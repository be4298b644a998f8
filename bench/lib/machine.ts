/**
 * The machine a benchmark ran on (cores, CPU model, memory, Node version, load) and CPU pinning with
 * `taskset` (util-linux): the server's process tree on one CPU, the generator on another, so the two
 * never compete for a core (docs/BENCHMARKS.md, "How every figure is taken").
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { cpusAllowed, parseCpuList } from './proc.js';

export interface MachineInfo {
  /** Logical CPUs online. */
  cores: number;
  /** "model name" of /proc/cpuinfo (else what Node reports). */
  model: string;
  memoryBytes: number;
  node: string;
  /** e.g. "Linux 6.1.0-18-amd64 x64". */
  system: string;
}

export function machineInfo(): MachineInfo {
  let model = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) model = m[1]!.trim();
  } catch {
    // Not Linux: keep Node's answer.
  }
  return {
    cores: os.cpus().length,
    model,
    memoryBytes: os.totalmem(),
    node: process.version,
    system: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

/** 1-, 5- and 15-minute load averages, two decimals. */
export function loadAverage(): [number, number, number] {
  const [a = 0, b = 0, c = 0] = os.loadavg();
  return [a, b, c].map((n) => Math.round(n * 100) / 100) as [number, number, number];
}

/** The CPU the server's tree runs on and the CPU the generator runs on, when pinned. */
export const SERVER_CPU = 0;
export const GENERATOR_CPU = 1;

/** Why pinning is impossible here, or null when `taskset` can put the server on CPU 0 and us on CPU 1. */
export function pinningProblem(): string | null {
  const probe = spawnSync('taskset', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    return '--pin needs taskset (util-linux), which is not on the PATH';
  }
  const allowed = cpusAllowed('self');
  const cpus = allowed === null ? [] : parseCpuList(allowed);
  for (const cpu of [SERVER_CPU, GENERATOR_CPU]) {
    if (!cpus.includes(cpu)) {
      return `--pin needs CPUs ${SERVER_CPU} and ${GENERATOR_CPU}, but this process may only use CPUs ${allowed ?? '?'}`;
    }
  }
  return null;
}

/**
 * Pins this process — every thread it has, and so every thread it starts later — to `cpu`
 * (`taskset -a -p -c`), and checks that the kernel took it. Throws when it did not.
 */
export function pinSelf(cpu: number): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });
  const now = cpusAllowed('self');
  if (now !== String(cpu))
    throw new Error(`taskset did not pin the generator to CPU ${cpu} (allowed: ${now})`);
}

/** The command and arguments that run `node …args` on `cpu` only (`taskset -c cpu node …`). */
export function pinnedCommand(cpu: number, nodeArgs: string[]): { command: string; args: string[] } {
  return { command: 'taskset', args: ['-c', String(cpu), process.execPath, ...nodeArgs] };
}
