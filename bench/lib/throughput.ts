/**
 * The throughput engine shared by bench:core, bench:scaling and `switchboard bench throughput`.
 * `LoadRun` is the load itself: raw SBP/1 clients in this process against a running server, a warm-up,
 * then a measured window, in a closed loop (K in flight per sender) or an open loop (a fixed rate, each
 * message timed from its intended send time), durable or ephemeral SENDs. `runOnce` / `runMatrix` add
 * what bench:core and bench:scaling need around it: one fresh server process per run (`--workers N
 * --durability mode`) and its CPU over the window. The project's conventions (docs/BENCHMARKS.md):
 *
 * - A message is delivered once, when its recipient's device receives the DELIVER; the sender's own copy
 *   (PROTOCOL.md section 5) is acknowledged but is not a delivery. A message completes when it is
 *   delivered, and its sender then sends the next one, so each sender keeps `inFlight` messages in flight.
 * - Two workloads: `pairs` (P senders each sending to its own receiver; the receivers send nothing) and
 *   `users` (U users, each sending to random other users and receiving from them).
 * - Latency = receive time − send time on process.hrtime (senders and receivers live in this process),
 *   in an HdrHistogram (µs).
 * - Server CPU = user + system time of the server's whole process tree over the window (/proc/<pid>/stat);
 *   generator CPU = this process's (process.cpuUsage); "other" = the rest of the machine's busy time over
 *   the same window (/proc/stat), which shows how much the runs competed with other work.
 */

import { DEFAULT_ACK_DELAY_MS } from '../../src/client/client.js';
import {
  encodeFrame,
  errorName,
  type Frame,
  isFatalCode,
  SEND_FLAG_EPHEMERAL,
} from '../../src/protocol/index.js';
import { Acker } from './acker.js';
import { describeMachine } from './docs.js';
import { intFlag } from './flags.js';
import { type Histogram, type LatencySummary, latencySummary, newHistogram } from './latency.js';
import { GENERATOR_CPU, loadAverage, machineInfo, pinningProblem, pinSelf, SERVER_CPU } from './machine.js';
import { cpusAllowed, type MachineCpu, machineCpu, type TreeCpu, treeCpu, treeCpusAllowed } from './proc.js';
import { endProgress, progress, round, runMain } from './report.js';
import { Conn, describeFrame, mapLimit } from './sbp-conn.js';
import { type Durability, killAllServersNow, ServerProcess, sleep, stopAllServers } from './server.js';

export type { Durability } from './server.js';

// ------------------------------------------------------------------ options and results

export type Workload = { kind: 'pairs'; pairs: number } | { kind: 'users'; users: number };

export interface ThroughputOptions {
  workload: Workload;
  /** Messages each sender keeps in flight. */
  inFlight: number;
  payloadBytes: number;
  warmupMs: number;
  durationMs: number;
  /** ACK after this many DELIVERs; 0 = half the server's window from WELCOME (PROTOCOL.md section 5). */
  ackEvery: number;
  /** Server tree on CPU 0, this process on CPU 1 (call `applyPinning` first). */
  pin: boolean;
  /** Shard files of each fresh data folder; undefined = the server's default. */
  shards?: number;
}

/** One run: a fresh server with this worker count and durability mode. */
export interface RunSpec {
  workers: number;
  durability: Durability;
}

export interface RunResult {
  workers: number;
  durability: Durability;
  store: 'SQLite';
  /** Shard files; null = the server's default. */
  shards: number | null;
  pinned: boolean;
  /** The CPUs the server's processes were allowed at the start of the window (e.g. "0"). */
  serverCpus: string | null;
  /** The CPUs this generator was allowed. */
  generatorCpus: string | null;
  /** Processes in the server's tree (the primary and its workers). */
  serverProcesses: number;
  /** Sessions per server process, by WELCOME's `node`, e.g. { w0: 500, w1: 500 }. */
  sessionsByNode: Record<string, number>;
  /** Length of the measured window as run, s (the ticks that open and close it may be a few ms late). */
  windowSeconds: number;
  delivered: number;
  msgPerSec: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  serverCpuSeconds: number;
  /** Server CPU over the window, % of one core. */
  serverCpuPercent: number;
  serverCpuSecondsPer100k: number;
  serverCpuUsPerMsg: number;
  /** This process's CPU over the window, % of one core. */
  generatorCpuPercent: number;
  /** The machine's other busy time over the window (other processes, interrupts), % of one core. */
  otherCpuPercent: number | null;
  /** 1-minute load average when the run started. */
  loadAverage1m: number;
}

export interface MatrixOutcome {
  results: RunResult[];
  failures: string[];
}

/** Generator CPU above this share of its core means msg/s is the generator's ceiling, not the server's. */
export const GENERATOR_CEILING_PERCENT = 90;

// ------------------------------------------------------------------ parsing helpers for the CLIs

/** An integer option given by its name without dashes (`workers` → `--workers`). */
export function intArg(text: string, flag: string, min: number): number {
  return intFlag(text, `--${flag}`, min);
}

/** "1,2,4" → [1, 2, 4] (each ≥ 1, no repeats). */
export function workerList(text: string): number[] {
  const list = text.split(',').map((s) => intArg(s.trim(), 'workers', 1));
  if (new Set(list).size !== list.length) throw new Error(`--workers: "${text}" lists a count twice`);
  return list;
}

/** "normal,full" → ['normal', 'full']. */
export function durabilityList(text: string): Durability[] {
  const list = text.split(',').map((s) => s.trim());
  for (const d of list) {
    if (d !== 'normal' && d !== 'full') throw new Error(`--durability: "${d}" is not normal or full`);
  }
  if (new Set(list).size !== list.length) throw new Error(`--durability: "${text}" lists a mode twice`);
  return list as Durability[];
}

/** Every worker count × durability mode, worker count outermost. */
export function runSpecs(workers: number[], durabilities: Durability[]): RunSpec[] {
  return workers.flatMap((w) => durabilities.map((durability) => ({ workers: w, durability })));
}

// ------------------------------------------------------------------ process set-up

/** With `pin`: checks taskset and the CPUs, then pins this process (the generator) to CPU 1. */
export function applyPinning(pin: boolean): void {
  if (!pin) return;
  const problem = pinningProblem();
  if (problem !== null) throw new Error(problem);
  pinSelf(GENERATOR_CPU);
}

/** A benchmark script's options from its command line, or null after printing why with the usage (exit 2). */
export function scriptOptions<O>(
  usage: string,
  parse: (args: string[]) => O,
): { args: string[]; opts: O } | null {
  const args = process.argv.slice(2);
  let opts: O;
  try {
    opts = parse(args);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${usage}`);
    return null;
  }
  return { args, opts };
}

/** Stops every server on SIGINT/SIGTERM (gracefully, up to 5 s) and on exit (SIGKILL). */
export function installCleanup(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      endProgress();
      process.stderr.write(`${signal}: stopping the servers\n`);
      // A second signal, or 5 s, ends the wait: the rest is killed.
      process.once(signal, () => {
        killAllServersNow();
        process.exit(130);
      });
      void stopAllServers(5000).finally(() => process.exit(130));
    });
  }
  process.once('exit', killAllServersNow);
}

// ------------------------------------------------------------------ clocks

const HR_BASE = process.hrtime.bigint();
/** Nanoseconds on the monotonic clock, as an exact number (relative to this process's start). */
export function nowNs(): number {
  return Number(process.hrtime.bigint() - HR_BASE);
}

// ------------------------------------------------------------------ the load: clients that send and receive

/** closed: each sender keeps `inFlight` messages in flight; open: a fixed total rate, whatever happens. */
export type LoadMode = 'closed' | 'open';

/**
 * One load against a running server, all in this process (so latency is read on one clock): the
 * users of the workload, what they send and how the window is measured. Plain data, so a generator
 * process can receive it over IPC.
 */
export interface LoadConfig {
  /** A loopback IPv4 address. */
  host: string;
  port: number;
  /**
   * The nodes of a fleet, by SBP port on `host` (instead of `port`): user i connects to node i mod n and
   * sends only to users of other nodes (pairs: each receiver sits on the node after its sender's).
   */
  fleetPorts?: number[];
  workload: Workload;
  /** User ids are `<prefix>u<i>` (users) or `<prefix>s<i>` / `<prefix>r<i>` (pairs). */
  userPrefix: string;
  device: string;
  mode: LoadMode;
  /** closed loop: messages each sender keeps in flight (sent, not yet delivered). */
  inFlight: number;
  /** open loop: messages per second over all senders of this load, each sent at its intended time. */
  rate: number;
  /** Ephemeral SENDs (flag bit 0): delivered only to connected devices, seq 0, never ACKed. */
  ephemeral: boolean;
  payloadBytes: number;
  warmupMs: number;
  durationMs: number;
  /** ACK after this many DELIVERs; 0 = half the server's window from WELCOME (PROTOCOL.md section 5). */
  ackEvery: number;
  /**
   * ACK at the latest this long after the first unacknowledged DELIVER, ms, as the SDK does (default its
   * DEFAULT_ACK_DELAY_MS, 100); 0 = only every `ackEvery`.
   */
  ackDelayMs?: number;
  /** Connects in progress at once. */
  connectConcurrency: number;
  /**
   * Ephemeral only: a message not delivered this long after it was sent counts as lost (an ephemeral
   * DELIVER is dropped for a socket that is not draining), and in a closed loop its sender sends the next.
   */
  lossTimeoutMs: number;
  /** No delivery for this long fails the run. */
  stallMs: number;
  /** Latency is also summarized per bucket of this many seconds since the load started (default 1). */
  latencyBucketSeconds?: number;
  /**
   * Durable only: after the window, wait up to this long (ms) for every message sent to be delivered,
   * and report those that were not (`undelivered`); default 0, no wait.
   */
  drainMs?: number;
}

/** What a closed-loop durable load (the conventions' workload) leaves to its caller. */
export type ClosedLoadParts = Pick<
  LoadConfig,
  | 'host'
  | 'port'
  | 'fleetPorts'
  | 'workload'
  | 'userPrefix'
  | 'inFlight'
  | 'payloadBytes'
  | 'warmupMs'
  | 'durationMs'
  | 'ackEvery'
>;

/**
 * A closed-loop load of durable SENDs, as bench:core, bench:scaling and bench:fleet run it: one device
 * `bench` per user, 32 connects at once, a 5 s stall fails the run, an ACK every `ackEvery` DELIVERs
 * and no ACK timer (their written figures, and the Redis cost per message of BENCHMARKS.md, are taken
 * that way).
 */
export function closedDurableLoad(parts: ClosedLoadParts): LoadConfig {
  return {
    ...parts,
    ackDelayMs: 0,
    device: 'bench',
    mode: 'closed',
    rate: 0,
    ephemeral: false,
    connectConcurrency: 32,
    lossTimeoutMs: 0,
    stallMs: 5000,
  };
}

export interface LoadHooks {
  /** Prefix of the progress lines, e.g. "[w1 normal]". */
  label: string;
  /** Called at the tick that opens the measured window (read CPU counters here), and at the one that closes it. */
  onWindowStart?: () => void;
  onWindowEnd?: () => void;
  /** Checked at every tick: why the run cannot go on (e.g. the server exited), or null. */
  problem?: () => string | null;
  /** Called once a second instead of printing a progress line (a generator process reports to its parent). */
  onSecond?: (p: LoadProgress) => void;
}

export interface LoadProgress {
  delivered: number;
  inWindow: number;
  sent: number;
  lost: number;
}

export interface LoadResult {
  /** Sessions per server process, by WELCOME's `node`. */
  sessionsByNode: Record<string, number>;
  /** Length of the measured window as run, s. */
  windowSeconds: number;
  /** Delivered inside the window. */
  delivered: number;
  /** Delivered over the whole run (warm-up included). */
  deliveredTotal: number;
  sent: number;
  /** Ephemeral messages given up as lost (see `lossTimeoutMs`), over the whole run. */
  lost: number;
  /** Latency of the messages delivered inside the window, µs. */
  histogram: Histogram;
  /** Messages delivered in each second since the load started (warm-up included). */
  deliveredPerSecond: number[];
  /**
   * Latency of the deliveries in each bucket of `latencyBucketSeconds` since the load started (warm-up
   * included), ms; null for a bucket without deliveries.
   */
  latencyPerBucket: (LatencySummary | null)[];
  /** With `drainMs`: messages sent and still not delivered once the drain ended; else null. */
  undelivered: number | null;
  /** ERROR frames received, by name. */
  errorsByName: Record<string, number>;
  /** Why the run failed (any ERROR, a lost connection, a stall), or null. */
  failure: string | null;
  /** This process's CPU time over the window, s. */
  generatorCpuSeconds: number;
}

class Run {
  sending = true;
  delivered = 0;
  sent = 0;
  lost = 0;
  readonly histogram = newHistogram();
  readonly series: number[] = [];
  /** The latency of the current bucket's deliveries, µs, summarized into `bucketLatency` when it ends. */
  private readonly bucketHistogram = newHistogram();
  private bucket = 0;
  readonly bucketLatency: (LatencySummary | null)[] = [];
  readonly errorsByName: Record<string, number> = {};
  startNs = 0;
  windowStartNs = Number.POSITIVE_INFINITY;
  windowEndNs = Number.POSITIVE_INFINITY;
  inWindow = 0;
  failure: string | null = null;
  private failed: () => void = () => {};
  readonly failedPromise = new Promise<void>((resolve) => {
    this.failed = resolve;
  });

  constructor(private readonly bucketNs: number) {}

  recordDelivery(now: number, latencyNs: number): void {
    this.delivered++;
    const us = Math.max(1, Math.round(latencyNs / 1000));
    const second = Math.floor((now - this.startNs) / 1e9);
    if (second >= 0) this.series[second] = (this.series[second] ?? 0) + 1;
    if (now >= this.windowStartNs && now < this.windowEndNs) {
      this.inWindow++;
      this.histogram.recordValue(us);
    }
    // Deliveries come in clock order, so a bucket ends when the first delivery of a later one arrives.
    const bucket = Math.max(0, Math.floor((now - this.startNs) / this.bucketNs));
    if (bucket !== this.bucket) this.endBucket(bucket);
    this.bucketHistogram.recordValue(us);
  }

  /** Summarizes the current bucket (if it had deliveries) and starts bucket `next`. */
  endBucket(next: number): void {
    if (this.bucketHistogram.totalCount > 0) {
      this.bucketLatency[this.bucket] = latencySummary(this.bucketHistogram);
      this.bucketHistogram.reset();
    }
    this.bucket = next;
  }

  countError(name: string): void {
    if (this.sending) this.errorsByName[name] = (this.errorsByName[name] ?? 0) + 1;
  }

  fail(why: string): void {
    if (this.failure !== null || !this.sending) return;
    this.failure = why;
    this.failed();
  }
}

/** The clients of one run and who sends to whom. */
class Load {
  readonly endpoints: Endpoint[] = [];
  readonly byUser = new Map<string, Endpoint>();
  /** Pre-encoded SEND per recipient (a SEND names no sender): copied, with the clientMsgId patched in. */
  private readonly templates: (Uint8Array | undefined)[] = [];

  constructor(
    readonly run: Run,
    private readonly users: string[],
    private readonly payload: Uint8Array,
    /** The recipient of `sender`'s next message. */
    readonly pick: (sender: number) => number,
    private readonly flags: number,
    /** A delivery makes its sender send the next message. */
    readonly closedLoop: boolean,
  ) {}

  template(to: number): Uint8Array {
    let t = this.templates[to];
    if (t === undefined) {
      t = encodeFrame({
        type: 'SEND',
        clientMsgId: 1,
        flags: this.flags,
        to: this.users[to]!,
        payload: this.payload,
      });
      this.templates[to] = t;
    }
    return t;
  }
}

class Endpoint {
  private nextId = 1;
  /** Send time (ns; in an open loop the intended one) of each message in flight, by clientMsgId. */
  readonly sentAt = new Map<number, number>();
  private readonly acker: Acker;

  constructor(
    readonly index: number,
    readonly user: string,
    readonly conn: Conn,
    ackEvery: number,
    ackDelayMs: number,
    private readonly load: Load,
  ) {
    conn.onFrame = (f) => this.onFrame(f);
    this.acker = new Acker(ackEvery, ackDelayMs, (ack) => {
      if (!conn.closed) conn.write(ack);
    });
  }

  /** Sends the next message; `at` = its intended send time (open loop), else now. */
  sendNext(at?: number): void {
    const id = this.nextId++;
    const bytes = this.load.template(this.load.pick(this.index)).slice();
    const view = new DataView(bytes.buffer);
    // Frame header (4 + 1 bytes), then the u64 clientMsgId.
    view.setUint32(5, Math.floor(id / 0x1_0000_0000));
    view.setUint32(9, id >>> 0);
    this.sentAt.set(id, at ?? nowNs());
    this.load.run.sent++;
    this.conn.write(bytes);
  }

  /**
   * Gives up the messages sent before `cutoff` (ns) that were never delivered; in a closed loop each
   * is replaced by a new one. Returns how many. The map holds them in send order.
   */
  expire(cutoff: number): number {
    let n = 0;
    for (const [id, at] of this.sentAt) {
      if (at >= cutoff) break;
      this.sentAt.delete(id);
      n++;
    }
    if (this.load.closedLoop && this.load.run.sending) for (let i = 0; i < n; i++) this.sendNext();
    return n;
  }

  private onFrame(frame: Frame): void {
    switch (frame.type) {
      case 'DELIVER': {
        const now = nowNs();
        if (frame.seq > 0) this.acker.delivered(frame.seq);
        // The sender's own copy (PROTOCOL.md section 5): acknowledged above, not a delivery.
        if (frame.from === this.user) return;
        const sender = this.load.byUser.get(frame.from);
        const sent = sender?.sentAt.get(frame.clientMsgId);
        if (sender === undefined || sent === undefined) return; // a re-delivery: already counted
        sender.sentAt.delete(frame.clientMsgId);
        this.load.run.recordDelivery(now, now - sent);
        if (this.load.closedLoop && this.load.run.sending) sender.sendNext();
        return;
      }
      case 'ERROR': {
        // Any ERROR ends the run: a fatal one closes the connection, and a request-level one (e.g.
        // INBOX_FULL) means messages are no longer delivered, so the figures would not measure what
        // they claim.
        this.load.run.countError(errorName(frame.code));
        const kind = isFatalCode(frame.code) ? 'fatal' : 'request-level';
        this.load.run.fail(`${this.user} got ${kind} ${describeFrame(frame)} (ref ${frame.ref})`);
        return;
      }
      case 'PING':
        this.conn.write(encodeFrame({ type: 'PONG', nonce: frame.nonce }));
        return;
      case 'BYE':
        this.load.run.fail(`server sent BYE ${frame.code} (${frame.reason})`);
        return;
      default:
      // ACCEPTED, RECEIPT, PONG, PRESENCE, DONE: nothing to do.
    }
  }
}

/**
 * Users of a workload, the recipient each sender picks, and the node (of `nodes`) each user connects to.
 * With several nodes every message crosses nodes: a user sends only to users of other nodes.
 */
function plan(
  workload: Workload,
  prefix: string,
  nodes: number,
): { users: string[]; senders: number[]; pick: (s: number) => number; nodeOf: (i: number) => number } {
  if (workload.kind === 'pairs') {
    const p = workload.pairs;
    const users = [
      ...Array.from({ length: p }, (_, i) => `${prefix}s${i}`),
      ...Array.from({ length: p }, (_, i) => `${prefix}r${i}`),
    ];
    return {
      users,
      senders: Array.from({ length: p }, (_, i) => i),
      pick: (s) => s + p,
      nodeOf: (i) => (i < p ? i : i - p + 1) % nodes,
    };
  }
  const u = workload.users;
  if (u < 2) throw new Error('the users workload needs at least 2 users');
  if (u < nodes) throw new Error(`${u} users cannot cover ${nodes} nodes`);
  const users = Array.from({ length: u }, (_, i) => `${prefix}u${i}`);
  // A uniformly random other user; with several nodes, a random user of a random other node
  // (node k holds users k, k + n, k + 2n, …).
  const pick =
    nodes === 1
      ? (s: number): number => {
          const j = Math.floor(Math.random() * (u - 1));
          return j >= s ? j + 1 : j;
        }
      : (s: number): number => {
          const node = (s + 1 + Math.floor(Math.random() * (nodes - 1))) % nodes;
          const onNode = Math.floor((u - 1 - node) / nodes) + 1;
          return node + nodes * Math.floor(Math.random() * onNode);
        };
  return { users, senders: users.map((_, i) => i), pick, nodeOf: (i) => i % nodes };
}

/** Users the workload connects. */
export function workloadUsers(workload: Workload): number {
  return workload.kind === 'pairs' ? 2 * workload.pairs : workload.users;
}

/**
 * A load connected to a server: `LoadRun.connect`, then `run` (warm-up and window), then `close`.
 * Failures are reported in the result, never thrown, once connected.
 */
export class LoadRun {
  private constructor(
    readonly config: LoadConfig,
    private readonly run_: Run,
    private readonly endpoints: Endpoint[],
    private readonly senders: number[],
    private readonly conns: Conn[],
    readonly sessionsByNode: Record<string, number>,
  ) {}

  /**
   * Connects every user (HELLO, WELCOME), at most `connectConcurrency` at once, within
   * max(60 s, 20 ms per user); throws (after closing what was opened) when one fails or time runs out.
   */
  static async connect(config: LoadConfig, label: string, quiet = false): Promise<LoadRun> {
    const ports = config.fleetPorts ?? [config.port];
    const { users, senders, pick, nodeOf } = plan(config.workload, config.userPrefix, ports.length);
    const run = new Run((config.latencyBucketSeconds ?? 1) * 1e9);
    const load = new Load(
      run,
      users,
      new Uint8Array(config.payloadBytes).fill(0x61),
      pick,
      config.ephemeral ? SEND_FLAG_EPHEMERAL : 0,
      config.mode === 'closed',
    );
    const conns: Conn[] = [];
    let aborted = false;
    let opened = 0;
    if (!quiet) progress(`${label} connecting ${users.length.toLocaleString('en-US')} clients…`);
    const limitMs = Math.max(60_000, users.length * 20);
    const connectAll = mapLimit(
      users.map((u, i) => [u, i] as const),
      config.connectConcurrency,
      async ([user, index]) => {
        if (aborted) throw new Error('connect phase aborted');
        const conn = await Conn.open(ports[nodeOf(index)]!, user, config.device, {
          host: config.host,
          onFail: (why) => run.fail(`${user}: ${why}`),
        });
        conns.push(conn);
        if (aborted) {
          conn.close();
          throw new Error('connect phase aborted');
        }
        opened++;
        const ackEvery = config.ackEvery || Math.max(1, Math.floor(conn.welcome!.window / 2));
        return new Endpoint(index, user, conn, ackEvery, config.ackDelayMs ?? DEFAULT_ACK_DELAY_MS, load);
      },
    );
    connectAll.catch(() => {}); // A late rejection after a timeout is handled below.
    let timer: NodeJS.Timeout | undefined;
    const ticker = quiet
      ? undefined
      : setInterval(
          () =>
            progress(
              `${label} connected ${opened.toLocaleString('en-US')}/${users.length.toLocaleString('en-US')}`,
            ),
          1000,
        );
    let endpoints: Endpoint[];
    try {
      endpoints = await Promise.race([
        connectAll,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`not every client connected within ${limitMs / 1000} s`)),
            limitMs,
          );
        }),
      ]);
    } catch (err) {
      aborted = true;
      run.sending = false;
      for (const c of conns) c.close();
      throw err;
    } finally {
      clearTimeout(timer);
      clearInterval(ticker);
    }
    for (const e of endpoints) {
      load.endpoints.push(e);
      load.byUser.set(e.user, e);
    }
    const sessionsByNode: Record<string, number> = {};
    for (const c of conns) {
      const node = c.welcome!.node;
      sessionsByNode[node] = (sessionsByNode[node] ?? 0) + 1;
    }
    return new LoadRun(config, run, endpoints, senders, conns, sessionsByNode);
  }

  /** Warm-up, then the measured window; ends at the window's end or at the first failure. */
  async run(hooks: LoadHooks): Promise<LoadResult> {
    const { config, endpoints, senders } = this;
    const run = this.run_;
    const label = hooks.label;
    const t0 = nowNs();
    run.startNs = t0;
    const warmupEnd = t0 + config.warmupMs * 1e6;
    const windowEnd = warmupEnd + config.durationMs * 1e6;
    let ticker: NodeJS.Timeout | undefined;
    let openTimer: NodeJS.Timeout | undefined;
    let sweeper: NodeJS.Timeout | undefined;

    if (config.mode === 'closed') {
      // Closed loop: every sender starts with `inFlight` messages in flight.
      for (const s of senders) for (let k = 0; k < config.inFlight; k++) endpoints[s]!.sendNext();
    } else {
      // Open loop: message k is due at t0 + k / rate, from the senders in turn, and its latency counts
      // from that intended time, however late it actually goes out (no coordinated omission).
      const intervalNs = 1e9 / config.rate;
      let k = 0;
      const openTick = (): void => {
        if (!run.sending) return;
        const now = nowNs();
        let budget = 20_000; // then yield to the event loop, and go on at once
        while (t0 + k * intervalNs <= now && budget > 0) {
          endpoints[senders[k % senders.length]!]!.sendNext(t0 + k * intervalNs);
          k++;
          budget--;
        }
        openTimer = setTimeout(openTick, budget > 0 ? 1 : 0);
      };
      openTick();
    }
    if (config.ephemeral && config.lossTimeoutMs > 0) {
      sweeper = setInterval(() => {
        const cutoff = nowNs() - config.lossTimeoutMs * 1e6;
        for (const e of endpoints) run.lost += e.expire(cutoff);
      }, 250);
    }

    let genStart: NodeJS.CpuUsage | null = null;
    let genEnd: NodeJS.CpuUsage | null = null;
    let lastSeen = 0;
    let lastChange = Date.now();
    const finished = new Promise<void>((resolve) => {
      // The window opens and closes on the clock; the tick checks boundaries and stalls.
      const tick = (): void => {
        const now = nowNs();
        if (genStart === null && now >= warmupEnd) {
          hooks.onWindowStart?.();
          genStart = process.cpuUsage();
          run.windowStartNs = now;
        }
        if (genStart !== null && genEnd === null && now >= windowEnd) {
          // Deliveries are counted up to this tick, CPU is read at it: both cover the same span.
          run.windowEndNs = now;
          genEnd = process.cpuUsage(genStart);
          hooks.onWindowEnd?.();
          run.sending = false;
          resolve();
          return;
        }
        if (run.delivered !== lastSeen) {
          lastSeen = run.delivered;
          lastChange = Date.now();
        } else if (Date.now() - lastChange > config.stallMs) {
          run.fail(`no message delivered for ${config.stallMs / 1000} s`);
        }
        const problem = hooks.problem?.() ?? null;
        if (problem !== null) run.fail(problem);
        ticker = setTimeout(
          tick,
          Math.min(100, Math.max(1, (genStart === null ? warmupEnd : windowEnd) - now) / 1e6),
        );
      };
      ticker = setTimeout(tick, 1);
    });
    let lastPrint = t0;
    let lastPrinted = 0;
    const printer = setInterval(() => {
      if (hooks.onSecond) {
        hooks.onSecond({ delivered: run.delivered, inWindow: run.inWindow, sent: run.sent, lost: run.lost });
        return;
      }
      const now = nowNs();
      const d = run.delivered;
      const rate = ((d - lastPrinted) * 1e9) / (now - lastPrint);
      lastPrint = now;
      lastPrinted = d;
      const phase =
        now < warmupEnd
          ? `warm-up ${((now - t0) / 1e9).toFixed(1)}/${config.warmupMs / 1000} s`
          : `${((now - warmupEnd) / 1e9).toFixed(1)}/${config.durationMs / 1000} s`;
      const p99 =
        run.inWindow > 0 ? `  p99 ${(run.histogram.getValueAtPercentile(99) / 1000).toFixed(2)} ms` : '';
      const lost = run.lost > 0 ? `  lost ${run.lost.toLocaleString('en-US')}` : '';
      progress(
        `${label} ${phase}  ${Math.round(rate).toLocaleString('en-US')} msg/s  delivered ${d.toLocaleString('en-US')}${p99}${lost}`,
      );
    }, 1000);
    // The run is bounded: the window, or the first failure, or a hard deadline.
    const deadline = setTimeout(
      () => run.fail('hard deadline passed'),
      config.warmupMs + config.durationMs + 15_000,
    );
    if (run.failure === null) await Promise.race([finished, run.failedPromise]);
    clearTimeout(deadline);
    const undelivered = config.drainMs && !config.ephemeral ? await this.drain(config.drainMs, run) : null;
    run.endBucket(0);
    clearInterval(printer);
    clearInterval(sweeper);
    clearTimeout(ticker);
    clearTimeout(openTimer);
    run.sending = false;
    if (!hooks.onSecond) endProgress();

    const windowNs =
      Number.isFinite(run.windowEndNs) && Number.isFinite(run.windowStartNs)
        ? run.windowEndNs - run.windowStartNs
        : 0;
    const gen = genEnd as NodeJS.CpuUsage | null;
    return {
      sessionsByNode: this.sessionsByNode,
      windowSeconds: round(windowNs / 1e9, 3),
      delivered: run.inWindow,
      deliveredTotal: run.delivered,
      sent: run.sent,
      lost: run.lost,
      histogram: run.histogram,
      deliveredPerSecond: Array.from(run.series, (v) => v ?? 0),
      latencyPerBucket: Array.from(run.bucketLatency, (v) => v ?? null),
      undelivered,
      errorsByName: { ...run.errorsByName },
      failure: run.failure,
      generatorCpuSeconds: gen === null ? 0 : (gen.user + gen.system) / 1e6,
    };
  }

  /**
   * Waits up to `limitMs` (nothing more being sent) for every message sent to be delivered; returns how
   * many were not. Ends early on a failure.
   */
  private async drain(limitMs: number, run: Run): Promise<number> {
    const waiting = (): number => this.endpoints.reduce((n, e) => n + e.sentAt.size, 0);
    const deadline = Date.now() + limitMs;
    while (waiting() > 0 && Date.now() < deadline && run.failure === null) await sleep(50);
    return waiting();
  }

  /** BYE on every connection, then destroys what is left 200 ms later. */
  async close(): Promise<void> {
    this.run_.sending = false;
    for (const c of this.conns) c.close();
    await sleep(200);
    for (const c of this.conns) c.socket.destroy();
  }
}

// ------------------------------------------------------------------ one run of bench:core / bench:scaling

export function runLabel(spec: RunSpec): string {
  return `w${spec.workers} ${spec.durability}`;
}

/** One run against a fresh server; throws with the server's last output when it fails. */
export async function runOnce(spec: RunSpec, opts: ThroughputOptions): Promise<RunResult> {
  const label = `[${runLabel(spec)}]`;
  progress(`${label} starting the server${opts.pin ? ` on CPU ${SERVER_CPU}` : ''}…`);
  const loadAtStart = loadAverage()[0];
  const server = await ServerProcess.start({
    workers: spec.workers,
    durability: spec.durability,
    ...(opts.shards === undefined ? {} : { shards: opts.shards }),
    ...(opts.pin ? { cpu: SERVER_CPU } : {}),
  });
  let load: LoadRun | null = null;
  try {
    load = await LoadRun.connect(
      closedDurableLoad({
        host: '127.0.0.1',
        port: server.port,
        workload: opts.workload,
        userPrefix: 'bench-',
        inFlight: opts.inFlight,
        payloadBytes: opts.payloadBytes,
        warmupMs: opts.warmupMs,
        durationMs: opts.durationMs,
        ackEvery: opts.ackEvery,
      }),
      label,
    );
    let cpuStart: TreeCpu | null = null;
    let cpuEnd: TreeCpu | null = null;
    let machineStart: MachineCpu | null = null;
    let machineEnd: MachineCpu | null = null;
    let serverCpus: string | null = null;
    let generatorCpus: string | null = null;
    const r = await load.run({
      label,
      onWindowStart: () => {
        serverCpus = treeCpusAllowed(server.pid);
        generatorCpus = cpusAllowed('self');
        machineStart = machineCpu();
        cpuStart = treeCpu(server.pid);
      },
      onWindowEnd: () => {
        cpuEnd = treeCpu(server.pid);
        machineEnd = machineCpu();
      },
      problem: () => (server.alive ? null : 'the server process exited'),
    });
    if (r.failure !== null) {
      const tail = server.tail();
      throw new Error(tail ? `${r.failure}\nlast server output:\n${tail}` : r.failure);
    }

    const windowS = r.windowSeconds;
    const start = cpuStart! as TreeCpu;
    const serverCpu = (cpuEnd! as TreeCpu).seconds - start.seconds;
    const genSeconds = r.generatorCpuSeconds;
    const mStart = machineStart as MachineCpu | null;
    const mEnd = machineEnd as MachineCpu | null;
    const other =
      mStart && mEnd ? Math.max(0, mEnd.busySeconds - mStart.busySeconds - serverCpu - genSeconds) : null;
    const delivered = r.delivered;
    return {
      workers: spec.workers,
      durability: spec.durability,
      store: 'SQLite',
      shards: opts.shards ?? null,
      pinned: opts.pin,
      serverCpus,
      generatorCpus,
      serverProcesses: start.processes,
      sessionsByNode: r.sessionsByNode,
      windowSeconds: windowS,
      delivered,
      msgPerSec: Math.round(delivered / windowS),
      latencyMs: latencySummary(r.histogram),
      serverCpuSeconds: round(serverCpu, 2),
      serverCpuPercent: round((serverCpu / windowS) * 100, 1),
      serverCpuSecondsPer100k: delivered > 0 ? round((serverCpu * 100_000) / delivered, 3) : 0,
      serverCpuUsPerMsg: delivered > 0 ? round((serverCpu * 1e6) / delivered, 2) : 0,
      generatorCpuPercent: round((genSeconds / windowS) * 100, 1),
      otherCpuPercent: other === null ? null : round((other / windowS) * 100, 1),
      loadAverage1m: loadAtStart,
    };
  } finally {
    if (load) await load.close();
    progress(`${label} stopping the server…`);
    await server.stop();
    endProgress();
  }
}

/** The runs one after another (never two at once); a failed run is reported and the rest still run. */
export async function runMatrix(specs: RunSpec[], opts: ThroughputOptions): Promise<MatrixOutcome> {
  const results: RunResult[] = [];
  const failures: string[] = [];
  for (const spec of specs) {
    try {
      const r = await runOnce(spec, opts);
      results.push(r);
      process.stderr.write(
        `[${runLabel(spec)}] ${r.msgPerSec.toLocaleString('en-US')} msg/s, p50 ${r.latencyMs.p50} ms, ` +
          `p99 ${r.latencyMs.p99} ms, server CPU ${r.serverCpuUsPerMsg} µs/msg, ` +
          `generator CPU ${r.generatorCpuPercent} %\n`,
      );
    } catch (err) {
      endProgress();
      const message = err instanceof Error ? err.message : String(err);
      failures.push(`${runLabel(spec)}: ${message}`);
      process.stderr.write(`[${runLabel(spec)}] failed: ${message}\n`);
    }
  }
  return { results, failures };
}

// ------------------------------------------------------------------ reports

/** "1 000 users, 4 in flight each, to random other users" or "100 sender/receiver pairs, 4 in flight per sender". */
export function describeWorkload(opts: ThroughputOptions): string {
  const w = opts.workload;
  const who =
    w.kind === 'users'
      ? `${w.users.toLocaleString('en-US')} users, each keeping ${opts.inFlight} in flight to random other users`
      : `${w.pairs.toLocaleString('en-US')} sender/receiver pairs, ${opts.inFlight} in flight per sender`;
  return (
    `${who}; ${opts.payloadBytes}-byte payloads; ${opts.warmupMs / 1000} s warm-up + ` +
    `${opts.durationMs / 1000} s measured`
  );
}

/** "SQLite (16 shards)" or "SQLite (server default shards)". */
export function describeStore(opts: ThroughputOptions): string {
  return opts.shards === undefined
    ? 'SQLite, the server’s default shard count'
    : `SQLite, ${opts.shards} shards`;
}

export function describePinning(results: RunResult[], pin: boolean): string {
  if (!pin) return 'no pinning (server and generator share every core)';
  const server = [...new Set(results.map((r) => r.serverCpus ?? '?'))].join('/');
  const gen = [...new Set(results.map((r) => r.generatorCpus ?? '?'))].join('/');
  return `pinned: server tree on CPU ${server}, generator on CPU ${gen} (taskset)`;
}

const COLUMNS = [
  'workers',
  'durability',
  'msg/s',
  'p50 ms',
  'p90 ms',
  'p99 ms',
  'p99.9 ms',
  'max ms',
  'server CPU s/100k msg',
  'µs/msg',
  'server CPU',
  'generator CPU',
  'other CPU',
] as const;

function cells(r: RunResult): string[] {
  const pct = (n: number | null): string => (n === null ? '?' : `${n.toFixed(0)} %`);
  return [
    String(r.workers),
    r.durability,
    r.msgPerSec.toLocaleString('en-US'),
    r.latencyMs.p50.toFixed(2),
    r.latencyMs.p90.toFixed(2),
    r.latencyMs.p99.toFixed(2),
    r.latencyMs.p999.toFixed(2),
    r.latencyMs.max.toFixed(2),
    r.serverCpuSecondsPer100k.toFixed(2),
    r.serverCpuUsPerMsg.toFixed(1),
    pct(r.serverCpuPercent),
    `${pct(r.generatorCpuPercent)}${r.generatorCpuPercent > GENERATOR_CEILING_PERCENT ? ' (ceiling)' : ''}`,
    pct(r.otherCpuPercent),
  ];
}

/** The results as an aligned text table (first two columns left-aligned). */
export function textTable(results: RunResult[]): string {
  const rows = results.map(cells);
  const head = [...COLUMNS];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (c: string[]): string =>
    c.map((x, i) => (i < 2 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

/** The results as a Markdown table. */
export function markdownTable(results: RunResult[]): string {
  const head = `| ${COLUMNS.join(' | ')} |`;
  const rule = `|${COLUMNS.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`;
  return [head, rule, ...results.map((r) => `| ${cells(r).join(' | ')} |`)].join('\n');
}

/** Notes that change how a table reads: generator ceilings, uneven session spread. */
export function resultNotes(results: RunResult[]): string[] {
  const notes: string[] = [];
  const capped = results.filter((r) => r.generatorCpuPercent > GENERATOR_CEILING_PERCENT);
  if (capped.length > 0) {
    notes.push(
      `Generator above ${GENERATOR_CEILING_PERCENT} % of its core in ${capped.map(runLabel).join(', ')}: ` +
        'there msg/s is the generator’s ceiling, not the server’s; compare server CPU µs/msg instead.',
    );
  }
  for (const r of results) {
    const counts = Object.values(r.sessionsByNode);
    if (counts.length < r.workers) {
      notes.push(`${runLabel(r)}: sessions landed on ${counts.length} of ${r.workers} workers.`);
    }
  }
  return notes;
}

/** Sessions per worker, e.g. "w0 500, w1 500". */
export function describeSessions(r: RunResult): string {
  return Object.entries(r.sessionsByNode)
    .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
    .map(([node, n]) => `${node} ${n}`)
    .join(', ');
}

/** Options of a command that runs one fresh server per (workers × durability). */
export interface MatrixOptions extends ThroughputOptions {
  workers: number[];
  durabilities: Durability[];
  json: boolean;
}

export interface MatrixCommand<O extends MatrixOptions> {
  /** `core`, `scaling`: the JSON's `benchmark` and the title's word. */
  benchmark: string;
  usage: string;
  parse(args: string[]): O;
  /** Lines printed between the table and the notes. */
  summaryLines?(opts: O, results: RunResult[]): string[];
  /** Writes files (docs sections, charts) once there are results; throws on failure. */
  write(opts: O, outcome: MatrixOutcome, args: string[]): void;
}

/**
 * The whole life of a matrix benchmark script: options (usage on error, exit 2), pinning, cleanup of
 * every server on an abrupt exit, the runs, one JSON object or a text table, the files it writes;
 * exit code 1 when a run failed or a file could not be written.
 */
/** Options whose pinning (`--pin`) is applied as they are parsed. */
export function withPinning<O extends { pin: boolean }>(opts: O): O {
  applyPinning(opts.pin);
  return opts;
}

export function runMatrixCommand<O extends MatrixOptions>(cmd: MatrixCommand<O>): void {
  const main = async (): Promise<number> => {
    const started = scriptOptions(cmd.usage, (a) => withPinning(cmd.parse(a)));
    if (started === null) return 2;
    const { args, opts } = started;
    installCleanup();
    const outcome = await runMatrix(runSpecs(opts.workers, opts.durabilities), opts);
    const { results, failures } = outcome;
    if (opts.json) {
      const out = {
        benchmark: cmd.benchmark,
        workload: opts.workload,
        inFlight: opts.inFlight,
        payloadBytes: opts.payloadBytes,
        warmupSeconds: opts.warmupMs / 1000,
        durationSeconds: opts.durationMs / 1000,
        pinned: opts.pin,
        machine: machineInfo(),
        results,
        failures,
      };
      process.stdout.write(`${JSON.stringify(out)}\n`);
    } else if (results.length > 0) {
      process.stdout.write(
        [
          `Switchboard ${cmd.benchmark} benchmark: ${describeWorkload(opts)}`,
          `${describeStore(opts)}; ${describePinning(results, opts.pin)}; ${describeMachine()}`,
          textTable(results),
          ...(cmd.summaryLines?.(opts, results) ?? []),
          ...resultNotes(results),
          '',
        ].join('\n'),
      );
    }
    if (results.length > 0) {
      try {
        cmd.write(opts, outcome, args);
      } catch (err) {
        process.stderr.write(`writing the results: ${err instanceof Error ? err.message : String(err)}\n`);
        return 1;
      }
    }
    return failures.length > 0 ? 1 : 0;
  };
  runMain(main);
}
