import path from 'node:path';
import { parseDuration } from '../src/util/duration.js';
import { barChartSvg } from './lib/chart.js';
import { commandLine, describeMachine, sourceRevision, today, writeResults } from './lib/docs.js';
import { scriptFlags, windowFlag } from './lib/flags.js';
import {
  configId,
  configLabel,
  DEFAULT_CONFIGS,
  type FleetConfig,
  type FleetOptions,
  type FleetResult,
  parseConfigs,
  runConfiguration,
} from './lib/fleet.js';
import { machineInfo } from './lib/machine.js';
import { killAllRedisNow } from './lib/redis-server.js';
import { int, labelledMarkdownTable, labelledTextTable, runEach, runMain } from './lib/report.js';
import { durabilityList, installCleanup, intArg, scriptOptions } from './lib/throughput.js';

interface Options extends FleetOptions {
  configs: FleetConfig[];
  json: boolean;
  write: string | null;
  svg: string | null;
}

const USAGE = `usage: node dist/bench/fleet.js [options]   (npm run bench:fleet -- [options])
  --configs <list>       comma-separated store:nodes, one run each, in order
                         (default ${DEFAULT_CONFIGS}; stores: sqlite, redis, cluster)
  --users <n>            connected users, spread over the nodes (default 300)
  --in-flight <k>        messages each user keeps in flight to users on other nodes (default 4)
  --payload <bytes>      payload size (default 100)
  --warmup <duration>    warm-up before the window (default 2s)
  --duration <duration>  measured window (default 10s)
  --durability <mode>    the nodes' --durability: normal (Redis appendfsync everysec, the default)
                         or full (Redis appendfsync always)
  --json                 print one JSON object instead of the table
  --write <file.md>      replace the "fleet" section of that file and write the chart beside it
  --svg <file.svg>       where the chart goes (default: bench-fleet.svg beside --write)
`;

/** A busiest Redis main thread (or node) above this share of a core is the ceiling. */
const CORE_CEILING_PERCENT = 85;
/** The machine busier than this share of all its cores means the shared cores are the ceiling. */
const MACHINE_CEILING_PERCENT = 90;

function parseOptions(argv: string[]): Options {
  const values = scriptFlags(argv, USAGE, {
    configs: { type: 'string', default: DEFAULT_CONFIGS },
    users: { type: 'string', default: '300' },
    'in-flight': { type: 'string', default: '4' },
    payload: { type: 'string', default: '100' },
    warmup: { type: 'string', default: '2s' },
    duration: { type: 'string', default: '10s' },
    durability: { type: 'string', default: 'normal' },
    svg: { type: 'string' },
  });
  const durationMs = windowFlag(values.duration);
  const durabilities = durabilityList(values.durability);
  if (durabilities.length !== 1) throw new Error('--durability: give one mode');
  const configs = parseConfigs(values.configs);
  const users = intArg(values.users, 'users', 2);
  const most = Math.max(...configs.map((c) => c.nodes));
  if (users < 2 * most) throw new Error(`--users: ${most} nodes need at least ${2 * most} users`);
  const write = values.write ?? null;
  return {
    configs,
    users,
    inFlight: intArg(values['in-flight'], 'in-flight', 1),
    payloadBytes: intArg(values.payload, 'payload', 0),
    warmupMs: parseDuration(values.warmup),
    durationMs,
    durability: durabilities[0]!,
    json: values.json,
    write,
    svg: values.svg ?? (write === null ? null : path.join(path.dirname(write), 'bench-fleet.svg')),
  };
}

// ------------------------------------------------------------------ descriptions

function describeWorkload(opts: Options): string {
  return (
    `${int(opts.users)} users, each keeping ${opts.inFlight} messages in flight (closed loop) to random users ` +
    'on other nodes (on one node: any other user), user i connected to node i mod N; ' +
    `${opts.payloadBytes}-byte payloads; ${opts.warmupMs / 1000} s warm-up + ${opts.durationMs / 1000} s ` +
    'measured; one generator process'
  );
}

function describeRedis(opts: Options): string {
  return opts.durability === 'full'
    ? 'appendonly yes, appendfsync always (what `--durability full` requires of every master)'
    : 'appendonly yes, appendfsync everysec';
}

const pct = (n: number | null): string => (n === null ? '?' : `${n.toFixed(0)} %`);
const fixed = (n: number | null, digits: number): string => (n === null ? '–' : n.toFixed(digits));

// ------------------------------------------------------------------ tables

const COLUMNS = [
  'configuration',
  'msg/s',
  'p50 ms',
  'p99 ms',
  'server CPU s · share',
  'Redis CPU s · share',
  'busiest Redis thread',
  'generator CPU s · share',
  'other CPU s · share',
  'server µs/msg',
  'Redis µs/msg',
] as const;

function cells(r: FleetResult): string[] {
  const cpu = (seconds: number | null, share: number | null): string =>
    seconds === null ? '?' : `${seconds.toFixed(1)} s · ${pct(share)}`;
  const redis = r.redisServers > 0;
  return [
    r.label,
    int(r.msgPerSec),
    r.latencyMs.p50.toFixed(2),
    r.latencyMs.p99.toFixed(2),
    cpu(r.serverCpuSeconds, r.serverCpuShare),
    redis ? cpu(r.redisCpuSeconds, r.redisCpuShare) : '–',
    redis ? `${pct(r.redisMainThreadPercent)} of a core` : '–',
    cpu(r.generatorCpuSeconds, r.generatorCpuShare),
    cpu(r.otherCpuSeconds, r.otherCpuShare),
    r.serverCpuUsPerMsg.toFixed(1),
    redis ? r.redisCpuUsPerMsg.toFixed(1) : '–',
  ];
}

const REDIS_COLUMNS = [
  'configuration',
  'socket reads (round trips)',
  'messages per round trip',
  'EVALSHA (unbatched: 2)',
  'SPUBLISH (unbatched: 2 × (N − 1))',
  'commands run (scripts’ included)',
] as const;

function redisCells(r: FleetResult): string[] {
  const reads = r.redisReadsPerMsg;
  return [
    r.label,
    fixed(reads, 3),
    reads === null || reads === 0 ? '–' : (1 / reads).toFixed(0),
    `${fixed(r.redisScriptCallsPerMsg, 3)} of 2`,
    `${fixed(r.redisPublishesPerMsg, 3)} of ${2 * (r.nodes - 1)}`,
    fixed(r.redisCommandsPerMsg, 2),
  ];
}

const onRedis = (results: FleetResult[]): FleetResult[] => results.filter((r) => r.redisServers > 0);

// ------------------------------------------------------------------ what the figures say

/** Per configuration on Redis: the commands run per delivered message, by command. */
function commandLines(results: FleetResult[]): string[] {
  return onRedis(results).map((r) => {
    const parts = Object.entries(r.redisCommandsPerMsgByName).map(([name, n]) => `${name} ${n}`);
    return `- ${r.label}: ${parts.join(', ') || 'none'}`;
  });
}

function sessionsLine(results: FleetResult[]): string {
  const runs = results.map((r) => {
    const spread = Object.entries(r.sessionsByNode)
      .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
      .map(([node, n]) => `${node} ${n}`)
      .join(', ');
    return `${r.label}: ${spread}`;
  });
  return `Sessions per node worker (WELCOME's node): ${runs.join('; ')}.`;
}

/** Where each run's ceiling was: Redis's main thread, the shared cores, or neither. */
function ceilingLines(results: FleetResult[]): string[] {
  return results.map((r) => {
    const capacity = r.cores * r.windowSeconds;
    const busy = r.machineBusySeconds === null ? null : (r.machineBusySeconds / capacity) * 100;
    const machine =
      busy === null
        ? 'the machine’s busy time is unknown'
        : `the machine was ${busy.toFixed(0)} % busy (${r.cores} cores)`;
    const node = `the busiest node (primary + its one worker) at ${r.busiestNodePercent.toFixed(0)} % of a core`;
    const thread = r.redisMainThreadPercent;
    const verdict =
      thread !== null && thread >= CORE_CEILING_PERCENT
        ? 'Redis’s main thread is the ceiling'
        : r.busiestNodePercent >= CORE_CEILING_PERCENT
          ? 'the node’s one worker is the ceiling'
          : busy !== null && busy >= MACHINE_CEILING_PERCENT
            ? 'the shared cores are the ceiling'
            : 'no core was full: msg/s is in-flight messages ÷ latency, and latency includes every hop and every wait for a core';
    if (thread === null) return `- ${r.label}: ${machine}, ${node}: ${verdict}.`;
    // Bigger batches under more load make each message cheaper for Redis, so this is a rough floor.
    const fill =
      thread > 0
        ? ` At this cost per message that thread would fill its core near ${int((r.msgPerSec * 100) / thread)} msg/s.`
        : '';
    return `- ${r.label}: ${machine}, ${node}, the busiest Redis main thread at ${thread.toFixed(0)} % of a core: ${verdict}.${fill}`;
  });
}

function readingNotes(): string[] {
  const cores = machineInfo().cores;
  return [
    `**CPU** columns: seconds over the window · share of the machine’s busy time in it (/proc/stat; the ${cores} ` +
      'cores together). Server = every node’s process tree (primary + one worker); Redis = every ' +
      'redis-server process, all threads, replicas included; other = the rest of the machine (other ' +
      'processes, interrupt work such as loopback traffic). The busiest Redis thread is the main thread of ' +
      'the busiest redis-server (/proc/<pid>/task/<pid>): it runs every command, so its 100 % of a core is ' +
      'what one Redis (or one Cluster master) can do. Likewise a node’s one worker runs on one thread: ' +
      'the busiest node near 100 % of a core is that node’s ceiling.',
    '**Per delivered message**, summed over every Redis master over the window: socket reads = reads from ' +
      'client sockets (INFO stats total_reads_processed); each read takes what a client wrote at once — one ' +
      'pipeline, however many commands — so it counts the round trips. EVALSHA and SPUBLISH = the script ' +
      'calls and the publishes the nodes sent (INFO commandstats), next to what they would be unbatched: ' +
      'two appends per message (the recipient’s inbox and the sender’s own copy), each announced to the ' +
      'N − 1 other nodes (ACKs, a few per thousand messages, left out). Commands run = every command in ' +
      'commandstats (the readings’ own INFO left out); Redis counts each command a Lua script runs as well, ' +
      'so this is the work inside the scripts, not what crossed the network.',
    `Unpinned on ${cores} cores: the nodes, Redis and the generator all share them, so more nodes here add ` +
      'processes that compete for the same cores, not capacity. server + Redis µs/msg is the figure that ' +
      'carries to a fleet of real machines, where each node and each Redis master has cores of its own.',
  ];
}

const STORE_SHORT: Record<FleetConfig['store'], string> = {
  sqlite: 'SQLite',
  redis: 'Redis',
  cluster: 'Cluster',
};

function chartSvg(opts: Options, results: FleetResult[]): string {
  return barChartSvg({
    title: 'Switchboard delivered msg/s by store and node count',
    subtitle:
      `${int(opts.users)} users × ${opts.inFlight} in flight, ${opts.payloadBytes} B, ${opts.durationMs / 1000} s, ` +
      `1 worker per node, ${opts.durability}, ${machineInfo().cores} shared cores, ${today()}`,
    // Short labels: five fit under a 640-pixel chart.
    categories: opts.configs.map((c) => `${STORE_SHORT[c.store]} × ${c.nodes}`),
    series: [
      {
        name: 'delivered msg/s',
        values: opts.configs.map((c) => results.find((r) => r.config === configId(c))?.msgPerSec ?? null),
      },
    ],
    unit: 'msg/s',
  });
}

function section(
  opts: Options,
  results: FleetResult[],
  failures: string[],
  command: string,
  chart: string | null,
): string {
  const loads = results.map((r) => r.loadAverage1m);
  const lo = Math.min(...loads);
  const hi = Math.max(...loads);
  const revision = sourceRevision();
  const lines = [
    `Measured ${today()} with \`${command}\`${revision === null ? '' : ` (${revision})`}.`,
    '',
    `- Machine: ${describeMachine()}; 1-minute load average ${lo === hi ? lo : `${lo}–${hi}`} at the start of ` +
      `${results.length === 1 ? 'the run' : 'the runs'}.`,
    `- Workload: ${describeWorkload(opts)}.`,
    `- Nodes: each a fresh \`serve --workers 1 --durability ${opts.durability}\` with its own ports; on Redis ` +
      '`--store redis://…` (or `redis-cluster://…`) and `--node-name nK`; on SQLite a fresh data folder ' +
      '(the server’s default shard count).',
    `- Redis: a fresh redis-server per row (the Cluster: 3 masters + 3 replicas), ${describeRedis(opts)}.`,
    '- No pinning: nodes, Redis and the generator share every core.',
    '',
    labelledMarkdownTable(COLUMNS, results.map(cells)),
    '',
  ];
  if (onRedis(results).length > 0) {
    lines.push(
      'Redis, per delivered message:',
      '',
      labelledMarkdownTable(REDIS_COLUMNS, onRedis(results).map(redisCells)),
      '',
      'Commands run per delivered message, by command:',
      '',
      ...commandLines(results),
      '',
    );
  }
  lines.push('Where the ceiling is:', '', ...ceilingLines(results), '', sessionsLine(results), '');
  for (const note of readingNotes()) lines.push(note, '');
  for (const f of failures) lines.push(`Failed run — ${f.split('\n')[0]}`, '');
  if (chart !== null) lines.push(`![msg/s per configuration](${chart})`, '');
  return lines.join('\n');
}

// ------------------------------------------------------------------ main

async function main(): Promise<number> {
  const started = scriptOptions(USAGE, parseOptions);
  if (started === null) return 2;
  const { args, opts } = started;
  installCleanup();
  process.once('exit', killAllRedisNow);
  const { results, failures } = await runEach(
    opts.configs,
    {
      tag: (config) => `[${configId(config)}]`,
      what: configLabel,
      summary: (r: FleetResult) =>
        `${int(r.msgPerSec)} msg/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, ` +
        `server ${r.serverCpuUsPerMsg} µs/msg, Redis ${r.redisCpuUsPerMsg} µs/msg, ` +
        `Redis commands/msg ${fixed(r.redisCommandsPerMsg, 2)}`,
    },
    (config) => runConfiguration(config, opts),
  );
  if (opts.json) {
    const out = {
      benchmark: 'fleet',
      users: opts.users,
      inFlight: opts.inFlight,
      payloadBytes: opts.payloadBytes,
      warmupSeconds: opts.warmupMs / 1000,
      durationSeconds: opts.durationMs / 1000,
      durability: opts.durability,
      machine: machineInfo(),
      results,
      failures,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } else if (results.length > 0) {
    process.stdout.write(
      [
        `Switchboard many-machines benchmark: ${describeWorkload(opts)}`,
        `1 worker per node, durability ${opts.durability}, Redis ${describeRedis(opts)}; ${describeMachine()}`,
        labelledTextTable(COLUMNS, results.map(cells)),
        '',
        'Redis, per delivered message:',
        labelledTextTable(REDIS_COLUMNS, onRedis(results).map(redisCells)),
        'Commands run per delivered message, by command:',
        ...commandLines(results),
        '',
        'Where the ceiling is:',
        ...ceilingLines(results),
        '',
      ].join('\n'),
    );
  }
  if (
    results.length > 0 &&
    writeResults(
      'fleet',
      opts,
      () => chartSvg(opts, results),
      (link) => section(opts, results, failures, commandLine('bench:fleet', args), link),
    ) !== 0
  ) {
    return 1;
  }
  return failures.length > 0 ? 1 : 0;
}

runMain(main);
