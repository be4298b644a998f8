/**
 * Writing benchmark results into docs/BENCHMARKS.md: each benchmark owns one section between
 * `<!-- name:start -->` and `<!-- name:end -->` and replaces only that, so hand-written text around it
 * stays. Also the machine line and the command line that every written section carries.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type MachineInfo, machineInfo } from './machine.js';
import { bytes } from './report.js';
import {
  describePinning,
  describeSessions,
  describeStore,
  describeWorkload,
  markdownTable,
  type RunResult,
  resultNotes,
  type ThroughputOptions,
} from './throughput.js';

export function markers(name: string): { start: string; end: string } {
  return { start: `<!-- ${name}:start -->`, end: `<!-- ${name}:end -->` };
}

/**
 * `text` with everything between the markers of section `name` replaced by `body` (the markers stay,
 * each on its own line). Throws when a marker is missing, repeated or out of order.
 */
export function replaceSection(text: string, name: string, body: string): string {
  const { start, end } = markers(name);
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < 0) throw new Error(`no "${start}" … "${end}" markers`);
  if (text.indexOf(start, i + 1) >= 0 || text.indexOf(end, j + 1) >= 0) {
    throw new Error(`the "${name}" markers appear more than once`);
  }
  if (j < i) throw new Error(`"${end}" comes before "${start}"`);
  return `${text.slice(0, i + start.length)}\n${body.trim()}\n${text.slice(j)}`;
}

/** Writes through a temp file in the same folder and a rename, so a reader never sees half a file. */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** Replaces section `name` of the Markdown file `file` (which must exist and hold the markers). */
export function writeSection(file: string, name: string, body: string): void {
  const text = readFileSync(file, 'utf8');
  writeFileAtomic(file, replaceSection(text, name, body));
}

/** "2 × Intel(R) Xeon(R) Processor, 23.5 GiB, Node v20.20.0, Linux 6.1 x64". */
export function describeMachine(m: MachineInfo = machineInfo()): string {
  return `${m.cores} cores (${m.model}), ${bytes(m.memoryBytes)} memory, Node ${m.node}, ${m.system}`;
}

/**
 * The command that produced a result, as a reader would type it: `npm run <script> -- <args>` when
 * run through npm, else `node <script path relative to the working folder> <args>`.
 */
export function commandLine(script: string, args: string[]): string {
  const quoted = args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`));
  if (process.env.npm_lifecycle_event === script) {
    return quoted.length > 0 ? `npm run ${script} -- ${quoted.join(' ')}` : `npm run ${script}`;
  }
  const entry = path.relative(process.cwd(), process.argv[1] ?? script) || script;
  return ['node', entry, ...quoted].join(' ');
}

/** The package root (this file is dist/bench/lib/docs.js once compiled). */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * "commit 500dafc" (+ " with uncommitted changes" when the working tree's code differs: changes under
 * docs/, such as the chart a benchmark has just written there, do not count); null outside git.
 */
export function sourceRevision(): string | null {
  try {
    const git = (...args: string[]): string =>
      execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const head = git('rev-parse', '--short', 'HEAD');
    const dirty = git('status', '--porcelain', '--untracked-files=no', '--', '.', ':(exclude)docs') !== '';
    return `commit ${head}${dirty ? ' with uncommitted changes' : ''}`;
  } catch {
    return null;
  }
}

/** Today as YYYY-MM-DD (UTC). */
export function today(): string {
  return new Date().toISOString().slice(0, 10);
}

export interface SectionInput {
  /** The command that produced the figures (see `commandLine`). */
  command: string;
  opts: ThroughputOptions;
  results: RunResult[];
  failures: string[];
  /** Extra lines after the table (e.g. a chart link). */
  extra?: string[];
}

/** The Markdown body of a throughput section: when, how, where, the table and what to read into it. */
export function throughputSection(input: SectionInput): string {
  const { opts, results } = input;
  const loads = results.map((r) => r.loadAverage1m);
  const lo = Math.min(...loads);
  const hi = Math.max(...loads);
  const loadText =
    loads.length === 0
      ? ''
      : `; 1-minute load average ${lo === hi ? lo : `${lo}–${hi}`} at the start of ${loads.length === 1 ? 'the run' : 'the runs'}`;
  const revision = sourceRevision();
  const lines = [
    `Measured ${today()} with \`${input.command}\`${revision === null ? '' : ` (${revision})`}.`,
    '',
    `- Machine: ${describeMachine()}${loadText}.`,
    `- Workload: ${describeWorkload(opts)}.`,
    `- Store: ${describeStore(opts)}; durability as in each row; a fresh server and data folder per row ` +
      '(`serve --workers N --durability mode`).',
    `- ${describePinning(results, opts.pin).replace(/^./, (c) => c.toUpperCase())}.`,
    '',
    markdownTable(results),
    '',
  ];
  if (results.length > 0) {
    const runs = results.map(
      (r) => `${r.workers} worker${r.workers === 1 ? '' : 's'}, ${r.durability}: ${describeSessions(r)}`,
    );
    lines.push(`Sessions per worker process (WELCOME's node): ${runs.join('; ')}.`, '');
  }
  for (const note of resultNotes(results)) lines.push(`${note}`, '');
  for (const f of input.failures) lines.push(`Failed run — ${f.split('\n')[0]}`, '');
  for (const e of input.extra ?? []) lines.push(e, '');
  return lines.join('\n');
}

/**
 * Writes a benchmark's chart (to `svg`) and its section of docs/BENCHMARKS.md (to `write`), each when
 * asked for; the section gets the chart's path relative to the docs file. Returns the exit code: 0, or 1
 * after printing why writing failed.
 */
export function writeResults(
  name: string,
  to: { write: string | null; svg: string | null },
  chart: () => string,
  sectionOf: (chartLink: string | null) => string,
): number {
  try {
    let link: string | null = null;
    if (to.svg !== null) {
      writeFileSync(to.svg, chart());
      process.stderr.write(`wrote ${to.svg}\n`);
      if (to.write !== null) link = path.relative(path.dirname(to.write), to.svg).split(path.sep).join('/');
    }
    if (to.write !== null) {
      writeSection(to.write, name, sectionOf(link));
      process.stderr.write(`wrote the "${name}" section of ${to.write}\n`);
    }
    return 0;
  } catch (err) {
    process.stderr.write(`writing the results: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
