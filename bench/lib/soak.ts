/**
 * The soak benchmark's run (bench/soak.ts is its command line and its tables, charts and section): a
 * fresh server — on SQLite, or on a redis-server of its own — under a steady open-loop load of durable
 * direct messages, sampled every interval (delivered msg/s, latency of the interval's deliveries, server
 * CPU and RSS, the data folder; Redis's CPU, RSS and append-only file), then a drain that counts what was
 * sent and never delivered, then SIGTERM, whose exit is recorded. Everything started is stopped by PID
 * and its folder removed.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { type LatencySummary, latencySummary } from './latency.js';
import { machineInfo, SERVER_CPU } from './machine.js';
import { machineCpu, rssBytes, totalRss, treeRss, treesCpu } from './proc.js';
import { type RedisProcess, startRedis } from './redis-server.js';
import { endProgress, int, progress, round } from './report.js';
import { ServerProcess } from './server.js';
import { type Durability, type LoadResult, LoadRun } from './throughput.js';

export type Store = 'sqlite' | 'redis';

/** What a soak runs: the load, the server, and the sampling. */
export interface SoakOptions {
  store: Store;
  durationMs: number;
  rate: number;
  users: number;
  payloadBytes: number;
  workers: number;
  durability: Durability;
  everyMs: number;
  /** After the load: how long to wait for the messages still in flight. */
  drainMs: number;
  /** Server tree on CPU 0, this generator on CPU 1 (the caller pins this process). */
  pin: boolean;
}

/** One reading of the server, `atSeconds` after the load started. */
interface Sample {
  atSeconds: number;
  rssBytes: number;
  cpuSeconds: number;
  /** The server's data folder, and with --store redis the redis-server's (its AOF). */
  dataBytes: number;
  /** With --store redis: the redis-server's RSS and CPU; else null. */
  redisRssBytes: number | null;
  redisCpuSeconds: number | null;
  /** Busy time of the whole machine (every process, every core), seconds; null when unreadable. */
  machineBusySeconds: number | null;
}

/** One row of the result: the interval that ends at `endSeconds`. */
export interface SoakInterval {
  endSeconds: number;
  msgPerSec: number;
  /** Latency of the messages delivered in the interval; null without any. */
  latencyMs: LatencySummary | null;
  /** The server tree's CPU over the interval, % of one core. */
  serverCpuPercent: number;
  /** At the interval's end. */
  serverRssBytes: number;
  dataBytes: number;
  /** With --store redis: its CPU over the interval (% of one core) and RSS at the end; else null. */
  redisCpuPercent: number | null;
  redisRssBytes: number | null;
  /**
   * The whole machine's busy time over the interval (server, Redis, this generator and anything else),
   * % of one core: 100 × the core count is every core full. Null when /proc/stat is unreadable.
   */
  machineCpuPercent: number | null;
}

export interface SoakResult {
  benchmark: 'soak';
  store: Store;
  ok: boolean;
  failure: string | null;
  rate: number;
  users: number;
  payloadBytes: number;
  workers: number;
  durability: Durability;
  durationSeconds: number;
  everySeconds: number;
  sent: number;
  delivered: number;
  deliveredPerSecond: number;
  /** Sent and still not delivered after the drain; null with `--drain 0` (not checked). */
  undelivered: number | null;
  errorsByName: Record<string, number>;
  latencyMs: LatencySummary;
  intervals: SoakInterval[];
  /**
   * Before the load, at the end, the highest sample, and over the second half of the run (once caches
   * have filled): its lowest and highest sample and the least-squares trend, bytes per minute.
   */
  serverRssBytes: {
    before: number;
    end: number;
    max: number;
    secondHalf: { min: number; max: number; trendPerMinute: number } | null;
  };
  dataBytes: { before: number; end: number };
  /** With --store redis: the redis-server's RSS before the load, at the end and at most; else null. */
  redisRssBytes: { before: number; end: number; max: number } | null;
  /** Data folder growth per message delivered over the run. */
  dataBytesPerMessage: number | null;
  serverCpuMicrosPerMessage: number | null;
  generatorCpuSeconds: number;
  /** How the server ended on SIGTERM, e.g. "exit code 0". */
  serverExit: string | null;
  machine: ReturnType<typeof machineInfo>;
}

/** Bytes of every file under `dir` (the data folder: shard files and their WALs). */
function folderBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    try {
      if (entry.isDirectory()) total += folderBytes(file);
      else if (entry.isFile()) total += statSync(file).size;
    } catch {
      // Removed meanwhile (a WAL reset, a temp file): not counted.
    }
  }
  return total;
}

function sampleServer(server: ServerProcess, redis: RedisProcess | null, atSeconds: number): Sample {
  return {
    atSeconds,
    rssBytes: totalRss(treeRss([server.pid])),
    cpuSeconds: treesCpu([server.pid]).seconds,
    dataBytes: folderBytes(server.dir) + (redis === null ? 0 : folderBytes(redis.dir)),
    redisRssBytes: redis === null ? null : (rssBytes(redis.pid) ?? 0),
    redisCpuSeconds: redis === null ? null : treesCpu([redis.pid]).seconds,
    machineBusySeconds: machineCpu()?.busySeconds ?? null,
  };
}

/** The RSS samples from `fromSeconds` on: range and least-squares slope (bytes per minute); null if < 2. */
function secondHalf(
  samples: Sample[],
  fromSeconds: number,
): { min: number; max: number; trendPerMinute: number } | null {
  const late = samples.filter((s) => s.atSeconds >= fromSeconds);
  if (late.length < 2) return null;
  const n = late.length;
  const mx = late.reduce((a, s) => a + s.atSeconds / 60, 0) / n;
  const my = late.reduce((a, s) => a + s.rssBytes, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const s of late) {
    sxy += (s.atSeconds / 60 - mx) * (s.rssBytes - my);
    sxx += (s.atSeconds / 60 - mx) ** 2;
  }
  const rss = late.map((s) => s.rssBytes);
  return {
    min: Math.min(...rss),
    max: Math.max(...rss),
    trendPerMinute: Math.round(sxx > 0 ? sxy / sxx : 0),
  };
}

/** "2:30" for 150 s. */
export function clock(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** Bytes as whole MiB, e.g. "352". */
export const mib = (n: number): string => (n / 2 ** 20).toFixed(0);

/** CPU seconds read at two samples `span` seconds apart, as % of one core; null if either is unknown. */
function cpuPercent<T extends number | null>(from: T, to: T, span: number): T {
  return (from === null || to === null ? null : round(((to - from) / span) * 100, 1)) as T;
}

/** The samples and the load's per-second and per-bucket figures as one row per interval. */
function intervalsOf(samples: Sample[], load: LoadResult, everySeconds: number): SoakInterval[] {
  const out: SoakInterval[] = [];
  for (let i = 1; i < samples.length; i++) {
    const from = samples[i - 1]!;
    const to = samples[i]!;
    const span = to.atSeconds - from.atSeconds;
    if (span <= 0) continue;
    const first = Math.round(from.atSeconds);
    let delivered = 0;
    for (let s = first; s < first + everySeconds; s++) delivered += load.deliveredPerSecond[s] ?? 0;
    out.push({
      endSeconds: round(to.atSeconds, 1),
      msgPerSec: Math.round(delivered / everySeconds),
      latencyMs: load.latencyPerBucket[i - 1] ?? null,
      serverCpuPercent: cpuPercent(from.cpuSeconds, to.cpuSeconds, span),
      serverRssBytes: to.rssBytes,
      dataBytes: to.dataBytes,
      redisCpuPercent: cpuPercent(from.redisCpuSeconds, to.redisCpuSeconds, span),
      redisRssBytes: to.redisRssBytes,
      machineCpuPercent: cpuPercent(from.machineBusySeconds, to.machineBusySeconds, span),
    });
  }
  return out;
}

/** Starts a fresh server (and redis-server), runs the soak against it, stops them; the figures. */
export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const redis =
    opts.store === 'redis'
      ? await startRedis({ appendfsync: opts.durability === 'full' ? 'always' : 'everysec' })
      : null;
  let server: ServerProcess | null = null;
  try {
    server = await ServerProcess.start({
      workers: opts.workers,
      durability: opts.durability,
      ...(opts.pin ? { cpu: SERVER_CPU } : {}),
      ...(redis === null ? {} : { serveArgs: ['--store', redis.url] }),
    });
    return await soakServer(opts, server, redis);
  } finally {
    await server?.stop();
    await redis?.stop();
  }
}

/** The load against a started server: samples, the drain, SIGTERM; the figures. */
async function soakServer(
  opts: SoakOptions,
  server: ServerProcess,
  redis: RedisProcess | null,
): Promise<SoakResult> {
  const everySeconds = opts.everyMs / 1000;
  const load = await LoadRun.connect(
    {
      host: '127.0.0.1',
      port: server.port,
      workload: { kind: 'users', users: opts.users },
      userPrefix: `soak${randomBytes(3).toString('hex')}-`,
      device: 'bench',
      mode: 'open',
      inFlight: 0,
      rate: opts.rate,
      ephemeral: false,
      payloadBytes: opts.payloadBytes,
      warmupMs: 0,
      durationMs: opts.durationMs,
      ackEvery: 0,
      connectConcurrency: 32,
      lossTimeoutMs: 0,
      stallMs: 10_000,
      latencyBucketSeconds: everySeconds,
      drainMs: opts.drainMs,
    },
    '[soak]',
  );
  const samples: Sample[] = [sampleServer(server, redis, 0)];
  const started = performance.now();
  const elapsed = (): number => (performance.now() - started) / 1000;
  // One sample per interval, on the load's clock; the last one when the load ends.
  const sampler = setInterval(() => {
    if (samples.length <= opts.durationMs / opts.everyMs)
      samples.push(sampleServer(server, redis, elapsed()));
  }, opts.everyMs);
  let lastDelivered = 0;
  let lastAt = 0;
  let result: LoadResult;
  try {
    result = await load.run({
      label: '[soak]',
      problem: () => (server.alive ? null : `the server exited (${server.exitInfo})`),
      onSecond: (p) => {
        const now = elapsed();
        const rate = (p.delivered - lastDelivered) / Math.max(0.001, now - lastAt);
        lastDelivered = p.delivered;
        lastAt = now;
        const last = samples[samples.length - 1]!;
        const phase =
          now <= opts.durationMs / 1000
            ? `${clock(now)}/${clock(opts.durationMs / 1000)}`
            : `drain ${clock(now - opts.durationMs / 1000)}`;
        progress(
          `[soak] ${phase}  ${int(rate)} msg/s  delivered ${int(p.delivered)}  server RSS ${mib(last.rssBytes)} MiB  data ${mib(last.dataBytes)} MiB`,
        );
      },
    });
  } finally {
    clearInterval(sampler);
    endProgress();
  }
  if (samples.length <= opts.durationMs / opts.everyMs) samples.push(sampleServer(server, redis, elapsed()));
  await load.close();
  const end = sampleServer(server, redis, elapsed());
  await server.stop();

  const intervals = intervalsOf(samples, result, everySeconds);
  const delivered = result.deliveredTotal;
  const serverCpu = end.cpuSeconds - samples[0]!.cpuSeconds;
  const rss = samples.map((s) => s.rssBytes);
  return {
    benchmark: 'soak',
    store: opts.store,
    // `--drain 0` skips the check: undelivered is null then.
    ok: result.failure === null && !result.undelivered,
    failure:
      result.failure ??
      (result.undelivered ? `${result.undelivered} messages not delivered after the drain` : null),
    rate: opts.rate,
    users: opts.users,
    payloadBytes: opts.payloadBytes,
    workers: opts.workers,
    durability: opts.durability,
    durationSeconds: opts.durationMs / 1000,
    everySeconds,
    sent: result.sent,
    delivered,
    deliveredPerSecond: result.windowSeconds > 0 ? Math.round(result.delivered / result.windowSeconds) : 0,
    undelivered: result.undelivered,
    errorsByName: result.errorsByName,
    // The load's window is the whole run (no warm-up); deliveries during the drain are not in it.
    latencyMs: latencySummary(result.histogram),
    intervals,
    serverRssBytes: {
      before: samples[0]!.rssBytes,
      end: samples[samples.length - 1]!.rssBytes,
      max: Math.max(...rss),
      secondHalf: secondHalf(samples, opts.durationMs / 2000),
    },
    dataBytes: { before: samples[0]!.dataBytes, end: end.dataBytes },
    dataBytesPerMessage:
      delivered > 0 ? Math.round((end.dataBytes - samples[0]!.dataBytes) / delivered) : null,
    serverCpuMicrosPerMessage: delivered > 0 ? round((serverCpu * 1e6) / delivered, 1) : null,
    generatorCpuSeconds: round(result.generatorCpuSeconds, 2),
    serverExit: server.exitInfo,
    redisRssBytes:
      redis === null
        ? null
        : {
            before: samples[0]!.redisRssBytes ?? 0,
            end: end.redisRssBytes ?? 0,
            max: Math.max(...samples.map((x) => x.redisRssBytes ?? 0), end.redisRssBytes ?? 0),
          },
    machine: machineInfo(),
  };
}
