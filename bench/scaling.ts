/**
 * Scaling benchmark (`npm run bench:scaling`): the project's throughput workload — 1 000 users, each
 * keeping 4 messages in flight to random other users, 100-byte payloads, 3 s warm-up + 20 s measured —
 * against a fresh server per worker count (1, 2 and 4 by default) and durability mode (normal by
 * default), so the scaling of the multi-worker server can be read off one table.
 *
 *   node dist/bench/scaling.js [--workers 1,2,4] [--durability normal[,full]] [--users 1000] [--in-flight 4]
 *                              [--payload 100] [--warmup 3s] [--duration 20s] [--ack-every n] [--shards n]
 *                              [--pin] [--json] [--write docs/BENCHMARKS.md] [--svg docs/bench-scaling.svg]
 *
 * With --write, the "scaling" section of that Markdown file (between `<!-- scaling:start -->` and
 * `<!-- scaling:end -->`) is replaced with the table, the machine, the date and the command line, and a
 * bar chart of msg/s per worker count is written next to it (bench-scaling.svg, or --svg) and linked.
 * `--section scaling-pinned` writes another section (and bench-scaling-pinned.svg) instead, so pinned
 * and unpinned figures can stand side by side.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseDuration } from '../src/util/duration.js';
import { barChartSvg } from './lib/chart.js';
import { commandLine, throughputSection, today, writeSection } from './lib/docs.js';
import { scriptFlags, windowFlag } from './lib/flags.js';
import { machineInfo } from './lib/machine.js';
import {
  type Durability,
  describeStore,
  durabilityList,
  intArg,
  type RunResult,
  runMatrixCommand,
  type ThroughputOptions,
  workerList,
} from './lib/throughput.js';

interface Options extends ThroughputOptions {
  workers: number[];
  durabilities: Durability[];
  json: boolean;
  write: string | null;
  /** The section of --write replaced (its markers' name). */
  section: string;
  svg: string | null;
}

const USAGE = `usage: node dist/bench/scaling.js [options]   (npm run bench:scaling -- [options])
  --workers <list>       comma-separated worker counts, one run each (default 1,2,4)
  --durability <modes>   comma-separated: normal, full (default normal)
  --users <n>            connected users (default 1000)
  --in-flight <k>        messages each user keeps in flight to random other users (default 4)
  --payload <bytes>      payload size (default 100)
  --warmup <duration>    warm-up before the window (default 3s)
  --duration <duration>  measured window (default 20s)
  --ack-every <n>        ACK every n DELIVERs (default: half the server's WELCOME window)
  --shards <n>           shard files of each fresh data folder (default: the server's default)
  --pin                  server tree on CPU 0, this generator on CPU 1 (taskset)
  --json                 print one JSON object instead of the table
  --write <file.md>      replace the "scaling" section of that file and write the chart beside it
  --section <name>       the section --write replaces, between <!-- name:start --> and
                         <!-- name:end --> (default scaling)
  --svg <file.svg>       where the chart goes (default: bench-<section>.svg beside --write)
`;

function parseOptions(argv: string[]): Options {
  const values = scriptFlags(argv, USAGE, {
    workers: { type: 'string', default: '1,2,4' },
    durability: { type: 'string', default: 'normal' },
    users: { type: 'string', default: '1000' },
    'in-flight': { type: 'string', default: '4' },
    payload: { type: 'string', default: '100' },
    warmup: { type: 'string', default: '3s' },
    duration: { type: 'string', default: '20s' },
    'ack-every': { type: 'string', default: '0' },
    shards: { type: 'string' },
    pin: { type: 'boolean', default: false },
    section: { type: 'string', default: 'scaling' },
    svg: { type: 'string' },
  });
  const durationMs = windowFlag(values.duration);
  const write = values.write ?? null;
  const section = values.section;
  if (!/^[a-z0-9-]+$/.test(section))
    throw new Error(`--section: "${section}" is not a name like scaling-pinned`);
  return {
    workload: { kind: 'users', users: intArg(values.users, 'users', 2) },
    inFlight: intArg(values['in-flight'], 'in-flight', 1),
    payloadBytes: intArg(values.payload, 'payload', 0),
    warmupMs: parseDuration(values.warmup),
    durationMs,
    ackEvery: intArg(values['ack-every'], 'ack-every', 0),
    pin: values.pin,
    ...(values.shards === undefined ? {} : { shards: intArg(values.shards, 'shards', 1) }),
    workers: workerList(values.workers),
    durabilities: durabilityList(values.durability),
    json: values.json,
    write,
    section,
    svg: values.svg ?? (write === null ? null : path.join(path.dirname(write), `bench-${section}.svg`)),
  };
}

/** msg/s of each run relative to the 1-worker run of the same durability ("2 workers ×0.93"). */
function relativeLines(opts: Options, results: RunResult[]): string[] {
  const lines: string[] = [];
  for (const d of opts.durabilities) {
    const rows = results.filter((r) => r.durability === d);
    const base = rows.find((r) => r.workers === Math.min(...opts.workers));
    if (!base || rows.length < 2 || base.msgPerSec === 0) continue;
    const parts = rows
      .filter((r) => r !== base)
      .map(
        (r) =>
          `${r.workers} workers ×${(r.msgPerSec / base.msgPerSec).toFixed(2)} msg/s, ` +
          `×${(r.serverCpuUsPerMsg / base.serverCpuUsPerMsg).toFixed(2)} CPU µs/msg`,
      );
    lines.push(
      `Relative to ${base.workers} worker${base.workers === 1 ? '' : 's'} (${d}): ${parts.join('; ')}.`,
    );
  }
  return lines;
}

/** How to read the table given the pinning and the cores. */
function readingNote(opts: Options): string {
  const cores = machineInfo().cores;
  if (opts.pin) {
    return (
      'Pinned, every worker of a run shares CPU 0: these rows show what more workers cost per message ' +
      'on one core (with more than one worker, most messages cross the bus between the worker holding ' +
      'a session and the recipient’s home worker), not parallel speed-up, which needs a core per worker.'
    );
  }
  return (
    `Unpinned on ${cores} cores: the server’s workers, the generator and anything else running on the ` +
    'machine share the cores, so msg/s beyond what one core gives the server is bounded by what the ' +
    'generator and the other load leave; server CPU µs/msg is the figure to compare across rows.'
  );
}

function chartSvg(opts: Options, results: RunResult[]): string {
  const workers = opts.workers;
  return barChartSvg({
    title: `Switchboard msg/s by worker count (${describeStore(opts).split(',')[0]})`,
    subtitle:
      `${opts.workload.kind === 'users' ? opts.workload.users.toLocaleString('en-US') : '?'} users × ` +
      `${opts.inFlight} in flight, ${opts.payloadBytes} B, ${opts.durationMs / 1000} s window, ` +
      `${opts.pin ? 'pinned (server CPU 0)' : 'unpinned'}, ${machineInfo().cores} cores, ${today()}`,
    categories: workers.map((w) => `${w} worker${w === 1 ? '' : 's'}`),
    series: opts.durabilities.map((d) => ({
      name: `durability ${d}`,
      values: workers.map(
        (w) => results.find((r) => r.workers === w && r.durability === d)?.msgPerSec ?? null,
      ),
    })),
    unit: 'msg/s',
  });
}

runMatrixCommand<Options>({
  benchmark: 'scaling',
  usage: USAGE,
  parse: parseOptions,
  summaryLines: relativeLines,
  write(opts, { results, failures }, args) {
    if (opts.svg !== null) {
      writeFileSync(opts.svg, chartSvg(opts, results));
      process.stderr.write(`wrote ${opts.svg}\n`);
    }
    if (opts.write !== null) {
      const extra = [...relativeLines(opts, results), readingNote(opts)];
      if (opts.svg !== null) {
        const link = path.relative(path.dirname(opts.write), opts.svg).split(path.sep).join('/');
        extra.push(`![msg/s by worker count](${link})`);
      }
      writeSection(
        opts.write,
        opts.section,
        throughputSection({ command: commandLine('bench:scaling', args), opts, results, failures, extra }),
      );
      process.stderr.write(`wrote the "${opts.section}" section of ${opts.write}\n`);
    }
  },
});
