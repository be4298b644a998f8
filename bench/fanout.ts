/**
 * Group fan-out benchmark (`npm run bench:fanout`): how fast one group SEND reaches every member of a
 * 1 000-member group, and how long the server's event loop stalls meanwhile. For each worker count it
 * starts a fresh server (`serve --workers N --durability normal`, a temp data folder) and runs the
 * scenario of bench/lib/fanout.ts: 1 000 members + the sender JOIN one group, the sender writes 50
 * durable group SENDs at once, every member checks that it gets each exactly once and in order.
 *
 *   node dist/bench/fanout.js [--members 1000] [--messages 50] [--size 100] [--workers 1[,2,…]] [--json]
 *                             [--write docs/BENCHMARKS.md] [--svg docs/bench-fanout.svg]
 *
 * Figures: member deliveries per second (first SEND → last member DELIVER), SEND → ACCEPTED, the time to
 * the first and the last delivery of each message, the server tree's CPU (/proc) per member delivery,
 * and the event-loop delay two ways: PING → PONG round trips of a probe connection (ping-probe.ts), and
 * inside every server worker, with a timer loaded by `node --import` (loop-delay.ts; the server's code
 * is unchanged). With --write the "fanout" section of that Markdown file (between its markers) is
 * replaced, and a chart of member deliveries over time is written beside it (bench-fanout.svg, or --svg).
 * Progress goes to stderr; the table (or, with --json, one JSON object) to stdout. Every server is
 * stopped by PID (SIGTERM, then SIGKILL after 10 s) and its folders removed.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { lineChartSvg } from './lib/chart.js';
import { commandLine, describeMachine, sourceRevision, today, writeResults } from './lib/docs.js';
import { type FanoutResult, PROBE_INTERVAL_MS, runFanout } from './lib/fanout.js';
import { scriptFlags } from './lib/flags.js';
import type { LatencySummary } from './lib/latency.js';
import {
  FLUSH_MS,
  LOOP_DELAY_DIR_ENV,
  loopDelayNodeArgs,
  PERIOD_MS,
  type ProcessLoopDelay,
  readLoopDelay,
} from './lib/loop-delay.js';
import { loadAverage, machineInfo } from './lib/machine.js';
import { type MachineCpu, machineCpu, type TreeCpu, treeCpu } from './lib/proc.js';
import { endProgress, int, progress, round, runEach, runMain } from './lib/report.js';
import { ServerProcess, sleep } from './lib/server.js';
import { installCleanup, intArg, scriptOptions, workerList } from './lib/throughput.js';
import { ratePoints } from './report-html.js';

interface Options {
  members: number;
  messages: number;
  size: number;
  workers: number[];
  /** Load the loop-delay probe into the server's workers (off: no server-side loop delay, no probe cost). */
  loopProbe: boolean;
  json: boolean;
  write: string | null;
  svg: string | null;
}

const USAGE = `usage: node dist/bench/fanout.js [options]   (npm run bench:fanout -- [options])
  --members <n>      group members besides the sender (default 1000)
  --messages <m>     durable group SENDs, written at once (default 50)
  --size <bytes>     payload size (default 100)
  --workers <list>   comma-separated worker counts, one run and a fresh server each (default 1)
  --no-loop-probe    do not load the event-loop delay timer into the server's workers (it costs an
                     idle worker about 4 % of a core, counted in server CPU)
  --json             print one JSON object instead of the table
  --write <file.md>  replace the "fanout" section of that file and write the chart beside it
  --svg <file.svg>   where the chart goes (default: bench-fanout.svg beside --write)
`;

function parseOptions(argv: string[]): Options {
  const values = scriptFlags(argv, USAGE, {
    members: { type: 'string', default: '1000' },
    messages: { type: 'string', default: '50' },
    size: { type: 'string', default: '100' },
    workers: { type: 'string', default: '1' },
    'no-loop-probe': { type: 'boolean', default: false },
    svg: { type: 'string' },
  });
  const write = values.write ?? null;
  return {
    members: intArg(values.members, 'members', 1),
    messages: intArg(values.messages, 'messages', 1),
    size: intArg(values.size, 'size', 0),
    workers: workerList(values.workers),
    loopProbe: !values['no-loop-probe'],
    json: values.json,
    write,
    svg: values.svg ?? (write === null ? null : path.join(path.dirname(write), 'bench-fanout.svg')),
  };
}

/** One run: the scenario's result and what was measured around it. */
interface FanoutRun extends FanoutResult {
  workers: number;
  durability: 'normal';
  /** Processes in the server's tree (the primary and its workers). */
  serverProcesses: number;
  /** The server tree's user + system CPU over the fan-out. */
  serverCpuSeconds: number;
  serverCpuPercent: number;
  serverCpuMicrosPerDelivery: number;
  /** This process's CPU (the members, the sender and the probe thread) over the fan-out, % of one core. */
  generatorCpuPercent: number;
  /** The machine's other busy time over the fan-out, % of one core. */
  otherCpuPercent: number | null;
  /** The event-loop delay inside each server worker over the fan-out (loop-delay.ts). */
  serverLoopDelay: ProcessLoopDelay[];
  loadAverage1m: number;
}

/** Starts a server; with `loopDir`, its workers load the loop-delay probe, writing there. */
async function startServer(workers: number, loopDir: string | null): Promise<ServerProcess> {
  if (loopDir === null) return ServerProcess.start({ workers, durability: 'normal' });
  const saved = {
    args: process.env.SWITCHBOARD_BENCH_NODE_ARGS,
    dir: process.env[LOOP_DELAY_DIR_ENV],
  };
  process.env.SWITCHBOARD_BENCH_NODE_ARGS = [saved.args ?? '', ...loopDelayNodeArgs()].join(' ').trim();
  process.env[LOOP_DELAY_DIR_ENV] = loopDir;
  try {
    return await ServerProcess.start({ workers, durability: 'normal' });
  } finally {
    const restore = (name: string, value: string | undefined): void => {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    };
    restore('SWITCHBOARD_BENCH_NODE_ARGS', saved.args);
    restore(LOOP_DELAY_DIR_ENV, saved.dir);
  }
}

const workersText = (w: number): string => `${w} worker${w === 1 ? '' : 's'}`;

async function runOne(workers: number, opts: Options): Promise<FanoutRun> {
  const label = `[fan-out w${workers}]`;
  progress(`${label} starting the server…`);
  const loadAtStart = loadAverage()[0];
  const loopDir = opts.loopProbe
    ? mkdtempSync(path.join(os.tmpdir(), 'switchboard-bench-loop-delay-'))
    : null;
  const removeLoopDir = (): void => {
    if (loopDir !== null) rmSync(loopDir, { recursive: true, force: true });
  };
  process.once('exit', removeLoopDir);
  let server: ServerProcess | null = null;
  try {
    server = await startServer(workers, loopDir);
    const s = server;
    let cpuStart: TreeCpu | null = null;
    let cpuEnd: TreeCpu | null = null;
    let machineStart: MachineCpu | null = null;
    let machineEnd: MachineCpu | null = null;
    let genStart: NodeJS.CpuUsage | null = null;
    let genUsed: NodeJS.CpuUsage | null = null;
    const r = await runFanout(
      {
        host: '127.0.0.1',
        port: s.port,
        run: `fo${randomBytes(3).toString('hex')}`,
        members: opts.members,
        messages: opts.messages,
        size: opts.size,
        label,
      },
      {
        onStart: () => {
          machineStart = machineCpu();
          cpuStart = treeCpu(s.pid);
          genStart = process.cpuUsage();
        },
        onEnd: () => {
          genUsed = process.cpuUsage(genStart ?? undefined);
          cpuEnd = treeCpu(s.pid);
          machineEnd = machineCpu();
        },
        problem: () => (s.alive ? null : `the server process exited (${s.exitInfo})`),
      },
    );
    if (!r.ok) {
      const tail = s.tail();
      throw new Error(tail ? `${r.failure}\nlast server output:\n${tail}` : (r.failure ?? 'failed'));
    }
    // The probes append what they sampled every FLUSH_MS: the fan-out's last samples are in by now
    // (runFanout closed its connections, 200 ms), and one more flush is waited for.
    let serverLoopDelay: ProcessLoopDelay[] = [];
    if (loopDir !== null) {
      await sleep(FLUSH_MS + 50);
      serverLoopDelay = readLoopDelay(loopDir, r.startEpochMs, r.endEpochMs);
    }
    const seconds = r.fanoutMs / 1000;
    const start = cpuStart as TreeCpu | null;
    const end = cpuEnd as TreeCpu | null;
    const serverCpu = start && end ? end.seconds - start.seconds : 0;
    const gen = genUsed as NodeJS.CpuUsage | null;
    const genSeconds = gen ? (gen.user + gen.system) / 1e6 : 0;
    const mStart = machineStart as MachineCpu | null;
    const mEnd = machineEnd as MachineCpu | null;
    const other =
      mStart && mEnd ? Math.max(0, mEnd.busySeconds - mStart.busySeconds - serverCpu - genSeconds) : null;
    return {
      ...r,
      workers,
      durability: 'normal',
      serverProcesses: start?.processes ?? 0,
      serverCpuSeconds: round(serverCpu, 3),
      serverCpuPercent: seconds > 0 ? round((serverCpu / seconds) * 100, 1) : 0,
      serverCpuMicrosPerDelivery: r.delivered > 0 ? round((serverCpu * 1e6) / r.delivered, 2) : 0,
      generatorCpuPercent: seconds > 0 ? round((genSeconds / seconds) * 100, 1) : 0,
      otherCpuPercent: other === null || seconds === 0 ? null : round((other / seconds) * 100, 1),
      serverLoopDelay,
      loadAverage1m: loadAtStart,
    };
  } finally {
    progress(`${label} stopping the server…`);
    await server?.stop();
    endProgress();
    removeLoopDir();
    process.removeListener('exit', removeLoopDir);
  }
}

// ------------------------------------------------------------------ reports

/** p50 and max over the messages of (last − first member delivery), ms. */
function spread(r: FanoutResult): { p50: number; max: number } {
  const spreads = r.firstDeliveryMs
    .map((first, i) => r.lastDeliveryMs[i]! - first)
    .filter((v) => Number.isFinite(v))
    .sort((a, b) => a - b);
  if (spreads.length === 0) return { p50: 0, max: 0 };
  return { p50: round(spreads[Math.ceil(spreads.length / 2) - 1]!, 2), max: round(spreads.at(-1)!, 2) };
}

/** The worker whose loop stalled longest. */
function worstLoop(r: FanoutRun): ProcessLoopDelay | null {
  return r.serverLoopDelay.reduce<ProcessLoopDelay | null>(
    (a, b) => (a === null || b.maxMs > a.maxMs ? b : a),
    null,
  );
}

/** A duration in ms with the digits that matter: 0.42, 4.2, 42.5, 425, 4,250. */
function msText(v: number): string {
  if (v >= 100) return int(v);
  return v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/**
 * p50, p99 and max of a latency summary. HdrHistogram gives a percentile as the top of its bucket,
 * which can pass the exact maximum by a rounding step: a percentile is shown at most the maximum.
 */
function percentiles(l: LatencySummary): [number, number, number] {
  return [Math.min(l.p50, l.max), Math.min(l.p99, l.max), l.max];
}

/** The figures of one run, in order: [label, value]. */
function figures(r: FanoutRun): [string, string][] {
  const M = r.messages;
  const ms = (...values: number[]): string => `${values.map(msText).join(' / ')} ms`;
  const s = spread(r);
  const worst = worstLoop(r);
  const probe = r.probe;
  const rtt = probe === null ? [] : percentiles(probe.rttMs).map(msText);
  return [
    ['**member deliveries per second**', `**${int(r.deliveriesPerSecond)}**`],
    ['fan-out time (first SEND → last member DELIVER)', ms(r.fanoutMs)],
    [
      'member deliveries (each member: every message once, in order)',
      `${int(r.delivered)} of ${int(r.expected)}; ${int(r.membersComplete)} of ${int(r.members)} members complete; ` +
        `${r.outOfOrder} out of order, ${r.duplicates} twice`,
    ],
    ['SEND → ACCEPTED p50 / p99 / max', ms(...percentiles(r.acceptedMs))],
    [
      `first member DELIVER after its SEND, message 1 / ${M}`,
      ms(r.firstDeliveryMs[0]!, r.firstDeliveryMs[M - 1]!),
    ],
    [
      `last member DELIVER after its SEND, message 1 / ${M}`,
      ms(r.lastDeliveryMs[0]!, r.lastDeliveryMs[M - 1]!),
    ],
    ['one message, first → last member DELIVER: p50 / max', ms(s.p50, s.max)],
    [
      'server CPU',
      `${r.serverCpuSeconds} s: **${r.serverCpuMicrosPerDelivery} µs per member delivery**, ` +
        `${Math.round(r.serverCpuPercent)} % of one core`,
    ],
    [
      'generator / other CPU',
      `${Math.round(r.generatorCpuPercent)} % / ${r.otherCpuPercent === null ? '?' : Math.round(r.otherCpuPercent)} % of one core`,
    ],
    [
      'probe PING → PONG p50 / p99 / **max**',
      probe === null
        ? '–'
        : `${rtt[0]} / ${rtt[1]} / **${rtt[2]} ms** (${int(probe.answered)} PINGs; session on ${probe.node})`,
    ],
    [
      'server event-loop delay p50 / p99 / **max**, worst worker',
      worst === null
        ? 'not measured'
        : `${msText(worst.p50Ms)} / ${msText(worst.p99Ms)} / **${msText(worst.maxMs)} ms** ` +
          `(${worst.node}, ${int(worst.samples)} samples; its threads used ${msText(worst.maxCpuMs)} ms of CPU ` +
          'over the longest)',
    ],
    [
      'server event-loop delay max, each worker',
      r.serverLoopDelay.map((p) => `${p.node} ${msText(p.maxMs)} ms`).join(', ') || '–',
    ],
    [
      'sessions per worker (members + sender)',
      Object.entries(r.sessionsByNode)
        .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
        .map(([node, n]) => `${node} ${int(n)}`)
        .join(', '),
    ],
    ['1-minute load average at the start', String(r.loadAverage1m)],
  ];
}

/** What each figure bounds: printed under the table and written under the section's table. */
function readingNotes(opts: Options): string[] {
  return [
    `**Member deliveries per second** = messages × members ÷ the time from writing the first SEND to the ` +
      'last member DELIVER the generator read. The sender’s own copies are stored and delivered too, but not ' +
      'counted. Each member copy is a durable SQLite append before its DELIVER goes out, and the server starts ' +
      'one session’s group SEND only once the previous one is answered (PROTOCOL.md, appendix), so the ' +
      `${int(opts.messages)} messages fan out one after another: the rate is that of back-to-back fan-outs, ` +
      'store included, as one generator process reads them.',
    `**SEND → ACCEPTED**: the ${int(opts.messages)} SENDs are written at once and run one after another, so ` +
      'message k’s time includes the k − 1 before it; the max is close to the whole fan-out. It bounds how ' +
      'long a sender waits behind its own queue, not what one message costs (that is the spread, and the ' +
      'time to its last delivery minus the previous one’s).',
    `**Probe PING → PONG**: a connection that is not a member, in a thread of the generator that does nothing ` +
      `else, PINGs every ${PROBE_INTERVAL_MS} ms on schedule during the fan-out. Each round trip is an upper ` +
      'bound on the event-loop delay of the worker holding its session (with one worker, the one doing the ' +
      'whole fan-out): it adds one loopback round trip and the probe thread’s own wait, which on shared cores ' +
      'includes waiting for a core. With more workers it says nothing about the other workers.',
    `**Server event-loop delay**: inside every server worker a timer due every ${PERIOD_MS} ms records how late ` +
      'it fires — how long a callback that was ready at that moment waited for the loop (the benchmark loads it ' +
      'with `node --import`; the server’s code is unchanged). The samples whose wait overlapped the fan-out ' +
      `count. The max is the longest stall of that worker’s loop, to within about ${PERIOD_MS} ms (the ` +
      'timer’s granularity), garbage collection and waiting for a core included; it leaves out the network ' +
      'and the clients. The CPU time the process used during that longest stall (all its threads) tells its ' +
      'causes apart: the loop running code, or — for the rest — the process not running at all (waiting for ' +
      'a core on a busy machine, or blocked in a system call). The timer costs an idle worker about 4 % of a ' +
      'core (its wake-ups; less on a busy loop), which server CPU includes; `--no-loop-probe` leaves it out.',
    '**Server CPU** = user + system time of the server’s process tree (/proc) from the first SEND to the last ' +
      'member delivery, per member delivery; it includes storing the sender’s own copies and the members’ ' +
      'final ACKs.',
  ];
}

function workloadLine(opts: Options): string {
  return (
    `a group of ${int(opts.members + 1)} (${int(opts.members)} members + the sender), one connection each; ` +
    `the sender writes ${int(opts.messages)} durable group SENDs of ${opts.size} bytes at once; each member ` +
    `ACKs every window/2 DELIVERs and once it has all ${int(opts.messages)}; one more connection, not a ` +
    `member, PINGs every ${PROBE_INTERVAL_MS} ms`
  );
}

function columnsTable(runs: FanoutRun[], markdown: boolean): string {
  const columns = runs.map((r) => figures(r));
  const labels = columns[0]?.map(([k]) => k) ?? [];
  const plain = (t: string): string => (markdown ? t : t.replace(/\*\*/g, ''));
  const heads = ['figure', ...runs.map((r) => workersText(r.workers))];
  const rows = labels.map((label, i) => [plain(label), ...columns.map((c) => plain(c[i]![1]))]);
  if (markdown) {
    return [
      `| ${heads.join(' | ')} |`,
      `|---|${runs.map(() => '---').join('|')}|`,
      ...rows.map((row) => `| ${row.join(' | ')} |`),
    ].join('\n');
  }
  const widths = heads.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(heads), ...rows.map(line)].join('\n');
}

function chartSvg(opts: Options, runs: FanoutRun[]): string {
  return lineChartSvg({
    title: 'Group fan-out: member deliveries per second',
    subtitle:
      `${int(opts.members + 1)}-member group, ${int(opts.messages)} durable SENDs of ${opts.size} B written at once, ` +
      `unpinned, ${machineInfo().cores} cores, ${today()}`,
    xLabel: 'seconds since the first SEND',
    unit: 'member deliveries/s',
    series: runs.map((r) => ({
      name: workersText(r.workers),
      points: ratePoints(r.timeSeries.delivered, r.timeSeries.intervalSeconds),
    })),
    xMax: Math.max(...runs.map((r) => r.fanoutMs / 1000)),
  });
}

function section(
  opts: Options,
  runs: FanoutRun[],
  failures: string[],
  command: string,
  chart: string | null,
): string {
  const loads = runs.map((r) => r.loadAverage1m);
  const lo = Math.min(...loads);
  const hi = Math.max(...loads);
  const revision = sourceRevision();
  const lines = [
    `Measured ${today()} with \`${command}\`${revision === null ? '' : ` (${revision})`}.`,
    '',
    `- Machine: ${describeMachine()}; 1-minute load average ${lo === hi ? lo : `${lo}–${hi}`} at the start of ` +
      `${runs.length === 1 ? 'the run' : 'the runs'}.`,
    `- Workload: ${workloadLine(opts)}.`,
    '- Server: a fresh `serve --workers N --durability normal` and data folder per column (SQLite, the ' +
      'server’s default shard count); no pinning (server and generator share every core).',
    '',
    columnsTable(runs, true),
    '',
  ];
  for (const note of readingNotes(opts)) lines.push(note, '');
  for (const f of failures) lines.push(`Failed run — ${f.split('\n')[0]}`, '');
  if (chart !== null) lines.push(`![member deliveries per second during the fan-out](${chart})`, '');
  return lines.join('\n');
}

// ------------------------------------------------------------------ main

async function main(): Promise<number> {
  const started = scriptOptions(USAGE, parseOptions);
  if (started === null) return 2;
  const { args, opts } = started;
  installCleanup();
  const { results: runs, failures } = await runEach(
    opts.workers,
    {
      tag: (workers) => `[fan-out w${workers}]`,
      what: workersText,
      summary: (r: FanoutRun) => {
        const worst = worstLoop(r);
        return (
          `${int(r.deliveriesPerSecond)} member deliveries/s, fan-out ${r.fanoutMs} ms, ` +
          `probe PONG max ${r.probe?.rttMs.max ?? '–'} ms, server loop delay max ${worst?.maxMs ?? '–'} ms` +
          `${worst ? ` (${worst.node})` : ''}`
        );
      },
    },
    (workers) => runOne(workers, opts),
  );
  if (opts.json) {
    const out = {
      benchmark: 'fanout',
      members: opts.members,
      messages: opts.messages,
      size: opts.size,
      machine: machineInfo(),
      results: runs,
      failures,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } else if (runs.length > 0) {
    process.stdout.write(
      [
        `Switchboard group fan-out benchmark: ${workloadLine(opts)}`,
        `durability normal, unpinned; ${describeMachine()}`,
        columnsTable(runs, false),
        '',
        ...readingNotes(opts).map((n) => n.replace(/\*\*/g, '')),
        '',
      ].join('\n'),
    );
  }
  if (
    runs.length > 0 &&
    writeResults(
      'fanout',
      opts,
      () => chartSvg(opts, runs),
      (link) => section(opts, runs, failures, commandLine('bench:fanout', args), link),
    ) !== 0
  ) {
    return 1;
  }
  return failures.length > 0 ? 1 : 0;
}

runMain(main);
