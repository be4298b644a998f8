/**
 * Soak benchmark (`npm run bench:soak`): one fresh server under a steady open-loop load of durable
 * direct messages for a long time (10 minutes by default), sampled as it goes: delivered msg/s,
 * latency, the server's CPU, the memory of its process tree and the size of its data folder. It
 * answers what a short run cannot: whether memory or latency creep, how fast the store grows on disk,
 * and — after a drain at the end — whether every message sent was delivered. Then the server is stopped
 * with SIGTERM, which must end it cleanly.
 *
 *   node dist/bench/soak.js [--duration 10m] [--rate 5000] [--users 1000] [--payload 100]
 *                           [--workers 1] [--durability normal] [--every 30s] [--pin] [--json]
 *                           [--write docs/BENCHMARKS.md] [--svg docs/bench-soak.svg]
 *
 * Progress goes to stderr once a second; the table (or, with --json, one JSON object) to stdout. With
 * --write, the "soak" section of that Markdown file is replaced; --svg writes the memory chart there and
 * the latency chart beside it (`-latency.svg`). The server is stopped by PID and its folder removed.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseDuration } from '../src/util/duration.js';
import { type LineChart, lineChartSvg } from './lib/chart.js';
import {
  commandLine,
  describeMachine,
  sourceRevision,
  today,
  writeFileAtomic,
  writeResults,
} from './lib/docs.js';
import { scriptFlags, windowFlag } from './lib/flags.js';
import { type LatencySummary, latencySummary } from './lib/latency.js';
import { machineInfo, SERVER_CPU } from './lib/machine.js';
import { rssBytes, totalRss, treeRss, treesCpu } from './lib/proc.js';
import { killAllRedisNow, type RedisProcess, startRedis } from './lib/redis-server.js';
import {
  bytes,
  endProgress,
  int,
  labelledMarkdownTable,
  labelledTextTable,
  progress,
  round,
  runMain,
} from './lib/report.js';
import { ServerProcess } from './lib/server.js';
import {
  applyPinning,
  type Durability,
  durabilityList,
  installCleanup,
  intArg,
  type LoadResult,
  LoadRun,
  scriptOptions,
} from './lib/throughput.js';

type Store = 'sqlite' | 'redis';

interface Options {
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
  pin: boolean;
  json: boolean;
  write: string | null;
  svg: string | null;
}

const USAGE = `usage: node dist/bench/soak.js [options]   (npm run bench:soak -- [options])
  --duration <duration>  how long the load runs (default 10m)
  --rate <r>             durable direct messages per second in total, open loop (default 5000)
  --users <n>            connected users, each sending to random other users (default 1000)
  --payload <bytes>      payload size (default 100)
  --workers <n>          the server's --workers (default 1)
  --durability <mode>    the server's --durability: normal or full (default normal)
  --store <store>        sqlite (the embedded default) or redis: a redis-server of its own, appendonly,
                         appendfsync everysec (normal) or always (full) (default sqlite)
  --every <duration>     one sample (a table row, a chart point) per this long (default 30s)
  --drain <duration>     after the load, wait this long at most for every message to arrive, which
                         the run requires (default 30s; 0: no wait, no check)
  --pin                  server tree on CPU 0, this generator on CPU 1 (taskset)
  --json                 print one JSON object instead of the table
  --write <file.md>      replace the "soak" section of that file (between its markers; "soak-redis"
                         with --store redis)
  --svg <file.svg>       write the memory chart there and the latency chart beside it (<name>-latency.svg)
`;

function parseOptions(argv: string[]): Options {
  const values = scriptFlags(argv, USAGE, {
    duration: { type: 'string', default: '10m' },
    rate: { type: 'string', default: '5000' },
    users: { type: 'string', default: '1000' },
    payload: { type: 'string', default: '100' },
    workers: { type: 'string', default: '1' },
    durability: { type: 'string', default: 'normal' },
    store: { type: 'string', default: 'sqlite' },
    every: { type: 'string', default: '30s' },
    drain: { type: 'string', default: '30s' },
    pin: { type: 'boolean', default: false },
    svg: { type: 'string' },
  });
  const durabilities = durabilityList(values.durability);
  if (durabilities.length !== 1) throw new Error('--durability: give one mode');
  const durationMs = windowFlag(values.duration);
  const everyMs = windowFlag(values.every);
  if (everyMs % 1000 !== 0) throw new Error('--every: give whole seconds');
  if (durationMs % everyMs !== 0) throw new Error('--every: must divide --duration into whole intervals');
  if (values.svg !== undefined && !values.svg.endsWith('.svg')) throw new Error('--svg: give a .svg file');
  if (values.store !== 'sqlite' && values.store !== 'redis') throw new Error('--store: sqlite or redis');
  return {
    store: values.store,
    durationMs,
    rate: intArg(values.rate, 'rate', 1),
    users: intArg(values.users, 'users', 2),
    payloadBytes: intArg(values.payload, 'payload', 0),
    workers: intArg(values.workers, 'workers', 1),
    durability: durabilities[0]!,
    everyMs,
    drainMs: parseDuration(values.drain),
    pin: values.pin,
    json: values.json,
    write: values.write ?? null,
    svg: values.svg ?? null,
  };
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
function clock(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

const mib = (n: number): string => (n / 2 ** 20).toFixed(0);

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
      serverCpuPercent: round(((to.cpuSeconds - from.cpuSeconds) / span) * 100, 1),
      serverRssBytes: to.rssBytes,
      dataBytes: to.dataBytes,
      redisCpuPercent:
        to.redisCpuSeconds === null || from.redisCpuSeconds === null
          ? null
          : round(((to.redisCpuSeconds - from.redisCpuSeconds) / span) * 100, 1),
      redisRssBytes: to.redisRssBytes,
    });
  }
  return out;
}

async function soak(opts: Options): Promise<SoakResult> {
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
  opts: Options,
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

// ------------------------------------------------------------------ tables, charts, the section

const COLUMNS = ['time', 'msg/s', 'p50 ms', 'p99 ms', 'max ms', 'server CPU %', 'server RSS MiB', 'data MiB'];
const REDIS_COLUMNS = ['Redis CPU %', 'Redis RSS MiB'];

function columns(r: SoakResult): string[] {
  return r.store === 'redis' ? [...COLUMNS, ...REDIS_COLUMNS] : COLUMNS;
}

function cells(i: SoakInterval): string[] {
  const l = i.latencyMs;
  const redis = i.redisRssBytes === null ? [] : [(i.redisCpuPercent ?? 0).toFixed(0), mib(i.redisRssBytes)];
  return [
    clock(i.endSeconds),
    int(i.msgPerSec),
    l === null ? '–' : String(l.p50),
    l === null ? '–' : String(l.p99),
    l === null ? '–' : String(l.max),
    i.serverCpuPercent.toFixed(0),
    mib(i.serverRssBytes),
    mib(i.dataBytes),
    ...redis,
  ];
}

function describeServer(r: SoakResult): string {
  const serve = `\`serve --workers ${r.workers} --durability ${r.durability}\``;
  return r.store === 'redis'
    ? `a fresh ${serve} on a fresh redis-server of its own (\`--store redis://…\`; appendonly, appendfsync ${r.durability === 'full' ? 'always' : 'everysec'}; the default caps)`
    : `a fresh ${serve} and data folder (SQLite, the default shard count and caps)`;
}

function describeLoad(r: SoakResult): string {
  return (
    `${int(r.users)} users sending durable direct messages to random other users, ${r.payloadBytes}-byte ` +
    `payloads, open loop at ${int(r.rate)} msg/s in total for ${clock(r.durationSeconds)} ` +
    `(latency from the intended send time; the SDK's ACK policy), then up to the drain for what was in flight`
  );
}

/** What the figures say, in sentences: the reader's questions answered. */
function findings(r: SoakResult): string[] {
  const rss = r.serverRssBytes;
  const half = rss.secondHalf;
  const trend =
    half === null
      ? ''
      : ` Over the second half of the run it stayed within ${bytes(half.min)}–${bytes(half.max)}, a trend of ${half.trendPerMinute >= 0 ? '+' : '−'}${bytes(Math.abs(half.trendPerMinute))} per minute.`;
  const out = [
    `Delivered ${int(r.delivered)} of ${int(r.sent)} sent; after the drain ${r.undelivered === null ? 'not checked' : `${int(r.undelivered)} undelivered`}; errors: ${Object.keys(r.errorsByName).length === 0 ? 'none' : JSON.stringify(r.errorsByName)}. The server ${r.serverExit === 'exit code 0' ? 'exited cleanly (code 0) on SIGTERM' : `ended with ${r.serverExit}`}.`,
    `Server memory (the whole process tree's RSS): ${bytes(rss.before)} before the load, ${bytes(rss.end)} at the end, at most ${bytes(rss.max)}.${trend}`,
    r.store === 'redis'
      ? `Redis: RSS ${bytes(r.redisRssBytes?.before ?? 0)} before the load, ${bytes(r.redisRssBytes?.end ?? 0)} at the end, at most ${bytes(r.redisRssBytes?.max ?? 0)}; its folder (the append-only file) ${bytes(r.dataBytes.before)} → ${bytes(r.dataBytes.end)}${r.dataBytesPerMessage === null ? '' : `, ${int(r.dataBytesPerMessage)} bytes per message delivered`}.`
      : `Data folder: ${bytes(r.dataBytes.before)} → ${bytes(r.dataBytes.end)}${r.dataBytesPerMessage === null ? '' : `, ${int(r.dataBytesPerMessage)} bytes per message delivered`} (both copies of each message, its dedupe entry, and the tombstones the retention period keeps).`,
    `Latency over the whole run: p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, p99.9 ${r.latencyMs.p999} ms, max ${r.latencyMs.max} ms; server CPU ${r.serverCpuMicrosPerMessage ?? '–'} µs per message.`,
  ];
  return out;
}

function chartLines(r: SoakResult): { memory: LineChart; latency: LineChart } {
  const at = (i: SoakInterval): number => i.endSeconds / 60;
  const common = {
    subtitle: `${int(r.rate)} msg/s, ${int(r.users)} users, ${r.workers} worker${r.workers === 1 ? '' : 's'}, durability ${r.durability}${r.store === 'redis' ? ', Redis' : ''}`,
    xLabel: 'minutes since the load started',
    xMin: 0,
    xMax: r.durationSeconds / 60,
  };
  return {
    memory: {
      ...common,
      title:
        r.store === 'redis'
          ? 'Soak: server and Redis memory, Redis folder'
          : 'Soak: server memory and data folder',
      unit: 'MiB',
      series: [
        ...(r.redisRssBytes === null
          ? []
          : [
              {
                name: 'Redis RSS',
                points: [
                  [0, r.redisRssBytes.before / 2 ** 20] as [number, number],
                  ...r.intervals.map((i): [number, number] => [at(i), (i.redisRssBytes ?? 0) / 2 ** 20]),
                ],
              },
            ]),
        {
          name: 'server RSS (process tree)',
          points: [
            [0, r.serverRssBytes.before / 2 ** 20],
            ...r.intervals.map((i): [number, number] => [at(i), i.serverRssBytes / 2 ** 20]),
          ],
        },
        {
          name: r.store === 'redis' ? 'Redis folder (append-only file)' : 'data folder',
          points: [
            [0, r.dataBytes.before / 2 ** 20],
            ...r.intervals.map((i): [number, number] => [at(i), i.dataBytes / 2 ** 20]),
          ],
        },
      ],
    },
    latency: {
      ...common,
      title: `Soak: latency per ${r.everySeconds} s interval`,
      unit: 'ms',
      series: (['p50', 'p99', 'max'] as const).map((k) => ({
        name: k,
        points: r.intervals
          .filter((i) => i.latencyMs !== null)
          .map((i): [number, number] => [at(i), i.latencyMs![k]]),
      })),
    },
  };
}

function latencySvgPath(svg: string): string {
  return svg.replace(/\.svg$/, '-latency.svg');
}

function section(r: SoakResult, command: string, chart: string | null): string {
  const revision = sourceRevision();
  const lines = [
    `Measured ${today()} with \`${command}\`${revision === null ? '' : ` (${revision})`}.`,
    '',
    `- Machine: ${describeMachine()}.`,
    `- Load: ${describeLoad(r)}.`,
    `- Server: ${describeServer(r)}.`,
    '',
    labelledMarkdownTable(columns(r), r.intervals.map(cells)),
    '',
    ...findings(r).flatMap((f) => [f, '']),
  ];
  if (!r.ok) lines.push(`Failed — ${r.failure}`, '');
  if (chart !== null) {
    lines.push(`![server memory and data folder over the soak](${chart})`, '');
    lines.push(`![latency per interval over the soak](${latencySvgPath(chart)})`, '');
  }
  return lines.join('\n');
}

// ------------------------------------------------------------------ main

async function main(): Promise<number> {
  const started = scriptOptions(USAGE, parseOptions);
  if (started === null) return 2;
  const { args, opts } = started;
  installCleanup();
  process.once('exit', killAllRedisNow);
  applyPinning(opts.pin);
  const r = await soak(opts);
  if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
  else {
    process.stdout.write(
      [
        `Switchboard soak: ${describeLoad(r)}; ${describeMachine()}`,
        labelledTextTable(columns(r), r.intervals.map(cells)),
        '',
        ...findings(r),
        ...(r.ok ? [] : [`FAILED: ${r.failure}`]),
        '',
      ].join('\n'),
    );
  }
  const charts = chartLines(r);
  const written = writeResults(
    r.store === 'redis' ? 'soak-redis' : 'soak',
    opts,
    () => {
      if (opts.svg !== null) {
        writeFileAtomic(latencySvgPath(opts.svg), lineChartSvg(charts.latency));
        process.stderr.write(`wrote ${latencySvgPath(opts.svg)}\n`);
      }
      return lineChartSvg(charts.memory);
    },
    (link) => section(r, commandLine('bench:soak', args), link),
  );
  if (written !== 0) return 1;
  return r.ok ? 0 : 1;
}

runMain(main);
