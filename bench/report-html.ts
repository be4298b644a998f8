/**
 * The `--report out.html` page of every `switchboard bench` scenario: one self-contained HTML file (no
 * external script, style sheet or font; the charts are inline SVG drawn by bench/lib/chart.ts) with the
 * summary table, the machine, the command line, and the charts the scenario has — throughput over time,
 * connections over time, latency over time, the latency percentile distribution — and the full JSON
 * result at the end.
 */
import { writeFileSync } from 'node:fs';
import type { ConnectionsResult } from './connections.js';
import { type LineChart, lineChartSvg, type PercentileChart, percentileChartSvg } from './lib/chart.js';
import { loadAverage, type MachineInfo, machineInfo } from './lib/machine.js';
import { establishedOnPort } from './lib/proc.js';
import { bytes, int } from './lib/report.js';

export interface ReportInput {
  /** e.g. "throughput". */
  scenario: string;
  /** The page's heading, e.g. "Switchboard bench throughput". */
  title: string;
  /** The command as typed, e.g. "switchboard bench throughput --users 1000 …". */
  command: string;
  /** The scenario's figures, in order: [label, value]. */
  summary: [string, string][];
  throughput?: LineChart;
  connections?: LineChart;
  /** Latency percentiles per interval over time. */
  latencyOverTime?: LineChart;
  latency?: PercentileChart;
  /** Sentences under the table (how to read the figures, warnings). */
  notes?: string[];
  /** The JSON result, shown at the end. */
  result: unknown;
  /** Default: this machine now. */
  machine?: MachineInfo;
  /** 1-, 5- and 15-minute load averages at the start of the run. */
  loadAverage?: [number, number, number];
  /** ISO time of the run (default now). */
  startedAt?: string;
}

function esc(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1100px;
  color: #222; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { text-align: left; padding: 4px 14px 4px 0; border-bottom: 1px solid #eee; vertical-align: top; }
th { color: #555; font-weight: 600; white-space: nowrap; }
td.num { font-variant-numeric: tabular-nums; }
pre { background: #f6f7f9; padding: 10px; overflow-x: auto; font-size: 12px; white-space: pre-wrap;
  word-break: break-all; }
figure { margin: 16px 0; }
svg { max-width: 100%; height: auto; border: 1px solid #eee; }
ul.notes li { margin: 4px 0; }
`;

/** The page as HTML text. */
export function renderReport(input: ReportInput): string {
  const m = input.machine ?? machineInfo();
  const when = input.startedAt ? `Run started ${input.startedAt}` : `Written ${new Date().toISOString()}`;
  const load = input.loadAverage;
  const rows = (pairs: [string, string][]): string =>
    pairs.map(([k, v]) => `<tr><th>${esc(k)}</th><td class="num">${esc(v)}</td></tr>`).join('\n');
  const machineRows: [string, string][] = [
    ['cores', String(m.cores)],
    ['CPU model', m.model],
    ['memory', bytes(m.memoryBytes)],
    ['Node', m.node],
    ['system', m.system],
  ];
  if (load) machineRows.push(['load average at start (1, 5, 15 min)', load.join(', ')]);
  const charts: string[] = [];
  if (input.connections) charts.push(`<figure>${lineChartSvg(input.connections)}</figure>`);
  if (input.throughput) charts.push(`<figure>${lineChartSvg(input.throughput)}</figure>`);
  if (input.latencyOverTime) charts.push(`<figure>${lineChartSvg(input.latencyOverTime)}</figure>`);
  if (input.latency) charts.push(`<figure>${percentileChartSvg(input.latency)}</figure>`);
  const notes = input.notes ?? [];
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(input.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${esc(input.title)}</h1>
<p class="meta">${esc(when)} on ${esc(`${m.cores} cores (${m.model}), ${bytes(m.memoryBytes)}, Node ${m.node}`)}</p>
<h2>Summary</h2>
<table>
${rows(input.summary)}
</table>
${notes.length > 0 ? `<ul class="notes">\n${notes.map((n) => `<li>${esc(n)}</li>`).join('\n')}\n</ul>` : ''}
${charts.length > 0 ? `<h2>Charts</h2>\n${charts.join('\n')}` : ''}
<h2>Machine</h2>
<table>
${rows(machineRows)}
</table>
<h2>Command</h2>
<pre><code>${esc(input.command)}</code></pre>
<details>
<summary>JSON result</summary>
<pre><code>${esc(JSON.stringify(input.result, null, 2))}</code></pre>
</details>
</body>
</html>
`;
}

/** Writes the page to `file`. */
export function writeReport(file: string, input: ReportInput): void {
  writeFileSync(file, renderReport(input));
}

/** Per-interval counts → [time, rate] points at each interval's middle (counts ÷ interval = a rate). */
export function ratePoints(counts: number[], intervalSeconds: number, startSeconds = 0): [number, number][] {
  return counts.map((c, i) => [startSeconds + (i + 0.5) * intervalSeconds, c / intervalSeconds]);
}

/** The command line as typed: `switchboard bench …` with shell quoting where needed. */
export function commandText(argv: string[] = process.argv.slice(2)): string {
  const quoted = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`));
  return ['switchboard', ...quoted].join(' ');
}

// ------------------------------------------------------------------ bench connections

/**
 * Samples, twice a second, how many established TCP connections the server on `host:port` holds (its
 * side of each socket, from /proc/net/tcp): the connections-over-time chart of `bench connections
 * --report`.
 */
export class ConnectionSampler {
  readonly points: [number, number][] = [];
  readonly loadAverage = loadAverage();
  readonly startedAt = new Date().toISOString();
  private readonly t0 = performance.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly host: string,
    private readonly port: number,
    everyMs = 500,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  private sample(): void {
    const n = establishedOnPort(this.host, this.port);
    if (n !== null) this.points.push([(performance.now() - this.t0) / 1000, n]);
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }
}

export function connectionsReport(
  r: ConnectionsResult,
  sampler: ConnectionSampler,
  command = commandText(),
): ReportInput {
  const counts = (m: Record<string, number>): string =>
    Object.entries(m)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${int(v)}`)
      .join(', ');
  const summary: [string, string][] = [
    ['target', r.target],
    ['held', `${int(r.held)} of ${int(r.count)}`],
    ['failed', r.failed === 0 ? '0' : `${int(r.failed)} (${counts(r.failedByError)})`],
    ['connects/s', int(r.connectsPerSecond)],
    ['all connected in', `${r.secondsToAllConnected} s`],
    ['held at the end of the hold', `${int(r.heldAtEnd)} after ${r.holdSeconds} s`],
    ['dropped while held', r.dropped === 0 ? '0' : `${int(r.dropped)} (${counts(r.droppedByError)})`],
    ['server RSS before', r.serverRssBeforeBytes === null ? 'not measured' : bytes(r.serverRssBeforeBytes)],
    ['server RSS holding', r.serverRssBytes === null ? 'not measured' : bytes(r.serverRssBytes)],
    ['RSS per connection', r.rssPerConnectionBytes === null ? '–' : bytes(r.rssPerConnectionBytes)],
    [
      'generator',
      `${r.generatorProcesses} process(es), ${r.sources.length} source address(es), ${r.generatorCpuSeconds} s CPU`,
    ],
  ];
  return {
    scenario: 'connections',
    title: 'Switchboard bench connections',
    command,
    summary,
    notes: [
      'The chart counts the server side of every established TCP connection on the target port, sampled twice a ' +
        'second from /proc/net/tcp (connections still in their handshake included).',
      ...r.warnings,
      ...r.generatorErrors,
    ],
    loadAverage: sampler.loadAverage,
    startedAt: sampler.startedAt,
    connections: {
      title: 'Connections over time',
      subtitle: `${int(r.count)} clients, held ${r.holdSeconds} s`,
      xLabel: 'seconds since the bench started',
      unit: 'established connections',
      series: [{ name: 'established', points: sampler.points }],
    },
    result: r,
  };
}
