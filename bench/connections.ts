/**
 * Connections benchmark (`switchboard bench connections`): how many idle, authenticated connections a
 * running server holds, how fast they come in, and what each costs the server in memory.
 *
 * N clients are spread over generator processes (forked bench/generator/worker.js; none holds more
 * than ~19 000 sockets, under the 20 000 open-file limit of a process) and over source addresses
 * 127.0.0.2, 127.0.0.3, … (≈ 28 000 ephemeral ports each; none is given more than ~25 000 clients).
 * Each generator owns a slice of every source's port range and binds explicit local ports (port 0 makes
 * the kernel scan the ports in use on every connect). Each client connects, sends HELLO (user
 * bench-<n>, device d), waits for WELCOME and then holds, PINGing every heartbeatMs.
 *
 * Phases, each with a time limit so the run always ends by itself: start the generators; measure the
 * server's RSS once it has settled; connect (at most max(60 s, N / 1000 s), longer for a low --rate); hold for --hold,
 * counting each second how many are still open; measure the server's RSS again; close everything.
 * The server is found from the target port (/proc/net/tcp → socket inode → /proc/<pid>/fd; a cluster
 * worker's primary heads the tree) or given with --server-pid; its RSS is that of the whole tree.
 * RSS per connection = (RSS while holding − RSS before) ÷ connections open at that moment
 * (docs: BENCH.md, "Connections").
 *
 * Progress goes to stderr; the summary table (or, with --json, one JSON object) to stdout.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { openFileLimit } from '../src/server/fd-limit.js';
import type { ChildMessage, GeneratorConfig, GeneratorStats, ParentMessage } from './generator/messages.js';
import { forkGenerator, generatorExit } from './lib/child-exit.js';
import { intFlag } from './lib/flags.js';
import { measuredServerRoots, settledTreeRss, totalRss, treeRss } from './lib/proc.js';
import { bytes, int, round, summaryText, ThrottledProgress } from './lib/report.js';

// ------------------------------------------------------------------ options and plan

export interface ConnectionsOptions {
  count: number;
  /** Connects per second over all generators; 0 = no limit (only the cap on connects in progress). */
  rate: number;
  holdMs: number;
  host: string;
  port: number;
  /** Pid of the server (its tree is measured); null = found from the target port. */
  serverPid: number | null;
  processes: number;
  perProcess: number;
  sources: string[];
  heartbeatPing: boolean;
  tokenSecret: string;
  /** Connects in progress (connect → WELCOME) per generator at most. */
  concurrency: number;
  json: boolean;
}

/** The flags as typed (commander's strings), before validation. */
export interface ConnectionsFlags {
  count: string;
  rate?: string;
  hold?: string;
  target?: string;
  serverPid?: string;
  processes?: string;
  perProcess?: string;
  sources?: string;
  sourceCount?: string;
  heartbeatPing?: boolean;
  tokenSecret?: string;
  concurrency?: string;
  json?: boolean;
}

export const DEFAULT_TARGET = 'sbp://127.0.0.1:7070';
/** Sockets per generator process at most: under the 20 000 open-file limit of a process here. */
export const DEFAULT_PER_PROCESS = 19_000;
/** Clients per source address at most when the sources are chosen by default (≈ 28 000 ports each). */
export const CLIENTS_PER_SOURCE = 25_000;
/** Connects in progress per generator: keeps a storm under the server's listen backlog. */
export const DEFAULT_CONCURRENCY = 512;
/** Share of a port slice a generator may plan to use; the rest is room for ports that are taken. */
const PORT_HEADROOM = 0.95;

/** `sbp://127.0.0.1:7070`, `127.0.0.1:7070` or `localhost:7070` → a loopback IPv4 host and a port. */
export function parseTarget(text: string): { host: string; port: number } {
  const m = /^(?:sbp:\/\/)?([^:/]+):(\d{1,5})\/?$/.exec(text.trim());
  if (!m) throw new Error(`--target: "${text}" is not sbp://host:port`);
  const host = m[1] === 'localhost' ? '127.0.0.1' : m[1]!;
  const port = Number(m[2]);
  if (!isLoopbackIpv4(host)) {
    throw new Error(`--target: only loopback addresses (127.0.0.0/8) may be benchmarked, not "${m[1]}"`);
  }
  if (port < 1 || port > 65535) throw new Error(`--target: bad port ${port}`);
  return { host, port };
}

export function isLoopbackIpv4(address: string): boolean {
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  return m?.slice(1).every((b) => Number(b) <= 255) ?? false;
}

/** K source addresses from 127.0.0.2 on (skipping .0 and .255 of each /24). */
export function defaultSources(k: number): string[] {
  const out: string[] = [];
  for (let n = (127 << 24) + 2; out.length < k; n++) {
    const last = n & 0xff;
    if (last === 0 || last === 255) continue;
    out.push([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, last].join('.'));
  }
  return out;
}

/** The kernel's ephemeral port range (net.ipv4.ip_local_port_range); explicit binds use it too. */
export function ephemeralPortRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const range: [number, number] = [Number(lo), Number(hi)];
    if (range.every(Number.isInteger) && range[0] >= 1024 && range[0] < range[1]) return range;
  } catch {
    // Not Linux: the kernel default.
  }
  return [32768, 60999];
}

/** Validates the flags and fills in the defaults that depend on --count. Throws on bad input. */
export function resolveOptions(
  flags: ConnectionsFlags,
  parseDuration: (text: string) => number,
  fdLimit: number | null = openFileLimit(),
): ConnectionsOptions {
  const count = intFlag(flags.count, '--count', 1);
  const rate = flags.rate === undefined ? 0 : Number(flags.rate);
  if (!Number.isFinite(rate) || rate < 0) throw new Error(`--rate must be a number ≥ 0, not "${flags.rate}"`);
  const holdMs = parseDuration(flags.hold ?? '60s');
  const { host, port } = parseTarget(flags.target ?? DEFAULT_TARGET);
  const perProcess = intFlag(flags.perProcess ?? String(DEFAULT_PER_PROCESS), '--per-process', 1);
  // A generator needs a few descriptors of its own (IPC, stdio, the event loop).
  if (fdLimit !== null && perProcess > fdLimit - 64) {
    throw new Error(`--per-process ${perProcess} is over this process's open-file limit (${fdLimit}) − 64`);
  }
  const processes =
    flags.processes === undefined
      ? Math.ceil(count / perProcess)
      : intFlag(flags.processes, '--processes', 1);
  if (Math.ceil(count / processes) > perProcess) {
    throw new Error(
      `--processes ${processes} gives ${int(Math.ceil(count / processes))} sockets per process, ` +
        `over --per-process ${perProcess}: use ${Math.ceil(count / perProcess)} or more`,
    );
  }
  if (processes > count) throw new Error(`--processes ${processes} is more than --count ${count}`);
  if (flags.sources !== undefined && flags.sourceCount !== undefined) {
    throw new Error('give --sources or --source-count, not both');
  }
  let sources: string[];
  if (flags.sources !== undefined) {
    sources = flags.sources
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (sources.length === 0) throw new Error('--sources: no address');
    for (const s of sources) {
      if (!isLoopbackIpv4(s)) throw new Error(`--sources: "${s}" is not a loopback address (127.0.0.0/8)`);
    }
    if (new Set(sources).size !== sources.length) throw new Error('--sources: an address is listed twice');
  } else {
    const k =
      flags.sourceCount === undefined
        ? Math.ceil(count / CLIENTS_PER_SOURCE)
        : intFlag(flags.sourceCount, '--source-count', 1);
    sources = defaultSources(k);
  }
  const serverPid = flags.serverPid === undefined ? null : intFlag(flags.serverPid, '--server-pid', 1);
  const concurrency = intFlag(flags.concurrency ?? String(DEFAULT_CONCURRENCY), '--concurrency', 1);
  return {
    count,
    rate,
    holdMs,
    host,
    port,
    serverPid,
    processes,
    perProcess,
    sources,
    heartbeatPing: flags.heartbeatPing ?? true,
    tokenSecret: flags.tokenSecret ?? '',
    concurrency,
    json: flags.json ?? false,
  };
}

/** Time limit of the connect phase, ms: max(60 s, N / 1000 s), and twice the time --rate needs. */
export function connectPhaseLimitMs(count: number, rate: number): number {
  const byRate = rate > 0 ? (2 * count * 1000) / rate + 10_000 : 0;
  return Math.ceil(Math.max(60_000, count, byRate));
}

/**
 * The config of each generator: its clients (a contiguous block of user indexes), its share of the
 * rate, and its own slice of every source address's port range. Throws when the ports cannot hold
 * the clients.
 */
export function planGenerators(
  opts: ConnectionsOptions,
  portRange: [number, number],
  connectTimeoutMs = 10_000,
  welcomeTimeoutMs = 15_000,
): GeneratorConfig[] {
  const { count, processes, sources } = opts;
  const [lo, hi] = portRange;
  const width = Math.floor((hi - lo + 1) / processes);
  const perSourceNeed = Math.ceil(Math.ceil(count / processes) / sources.length);
  if (perSourceNeed > Math.floor(width * PORT_HEADROOM)) {
    const totalPorts = hi - lo + 1;
    throw new Error(
      `${int(count)} clients over ${sources.length} source address(es) need ≈ ${int(Math.ceil(count / sources.length))} ` +
        `ports per address; the range ${lo}–${hi} has ${int(totalPorts)}: use --source-count ` +
        `${Math.ceil(count / (totalPorts * PORT_HEADROOM))} or more`,
    );
  }
  const configs: GeneratorConfig[] = [];
  let first = 0;
  for (let p = 0; p < processes; p++) {
    const n = Math.floor(count / processes) + (p < count % processes ? 1 : 0);
    configs.push({
      host: opts.host,
      port: opts.port,
      firstIndex: first,
      count: n,
      sources: sources.map((address) => ({
        address,
        portLow: lo + p * width,
        portHigh: lo + (p + 1) * width - 1,
      })),
      rate: opts.rate > 0 ? (opts.rate * n) / count : 0,
      concurrency: opts.concurrency,
      heartbeatPing: opts.heartbeatPing,
      tokenSecret: opts.tokenSecret,
      tokenTtlMs: connectPhaseLimitMs(count, opts.rate) + opts.holdMs + 3_600_000,
      connectTimeoutMs,
      welcomeTimeoutMs,
    });
    first += n;
  }
  return configs;
}

// ------------------------------------------------------------------ generator processes

const WORKER = fileURLToPath(new URL('./generator/worker.js', import.meta.url));
const READY_TIMEOUT_MS = 30_000;
/** After the connect phase's limit: time for the generators to fail what is in progress. */
const STOP_CONNECTING_GRACE_MS = 10_000;
/** From the close order to every generator's report (each destroys what is left after 5 s). */
const CLOSE_TIMEOUT_MS = 20_000;
const EXIT_TIMEOUT_MS = 5_000;

interface DoneReport {
  openAtClose: number;
  stats: GeneratorStats;
  cpuSeconds: number;
}

class GeneratorProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  ready = false;
  stats: GeneratorStats | null = null;
  done: DoneReport | null = null;
  error: string | null = null;
  exited = false;
  readonly exit: Promise<void>;

  constructor(readonly config: GeneratorConfig) {
    this.child = forkGenerator(WORKER);
    if (this.child.pid === undefined) throw new Error('could not start a generator process');
    this.pid = this.child.pid;
    this.exit = generatorExit(this.child, () => this.done !== null).then((failure) => {
      this.exited = true;
      if (failure !== null) this.error ??= failure;
    });
    this.child.on('error', (err) => {
      this.error ??= `generator ${this.pid}: ${err.message}`;
    });
    this.child.on('message', (m: ChildMessage) => {
      switch (m.type) {
        case 'ready':
          this.ready = true;
          break;
        case 'progress':
          this.stats = m.stats;
          break;
        case 'done':
          this.stats = m.stats;
          this.done = { openAtClose: m.openAtClose, stats: m.stats, cpuSeconds: m.cpuSeconds };
          break;
        case 'fatal':
          this.error = `generator ${this.pid}: ${m.message}`;
          break;
      }
    });
  }

  send(message: ParentMessage): void {
    // A generator that just exited cannot take it: its exit is handled on its own.
    if (!this.exited && this.child.connected) this.child.send(message, () => {});
  }

  get connectDone(): boolean {
    return this.exited || (this.stats?.connectDone ?? false);
  }

  kill(): void {
    if (this.exited) return;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** A sleep that does not keep the process alive: for the losing side of a race. */
const deadline = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

/** Polls `done` every 50 ms until it is true, `timeoutMs` passes or the run is aborted; true if done. */
async function until(done: () => boolean, timeoutMs: number, aborted: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (aborted() || Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

// ------------------------------------------------------------------ the run

export interface ServerProcessRss {
  pid: number;
  /** RSS before connecting, bytes (null: the process did not exist yet). */
  rssBefore: number | null;
  /** RSS while holding, bytes (null: the process had ended). */
  rssDuring: number | null;
}

export interface ConnectionsResult {
  scenario: 'connections';
  target: string;
  count: number;
  /** WELCOMEd and open when the connect phase ended. */
  held: number;
  /** Never WELCOMEd. */
  failed: number;
  failedByError: Record<string, number>;
  /** WELCOMEd, then closed by the server or broken before the end of the hold. */
  dropped: number;
  droppedByError: Record<string, number>;
  /** WELCOMEs per second over the connect phase. */
  connectsPerSecond: number;
  secondsToAllConnected: number;
  holdSeconds: number;
  /** Still open at the end of the hold, when the server's RSS was measured. */
  heldAtEnd: number;
  serverRssBytes: number | null;
  serverRssBeforeBytes: number | null;
  /** (serverRssBytes − serverRssBeforeBytes) ÷ heldAtEnd. */
  rssPerConnectionBytes: number | null;
  serverProcesses: ServerProcessRss[];
  generatorProcesses: number;
  generatorCpuSeconds: number;
  sources: string[];
  rate: number;
  concurrencyPerProcess: number;
  portRetries: number;
  cores: number;
  node: string;
  /** Problems of the run itself (a phase that ran out of time, the server not found). */
  warnings: string[];
  /** Generators that crashed or did not report: their figures are missing from the totals. */
  generatorErrors: string[];
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

function sum(gens: GeneratorProcess[], pick: (s: GeneratorStats) => number): number {
  let n = 0;
  for (const g of gens) if (g.stats) n += pick(g.stats);
  return n;
}

function targetText(opts: ConnectionsOptions): string {
  return `sbp://${opts.host}:${opts.port}`;
}

/** Runs the benchmark; progress on stderr. Throws only when it cannot run at all. */
export async function runConnections(opts: ConnectionsOptions): Promise<ConnectionsResult> {
  const configs = planGenerators(opts, ephemeralPortRange());
  const warnings: string[] = [];
  const line = new ThrottledProgress(5000);
  const note = (text: string): void => {
    line.end();
    process.stderr.write(`${text}\n`);
  };

  // The server's process tree.
  const { roots, warning } = measuredServerRoots(opts.serverPid, opts.host, opts.port, 'memory');
  if (warning) {
    warnings.push(warning);
    note(`warning: ${warning}`);
  }

  let aborted: string | null = null;
  const isAborted = (): boolean => aborted !== null;
  const gens: GeneratorProcess[] = [];
  const onSignal = (signal: NodeJS.Signals): void => {
    aborted = `interrupted by ${signal}`;
    // Without their IPC channel the generators drop their sockets and exit.
    for (const g of gens) if (g.child.connected) g.child.disconnect();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const connectLimitMs = connectPhaseLimitMs(opts.count, opts.rate);
  const hardDeadline = setTimeout(
    () => {
      aborted = 'the run passed its overall time limit';
    },
    READY_TIMEOUT_MS + connectLimitMs + STOP_CONNECTING_GRACE_MS + opts.holdMs + CLOSE_TIMEOUT_MS + 30_000,
  );
  hardDeadline.unref();

  try {
    for (const config of configs) gens.push(new GeneratorProcess(config));
    line.update(`starting ${gens.length} generator process(es)…`, true);
    if (!(await until(() => gens.every((g) => g.ready || g.exited), READY_TIMEOUT_MS, isAborted))) {
      throw new Error(aborted ?? `the generators were not ready within ${READY_TIMEOUT_MS / 1000} s`);
    }
    const failedToStart = gens.find((g) => !g.ready);
    if (failedToStart) throw new Error(failedToStart.error ?? 'a generator did not start');

    const before = await settledTreeRss(roots);

    // ---- connect
    const t0 = Date.now();
    for (const g of gens) g.send({ type: 'start', config: g.config });
    let lastWelcomed = 0;
    let lastTick = t0;
    const connectLine = (): string => {
      const now = Date.now();
      const welcomed = sum(gens, (s) => s.welcomed);
      const rate = ((welcomed - lastWelcomed) * 1000) / Math.max(1, now - lastTick);
      lastWelcomed = welcomed;
      lastTick = now;
      return (
        `connecting ${int(sum(gens, (s) => s.connecting))}  held ${int(sum(gens, (s) => s.open))}/${int(opts.count)}` +
        `  failed ${int(sum(gens, (s) => s.failed))}  ${int(rate)} connects/s  ${((now - t0) / 1000).toFixed(1)} s`
      );
    };
    const connectTicker = setInterval(() => line.update(connectLine()), 1000);
    let allDone = await until(() => gens.every((g) => g.connectDone), connectLimitMs, isAborted);
    if (!allDone && !aborted) {
      const w = `the connect phase passed its limit of ${connectLimitMs / 1000} s: connects in progress were abandoned`;
      warnings.push(w);
      for (const g of gens) g.send({ type: 'stop-connecting' });
      allDone = await until(() => gens.every((g) => g.connectDone), STOP_CONNECTING_GRACE_MS, isAborted);
    }
    clearInterval(connectTicker);
    const connectEnd = Math.max(t0, ...gens.map((g) => g.stats?.connectDoneAt ?? 0));
    const connectSeconds = Math.max(0.001, ((allDone ? connectEnd : Date.now()) - t0) / 1000);
    const held = sum(gens, (s) => s.open);
    const welcomed = sum(gens, (s) => s.welcomed);
    line.update(
      `connected: held ${int(held)}, failed ${int(sum(gens, (s) => s.failed))} in ${connectSeconds.toFixed(2)} s`,
      true,
    );

    // ---- hold
    const holdStart = Date.now();
    if (held > 0) {
      while (!aborted && Date.now() - holdStart < opts.holdMs) {
        await sleep(Math.min(1000, opts.holdMs - (Date.now() - holdStart)));
        const open = sum(gens, (s) => s.open);
        line.update(
          `holding ${((Date.now() - holdStart) / 1000).toFixed(0)}/${opts.holdMs / 1000} s  open ${int(open)}` +
            `  dropped ${int(sum(gens, (s) => s.dropped))}  ${((Date.now() - t0) / 1000).toFixed(1)} s`,
        );
      }
    }
    const holdSeconds = (Date.now() - holdStart) / 1000;
    const during = treeRss(roots);
    // Counted when the RSS is read, from the generators' last reports (a generator still closing its
    // sockets when the close phase times out must not drop out of the count).
    const heldAtEnd = sum(gens, (s) => s.open);

    // ---- close
    line.update('closing…', true);
    for (const g of gens) g.send({ type: 'close' });
    if (
      !(await until(
        () => gens.every((g) => g.done !== null || g.exited),
        CLOSE_TIMEOUT_MS,
        () => false,
      ))
    ) {
      warnings.push(`a generator did not report within ${CLOSE_TIMEOUT_MS / 1000} s of the close order`);
    }
    line.end();
    const generatorErrors = gens.flatMap((g) => (g.error ? [g.error] : []));
    if (aborted) throw new Error(aborted);

    // ---- figures
    const failedByError: Record<string, number> = {};
    const droppedByError: Record<string, number> = {};
    const own = process.cpuUsage();
    let generatorCpuSeconds = (own.user + own.system) / 1e6;
    for (const g of gens) {
      const stats = g.done?.stats ?? g.stats;
      if (stats) {
        addCounts(failedByError, stats.failedByError);
        addCounts(droppedByError, stats.droppedByError);
      }
      generatorCpuSeconds += g.done?.cpuSeconds ?? 0;
    }
    const pids = [...new Set([...before.keys(), ...during.keys()])];
    const serverProcesses = pids.map((pid) => ({
      pid,
      rssBefore: before.get(pid) ?? null,
      rssDuring: during.get(pid) ?? null,
    }));
    const total = (m: Map<number, number>): number | null => (m.size === 0 ? null : totalRss(m));
    const rssBefore = total(before);
    const rssDuring = total(during);
    return {
      scenario: 'connections',
      target: targetText(opts),
      count: opts.count,
      held,
      failed: sum(gens, (s) => s.failed),
      failedByError,
      dropped: sum(gens, (s) => s.dropped),
      droppedByError,
      connectsPerSecond: Math.round(welcomed / connectSeconds),
      secondsToAllConnected: round(connectSeconds, 3),
      holdSeconds: round(holdSeconds, 1),
      heldAtEnd,
      serverRssBytes: rssDuring,
      serverRssBeforeBytes: rssBefore,
      rssPerConnectionBytes:
        rssBefore !== null && rssDuring !== null && heldAtEnd > 0
          ? Math.round((rssDuring - rssBefore) / heldAtEnd)
          : null,
      serverProcesses,
      generatorProcesses: gens.length,
      generatorCpuSeconds: round(generatorCpuSeconds, 2),
      sources: opts.sources,
      rate: opts.rate,
      concurrencyPerProcess: opts.concurrency,
      portRetries: sum(gens, (s) => s.portRetries),
      cores: os.cpus().length,
      node: process.version,
      warnings,
      generatorErrors,
    };
  } finally {
    clearTimeout(hardDeadline);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    line.end();
    // Every generator ends: by itself after its report, else without its IPC channel, else SIGKILL.
    for (const g of gens) if (!g.exited && g.done === null && g.child.connected) g.child.disconnect();
    await Promise.race([Promise.all(gens.map((g) => g.exit)), deadline(EXIT_TIMEOUT_MS)]);
    for (const g of gens) g.kill();
    await Promise.race([Promise.all(gens.map((g) => g.exit)), deadline(1000)]);
  }
}

// ------------------------------------------------------------------ report

export function summaryTable(r: ConnectionsResult): string {
  const errors = (m: Record<string, number>): string =>
    Object.entries(m)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${int(v)}`)
      .join(', ');
  const perPid = (pick: (p: ServerProcessRss) => number | null): string =>
    r.serverProcesses.map((p) => `pid ${p.pid}: ${pick(p) === null ? '–' : bytes(pick(p)!)}`).join(', ');
  const rows: [string, string][] = [
    ['held', `${int(r.held)} of ${int(r.count)}`],
    ['failed', r.failed === 0 ? '0' : `${int(r.failed)} (${errors(r.failedByError)})`],
    ['connects/s', int(r.connectsPerSecond)],
    ['all connected in', `${r.secondsToAllConnected.toFixed(2)} s`],
    ['held at end of hold', `${int(r.heldAtEnd)} after ${r.holdSeconds} s`],
  ];
  if (r.dropped > 0) rows.push(['dropped while held', `${int(r.dropped)} (${errors(r.droppedByError)})`]);
  if (r.serverRssBytes !== null && r.serverRssBeforeBytes !== null) {
    rows.push(
      ['server RSS before', `${bytes(r.serverRssBeforeBytes)} (${perPid((p) => p.rssBefore)})`],
      ['server RSS holding', `${bytes(r.serverRssBytes)} (${perPid((p) => p.rssDuring)})`],
      ['RSS per connection', r.rssPerConnectionBytes === null ? '–' : bytes(r.rssPerConnectionBytes)],
    );
  } else {
    rows.push(['server RSS', 'not measured']);
  }
  rows.push(['generator CPU', `${r.generatorCpuSeconds} s over ${r.generatorProcesses} process(es)`]);
  if (r.portRetries > 0) rows.push(['ports retried', int(r.portRetries)]);
  const rate = r.rate > 0 ? `${int(r.rate)} connects/s` : 'unlimited';
  return summaryText(
    `Switchboard connections benchmark: ${int(r.count)} clients → ${r.target}; ` +
      `${r.generatorProcesses} generator process(es), ${r.sources.length} source address(es) ` +
      `(${r.sources.length > 3 ? `${r.sources.slice(0, 3).join(', ')}, …` : r.sources.join(', ')}), ` +
      `rate ${rate}, ≤ ${r.concurrencyPerProcess} connects in progress per process; ${r.cores} cores shared`,
    rows,
    r.warnings,
    r.generatorErrors.map((w) => `  error: ${w}`),
  );
}
