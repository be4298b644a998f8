/**
 * Peer benchmark (`npm run bench:peers`): the same workloads against Switchboard, Mosquitto (MQTT
 * 3.1.1) and NATS core, with the same generator (bench/drivers/: hand-encoded packets on raw sockets,
 * no client libraries), side by side:
 *
 * - throughput, the users workload of docs/BENCHMARKS.md (1 000 users, 4 in flight each, 100-byte
 *   payloads, 3 s warm-up + 20 s window, closed loop), in two groups: stored and acknowledged
 *   (Switchboard durable SEND; Mosquitto QoS 1 with persistent sessions) and nothing stored
 *   (Switchboard ephemeral SEND; Mosquitto QoS 0; NATS core);
 * - idle connections (15 000 by default): Switchboard through `switchboard bench connections`, the
 *   peers through the drivers' own holder;
 * - drain: M messages (10 000 by default) stored for an offline receiver, then the time from its
 *   reconnect's first byte to the last message (NATS core has no store: n/a).
 *
 * Each row runs against a fresh server process started here (configs in bench/drivers/servers.ts),
 * stopped by PID afterwards. Mosquitto and nats-server are installed from Debian when absent
 * (scripts/ensure-packages.sh). With --pin the servers run on CPU 0 and this generator on CPU 1.
 *
 *   node dist/bench/peers.js [--users 1000] [--in-flight 4] [--payload 100] [--warmup 3s] [--duration 20s]
 *                            [--connections 15000] [--hold 10s] [--drain-messages 10000] [--drain-runs 3]
 *                            [--scenarios throughput,connections,drain] [--targets switchboard,mosquitto,nats]
 *                            [--pin] [--json] [--write docs/BENCHMARKS.md] [--section peers]
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDuration } from '../src/util/duration.js';
import {
  closedLoop,
  type DrainResult,
  drain,
  type HoldResult,
  holdConnections,
  type LoopResult,
} from './drivers/closed-loop.js';
import type { Driver } from './drivers/driver.js';
import { MqttDriver } from './drivers/mqtt.js';
import { NatsDriver } from './drivers/nats.js';
import { SbpDriver } from './drivers/sbp.js';
import {
  findBinary,
  killAllPeersNow,
  mosquittoConfig,
  natsConfig,
  type PeerServer,
  ROOT,
  type ServerKind,
  serverVersion,
  startMosquitto,
  startNats,
  startSwitchboard,
  stopAllPeers,
} from './drivers/servers.js';
import { commandLine, describeMachine, sourceRevision, today, writeSection } from './lib/docs.js';
import { scriptFlags, windowFlag } from './lib/flags.js';
import { GENERATOR_CPU, loadAverage, machineInfo, SERVER_CPU } from './lib/machine.js';
import { processTree } from './lib/proc.js';
import { bytes, endProgress, progress, runMain } from './lib/report.js';
import { GENERATOR_CEILING_PERCENT, intArg, scriptOptions, withPinning } from './lib/throughput.js';

// ------------------------------------------------------------------ options

type Scenario = 'throughput' | 'connections' | 'drain';

interface Options {
  users: number;
  inFlight: number;
  payloadBytes: number;
  warmupMs: number;
  durationMs: number;
  connections: number;
  holdMs: number;
  drainMessages: number;
  drainRuns: number;
  scenarios: Scenario[];
  targets: ServerKind[];
  pin: boolean;
  json: boolean;
  write: string | null;
  section: string;
}

const USAGE = `usage: node dist/bench/peers.js [options]   (npm run bench:peers -- [options])
  --users <n>             users of the throughput workload (default 1000)
  --in-flight <k>         messages each user keeps in flight (default 4)
  --payload <bytes>       payload size, at least 8 (default 100)
  --warmup <duration>     warm-up before each window (default 3s)
  --duration <duration>   measured window (default 20s)
  --connections <n>       idle connections held per server (default 15000: fewer drown in the idle server's heap slack)
  --hold <duration>       how long they are held (default 10s)
  --drain-messages <m>    messages stored for the offline receiver (default 10000)
  --drain-runs <r>        drains per server (default 3)
  --scenarios <list>      throughput,connections,drain (default all)
  --targets <list>        switchboard,mosquitto,nats (default all)
  --pin                   servers on CPU 0, this generator on CPU 1 (taskset)
  --json                  print one JSON object instead of the report
  --write <file.md>       replace the "peers" section of that file (between its markers)
  --section <name>        the section --write replaces (default peers)
`;

function listArg<T extends string>(text: string, flag: string, allowed: readonly T[]): T[] {
  const list = text.split(',').map((s) => s.trim());
  for (const x of list) {
    if (!allowed.includes(x as T)) throw new Error(`--${flag}: "${x}" is not one of ${allowed.join(', ')}`);
  }
  return [...new Set(list)] as T[];
}

function parseOptions(argv: string[]): Options {
  const values = scriptFlags(argv, USAGE, {
    users: { type: 'string', default: '1000' },
    'in-flight': { type: 'string', default: '4' },
    payload: { type: 'string', default: '100' },
    warmup: { type: 'string', default: '3s' },
    duration: { type: 'string', default: '20s' },
    connections: { type: 'string', default: '15000' },
    hold: { type: 'string', default: '10s' },
    'drain-messages': { type: 'string', default: '10000' },
    'drain-runs': { type: 'string', default: '3' },
    scenarios: { type: 'string', default: 'throughput,connections,drain' },
    targets: { type: 'string', default: 'switchboard,mosquitto,nats' },
    pin: { type: 'boolean', default: false },
    section: { type: 'string', default: 'peers' },
  });
  const durationMs = windowFlag(values.duration);
  if (!/^[a-z0-9-]+$/.test(values.section)) throw new Error(`--section: "${values.section}" is not a name`);
  return {
    users: intArg(values.users, 'users', 2),
    inFlight: intArg(values['in-flight'], 'in-flight', 1),
    payloadBytes: intArg(values.payload, 'payload', 8),
    warmupMs: parseDuration(values.warmup),
    durationMs,
    connections: intArg(values.connections, 'connections', 1),
    holdMs: parseDuration(values.hold),
    drainMessages: intArg(values['drain-messages'], 'drain-messages', 1),
    drainRuns: intArg(values['drain-runs'], 'drain-runs', 1),
    scenarios: listArg(values.scenarios, 'scenarios', ['throughput', 'connections', 'drain'] as const),
    targets: listArg(values.targets, 'targets', ['switchboard', 'mosquitto', 'nats'] as const),
    pin: values.pin,
    json: values.json,
    write: values.write ?? null,
    section: values.section,
  };
}

// ------------------------------------------------------------------ what runs

type Group = 'stored' | 'unstored';

interface ThroughputSpec {
  id: string;
  kind: ServerKind;
  group: Group;
  /** The row's name in the tables. */
  label: string;
  /** Its name in sentences. */
  short: string;
  /** What the server has promised when the sender learns the message was taken (or not). */
  promise: string;
  driver: () => Driver;
  start: (opts: Options) => Promise<PeerServer>;
}

/**
 * Handshakes in progress at once for the peers' idle connections: under Mosquitto's listen backlog
 * (100), so a connect storm does not overflow it into 1 s SYN retransmits.
 */
const HOLD_CONCURRENCY = 64;

/** A fire-and-forget message not delivered within this counts as lost (its sender sends the next). */
const LOSS_TIMEOUT_MS = 2000;

const pinned = (opts: Options): { cpu?: number } => (opts.pin ? { cpu: SERVER_CPU } : {});

/** Mosquitto's per-client queue: enough for the drain and far above what the throughput queues. */
const maxQueued = (opts: Options): number => Math.max(1000, opts.drainMessages + 1000);

const THROUGHPUT: ThroughputSpec[] = [
  {
    id: 'switchboard-durable',
    kind: 'switchboard',
    group: 'stored',
    label: 'Switchboard, durable SEND',
    short: 'Switchboard durable',
    promise: 'ACCEPTED after the SQLite commit of both inboxes (recipient, sender’s own copy)',
    driver: () => new SbpDriver({ ephemeral: false }),
    start: (o) => startSwitchboard({ ...pinned(o), workers: 1, durability: 'normal' }),
  },
  {
    id: 'mosquitto-qos1',
    kind: 'mosquitto',
    group: 'stored',
    label: 'Mosquitto, QoS 1, persistent sessions',
    short: 'Mosquitto QoS 1',
    promise: 'PUBACK once in memory; saved to disk every 30 min and at shutdown',
    driver: () => new MqttDriver({ qos: 1, cleanSession: false }),
    start: (o) => startMosquitto({ ...pinned(o), maxQueuedMessages: maxQueued(o) }),
  },
  {
    id: 'switchboard-ephemeral',
    kind: 'switchboard',
    group: 'unstored',
    label: 'Switchboard, ephemeral SEND',
    short: 'Switchboard ephemeral',
    promise: 'nothing stored, no answer; to connected devices only',
    driver: () => new SbpDriver({ ephemeral: true }),
    start: (o) => startSwitchboard({ ...pinned(o), workers: 1, durability: 'normal' }),
  },
  {
    id: 'mosquitto-qos0',
    kind: 'mosquitto',
    group: 'unstored',
    label: 'Mosquitto, QoS 0, clean sessions',
    short: 'Mosquitto QoS 0',
    promise: 'nothing stored, no answer; at most once',
    driver: () => new MqttDriver({ qos: 0, cleanSession: true }),
    start: (o) => startMosquitto({ ...pinned(o), maxQueuedMessages: maxQueued(o) }),
  },
  {
    id: 'nats',
    kind: 'nats',
    group: 'unstored',
    label: 'NATS core',
    short: 'NATS core',
    promise: 'nothing stored, no answer; to connected subscribers only',
    driver: () => new NatsDriver(),
    start: (o) => startNats(pinned(o)),
  },
];

interface ThroughputRow {
  spec: ThroughputSpec;
  result: LoopResult | null;
  failure: string | null;
  loadAverage1m: number;
}

interface ConnectionsRow {
  kind: ServerKind;
  label: string;
  result: HoldResult | null;
  failure: string | null;
  loadAverage1m: number;
}

interface DrainRow {
  kind: ServerKind;
  label: string;
  runs: DrainResult[];
  failure: string | null;
  /** Why there is no figure at all (NATS core). */
  notApplicable: string | null;
  loadAverage1m: number;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Runs `fn` against a fresh server from `start`, stopping it by PID whatever happens. */
async function withServer<T>(
  start: () => Promise<PeerServer>,
  fn: (s: PeerServer) => Promise<T>,
): Promise<T> {
  const server = await start();
  try {
    return await fn(server);
  } catch (err) {
    const tail = server.tail();
    throw new Error(tail ? `${message(err)}\nlast server output:\n${tail}` : message(err));
  } finally {
    await server.stop();
  }
}

async function runThroughput(opts: Options): Promise<ThroughputRow[]> {
  const rows: ThroughputRow[] = [];
  for (const spec of THROUGHPUT.filter((s) => opts.targets.includes(s.kind))) {
    const loadAverage1m = loadAverage()[0];
    progress(`[${spec.id}] starting the server${opts.pin ? ` on CPU ${SERVER_CPU}` : ''}…`);
    try {
      const result = await withServer(
        () => spec.start(opts),
        (server) =>
          closedLoop(spec.driver(), server.port, {
            label: spec.id,
            users: opts.users,
            inFlight: opts.inFlight,
            payloadBytes: opts.payloadBytes,
            warmupMs: opts.warmupMs,
            durationMs: opts.durationMs,
            serverPid: server.pid,
            serverAlive: () => server.alive,
            // Fire-and-forget protocols may drop a message; the loop then moves on after 2 s.
            lossTimeoutMs: spec.group === 'unstored' ? LOSS_TIMEOUT_MS : 0,
          }),
      );
      rows.push({ spec, result, failure: null, loadAverage1m });
      process.stderr.write(
        `[${spec.id}] ${result.msgPerSec.toLocaleString('en-US')} msg/s, p50 ${result.latencyMs.p50} ms, ` +
          `p99 ${result.latencyMs.p99} ms, server CPU ${result.serverCpuUsPerMsg} µs/msg, ` +
          `generator CPU ${result.generatorCpuPercent} %, lost ${result.lost}, duplicates ${result.duplicates}\n`,
      );
    } catch (err) {
      endProgress();
      rows.push({ spec, result: null, failure: message(err), loadAverage1m });
      process.stderr.write(`[${spec.id}] failed: ${message(err)}\n`);
    }
  }
  return rows;
}

// ------------------------------------------------------------------ connections

let connectionsChild: ChildProcess | null = null;

/** `switchboard bench connections` against `server`, as a child process (pinned to the generator's CPU). */
function sbpConnections(server: PeerServer, opts: Options): Promise<HoldResult> {
  const args = [
    path.join(ROOT, 'bin', 'switchboard.js'),
    'bench',
    'connections',
    '--count',
    String(opts.connections),
    '--hold',
    `${opts.holdMs}ms`,
    '--target',
    `sbp://127.0.0.1:${server.port}`,
    '--server-pid',
    String(server.pid),
    '--json',
  ];
  const [cmd, argv] = opts.pin
    ? ['taskset', ['-c', String(GENERATOR_CPU), process.execPath, ...args]]
    : [process.execPath, args];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    connectionsChild = child;
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (t: string) => {
      out += t;
    });
    child.stderr!.setEncoding('utf8').on('data', (t: string) => {
      err = (err + t).slice(-4000);
    });
    const limit = setTimeout(() => killTree(child.pid), opts.holdMs + 180_000);
    child.on('error', (e) => reject(e));
    child.on('exit', (code) => {
      clearTimeout(limit);
      connectionsChild = null;
      try {
        const r = JSON.parse(out.trim().split('\n').pop() ?? '') as {
          count: number;
          heldAtEnd: number;
          failed: number;
          dropped: number;
          secondsToAllConnected: number;
          connectsPerSecond: number;
          holdSeconds: number;
          serverRssBeforeBytes: number | null;
          serverRssBytes: number | null;
          rssPerConnectionBytes: number | null;
          failedByError: Record<string, number>;
          droppedByError: Record<string, number>;
          warnings: string[];
        };
        const errors = [...Object.keys(r.failedByError), ...Object.keys(r.droppedByError), ...r.warnings];
        resolve({
          count: r.count,
          held: r.heldAtEnd,
          failed: r.failed,
          dropped: r.dropped,
          secondsToAllConnected: r.secondsToAllConnected,
          connectsPerSecond: r.connectsPerSecond,
          holdSeconds: r.holdSeconds,
          serverRssBeforeBytes: r.serverRssBeforeBytes ?? 0,
          serverRssBytes: r.serverRssBytes ?? 0,
          rssPerConnectionBytes: r.rssPerConnectionBytes,
          firstError: errors[0] ?? null,
        });
      } catch {
        reject(new Error(`switchboard bench connections exited with ${code} and no JSON:\n${err.trim()}`));
      }
    });
  });
}

function killTree(pid: number | undefined): void {
  if (pid === undefined) return;
  for (const p of processTree([pid]).reverse()) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

async function runConnections(opts: Options): Promise<ConnectionsRow[]> {
  const rows: ConnectionsRow[] = [];
  const specs: { kind: ServerKind; label: string; run: () => Promise<HoldResult> }[] = [
    {
      kind: 'switchboard',
      label: 'Switchboard (HELLO → WELCOME, `switchboard bench connections`)',
      run: () =>
        withServer(
          () => startSwitchboard({ ...pinned(opts), workers: 1 }),
          (s) => sbpConnections(s, opts),
        ),
    },
    {
      kind: 'mosquitto',
      label: 'Mosquitto (CONNECT → CONNACK, clean session)',
      run: () =>
        withServer(
          () => startMosquitto({ ...pinned(opts), maxQueuedMessages: maxQueued(opts) }),
          (s) =>
            holdConnections(new MqttDriver({ qos: 0, cleanSession: true }), s.port, {
              label: 'mosquitto connections',
              count: opts.connections,
              holdMs: opts.holdMs,
              concurrency: HOLD_CONCURRENCY,
              serverPid: s.pid,
            }),
        ),
    },
    {
      kind: 'nats',
      label: 'NATS (CONNECT + PING → PONG)',
      run: () =>
        withServer(
          () => startNats(pinned(opts)),
          (s) =>
            holdConnections(new NatsDriver(), s.port, {
              label: 'nats connections',
              count: opts.connections,
              holdMs: opts.holdMs,
              concurrency: HOLD_CONCURRENCY,
              serverPid: s.pid,
            }),
        ),
    },
  ];
  for (const spec of specs.filter((s) => opts.targets.includes(s.kind))) {
    const loadAverage1m = loadAverage()[0];
    progress(`[${spec.kind} connections] ${opts.connections.toLocaleString('en-US')} connections…`);
    try {
      const result = await spec.run();
      rows.push({ kind: spec.kind, label: spec.label, result, failure: null, loadAverage1m });
      process.stderr.write(
        `[${spec.kind} connections] held ${result.held}, ${result.rssPerConnectionBytes ?? '?'} B per connection\n`,
      );
    } catch (err) {
      endProgress();
      rows.push({ kind: spec.kind, label: spec.label, result: null, failure: message(err), loadAverage1m });
      process.stderr.write(`[${spec.kind} connections] failed: ${message(err)}\n`);
    }
  }
  return rows;
}

// ------------------------------------------------------------------ drain

async function runDrains(opts: Options): Promise<DrainRow[]> {
  const rows: DrainRow[] = [];
  const m = opts.drainMessages;
  const specs: {
    kind: ServerKind;
    label: string;
    start: () => Promise<PeerServer>;
    sender: () => Driver;
    receiver: () => Driver;
  }[] = [
    {
      kind: 'switchboard',
      label: 'Switchboard, durable SEND',
      start: () =>
        startSwitchboard({
          ...pinned(opts),
          workers: 1,
          // The inbox cap must allow M (default 10 000 messages).
          args: ['--inbox-max-messages', String(Math.max(10_000, m + 1000))],
        }),
      sender: () => new SbpDriver({ ephemeral: false }),
      receiver: () => new SbpDriver({ ephemeral: false, replay: true }),
    },
    {
      kind: 'mosquitto',
      label: 'Mosquitto, QoS 1, persistent session',
      start: () => startMosquitto({ ...pinned(opts), maxQueuedMessages: maxQueued(opts) }),
      sender: () => new MqttDriver({ qos: 1, cleanSession: false }),
      receiver: () => new MqttDriver({ qos: 1, cleanSession: false }),
    },
  ];
  for (const spec of specs.filter((s) => opts.targets.includes(s.kind))) {
    const loadAverage1m = loadAverage()[0];
    progress(`[${spec.kind} drain] ${m.toLocaleString('en-US')} messages × ${opts.drainRuns}…`);
    try {
      const runs = await withServer(spec.start, async (server) => {
        const out: DrainResult[] = [];
        for (let r = 1; r <= opts.drainRuns; r++) {
          const result = await drain(spec.sender(), spec.receiver(), server.port, {
            messages: m,
            payloadBytes: opts.payloadBytes,
            receiver: `drain-r${r}`,
            sender: `drain-s${r}`,
          });
          if (result.missing > 0 || result.duplicates > 0) {
            throw new Error(`drain ${r}: ${result.missing} missing, ${result.duplicates} duplicates of ${m}`);
          }
          out.push(result);
        }
        return out;
      });
      rows.push({
        kind: spec.kind,
        label: spec.label,
        runs,
        failure: null,
        notApplicable: null,
        loadAverage1m,
      });
      process.stderr.write(`[${spec.kind} drain] ${runs.map((r) => `${r.drainMs} ms`).join(', ')}\n`);
    } catch (err) {
      endProgress();
      rows.push({
        kind: spec.kind,
        label: spec.label,
        runs: [],
        failure: message(err),
        notApplicable: null,
        loadAverage1m,
      });
      process.stderr.write(`[${spec.kind} drain] failed: ${message(err)}\n`);
    }
  }
  if (opts.targets.includes('nats')) {
    rows.push({
      kind: 'nats',
      label: 'NATS core',
      runs: [],
      failure: null,
      notApplicable: 'no store: a message published while the subscriber is away reaches no one',
      loadAverage1m: loadAverage()[0],
    });
  }
  return rows;
}

// ------------------------------------------------------------------ report

interface Report {
  opts: Options;
  versions: Record<ServerKind, string | null>;
  throughput: ThroughputRow[];
  connections: ConnectionsRow[];
  drains: DrainRow[];
}

const pct = (n: number | null): string => (n === null ? '?' : `${n.toFixed(0)} %`);
const num = (n: number): string => n.toLocaleString('en-US');
const fixed = (n: number | null, d = 2): string => (n === null || Number.isNaN(n) ? '?' : n.toFixed(d));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function throughputTable(rows: ThroughputRow[]): string {
  const head = [
    'target',
    'when the sender hears back',
    'msg/s',
    'p50 ms',
    'p90 ms',
    'p99 ms',
    'p99.9 ms',
    'max ms',
    'server CPU µs/msg',
    'server CPU',
    'generator CPU',
    'other CPU',
    'lost',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`];
  for (const { spec, result: r, failure } of rows) {
    if (r === null) {
      lines.push(
        `| ${spec.label} | ${spec.promise} | failed: ${(failure ?? '').split('\n')[0]} |${' |'.repeat(10)}`,
      );
      continue;
    }
    const ceiling = r.generatorCpuPercent > GENERATOR_CEILING_PERCENT ? ' (ceiling)' : '';
    lines.push(
      `| ${[
        spec.label,
        spec.promise,
        num(r.msgPerSec),
        fixed(r.latencyMs.p50),
        fixed(r.latencyMs.p90),
        fixed(r.latencyMs.p99),
        fixed(r.latencyMs.p999),
        fixed(r.latencyMs.max),
        fixed(r.serverCpuUsPerMsg, 1),
        pct(r.serverCpuPercent),
        `${pct(r.generatorCpuPercent)}${ceiling}`,
        pct(r.otherCpuPercent),
        num(r.lost),
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

/** "×0.25 msg/s, ×4.1 server CPU µs/msg, ×5.2 p99" of `a` relative to `b`; null when either is missing. */
function ratio(rows: ThroughputRow[], a: string, b: string): string | null {
  const ra = rows.find((r) => r.spec.id === a)?.result;
  const rb = rows.find((r) => r.spec.id === b)?.result;
  if (!ra || !rb || rb.msgPerSec === 0) return null;
  const parts = [`×${(ra.msgPerSec / rb.msgPerSec).toFixed(2)} msg/s`];
  if (ra.serverCpuUsPerMsg !== null && rb.serverCpuUsPerMsg)
    parts.push(`×${(ra.serverCpuUsPerMsg / rb.serverCpuUsPerMsg).toFixed(2)} server CPU µs/msg`);
  if (rb.latencyMs.p50 > 0) parts.push(`×${(ra.latencyMs.p50 / rb.latencyMs.p50).toFixed(2)} p50`);
  if (rb.latencyMs.p99 > 0) parts.push(`×${(ra.latencyMs.p99 / rb.latencyMs.p99).toFixed(2)} p99`);
  return parts.join(', ');
}

/**
 * Where Switchboard stands against its targets (the bench issue's, measured pinned): durable SBP at least
 * 1.5 × Mosquitto QoS 1's msg/s with a p99 no worse, ephemeral SBP at least NATS core's msg/s. Also the
 * most msg/s the generator's one core could show for each Switchboard row (its CPU per delivered message,
 * scaled to a whole core), since a target above that cannot be shown whatever the server does.
 */
function targetsTable(rep: Report): string | null {
  const find = (id: string) => rep.throughput.find((r) => r.spec.id === id)?.result ?? null;
  const durable = find('switchboard-durable');
  const qos1 = find('mosquitto-qos1');
  const ephemeral = find('switchboard-ephemeral');
  const nats = find('nats');
  const rows: string[][] = [];
  const generatorCeiling = (r: { msgPerSec: number; generatorCpuPercent: number }): string =>
    r.generatorCpuPercent > 0 ? num(Math.round((r.msgPerSec * 100) / r.generatorCpuPercent)) : '?';
  const yes = (ok: boolean): string => (ok ? 'met' : '**not met**');
  const us = (v: number | null): string => (v === null ? '?' : `${v.toFixed(1)} µs`);
  if (durable && qos1 && qos1.msgPerSec > 0) {
    const x = durable.msgPerSec / qos1.msgPerSec;
    rows.push([
      'durable SBP ≥ 1.5 × Mosquitto QoS 1 msg/s',
      `×${x.toFixed(2)} (${num(durable.msgPerSec)} against ${num(qos1.msgPerSec)}; 1.5 × = ${num(Math.round(qos1.msgPerSec * 1.5))})`,
      yes(x >= 1.5),
      `${us(durable.serverCpuUsPerMsg)} against ${us(qos1.serverCpuUsPerMsg)}`,
      generatorCeiling(durable),
    ]);
    rows.push([
      'durable SBP p99 ≤ Mosquitto QoS 1 p99',
      `${durable.latencyMs.p99.toFixed(1)} ms against ${qos1.latencyMs.p99.toFixed(1)} ms`,
      yes(durable.latencyMs.p99 <= qos1.latencyMs.p99),
      '',
      '',
    ]);
  }
  if (ephemeral && nats && nats.msgPerSec > 0) {
    const x = ephemeral.msgPerSec / nats.msgPerSec;
    rows.push([
      'ephemeral SBP ≥ NATS core msg/s',
      `×${x.toFixed(2)} (${num(ephemeral.msgPerSec)} against ${num(nats.msgPerSec)})`,
      yes(x >= 1),
      `${us(ephemeral.serverCpuUsPerMsg)} against ${us(nats.serverCpuUsPerMsg)}`,
      generatorCeiling(ephemeral),
    ]);
  }
  if (rows.length === 0) return null;
  const head = [
    'target',
    'measured',
    '',
    'server CPU per message (Switchboard against peer)',
    'most msg/s the generator core could show for the Switchboard row',
  ];
  return [
    `| ${head.join(' | ')} |`,
    '|---|---|---|---|---:|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

function connectionsTable(rows: ConnectionsRow[]): string {
  const head = [
    'target',
    'connections',
    'held at the end',
    'failed / dropped',
    'time to all connected',
    'server RSS before → holding',
    'RSS per connection',
  ];
  const lines = [
    `| ${head.join(' | ')} |`,
    `|---|${head
      .slice(1)
      .map(() => '---:')
      .join('|')}|`,
  ];
  for (const row of rows) {
    const r = row.result;
    if (r === null) {
      lines.push(`| ${row.label} | failed: ${(row.failure ?? '').split('\n')[0]} |${' |'.repeat(5)}`);
      continue;
    }
    lines.push(
      `| ${[
        row.label,
        num(r.count),
        num(r.held),
        `${num(r.failed)} / ${num(r.dropped)}`,
        `${r.secondsToAllConnected.toFixed(1)} s (${num(r.connectsPerSecond)}/s)`,
        `${bytes(r.serverRssBeforeBytes)} → ${bytes(r.serverRssBytes)}`,
        r.rssPerConnectionBytes === null ? '?' : `**${bytes(r.rssPerConnectionBytes)}**`,
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

function drainTable(rows: DrainRow[], m: number): string {
  const head = [
    'target',
    'messages stored',
    'replay time, median (range)',
    'msg/s (median)',
    'time to store them',
  ];
  const lines = [
    `| ${head.join(' | ')} |`,
    `|---|${head
      .slice(1)
      .map(() => '---:')
      .join('|')}|`,
  ];
  for (const row of rows) {
    if (row.notApplicable !== null) {
      lines.push(`| ${row.label} | n/a | n/a — ${row.notApplicable} | n/a | n/a |`);
      continue;
    }
    if (row.runs.length === 0) {
      lines.push(`| ${row.label} | ${num(m)} | failed: ${(row.failure ?? '').split('\n')[0]} | | |`);
      continue;
    }
    const times = row.runs.map((r) => r.drainMs);
    const range = `${Math.min(...times).toFixed(1)}–${Math.max(...times).toFixed(1)}`;
    lines.push(
      `| ${[
        row.label,
        num(m),
        `**${median(times).toFixed(1)} ms** (${range} ms, ${row.runs.length} runs)`,
        num(median(row.runs.map((r) => r.msgPerSec))),
        `${median(row.runs.map((r) => r.storeMs)).toFixed(0)} ms`,
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

const times = (x: number): string => (x >= 10 ? x.toFixed(0) : x.toFixed(1));

/** Within this factor of each other, two figures are called about the same (the runs are noisy). */
const SAME = 1.1;

/** "A delivers ×3.8 B’s msg/s; B spends ×6.2 A’s server CPU per message." (or "about the same …"). */
function compare(aName: string, a: LoopResult, bName: string, b: LoopResult): string {
  const parts: string[] = [];
  const r = a.msgPerSec / Math.max(1, b.msgPerSec);
  if (r < SAME && r > 1 / SAME)
    parts.push(`${aName} and ${bName} deliver about the same msg/s (×${r.toFixed(2)})`);
  else if (r >= SAME) parts.push(`${aName} delivers ×${times(r)} ${bName}’s msg/s`);
  else parts.push(`${bName} delivers ×${times(1 / r)} ${aName}’s msg/s`);
  const ca = a.serverCpuUsPerMsg;
  const cb = b.serverCpuUsPerMsg;
  if (ca !== null && cb !== null && ca > 0 && cb > 0) {
    const c = ca / cb;
    if (c < SAME && c > 1 / SAME) parts.push(`at about the same server CPU per message (×${c.toFixed(2)})`);
    else if (c >= SAME) parts.push(`and ${aName} spends ×${times(c)} ${bName}’s server CPU per message`);
    else parts.push(`and ${bName} spends ×${times(1 / c)} ${aName}’s server CPU per message`);
  }
  return `${parts.join(' ')}.`;
}

/**
 * A sentence when other work took a real share of the machine during these rows while its cores were
 * nearly all busy: the rows then competed with it, and msg/s measures the shared machine too.
 */
function saturation(rep: Report, ids: string[]): string {
  const cores = machineInfo().cores;
  const rows = rep.throughput
    .filter((r) => ids.includes(r.spec.id) && r.result !== null)
    .map((r) => r.result!);
  const contended = rows.filter((x) => {
    const busy = (x.serverCpuPercent ?? 0) + x.generatorCpuPercent + (x.otherCpuPercent ?? 0);
    return busy >= cores * 100 * 0.85 && (x.otherCpuPercent ?? 0) >= OTHER_LOAD_PERCENT;
  });
  if (contended.length === 0) return '';
  const other = Math.round(Math.max(...contended.map((x) => x.otherCpuPercent ?? 0)));
  return (
    `Other work took up to ${other} % of a core during ${contended.length === rows.length ? 'these rows' : 'some of these rows'} ` +
    `while the machine’s ${cores} cores were nearly all busy, so msg/s there says as much about the shared ` +
    'machine as about the server; server CPU µs/msg is the figure to compare. '
  );
}

/**
 * A sentence when the generator ran at its ceiling in these rows: msg/s then compares the client side's
 * cost per protocol as much as the servers.
 */
function ceilingNote(rep: Report, ids: string[]): string {
  const rows = rep.throughput.filter((r) => ids.includes(r.spec.id) && r.result !== null);
  const capped = rows.filter((r) => r.result!.generatorCpuPercent > GENERATOR_CEILING_PERCENT);
  if (capped.length === 0) return '';
  const cost = capped
    .map((r) => {
      const x = r.result!;
      const us = x.msgPerSec > 0 ? (x.generatorCpuPercent / 100) * (1e6 / x.msgPerSec) : 0;
      return `${r.spec.short} ${us.toFixed(1)} µs`;
    })
    .join(', ');
  return (
    `${capped.length === rows.length ? 'Every row here' : `The ${capped.map((r) => r.spec.short).join(' and ')} row${capped.length > 1 ? 's' : ''}`} ran the generator at ` +
    `its ceiling (its CPU per delivered message: ${cost}), so msg/s compares the client side’s cost per ` +
    'protocol as much as the servers; server CPU µs/msg is the figure to compare. '
  );
}

/** Other CPU (% of a core) from which a run counts as competing with other work. */
const OTHER_LOAD_PERCENT = 20;

/** Where a peer wins and why, from the figures of this run. */
function readingParagraphs(rep: Report): string[] {
  const out: string[] = [];
  const tp = (id: string): LoopResult | null => rep.throughput.find((r) => r.spec.id === id)?.result ?? null;
  const sbD = tp('switchboard-durable');
  const mq1 = tp('mosquitto-qos1');
  const sbE = tp('switchboard-ephemeral');
  const nats = tp('nats');
  const mq0 = tp('mosquitto-qos0');

  if (sbD && mq1) {
    out.push(
      `**Stored delivery.** ${compare('Switchboard durable', sbD, 'Mosquitto QoS 1', mq1)} ` +
        saturation(rep, ['switchboard-durable', 'mosquitto-qos1']) +
        ceilingNote(rep, ['switchboard-durable', 'mosquitto-qos1']) +
        'The two do not promise the same thing. Switchboard answers ACCEPTED, and DELIVERs, only after the ' +
        'message is committed to SQLite in two inboxes — the recipient’s and the sender’s own copy (with ' +
        '`--durability normal` the commit is written to the WAL file, which survives `kill -9`; `full` also ' +
        'fsyncs) — and the sender also receives and ACKs its own copy: two store writes and one more DELIVER ' +
        'per message. Mosquitto’s PUBACK means the message is in memory: its store is written to ' +
        '`mosquitto.db` only every `autosave_interval` (30 min by default) and at a clean shutdown, so a crash ' +
        'or `kill -9` loses every QoS 1 message since the last save. Mosquitto is also one C process with its ' +
        'own memory pools, where Switchboard runs its session, routing and store code in JavaScript on ' +
        'Node’s garbage-collected heap.',
    );
  }
  if (sbE && (nats || mq0)) {
    const vs = [
      nats ? `Against NATS core: ${compare('Switchboard ephemeral', sbE, 'NATS core', nats)}` : null,
      mq0
        ? `Against Mosquitto QoS 0: ${compare('Switchboard ephemeral', sbE, 'Mosquitto QoS 0', mq0)}`
        : null,
    ].filter((x): x is string => x !== null);
    out.push(
      `**Nothing stored.** ${vs.join(' ')} ` +
        saturation(rep, ['switchboard-ephemeral', 'mosquitto-qos0', 'nats']) +
        ceilingNote(rep, ['switchboard-ephemeral', 'mosquitto-qos0', 'nats']) +
        'None of the three stores anything or answers the sender; each passes the message to whoever is ' +
        'connected at that moment. NATS core routes in compiled Go over a text protocol with no per-message ' +
        'state (its threads can use every core it is given: see its server CPU %); Mosquitto QoS 0 is a plain ' +
        'forward in C. Switchboard’s ephemeral SEND goes through the same session, address checks and routing ' +
        'as a durable one, minus the store, in JavaScript, and its DELIVER frame carries more (sender, device, ' +
        'ids, timestamp).',
    );
  }
  const conn = (k: ServerKind): HoldResult | null =>
    rep.connections.find((r) => r.kind === k)?.result ?? null;
  const cs = conn('switchboard');
  const cm = conn('mosquitto');
  const cn = conn('nats');
  if (cs?.rssPerConnectionBytes && (cm?.rssPerConnectionBytes || cn?.rssPerConnectionBytes)) {
    const parts: string[] = [`Switchboard ${bytes(cs.rssPerConnectionBytes)}`];
    if (cm?.rssPerConnectionBytes) parts.push(`Mosquitto ${bytes(cm.rssPerConnectionBytes)}`);
    if (cn?.rssPerConnectionBytes) parts.push(`NATS ${bytes(cn.rssPerConnectionBytes)}`);
    out.push(
      `**Idle connections.** Memory per held connection: ${parts.join(', ')}. Mosquitto keeps a small C ` +
        'struct and buffers per client; NATS runs a read and a write goroutine per client, each with its own ' +
        'stack and buffers; Switchboard keeps a socket, a decoder and a session object per connection in a ' +
        'worker’s heap.',
    );
  }
  const dr = (k: ServerKind): DrainRow | undefined =>
    rep.drains.find((r) => r.kind === k && r.runs.length > 0);
  const ds = dr('switchboard');
  const dm = dr('mosquitto');
  if (ds && dm) {
    const a = median(ds.runs.map((r) => r.drainMs));
    const b = median(dm.runs.map((r) => r.drainMs));
    const [winner, fast, slow] = a <= b ? ['Switchboard', a, b] : ['Mosquitto', b, a];
    out.push(
      `**Drain.** ${winner} replays ${num(rep.opts.drainMessages)} stored messages faster (${fast.toFixed(1)} ms ` +
        `against ${slow.toFixed(1)} ms). Switchboard reads them from the SQLite inbox and streams them under its ` +
        'window (1 000 DELIVERs outstanding, ACKed every 500); Mosquitto sends them from memory, with at most ' +
        '`max_inflight_messages` (20 by default) QoS 1 messages unacknowledged per client, so its replay is paced ' +
        'by PUBACK round trips. NATS core has nothing to replay.',
    );
  }
  out.push(
    '**Semantics that differ.** Switchboard’s durable ACCEPTED waits for the store write (the message ' +
      'survives the server’s crash); Mosquitto’s QoS 1 PUBACK does not (the message survives a disconnect of ' +
      'the subscriber, not a crash of the broker between autosaves); NATS core stores nothing and acknowledges ' +
      'nothing (a subscriber that is away misses the message, and the publisher never knows). Switchboard also ' +
      'gives every message a per-inbox sequence number, replays by cursor to every device of a user, and ' +
      'deduplicates re-sends; MQTT QoS 1 is at-least-once per session, NATS core at-most-once.',
  );
  return out;
}

function describeWorkload(opts: Options): string {
  return (
    `${num(opts.users)} users, each keeping ${opts.inFlight} in flight to random other users; ` +
    `${opts.payloadBytes}-byte payloads; ${opts.warmupMs / 1000} s warm-up + ${opts.durationMs / 1000} s measured`
  );
}

function switchboardVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version?: string };
    const rev = sourceRevision();
    return `${pkg.version ?? '?'}${rev === null ? '' : ` (${rev})`}`;
  } catch {
    return '?';
  }
}

function pinningLine(rep: Report): string {
  if (!rep.opts.pin) return 'No pinning: the servers, the generator and everything else share every core.';
  const cpus = [
    ...new Set(
      rep.throughput.map((r) => r.result?.serverCpus).filter((x): x is string => typeof x === 'string'),
    ),
  ];
  const gen = [
    ...new Set(
      rep.throughput.map((r) => r.result?.generatorCpus).filter((x): x is string => typeof x === 'string'),
    ),
  ];
  return (
    `Pinned: each server on CPU ${cpus.join('/') || SERVER_CPU} (\`taskset -c ${SERVER_CPU}\`), the generator on ` +
    `CPU ${gen.join('/') || GENERATOR_CPU}.`
  );
}

function sectionBody(rep: Report, command: string): string {
  const { opts } = rep;
  const loads = [
    ...rep.throughput.map((r) => r.loadAverage1m),
    ...rep.connections.map((r) => r.loadAverage1m),
    ...rep.drains.filter((r) => r.notApplicable === null).map((r) => r.loadAverage1m),
  ];
  const loadText =
    loads.length === 0
      ? ''
      : `; 1-minute load average ${Math.min(...loads)}–${Math.max(...loads)} at the start of the runs`;
  const revision = sourceRevision();
  const v = rep.versions;
  const lines = [
    `Measured ${today()} with \`${command}\`${revision === null ? '' : ` (${revision})`}.`,
    '',
    `- Machine: ${describeMachine()}${loadText}.`,
    `- Servers: Switchboard ${v.switchboard ?? '?'}, one worker (\`serve --workers 1 --durability normal\`, ` +
      `SQLite, a fresh data folder); Mosquitto ${v.mosquitto ?? '(not installed)'}; nats-server ${v.nats ?? '(not installed)'}. ` +
      'A fresh server process per row, on a free port of 127.0.0.1, stopped by PID afterwards; configs below.',
    `- Workload: ${describeWorkload(opts)}. A message is delivered when its recipient receives it ` +
      '(DELIVER, PUBLISH, MSG); its sender then sends the next one.',
    '- Clients: one generator process, a raw TCP socket per user with packets hand-encoded for each protocol ' +
      '(`bench/drivers/`: SBP/1, MQTT 3.1.1, NATS core), no client library; each payload carries its sender and ' +
      'number, so every protocol matches deliveries to sends the same way. "lost" = sent and never delivered: ' +
      'for the fire-and-forget rows, not delivered within 2 s (the sender then sends the next); for the ' +
      'stored rows, not delivered by 2 s after the window.',
    `- ${pinningLine(rep)}`,
    '',
  ];
  if (opts.scenarios.includes('throughput')) {
    const stored = rep.throughput.filter((r) => r.spec.group === 'stored');
    const unstored = rep.throughput.filter((r) => r.spec.group === 'unstored');
    if (stored.length > 0) {
      lines.push(
        '**Stored and acknowledged** (Switchboard durable vs Mosquitto QoS 1)',
        '',
        throughputTable(stored),
        '',
      );
      const r = ratio(rep.throughput, 'switchboard-durable', 'mosquitto-qos1');
      if (r) lines.push(`Switchboard durable ÷ Mosquitto QoS 1: ${r}.`, '');
    }
    if (unstored.length > 0) {
      lines.push(
        '**Nothing stored** (Switchboard ephemeral vs Mosquitto QoS 0 vs NATS core)',
        '',
        throughputTable(unstored),
        '',
      );
      const r = ratio(rep.throughput, 'switchboard-ephemeral', 'nats');
      if (r) lines.push(`Switchboard ephemeral ÷ NATS core: ${r}.`, '');
      const r0 = ratio(rep.throughput, 'switchboard-ephemeral', 'mosquitto-qos0');
      if (r0) lines.push(`Switchboard ephemeral ÷ Mosquitto QoS 0: ${r0}.`, '');
    }
    const targets = targetsTable(rep);
    if (targets) {
      lines.push(
        `**Against the targets** (${opts.pin ? 'this run is pinned, as the targets are defined' : 'the targets are defined pinned (`--pin`); this run is not'}; the generator’s ceiling = its msg/s ÷ its share of a core)`,
        '',
        targets,
        '',
      );
    }
    const capped = rep.throughput.filter(
      (r) => (r.result?.generatorCpuPercent ?? 0) > GENERATOR_CEILING_PERCENT,
    );
    if (capped.length > 0) {
      lines.push(
        `Generator above ${GENERATOR_CEILING_PERCENT} % of a core for ${capped.map((r) => r.spec.short).join(', ')}: ` +
          'there msg/s is the generator’s ceiling, not the server’s; compare server CPU µs/msg instead.',
        '',
      );
    }
  }
  if (opts.scenarios.includes('connections') && rep.connections.length > 0) {
    lines.push(
      `**Idle connections** (${num(opts.connections)} opened, held ${opts.holdMs / 1000} s; RSS per connection = ` +
        '(server RSS while holding − before) ÷ held; Switchboard’s through `switchboard bench connections` ' +
        `(its own generator processes and source addresses), the peers’ from this generator, ${HOLD_CONCURRENCY} ` +
        'handshakes at a time, no subscription)',
      '',
      connectionsTable(rep.connections),
      '',
    );
  }
  if (opts.scenarios.includes('drain') && rep.drains.length > 0) {
    lines.push(
      `**Drain** (${num(opts.drainMessages)} messages of ${opts.payloadBytes} bytes stored for a receiver that ` +
        'had connected and subscribed once, then from its reconnect’s first byte to the last message; ' +
        'each message checked to arrive exactly once)',
      '',
      drainTable(rep.drains, opts.drainMessages),
      '',
    );
  }
  const failures = [
    ...rep.throughput.filter((r) => r.failure !== null).map((r) => `${r.spec.label}: ${r.failure}`),
    ...rep.connections.filter((r) => r.failure !== null).map((r) => `${r.label} connections: ${r.failure}`),
    ...rep.drains.filter((r) => r.failure !== null).map((r) => `${r.label} drain: ${r.failure}`),
  ];
  for (const f of failures) lines.push(`Failed run — ${f.split('\n')[0]}`, '');
  lines.push(...readingParagraphs(rep).flatMap((p) => [p, '']));
  lines.push(
    'Configurations (`<port>` and `<folder>` are fresh for each run):',
    '',
    '```sh',
    '# Switchboard (the drain adds --inbox-max-messages, so the inbox cap allows M)',
    'node bin/switchboard.js serve --port <port> --http-port <port> --data <folder> --workers 1 --durability normal --log-level warn',
    '```',
    '',
    '```conf',
    '# mosquitto -c mosquitto.conf',
    mosquittoConfig(0, '<folder>', maxQueued(opts))
      .replace('listener 0 ', 'listener <port> ')
      .replace(`<folder>${path.sep}`, '<folder>/')
      .replace(/^user .*$/m, 'user <the user running the benchmark>')
      .trim(),
    '```',
    '',
    '```conf',
    '# nats-server -c nats.conf (everything else at its defaults)',
    natsConfig(0).replace(':0', ':<port>').trim(),
    '```',
    '',
    'MQTT clients: CONNECT with protocol level 4, client id = user, keep-alive 60 s (PINGREQ every 30 s), ' +
      'clean session off for QoS 1 and on for QoS 0; SUBSCRIBE `u/<user>` at the run’s QoS; PUBLISH to ' +
      '`u/<recipient>`; QoS 1 PUBLISHes answered PUBACK at once. NATS clients: CONNECT ' +
      '`{"verbose":false,"pedantic":false}`, `SUB u.<user> 1`, `PUB u.<recipient> 100`. SBP clients: HELLO in ' +
      'open mode, one device per user, ACK as the SDK does: after window/2 DELIVERs or at the latest 100 ms ' +
      'after the first unacknowledged one.',
  );
  return lines.join('\n');
}

// ------------------------------------------------------------------ main

function installCleanup(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      endProgress();
      process.stderr.write(`${signal}: stopping the servers\n`);
      killTree(connectionsChild?.pid);
      process.once(signal, () => {
        killAllPeersNow();
        process.exit(130);
      });
      void stopAllPeers(5000).finally(() => process.exit(130));
    });
  }
  process.once('exit', () => {
    killTree(connectionsChild?.pid);
    killAllPeersNow();
  });
}

/** Installs mosquitto / nats-server from Debian when a target needs one that is absent. */
function ensurePeers(opts: Options): void {
  const missing = [
    opts.targets.includes('mosquitto') && findBinary('mosquitto') === null ? 'mosquitto' : null,
    opts.targets.includes('nats') && findBinary('nats-server') === null ? 'nats-server' : null,
  ].filter((x): x is string => x !== null);
  if (missing.length === 0) return;
  process.stderr.write(`installing ${missing.join(' ')} (scripts/ensure-packages.sh)…\n`);
  const r = spawnSync('bash', [path.join(ROOT, 'scripts', 'ensure-packages.sh'), ...missing], {
    stdio: ['ignore', 2, 2],
  });
  if (r.status !== 0) process.stderr.write(`could not install ${missing.join(' ')}: their runs will fail\n`);
}

async function main(): Promise<number> {
  const started = scriptOptions(USAGE, (a) => withPinning(parseOptions(a)));
  if (started === null) return 2;
  const { args, opts } = started;
  installCleanup();
  ensurePeers(opts);

  const rep: Report = {
    opts,
    versions: {
      switchboard: switchboardVersion(),
      mosquitto: serverVersion('mosquitto'),
      nats: serverVersion('nats'),
    },
    throughput: [],
    connections: [],
    drains: [],
  };
  if (opts.scenarios.includes('throughput')) rep.throughput = await runThroughput(opts);
  if (opts.scenarios.includes('connections')) rep.connections = await runConnections(opts);
  if (opts.scenarios.includes('drain')) rep.drains = await runDrains(opts);

  const command = commandLine('bench:peers', args);
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({
        benchmark: 'peers',
        options: opts,
        machine: machineInfo(),
        versions: rep.versions,
        throughput: rep.throughput.map((r) => ({
          id: r.spec.id,
          label: r.spec.label,
          result: r.result,
          failure: r.failure,
          loadAverage1m: r.loadAverage1m,
        })),
        connections: rep.connections,
        drains: rep.drains,
      })}\n`,
    );
  } else {
    process.stdout.write(`${sectionBody(rep, command)}\n`);
  }
  const anyResult =
    rep.throughput.some((r) => r.result !== null) ||
    rep.connections.some((r) => r.result !== null) ||
    rep.drains.some((r) => r.runs.length > 0);
  if (opts.write !== null && anyResult) {
    try {
      writeSection(opts.write, opts.section, sectionBody(rep, command));
      process.stderr.write(`wrote the "${opts.section}" section of ${opts.write}\n`);
    } catch (err) {
      process.stderr.write(`--write ${opts.write}: ${message(err)}\n`);
      return 1;
    }
  }
  const failed =
    rep.throughput.some((r) => r.failure !== null) ||
    rep.connections.some((r) => r.failure !== null) ||
    rep.drains.some((r) => r.failure !== null);
  return failed ? 1 : 0;
}

runMain(main);
