/**
 * One run of the many-machines benchmark (bench/fleet.ts): a fresh store — a SQLite data folder, one
 * redis-server, or a Redis Cluster of 3 masters + 3 replicas — and N fresh `serve --workers 1` nodes on
 * it, the throughput engine's users workload spread over the nodes (user i on node i mod N, sending
 * only to users of other nodes), and what the window cost: the nodes' CPU, every redis-server's CPU,
 * the busiest Redis main thread, and the commands and socket reads each Redis master served per
 * delivered message. Every process it starts is stopped by PID when the run ends, however it ends.
 */
import { latencySummary } from './latency.js';
import { loadAverage, machineInfo } from './machine.js';
import { type MachineCpu, machineCpu, type TreeCpu, treeCpu, treesCpu } from './proc.js';
import { type RedisCluster, type RedisProcess, startRedis, startRedisCluster } from './redis-server.js';
import {
  countersDelta,
  mainThreadSeconds,
  masters,
  type RedisCounters,
  redisCounters,
} from './redis-stats.js';
import { endProgress, progress, round } from './report.js';
import { type Durability, ServerProcess } from './server.js';
import { closedDurableLoad, LoadRun } from './throughput.js';

export type StoreKind = 'sqlite' | 'redis' | 'cluster';

/** One configuration: a store and how many nodes run on it. */
export interface FleetConfig {
  store: StoreKind;
  nodes: number;
}

export interface FleetOptions {
  users: number;
  /** Messages each user keeps in flight. */
  inFlight: number;
  payloadBytes: number;
  warmupMs: number;
  durationMs: number;
  /** The nodes' --durability; Redis runs appendfsync everysec for normal, always for full. */
  durability: Durability;
}

export interface FleetResult {
  /** e.g. "redis:3". */
  config: string;
  /** e.g. "Redis, 3 nodes". */
  label: string;
  store: StoreKind;
  nodes: number;
  /** redis-server processes (masters and replicas); 0 on SQLite. */
  redisServers: number;
  redisMasters: number;
  /** The AOF fsync policy of every redis-server; null on SQLite. */
  appendfsync: 'everysec' | 'always' | null;
  /** Sessions per node worker, by WELCOME's `node` (e.g. n2.w1). */
  sessionsByNode: Record<string, number>;
  windowSeconds: number;
  delivered: number;
  msgPerSec: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  /** Every node's process tree (primary + worker), over the window. */
  serverCpuSeconds: number;
  /** The busiest node's tree, % of one core: near 100 %, its one worker is the ceiling. */
  busiestNodePercent: number;
  /** Every redis-server process, all threads. */
  redisCpuSeconds: number;
  generatorCpuSeconds: number;
  /** The rest of the machine's busy time (other processes, interrupts); null when /proc/stat is unreadable. */
  otherCpuSeconds: number | null;
  /** The machine's busy time over the window, every core (/proc/stat); null when unreadable. */
  machineBusySeconds: number | null;
  /** Logical CPUs of the machine. */
  cores: number;
  /** Shares of the machine's busy time over the window (or of the three above when it is unknown), %. */
  serverCpuShare: number;
  redisCpuShare: number;
  generatorCpuShare: number;
  otherCpuShare: number | null;
  /** The busiest redis-server's main thread (where every command runs), % of one core; null on SQLite. */
  redisMainThreadPercent: number | null;
  serverCpuUsPerMsg: number;
  redisCpuUsPerMsg: number;
  /**
   * Commands every master ran in the window ÷ messages delivered; null on SQLite. Redis counts the
   * commands a Lua script runs too, so this is work done, not commands sent.
   */
  redisCommandsPerMsg: number | null;
  /** Script calls (EVALSHA, EVAL) ÷ messages delivered: sent by the nodes, one per user and tick. */
  redisScriptCallsPerMsg: number | null;
  /** Publishes (SPUBLISH, PUBLISH) ÷ messages delivered: sent by the nodes, one per channel and tick. */
  redisPublishesPerMsg: number | null;
  /** Commands per message by name (those at 0.0005 or more). */
  redisCommandsPerMsgByName: Record<string, number>;
  /** Reads from client sockets by every master ÷ messages delivered (≈ client round trips); null on SQLite. */
  redisReadsPerMsg: number | null;
  /** The raw counts behind the two figures above. */
  redisCalls: Record<string, number>;
  redisReads: number | null;
  /** 1-minute load average when the run started. */
  loadAverage1m: number;
}

export const DEFAULT_CONFIGS = 'sqlite:1,redis:1,redis:2,redis:3,cluster:3';

const STORES: readonly StoreKind[] = ['sqlite', 'redis', 'cluster'];

/** "sqlite:1,redis:2,cluster:3" → configurations (a store without `:n` has 1 node). */
export function parseConfigs(text: string): FleetConfig[] {
  const out: FleetConfig[] = [];
  for (const part of text.split(',')) {
    const [store = '', nodesText = '1'] = part.trim().split(':');
    const nodes = Number(nodesText);
    if (!STORES.includes(store as StoreKind) || !Number.isInteger(nodes) || nodes < 1) {
      throw new Error(`--configs: "${part}" is not <sqlite|redis|cluster>[:<nodes ≥ 1>]`);
    }
    if (store === 'sqlite' && nodes !== 1) {
      throw new Error(`--configs: "${part}": SQLite nodes cannot share a store, so sqlite runs 1 node`);
    }
    const config: FleetConfig = { store: store as StoreKind, nodes };
    if (out.some((c) => configId(c) === configId(config))) {
      throw new Error(`--configs: "${text}" lists ${configId(config)} twice`);
    }
    out.push(config);
  }
  return out;
}

export function configId(c: FleetConfig): string {
  return `${c.store}:${c.nodes}`;
}

export function configLabel(c: FleetConfig): string {
  const store = { sqlite: 'SQLite', redis: 'Redis', cluster: 'Redis Cluster' }[c.store];
  return `${store}, ${c.nodes} node${c.nodes === 1 ? '' : 's'}`;
}

/** The redis-server processes of a run: one server or a cluster. */
interface RedisSet {
  url: string;
  servers: readonly RedisProcess[];
  stop(): Promise<void>;
}

async function startStore(store: StoreKind, appendfsync: 'everysec' | 'always'): Promise<RedisSet | null> {
  if (store === 'sqlite') return null;
  if (store === 'redis') {
    const redis = await startRedis({ appendonly: true, appendfsync });
    return { url: redis.url, servers: [redis], stop: () => redis.stop() };
  }
  const cluster: RedisCluster = await startRedisCluster({ appendfsync });
  return { url: cluster.url, servers: cluster.nodes, stop: () => cluster.stop() };
}

/** Figures read at the tick that opens the window and at the one that closes it. */
interface Reading {
  nodes: TreeCpu;
  /** Each node's tree, s. */
  perNode: number[];
  redis: TreeCpu;
  redisThreads: (number | null)[];
  machine: MachineCpu | null;
  /** Started at the tick, answered a few ms later (INFO over loopback); the same lag at both ends. */
  counters: Promise<RedisCounters> | null;
}

const SCRIPT_CALLS = ['evalsha', 'eval'];
const PUBLISHES = ['spublish', 'publish'];

/** The calls of the commands named (default: all). */
function callsOf(calls: Record<string, number>, names?: readonly string[]): number {
  let n = 0;
  for (const [name, c] of Object.entries(calls)) if (!names || names.includes(name)) n += c;
  return n;
}

function share(part: number, total: number): number {
  return total > 0 ? round((part / total) * 100, 1) : 0;
}

/** One configuration against fresh processes; throws (with the processes' last output) when it fails. */
export async function runConfiguration(config: FleetConfig, opts: FleetOptions): Promise<FleetResult> {
  const id = configId(config);
  const label = `[${id}]`;
  const appendfsync = opts.durability === 'full' ? 'always' : 'everysec';
  const loadAtStart = loadAverage()[0];
  const nodes: ServerProcess[] = [];
  let redis: RedisSet | null = null;
  let load: LoadRun | null = null;
  try {
    if (config.store !== 'sqlite') {
      progress(`${label} starting ${config.store === 'redis' ? 'Redis' : 'the Redis Cluster'}…`);
    }
    redis = await startStore(config.store, appendfsync);
    const servers = redis?.servers ?? [];
    const masterPorts = await masters(servers.map((s) => s.port));
    for (let k = 1; k <= config.nodes; k++) {
      progress(`${label} starting node ${k} of ${config.nodes}…`);
      nodes.push(
        await ServerProcess.start({
          workers: 1,
          durability: opts.durability,
          ...(redis === null ? {} : { serveArgs: ['--store', redis.url, '--node-name', `n${k}`] }),
        }),
      );
    }
    load = await LoadRun.connect(
      closedDurableLoad({
        host: '127.0.0.1',
        port: nodes[0]!.port,
        fleetPorts: nodes.map((n) => n.port),
        workload: { kind: 'users', users: opts.users },
        userPrefix: 'fleet-',
        inFlight: opts.inFlight,
        payloadBytes: opts.payloadBytes,
        warmupMs: opts.warmupMs,
        durationMs: opts.durationMs,
        ackEvery: 0,
      }),
      label,
    );
    const read = (): Reading => {
      const counters = masterPorts.length > 0 ? redisCounters(masterPorts) : null;
      counters?.catch(() => {}); // awaited below; a failure then fails the run
      return {
        nodes: treesCpu(nodes.map((n) => n.pid)),
        perNode: nodes.map((n) => treeCpu(n.pid).seconds),
        redis: treesCpu(servers.map((s) => s.pid)),
        redisThreads: servers.map((s) => mainThreadSeconds(s.pid)),
        machine: machineCpu(),
        counters,
      };
    };
    let start: Reading | null = null;
    let end: Reading | null = null;
    const r = await load.run({
      label,
      onWindowStart: () => {
        start = read();
      },
      onWindowEnd: () => {
        end = read();
      },
      problem: () => {
        const node = nodes.findIndex((n) => !n.alive);
        if (node >= 0) return `node ${node + 1} exited (${nodes[node]!.exitInfo})`;
        const gone = servers.find((s) => !s.running());
        return gone ? `redis-server on port ${gone.port} exited` : null;
      },
    });
    if (r.failure !== null) {
      const tails = nodes.map((n, i) => `node ${i + 1}:\n${n.tail()}`).join('\n');
      throw new Error(`${r.failure}\nlast output of the nodes:\n${tails}`);
    }
    const a = start as Reading | null;
    const b = end as Reading | null;
    if (a === null || b === null) throw new Error('the measured window never closed');
    const windowS = r.windowSeconds;
    const delivered = r.delivered;
    const serverCpu = b.nodes.seconds - a.nodes.seconds;
    const redisCpu = b.redis.seconds - a.redis.seconds;
    const genCpu = r.generatorCpuSeconds;
    const machine = a.machine && b.machine ? b.machine.busySeconds - a.machine.busySeconds : null;
    const other = machine === null ? null : Math.max(0, machine - serverCpu - redisCpu - genCpu);
    const total = machine ?? serverCpu + redisCpu + genCpu;
    const threads = b.redisThreads.map((t, i) => {
      const t0 = a.redisThreads[i];
      return t === null || t0 === null || t0 === undefined ? 0 : t - t0;
    });
    const counters = a.counters && b.counters ? countersDelta(await a.counters, await b.counters) : null;
    const perMsg = (n: number): number => (delivered > 0 ? n / delivered : 0);
    const calls = counters?.calls ?? {};
    const byName: Record<string, number> = {};
    for (const [name, n] of Object.entries(calls).sort(([, x], [, y]) => y - x)) {
      if (perMsg(n) >= 0.0005) byName[name] = round(perMsg(n), 3);
    }
    return {
      config: id,
      label: configLabel(config),
      store: config.store,
      nodes: config.nodes,
      redisServers: servers.length,
      redisMasters: masterPorts.length,
      appendfsync: redis === null ? null : appendfsync,
      sessionsByNode: r.sessionsByNode,
      windowSeconds: windowS,
      delivered,
      msgPerSec: Math.round(delivered / windowS),
      latencyMs: latencySummary(r.histogram),
      serverCpuSeconds: round(serverCpu, 2),
      busiestNodePercent: round((Math.max(...b.perNode.map((t, i) => t - a.perNode[i]!)) / windowS) * 100, 1),
      redisCpuSeconds: round(redisCpu, 2),
      generatorCpuSeconds: round(genCpu, 2),
      otherCpuSeconds: other === null ? null : round(other, 2),
      machineBusySeconds: machine === null ? null : round(machine, 2),
      cores: machineInfo().cores,
      serverCpuShare: share(serverCpu, total),
      redisCpuShare: share(redisCpu, total),
      generatorCpuShare: share(genCpu, total),
      otherCpuShare: other === null ? null : share(other, total),
      redisMainThreadPercent: servers.length === 0 ? null : round((Math.max(...threads) / windowS) * 100, 1),
      serverCpuUsPerMsg: round(perMsg(serverCpu) * 1e6, 1),
      redisCpuUsPerMsg: round(perMsg(redisCpu) * 1e6, 1),
      redisCommandsPerMsg: counters === null ? null : round(perMsg(callsOf(calls)), 3),
      redisScriptCallsPerMsg: counters === null ? null : round(perMsg(callsOf(calls, SCRIPT_CALLS)), 3),
      redisPublishesPerMsg: counters === null ? null : round(perMsg(callsOf(calls, PUBLISHES)), 3),
      redisCommandsPerMsgByName: byName,
      redisReadsPerMsg: counters === null ? null : round(perMsg(counters.reads), 3),
      redisCalls: calls,
      redisReads: counters?.reads ?? null,
      loadAverage1m: loadAtStart,
    };
  } finally {
    if (load) await load.close();
    progress(`${label} stopping the nodes${redis === null ? '' : ' and Redis'}…`);
    await Promise.all(nodes.map((n) => n.stop()));
    await redis?.stop();
    endProgress();
  }
}
