/**
 * Core benchmark (`npm run bench:core`): one real server process per run (each worker count × each
 * durability mode), clients over raw TCP with the SBP/1 codec, closed loop, measured after a warm-up.
 * The engine and the conventions are in bench/lib/throughput.ts and docs/BENCHMARKS.md.
 *
 * Two workloads:
 * - pairs (the default): P sender/receiver pairs, each sender keeping K messages in flight to its receiver;
 * - users (`--users U`): U users, each keeping K messages in flight to random other users (the project's
 *   throughput workload; `npm run bench:scaling` runs it for several worker counts).
 *
 *   node dist/bench/core.js [--pairs 100 | --users 1000] [--in-flight 4] [--workers 1,2,4]
 *                           [--durability normal,full] [--duration 10s] [--warmup 2s] [--payload 100]
 *                           [--ack-every n] [--shards n] [--pin] [--json] [--write docs/BENCHMARKS.md]
 *
 * Progress goes to stderr once a second; the final table (or, with --json, one JSON object) to stdout.
 * With --write, the "core" section of that Markdown file (between its markers) is replaced with the results.
 * Every server it starts is stopped by PID (SIGTERM, then SIGKILL after 10 s) and its temp dir removed.
 */
import { parseDuration } from '../src/util/duration.js';
import { commandLine, throughputSection, writeSection } from './lib/docs.js';
import { scriptFlags, windowFlag } from './lib/flags.js';
import {
  type Durability,
  durabilityList,
  intArg,
  runMatrixCommand,
  type ThroughputOptions,
  workerList,
} from './lib/throughput.js';

interface Options extends ThroughputOptions {
  workers: number[];
  durabilities: Durability[];
  json: boolean;
  write: string | null;
}

const USAGE = `usage: node dist/bench/core.js [options]   (npm run bench:core -- [options])
  --pairs <n>            sender/receiver pairs (default 100; the default workload)
  --users <n>            instead of pairs: n users, each sending to random other users
  --in-flight <k>        messages each sender keeps in flight (default 4; --window is the same)
  --workers <list>       comma-separated worker counts, one run each (default 1)
  --durability <modes>   comma-separated: normal, full (default normal,full)
  --duration <duration>  measured window, e.g. 10s (default 10s)
  --warmup <duration>    warm-up before the window, excluded from the figures (default 2s)
  --payload <bytes>      payload size (default 100)
  --ack-every <n>        ACK every n DELIVERs (default: half the server's WELCOME window)
  --shards <n>           shard files of each fresh data folder (default: the server's default)
  --pin                  server tree on CPU 0, this generator on CPU 1 (taskset)
  --json                 print one JSON object instead of the table
  --write <file.md>      replace the "core" section of that file (between its markers) with the results
`;

function parseOptions(argv: string[]): Options {
  const values = scriptFlags(argv, USAGE, {
    pairs: { type: 'string' },
    users: { type: 'string' },
    'in-flight': { type: 'string' },
    window: { type: 'string' },
    workers: { type: 'string', default: '1' },
    durability: { type: 'string', default: 'normal,full' },
    duration: { type: 'string', default: '10s' },
    warmup: { type: 'string', default: '2s' },
    payload: { type: 'string', default: '100' },
    'ack-every': { type: 'string', default: '0' },
    shards: { type: 'string' },
    pin: { type: 'boolean', default: false },
  });
  if (values.pairs !== undefined && values.users !== undefined)
    throw new Error('give --pairs or --users, not both');
  if (values['in-flight'] !== undefined && values.window !== undefined) {
    throw new Error('give --in-flight or --window (the same setting), not both');
  }
  const durationMs = windowFlag(values.duration);
  return {
    workload:
      values.users !== undefined
        ? { kind: 'users', users: intArg(values.users, 'users', 2) }
        : { kind: 'pairs', pairs: intArg(values.pairs ?? '100', 'pairs', 1) },
    inFlight: intArg(values['in-flight'] ?? values.window ?? '4', 'in-flight', 1),
    payloadBytes: intArg(values.payload, 'payload', 0),
    warmupMs: parseDuration(values.warmup),
    durationMs,
    ackEvery: intArg(values['ack-every'], 'ack-every', 0),
    pin: values.pin,
    ...(values.shards === undefined ? {} : { shards: intArg(values.shards, 'shards', 1) }),
    workers: workerList(values.workers),
    durabilities: durabilityList(values.durability),
    json: values.json,
    write: values.write ?? null,
  };
}

runMatrixCommand<Options>({
  benchmark: 'core',
  usage: USAGE,
  parse: parseOptions,
  write(opts, { results, failures }, args) {
    if (opts.write === null) return;
    writeSection(
      opts.write,
      'core',
      throughputSection({ command: commandLine('bench:core', args), opts, results, failures }),
    );
    process.stderr.write(`wrote the "core" section of ${opts.write}\n`);
  },
});
