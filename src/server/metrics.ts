/**
 * A server process's metrics for GET /metrics (docs/OPERATIONS.md, "Metrics and health", lists them).
 * The hot paths count into ServerCounters (plain numbers and typed arrays); prom-client reads them only
 * when scraped, through each metric's collect callback. Per-tick events (store commits, bus batches)
 * go into BucketHistograms, typed arrays too. Every series carries `worker` (w1, w2, …); in a cluster
 * worker a scrape answers with every worker's series, gathered by the primary (metrics/gather.ts).
 */
import cluster from 'node:cluster';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Registry } from 'prom-client';
import { ErrorCode, FrameType, type FrameTypeName, isAllowedType } from '../protocol/index.js';
import type { CommitObserver, InboxStore } from '../store/inbox-store.js';
import type { TransportKind } from '../transport/connection.js';
import { type BusObserver, busMetricsHook } from './metrics/bus-hook.js';
import { ClusterScrape } from './metrics/cluster-scrape.js';
import { ServerCounters, TRANSPORT_INDEX } from './metrics/counters.js';
import { BucketHistogram } from './metrics/histogram.js';

export interface ServerMetricsOptions {
  /** This process's worker index: its series are labelled worker="w<index + 1>". */
  worker: number;
  /** This process's connection cap. */
  maxConnections: number;
  /** The `transport` label's values: the transports this process serves (tcp or tls, and ws). */
  transports: readonly TransportKind[];
}

/** Store commits: from a fraction of a millisecond (SQLite, page cache) to the 1 s Redis command timeout. */
const COMMIT_SECONDS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];
/** Operations per commit, messages per bus batch: one to the thousands a loaded tick carries. */
const BATCH_SIZES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];
/** Bus batches between two processes of one machine: tens of µs when idle, a loop's stall when busy. */
const LAG_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** The event-loop delay's sampling timer, ms (what prom-client's default metrics use). */
const LOOP_RESOLUTION_MS = 10;

const CLIENT_TYPES = frameTypes((code) => isAllowedType(code, 'clientToServer'));
const SERVER_TYPES = frameTypes((code) => isAllowedType(code, 'serverToClient'));
const ERROR_NAMES = Object.entries(ErrorCode) as [string, number][];

export class ServerMetrics {
  readonly counters = new ServerCounters();
  private readonly registry = new Registry();
  private readonly loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  private readonly scrape: ClusterScrape | null;
  private readonly busObserver: BusObserver;
  private readonly observeCommit: CommitObserver;

  constructor(opts: ServerMetricsOptions) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ worker: `w${opts.worker + 1}` });
    const c = this.counters;
    const transports = opts.transports.map((kind) => [kind, TRANSPORT_INDEX[kind]] as const);

    const perTransport = { registers, transports };
    perTransportGauge(
      perTransport,
      'switchboard_connections',
      'Connections open now (admitted)',
      c.connectionsOpen,
    );
    perTransportCounter(
      perTransport,
      'switchboard_connections_opened_total',
      'Connections admitted',
      c.connectionsOpened,
    );
    new Gauge({
      name: 'switchboard_connections_limit',
      help: 'Connections this worker admits at most (beyond: SERVER_FULL)',
      registers,
    }).set(opts.maxConnections);
    perTransportGauge(perTransport, 'switchboard_sessions', 'Sessions past WELCOME now', c.sessionsLive);
    new Counter({
      name: 'switchboard_handshakes_total',
      help: 'Handshakes by result: ok = WELCOME sent; failed = the connection ended before WELCOME',
      labelNames: ['transport', 'result'],
      registers,
      collect() {
        this.reset();
        for (const [transport, i] of transports) {
          this.inc({ transport, result: 'ok' }, c.handshakesCompleted[i]!);
          this.inc({ transport, result: 'failed' }, c.handshakesFailed[i]!);
        }
      },
    });
    new Counter({
      name: 'switchboard_frames_received_total',
      help: 'Frames received from clients, by type',
      labelNames: ['type'],
      registers,
      collect() {
        this.reset();
        for (const [type, code] of CLIENT_TYPES) this.inc({ type }, c.framesReceived[code]!);
      },
    });
    new Counter({
      name: 'switchboard_frames_sent_total',
      help: 'Frames sent to clients, by type',
      labelNames: ['type'],
      registers,
      collect() {
        this.reset();
        for (const [type, code] of SERVER_TYPES) this.inc({ type }, c.framesSent[code]!);
      },
    });
    new Counter({
      name: 'switchboard_errors_total',
      help: 'ERROR frames sent, by code (fatal ones close their connection)',
      labelNames: ['code'],
      registers,
      collect() {
        this.reset();
        for (const [code, value] of ERROR_NAMES) this.inc({ code }, c.errorsSent[value]!);
      },
    });
    new Counter({
      name: 'switchboard_closes_total',
      help: 'Connections ended, by reason (an ERROR code, peer closed, client said BYE)',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const [reason, count] of c.closes) this.inc({ reason }, count);
      },
    });
    new Counter({
      name: 'switchboard_messages_accepted_total',
      help: 'SENDs answered ACCEPTED (stored now, or found already stored)',
      registers,
      collect() {
        this.reset();
        this.inc(c.messagesAccepted);
      },
    });
    new Counter({
      name: 'switchboard_messages_delivered_total',
      help: 'Messages written as DELIVER: live (as stored), replay (from the inbox), ephemeral',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        this.inc({ kind: 'live' }, c.deliveredLive);
        this.inc({ kind: 'replay' }, c.deliveredReplay);
        this.inc({ kind: 'ephemeral' }, c.deliveredEphemeral);
      },
    });

    const commitSeconds = new BucketHistogram(
      this.registry,
      'switchboard_store_commit_duration_seconds',
      'Time one per-tick store commit took (SQLite: its shard transactions; Redis: until its last reply)',
      COMMIT_SECONDS,
    );
    const commitOps = new BucketHistogram(
      this.registry,
      'switchboard_store_commit_ops',
      'Operations (appends, acks, HELLOs, joins, leaves) in one per-tick store commit',
      BATCH_SIZES,
    );
    this.observeCommit = (seconds, ops) => {
      commitSeconds.observe(seconds);
      commitOps.observe(ops);
    };
    const busBatch = new BucketHistogram(
      this.registry,
      'switchboard_bus_batch_messages',
      'Messages in one per-tick write to another worker over the bus',
      BATCH_SIZES,
    );
    const busLag = new BucketHistogram(
      this.registry,
      'switchboard_bus_batch_lag_seconds',
      "Time from a bus batch's first message being queued to its arrival at the peer worker",
      LAG_SECONDS,
    );
    this.busObserver = {
      batchWritten: (messages) => busBatch.observe(messages),
      batchArrived: (seconds) => busLag.observe(seconds),
    };
    busMetricsHook.observer = this.busObserver;

    const loop = this.loopDelay;
    loop.enable();
    new Gauge({
      name: 'switchboard_event_loop_delay_seconds',
      help: 'How late a timer ran, since the previous scrape (quantile 1 = the longest); across workers: the worst',
      labelNames: ['quantile'],
      aggregator: 'max',
      registers,
      collect() {
        // The sampling timer's own period is in every sample: what is past it is the delay.
        const delay = (ns: number): number => Math.max(0, ns / 1e9 - LOOP_RESOLUTION_MS / 1000);
        const sampled = loop.count > 0;
        this.set({ quantile: '0.5' }, sampled ? delay(loop.percentile(50)) : 0);
        this.set({ quantile: '0.99' }, sampled ? delay(loop.percentile(99)) : 0);
        this.set({ quantile: '1' }, sampled ? delay(loop.max) : 0);
        loop.reset();
      },
    });
    new Gauge({
      name: 'switchboard_process_resident_memory_bytes',
      help: 'Resident memory of the process',
      registers,
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
    new Counter({
      name: 'switchboard_process_cpu_seconds_total',
      help: 'CPU time the process used (user and system)',
      registers,
      collect() {
        const { user, system } = process.cpuUsage();
        this.reset();
        this.inc((user + system) / 1e6);
      },
    });

    this.scrape = cluster.isWorker ? new ClusterScrape(this.registry) : null;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text of GET /metrics: in a cluster worker every worker's, else this process's. */
  text(): Promise<string> {
    return this.scrape ? this.scrape.text() : this.registry.metrics();
  }

  /** Times every commit of `store`, when it reports them (the SQLite and Redis stores do). */
  observeStore(store: InboxStore): void {
    if (reportsCommits(store)) store.onCommit = this.observeCommit;
  }

  close(): void {
    this.loopDelay.disable();
    this.scrape?.close();
    if (busMetricsHook.observer === this.busObserver) busMetricsHook.observer = null;
  }
}

interface PerTransport {
  registers: Registry[];
  /** Each transport served, with its place in the per-transport arrays. */
  transports: readonly (readonly [TransportKind, number])[];
}

function perTransportGauge(
  { registers, transports }: PerTransport,
  name: string,
  help: string,
  values: Float64Array,
): void {
  new Gauge({
    name,
    help: `${help}, by transport`,
    labelNames: ['transport'],
    registers,
    collect() {
      for (const [transport, i] of transports) this.set({ transport }, values[i]!);
    },
  });
}

function perTransportCounter(
  { registers, transports }: PerTransport,
  name: string,
  help: string,
  values: Float64Array,
): void {
  new Counter({
    name,
    help: `${help}, by transport`,
    labelNames: ['transport'],
    registers,
    collect() {
      this.reset();
      for (const [transport, i] of transports) this.inc({ transport }, values[i]!);
    },
  });
}

/** The frame types (name, code) that pass `allowed`. */
function frameTypes(allowed: (code: number) => boolean): [FrameTypeName, number][] {
  return (Object.entries(FrameType) as [FrameTypeName, number][]).filter(([, code]) => allowed(code));
}

/** The SQLite and Redis stores have an `onCommit` field (a CommitObserver); other backends are not timed. */
function reportsCommits(store: InboxStore): store is InboxStore & { onCommit: CommitObserver | null } {
  return 'onCommit' in store;
}
