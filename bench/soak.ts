/**
 * Soak benchmark (`npm run bench:soak`): one fresh server under a steady open-loop load of durable
 * direct messages for a long time (10 minutes by default), sampled as it goes: delivered msg/s,
 * latency, the server's CPU, the memory of its process tree and the size of its data folder. It
 * answers what a short run cannot: whether memory or latency creep, how fast the store grows on disk,
 * and — after a drain at the end — whether every message sent was delivered. Then the server is stopped
 * with SIGTERM, which must end it cleanly.
 *
 *   node dist/bench/soak.js [--duration 10m] [--rate 5000] [--users 1000] [--payload 100]
 *                           [--workers 1] [--durability normal] [--store sqlite|redis] [--every 30s]
 *                           [--drain 30s] [--pin] [--json] [--write docs/BENCHMARKS.md]
 *                           [--svg docs/bench-soak.svg]
 *
 * Progress goes to stderr once a second; the table (or, with --json, one JSON object) to stdout. With
 * --write, the "soak" (or "soak-redis") section of that Markdown file is replaced; --svg writes the
 * memory chart there and the latency chart beside it (`-latency.svg`). The run itself is in
 * bench/lib/soak.ts; this file is its command line, tables, charts and section.
 */
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
import { latencyLines } from './lib/latency.js';
import { killAllRedisNow } from './lib/redis-server.js';
import { bytes, int, labelledMarkdownTable, labelledTextTable, runMain } from './lib/report.js';
import { clock, mib, runSoak, type SoakInterval, type SoakOptions, type SoakResult } from './lib/soak.js';
import { applyPinning, durabilityList, installCleanup, intArg, scriptOptions } from './lib/throughput.js';

interface Options extends SoakOptions {
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

// ------------------------------------------------------------------ tables, charts, the section

const COLUMNS = ['time', 'msg/s', 'p50 ms', 'p99 ms', 'max ms', 'server CPU %', 'server RSS MiB', 'data MiB'];
const REDIS_COLUMNS = ['Redis CPU %', 'Redis RSS MiB'];

/** Every process on the machine: with the server's and Redis's columns, what the rest (the generator) took. */
const MACHINE_COLUMN = 'machine CPU %';

function columns(r: SoakResult): string[] {
  return [...COLUMNS, ...(r.store === 'redis' ? REDIS_COLUMNS : []), MACHINE_COLUMN];
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
    i.machineCpuPercent === null ? '–' : i.machineCpuPercent.toFixed(0),
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
  const perMessage =
    r.dataBytesPerMessage === null ? '' : `, ${int(r.dataBytesPerMessage)} bytes per message delivered`;
  const out = [
    `Delivered ${int(r.delivered)} of ${int(r.sent)} sent; after the drain ${r.undelivered === null ? 'not checked' : `${int(r.undelivered)} undelivered`}; errors: ${Object.keys(r.errorsByName).length === 0 ? 'none' : JSON.stringify(r.errorsByName)}. The server ${r.serverExit === 'exit code 0' ? 'exited cleanly (code 0) on SIGTERM' : `ended with ${r.serverExit}`}.`,
    `Server memory (the whole process tree's RSS): ${bytes(rss.before)} before the load, ${bytes(rss.end)} at the end, at most ${bytes(rss.max)}.${trend}`,
    r.store === 'redis'
      ? `Redis: RSS ${bytes(r.redisRssBytes?.before ?? 0)} before the load, ${bytes(r.redisRssBytes?.end ?? 0)} at the end, at most ${bytes(r.redisRssBytes?.max ?? 0)}; its folder (the append-only file) ${bytes(r.dataBytes.before)} → ${bytes(r.dataBytes.end)}${perMessage}.`
      : `Data folder: ${bytes(r.dataBytes.before)} → ${bytes(r.dataBytes.end)}${perMessage} (both copies of each message, its dedupe entry, and the tombstones the retention period keeps).`,
    `Latency over the whole run: p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, p99.9 ${r.latencyMs.p999} ms, max ${r.latencyMs.max} ms; server CPU ${r.serverCpuMicrosPerMessage ?? '–'} µs per message; the generator (this benchmark's process) ${r.generatorCpuSeconds} s of CPU, ${Math.round((r.generatorCpuSeconds / r.durationSeconds) * 100)} % of one core.`,
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
      series: latencyLines(r.intervals.map((i) => [at(i), i.latencyMs])),
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
  const r = await runSoak(opts);
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
