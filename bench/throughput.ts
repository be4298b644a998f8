/**
 * Throughput scenario (`switchboard bench throughput`): U users connected to a running server send direct
 * messages to random other users, and the receivers count what is delivered (docs/BENCHMARKS.md: a
 * message is delivered once, at its recipient's device; the sender's own copy is not a delivery).
 *
 * - Closed loop (default, `--window K`): each user keeps K messages in flight (sent, not yet delivered).
 * - Open loop (`--rate R`): R messages per second in total, message k due at t0 + k/R from the users in
 *   turn; its latency runs from that intended send time, however late the generator actually sent it,
 *   so a slow server cannot hide its delays by slowing the generator down (no coordinated omission).
 * - `--ephemeral`: ephemeral SENDs (delivered only to connected devices, seq 0, never ACKed); one not
 *   delivered within 2 s counts as lost (and, closed loop, is replaced).
 * - `--processes P`: the users are split over P generator processes (bench/lib/load-worker.ts); each
 *   sends only to users of its own process, so sender and receiver of every message share one clock.
 *
 * Users are fresh for every run (`tp<run id>p<process>-u<i>`), so runs against one long-lived server
 * never meet each other's inboxes or clientMsgIds. Every phase has a time limit: connect (max(60 s,
 * 20 ms per user)), warm-up + window + 15 s, and the report of each generator. Any ERROR frame, a lost
 * connection or 5 s without a delivery ends the run as failed (the conventions), reported as such.
 * Server CPU is that of the process tree listening on the target port (found as bench/lib/proc.ts does,
 * or given with --server-pid), over the measured window.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { DEFAULT_ACK_DELAY_MS } from '../src/client/client.js';
import { parseTarget } from './connections.js';
import { forkGenerator, generatorExit } from './lib/child-exit.js';
import { intFlag, windowFlag } from './lib/flags.js';
import {
  addEncoded,
  type Histogram,
  type LatencySummary,
  latencyLines,
  latencySummary,
  newHistogram,
  percentileCurve,
} from './lib/latency.js';
import type { EncodedLoadResult, FromLoadWorker, ToLoadWorker } from './lib/load-worker.js';
import { loadAverage } from './lib/machine.js';
import { type MachineCpu, machineCpu, measuredServerRoots, type TreeCpu, treesCpu } from './lib/proc.js';
import { endProgress, int, progress, round, summaryText } from './lib/report.js';
import { type LoadConfig, type LoadMode, type LoadProgress, LoadRun } from './lib/throughput.js';
import { commandText, type ReportInput, ratePoints } from './report-html.js';

// ------------------------------------------------------------------ options

export interface ThroughputFlags {
  users?: string;
  size?: string;
  duration?: string;
  warmup?: string;
  rate?: string;
  window?: string;
  ephemeral?: boolean;
  processes?: string;
  ackEvery?: string;
  ackDelay?: string;
  target?: string;
  serverPid?: string;
  json?: boolean;
  report?: string;
}

export interface ThroughputScenarioOptions {
  host: string;
  port: number;
  users: number;
  /** Payload bytes. */
  size: number;
  warmupMs: number;
  durationMs: number;
  mode: LoadMode;
  /** Closed loop: messages in flight per user. */
  window: number;
  /** Open loop: messages per second in total. */
  rate: number;
  ephemeral: boolean;
  processes: number;
  ackEvery: number;
  ackDelayMs: number;
  serverPid: number | null;
  json: boolean;
  report: string | null;
}

/** An ephemeral message not delivered within this is counted as lost. */
export const EPHEMERAL_LOSS_MS = 2000;
const STALL_MS = 5000;

/** Validates the flags and fills in the defaults (the conventions' users workload). Throws on bad input. */
export function resolveThroughputOptions(
  flags: ThroughputFlags,
  parseDuration: (text: string) => number,
): ThroughputScenarioOptions {
  const { host, port } = parseTarget(flags.target ?? 'sbp://127.0.0.1:7070');
  const users = intFlag(flags.users ?? '1000', '--users', 2);
  const size = intFlag(flags.size ?? '100', '--size', 0);
  const durationMs = windowFlag(flags.duration ?? '20s', parseDuration);
  const warmupMs = parseDuration(flags.warmup ?? '3s');
  if (flags.rate !== undefined && flags.window !== undefined) {
    throw new Error('give --rate (open loop) or --window (closed loop), not both');
  }
  let rate = 0;
  if (flags.rate !== undefined) {
    rate = Number(flags.rate);
    if (!Number.isFinite(rate) || rate <= 0)
      throw new Error(`--rate must be a number > 0, not "${flags.rate}"`);
  }
  const window = intFlag(flags.window ?? '4', '--window', 1);
  const processes = intFlag(flags.processes ?? '1', '--processes', 1);
  if (Math.floor(users / processes) < 2) {
    throw new Error(`--processes ${processes}: every process needs at least 2 of the ${users} users`);
  }
  const serverPid = flags.serverPid === undefined ? null : intFlag(flags.serverPid, '--server-pid', 1);
  return {
    host,
    port,
    users,
    size,
    warmupMs,
    durationMs,
    mode: flags.rate !== undefined ? 'open' : 'closed',
    window,
    rate,
    ephemeral: flags.ephemeral ?? false,
    processes,
    ackEvery: intFlag(flags.ackEvery ?? '0', '--ack-every', 0),
    ackDelayMs: intFlag(flags.ackDelay ?? String(DEFAULT_ACK_DELAY_MS), '--ack-delay', 0),
    serverPid,
    json: flags.json ?? false,
    report: flags.report ?? null,
  };
}

// ------------------------------------------------------------------ result

export interface ThroughputScenarioResult {
  scenario: 'throughput';
  target: string;
  ok: boolean;
  /** Why the run failed (the first ERROR, a lost connection, a stall…), or null. */
  failure: string | null;
  users: number;
  size: number;
  mode: LoadMode;
  /** Closed loop: in flight per user (null in an open loop). */
  window: number | null;
  /** Open loop: the total rate asked for, msg/s (null in a closed loop). */
  rate: number | null;
  ephemeral: boolean;
  processes: number;
  warmupSeconds: number;
  durationSeconds: number;
  /** The measured window as run, s. */
  windowSeconds: number;
  /** Messages sent over the whole run. */
  sent: number;
  /** Delivered inside the window. */
  delivered: number;
  deliveredPerSecond: number;
  /** Ephemeral messages not delivered within 2 s, over the whole run. */
  lost: number;
  latencyMs: LatencySummary;
  /** The HdrHistogram percentile distribution: [percentile, ms], log-spaced from 0 to 99.999 %, then 100 %. */
  latencyPercentiles: [number, number][];
  generatorCpuSeconds: number;
  generatorCpuPercent: number;
  /** Roots of the server's process tree (from the port, or --server-pid). */
  serverPids: number[];
  serverProcesses: number | null;
  serverCpuSeconds: number | null;
  serverCpuPercent: number | null;
  serverCpuMicrosPerMessage: number | null;
  /** The rest of the machine's busy time over the window, % of one core. */
  otherCpuPercent: number | null;
  errorsByName: Record<string, number>;
  sessionsByNode: Record<string, number>;
  timeSeries: {
    intervalSeconds: number;
    warmupSeconds: number;
    delivered: number[];
    /** Latency of each second's deliveries, warm-up included (see mergeLatencySeries); null: none. */
    latencyMs: (LatencySummary | null)[];
  };
  loadAverage: [number, number, number];
  cores: number;
  node: string;
  warnings: string[];
}

// ------------------------------------------------------------------ generator processes

const WORKER = fileURLToPath(new URL('./lib/load-worker.js', import.meta.url));
const READY_TIMEOUT_MS = 30_000;

class WorkerProcess {
  readonly child: ChildProcess;
  connected = false;
  progress: LoadProgress | null = null;
  result: EncodedLoadResult | null = null;
  error: string | null = null;
  ready = false;
  exited = false;
  readonly exit: Promise<void>;

  constructor() {
    this.child = forkGenerator(WORKER);
    this.exit = generatorExit(this.child, () => this.result !== null).then((failure) => {
      this.exited = true;
      if (failure !== null) this.error ??= failure;
    });
    this.child.on('error', (err) => {
      this.error ??= `generator: ${err.message}`;
    });
    this.child.on('message', (m: FromLoadWorker) => {
      switch (m.type) {
        case 'ready':
          this.ready = true;
          break;
        case 'connected':
          this.connected = true;
          break;
        case 'progress':
          this.progress = m.progress;
          break;
        case 'done':
          this.result = m.result;
          break;
        case 'failed':
          this.error = m.message;
          break;
      }
    });
  }

  send(m: ToLoadWorker): void {
    if (!this.exited && this.child.connected) this.child.send(m, () => {});
  }

  /** Gone without its IPC channel (it exits then), or killed. */
  async end(): Promise<void> {
    if (this.exited) return;
    if (this.child.connected) this.child.disconnect();
    await Promise.race([this.exit, new Promise((r) => setTimeout(r, 3000).unref())]);
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
  return true;
}

// ------------------------------------------------------------------ the run

/** What one generator (this process or a child) reports at the end. */
interface Part {
  sessionsByNode: Record<string, number>;
  windowSeconds: number;
  delivered: number;
  sent: number;
  lost: number;
  deliveredPerSecond: number[];
  /** Latency of each second's deliveries (LoadResult.latencyPerBucket, 1 s buckets). */
  latencyPerBucket: (LatencySummary | null)[];
  errorsByName: Record<string, number>;
  failure: string | null;
  generatorCpuSeconds: number;
}

/**
 * Each second's latency over the generator processes: exact with one; with several, each figure is the
 * highest of the processes' (an upper bound: their histograms are not kept per second).
 */
export function mergeLatencySeries(series: (LatencySummary | null)[][]): (LatencySummary | null)[] {
  const out: (LatencySummary | null)[] = [];
  const length = Math.max(0, ...series.map((s) => s.length));
  for (let i = 0; i < length; i++) {
    let merged: LatencySummary | null = null;
    for (const s of series) {
      const l = s[i];
      if (l === null || l === undefined) continue;
      merged =
        merged === null
          ? { ...l }
          : {
              p50: Math.max(merged.p50, l.p50),
              p90: Math.max(merged.p90, l.p90),
              p99: Math.max(merged.p99, l.p99),
              p999: Math.max(merged.p999, l.p999),
              max: Math.max(merged.max, l.max),
            };
    }
    out.push(merged);
  }
  return out;
}

/** Figures read at the window's start and end. */
class WindowReadings {
  cpuStart: TreeCpu | null = null;
  cpuEnd: TreeCpu | null = null;
  machineStart: MachineCpu | null = null;
  machineEnd: MachineCpu | null = null;

  constructor(private readonly roots: number[]) {}

  start(): void {
    this.machineStart = machineCpu();
    if (this.roots.length > 0) this.cpuStart = treesCpu(this.roots);
  }

  end(): void {
    if (this.roots.length > 0) this.cpuEnd = treesCpu(this.roots);
    this.machineEnd = machineCpu();
  }
}

function runId(): string {
  return randomBytes(4).toString('hex');
}

function configs(opts: ThroughputScenarioOptions, id: string): LoadConfig[] {
  const out: LoadConfig[] = [];
  for (let p = 0; p < opts.processes; p++) {
    const users = Math.floor(opts.users / opts.processes) + (p < opts.users % opts.processes ? 1 : 0);
    out.push({
      host: opts.host,
      port: opts.port,
      workload: { kind: 'users', users },
      userPrefix: `tp${id}p${p}-`,
      device: 'bench',
      mode: opts.mode,
      inFlight: opts.window,
      rate: opts.mode === 'open' ? (opts.rate * users) / opts.users : 0,
      ephemeral: opts.ephemeral,
      payloadBytes: opts.size,
      warmupMs: opts.warmupMs,
      durationMs: opts.durationMs,
      ackEvery: opts.ackEvery,
      ackDelayMs: opts.ackDelayMs,
      connectConcurrency: 32,
      lossTimeoutMs: opts.ephemeral ? EPHEMERAL_LOSS_MS : 0,
      stallMs: STALL_MS,
    });
  }
  return out;
}

/** The whole load in this process. */
async function runHere(
  config: LoadConfig,
  readings: WindowReadings,
  label: string,
  histogram: Histogram,
): Promise<Part> {
  let load: LoadRun | null = null;
  try {
    load = await LoadRun.connect(config, label);
    const r = await load.run({
      label,
      onWindowStart: () => readings.start(),
      onWindowEnd: () => readings.end(),
    });
    histogram.add(r.histogram);
    return r;
  } finally {
    if (load) await load.close();
  }
}

/** The load split over generator processes. */
async function runForked(
  cfgs: LoadConfig[],
  opts: ThroughputScenarioOptions,
  readings: WindowReadings,
  label: string,
  histogram: Histogram,
): Promise<Part[]> {
  const workers: WorkerProcess[] = [];
  const failed = (): string | null => workers.find((w) => w.error !== null)?.error ?? null;
  try {
    for (let i = 0; i < cfgs.length; i++) workers.push(new WorkerProcess());
    progress(`${label} starting ${workers.length} generator processes…`);
    if (!(await until(() => workers.every((w) => w.ready) || failed() !== null, READY_TIMEOUT_MS))) {
      throw new Error(`the generator processes were not ready within ${READY_TIMEOUT_MS / 1000} s`);
    }
    if (failed()) throw new Error(failed()!);
    progress(`${label} connecting ${int(opts.users)} clients from ${workers.length} processes…`);
    workers.forEach((w, i) => {
      w.send({ type: 'connect', config: cfgs[i]!, label: `${label} p${i}` });
    });
    const connectLimit = Math.max(60_000, Math.ceil(opts.users / cfgs.length) * 20) + 10_000;
    if (!(await until(() => workers.every((w) => w.connected) || failed() !== null, connectLimit))) {
      throw new Error(`not every client connected within ${connectLimit / 1000} s`);
    }
    if (failed()) throw new Error(failed()!);

    // Every generator starts its warm-up now; the parent reads the server's CPU on its own clock.
    for (const w of workers) w.send({ type: 'go' });
    const t0 = Date.now();
    const startTimer = setTimeout(() => readings.start(), opts.warmupMs);
    const endTimer = setTimeout(() => readings.end(), opts.warmupMs + opts.durationMs);
    let last = 0;
    let lastAt = t0;
    const printer = setInterval(() => {
      const delivered = workers.reduce((n, w) => n + (w.progress?.delivered ?? 0), 0);
      const now = Date.now();
      const rate = ((delivered - last) * 1000) / Math.max(1, now - lastAt);
      last = delivered;
      lastAt = now;
      const el = now - t0;
      const phase =
        el < opts.warmupMs
          ? `warm-up ${(el / 1000).toFixed(1)}/${opts.warmupMs / 1000} s`
          : `${((el - opts.warmupMs) / 1000).toFixed(1)}/${opts.durationMs / 1000} s`;
      progress(`${label} ${phase}  ${int(rate)} msg/s  delivered ${int(delivered)}`);
    }, 1000);
    const limit = opts.warmupMs + opts.durationMs + 30_000;
    const done = await until(() => workers.every((w) => w.result !== null || w.error !== null), limit);
    clearInterval(printer);
    clearTimeout(startTimer);
    clearTimeout(endTimer);
    if (readings.cpuEnd === null && readings.cpuStart !== null) readings.end();
    endProgress();
    const parts: Part[] = [];
    for (const w of workers) {
      if (w.result) {
        addEncoded(histogram, w.result.histogram);
        parts.push(w.result);
      }
    }
    const error = failed() ?? (done ? null : `a generator did not report within ${limit / 1000} s`);
    if (error !== null) {
      parts.push({
        sessionsByNode: {},
        windowSeconds: 0,
        delivered: 0,
        sent: 0,
        lost: 0,
        deliveredPerSecond: [],
        latencyPerBucket: [],
        errorsByName: {},
        failure: error,
        generatorCpuSeconds: 0,
      });
    }
    return parts;
  } finally {
    await Promise.all(workers.map((w) => w.end()));
  }
}

function sumInto(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** Runs the scenario against the target; progress on stderr. Throws only when it cannot run at all. */
export async function runThroughput(opts: ThroughputScenarioOptions): Promise<ThroughputScenarioResult> {
  const warnings: string[] = [];
  const target = `sbp://${opts.host}:${opts.port}`;
  const { roots, warning } = measuredServerRoots(opts.serverPid, opts.host, opts.port, 'CPU');
  if (warning) warnings.push(warning);
  const load = loadAverage();
  const readings = new WindowReadings(roots);
  const histogram = newHistogram();
  const label = '[throughput]';
  const cfgs = configs(opts, runId());
  let parts: Part[];
  try {
    parts =
      cfgs.length === 1
        ? [await runHere(cfgs[0]!, readings, label, histogram)]
        : await runForked(cfgs, opts, readings, label, histogram);
  } catch (err) {
    endProgress();
    const message = err instanceof Error ? err.message : String(err);
    parts = [
      {
        sessionsByNode: {},
        windowSeconds: 0,
        delivered: 0,
        sent: 0,
        lost: 0,
        deliveredPerSecond: [],
        latencyPerBucket: [],
        errorsByName: {},
        failure: message,
        generatorCpuSeconds: 0,
      },
    ];
  }

  const errorsByName: Record<string, number> = {};
  const sessionsByNode: Record<string, number> = {};
  const series: number[] = [];
  let delivered = 0;
  let sent = 0;
  let lost = 0;
  let generatorCpuSeconds = 0;
  const windows: number[] = [];
  for (const p of parts) {
    sumInto(errorsByName, p.errorsByName);
    sumInto(sessionsByNode, p.sessionsByNode);
    p.deliveredPerSecond.forEach((n, i) => {
      series[i] = (series[i] ?? 0) + n;
    });
    delivered += p.delivered;
    sent += p.sent;
    lost += p.lost;
    generatorCpuSeconds += p.generatorCpuSeconds;
    if (p.windowSeconds > 0) windows.push(p.windowSeconds);
  }
  const failure = parts.find((p) => p.failure !== null)?.failure ?? null;
  const windowSeconds = windows.length > 0 ? windows.reduce((a, b) => a + b, 0) / windows.length : 0;
  const { cpuStart, cpuEnd, machineStart, machineEnd } = readings;
  const serverCpu = cpuStart !== null && cpuEnd !== null ? cpuEnd.seconds - cpuStart.seconds : null;
  const other =
    machineStart && machineEnd && windowSeconds > 0
      ? Math.max(
          0,
          machineEnd.busySeconds - machineStart.busySeconds - (serverCpu ?? 0) - generatorCpuSeconds,
        )
      : null;
  const per = (n: number): number => (windowSeconds > 0 ? round((n / windowSeconds) * 100, 1) : 0);
  return {
    scenario: 'throughput',
    target,
    ok: failure === null,
    failure,
    users: opts.users,
    size: opts.size,
    mode: opts.mode,
    window: opts.mode === 'closed' ? opts.window : null,
    rate: opts.mode === 'open' ? opts.rate : null,
    ephemeral: opts.ephemeral,
    processes: opts.processes,
    warmupSeconds: opts.warmupMs / 1000,
    durationSeconds: opts.durationMs / 1000,
    windowSeconds: round(windowSeconds, 3),
    sent,
    delivered,
    deliveredPerSecond: windowSeconds > 0 ? Math.round(delivered / windowSeconds) : 0,
    lost,
    latencyMs: latencySummary(histogram),
    latencyPercentiles: percentileCurve(histogram),
    generatorCpuSeconds: round(generatorCpuSeconds, 2),
    generatorCpuPercent: per(generatorCpuSeconds),
    serverPids: roots,
    serverProcesses: cpuStart?.processes ?? null,
    serverCpuSeconds: serverCpu === null ? null : round(serverCpu, 2),
    serverCpuPercent: serverCpu === null ? null : per(serverCpu),
    serverCpuMicrosPerMessage:
      serverCpu === null || delivered === 0 ? null : round((serverCpu * 1e6) / delivered, 2),
    otherCpuPercent: other === null ? null : per(other),
    errorsByName,
    sessionsByNode,
    timeSeries: {
      intervalSeconds: 1,
      warmupSeconds: opts.warmupMs / 1000,
      delivered: series,
      latencyMs: mergeLatencySeries(parts.map((p) => p.latencyPerBucket)),
    },
    loadAverage: load,
    cores: os.cpus().length,
    node: process.version,
    warnings,
  };
}

// ------------------------------------------------------------------ summary, table, report

function describeMode(r: ThroughputScenarioResult): string {
  const kind = r.ephemeral ? 'ephemeral' : 'durable';
  return r.mode === 'closed'
    ? `closed loop, ${r.window} in flight per user, ${kind}`
    : `open loop at ${int(r.rate ?? 0)} msg/s in total (latency from the intended send time), ${kind}`;
}

/** The figures as [label, value] rows (the text table and the HTML report). */
export function throughputSummary(r: ThroughputScenarioResult): [string, string][] {
  const pct = (n: number | null): string => (n === null ? 'not measured' : `${n.toFixed(0)} % of one core`);
  const l = r.latencyMs;
  const rows: [string, string][] = [
    ['result', r.ok ? 'ok' : `FAILED: ${r.failure?.split('\n')[0]}`],
    ['target', r.target],
    ['workload', `${int(r.users)} users to random other users, ${r.size}-byte payloads`],
    ['mode', describeMode(r)],
    [
      'window',
      `${r.warmupSeconds} s warm-up + ${r.durationSeconds} s measured (${r.windowSeconds} s as run)`,
    ],
    ['generator processes', String(r.processes)],
    ['delivered in the window', int(r.delivered)],
    ['msg/s', int(r.deliveredPerSecond)],
    [
      'latency ms p50 / p90 / p99 / p99.9 / max',
      [l.p50, l.p90, l.p99, l.p999, l.max].map((v) => v.toFixed(2)).join(' / '),
    ],
  ];
  if (r.ephemeral) rows.push(['lost (not delivered within 2 s)', int(r.lost)]);
  rows.push(
    [
      'server CPU',
      r.serverCpuSeconds === null ? 'not measured' : `${r.serverCpuSeconds} s, ${pct(r.serverCpuPercent)}`,
    ],
    [
      'server CPU per message',
      r.serverCpuMicrosPerMessage === null ? '–' : `${r.serverCpuMicrosPerMessage} µs`,
    ],
    [
      'generator CPU',
      `${r.generatorCpuSeconds} s, ${pct(r.generatorCpuPercent)}${r.processes > 1 ? ` over ${r.processes} processes` : ''}`,
    ],
    ['other CPU', pct(r.otherCpuPercent)],
    [
      'errors',
      Object.keys(r.errorsByName).length === 0
        ? 'none'
        : Object.entries(r.errorsByName)
            .map(([k, v]) => `${k} ${int(v)}`)
            .join(', '),
    ],
    [
      'sessions per server process',
      Object.entries(r.sessionsByNode)
        .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
        .map(([k, v]) => `${k} ${int(v)}`)
        .join(', ') || '–',
    ],
    ['load average at start', r.loadAverage.join(', ')],
  );
  return rows;
}

export function throughputTable(r: ThroughputScenarioResult): string {
  return summaryText(
    `Switchboard throughput benchmark → ${r.target}; ${r.cores} cores shared, Node ${r.node}`,
    throughputSummary(r),
    r.warnings,
  );
}

export function throughputReport(r: ThroughputScenarioResult, command = commandText()): ReportInput {
  const notes = [
    'A message is delivered once, when its recipient’s device receives the DELIVER; the sender’s own copy is not a delivery. ' +
      'Latency is receive time − send time on the generator’s monotonic clock' +
      (r.mode === 'open' ? ' (the intended send time: no coordinated omission).' : '.'),
    'Server CPU µs per delivered message is the steadiest figure; msg/s and latency depend on what else the machine ran.',
    ...r.warnings,
  ];
  if (r.generatorCpuPercent > 90 * r.processes) {
    notes.push(
      'The generator was above 90 % of its core(s): msg/s is the generator’s ceiling, not the server’s.',
    );
  }
  // Both charts over time share one axis: seconds since the load started, the warm-up shaded.
  const timeAxis = {
    xLabel: 'seconds since the load started',
    bands: r.warmupSeconds > 0 ? [{ from: 0, to: r.warmupSeconds, label: 'warm-up' }] : [],
    xMax: Math.max(r.warmupSeconds + r.durationSeconds, r.timeSeries.delivered.length),
  };
  return {
    scenario: 'throughput',
    title: 'Switchboard bench throughput',
    command,
    summary: throughputSummary(r),
    notes,
    loadAverage: r.loadAverage,
    throughput: {
      ...timeAxis,
      title: 'Delivered messages per second',
      subtitle: `${int(r.users)} users, ${describeMode(r)}`,
      unit: 'msg/s',
      series: [
        { name: 'delivered', points: ratePoints(r.timeSeries.delivered, r.timeSeries.intervalSeconds) },
      ],
    },
    latencyOverTime: {
      ...timeAxis,
      title: 'Latency per second',
      subtitle:
        r.processes > 1
          ? `each figure the highest of the ${r.processes} generator processes' in that second`
          : 'the messages delivered in each second',
      unit: 'ms',
      series: latencyLines(r.timeSeries.latencyMs.map((l, i) => [i + 0.5, l])),
    },
    latency: {
      title: 'Latency by percentile (HdrHistogram)',
      subtitle: `messages delivered in the measured window: ${int(r.delivered)}; max ${r.latencyMs.max} ms`,
      points: r.latencyPercentiles,
      unit: 'latency, ms',
    },
    result: r,
  };
}
