/** Progress lines on stderr and number formatting, shared by the benchmarks. */

/** One progress line on stderr: redrawn in place on a terminal, else one line each. */
export function progress(line: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}`);
  else process.stderr.write(`${line}\n`);
}

/** Ends a redrawn progress line (a newline on a terminal; nothing otherwise). */
export function endProgress(): void {
  if (process.stderr.isTTY) process.stderr.write('\n');
}

/**
 * A progress line updated often: on a terminal every update redraws it; otherwise (a log, a pipe)
 * at most one line every `everyMs`, so logs stay short.
 */
export class ThrottledProgress {
  private lastPrinted = 0;
  private drawn = false;

  constructor(private readonly everyMs = 5000) {}

  update(line: string, force = false): void {
    if (process.stderr.isTTY) {
      progress(line);
      this.drawn = true;
      return;
    }
    const now = Date.now();
    if (!force && now - this.lastPrinted < this.everyMs) return;
    this.lastPrinted = now;
    progress(line);
  }

  end(): void {
    if (this.drawn) endProgress();
    this.drawn = false;
  }
}

export function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** 12,345 */
export function int(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Bytes with a binary unit: 512 B, 5.2 KiB, 1.50 GiB. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const text = u === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 2 : 1);
  return `${n < 0 ? '−' : ''}${text} ${units[u]}`;
}

/** An interval that cuts `seconds` into at most 25 buckets: 1, 2 or 5 × a power of ten, ≥ 1 ms. */
export function bucketSeconds(seconds: number): number {
  for (let pow = -3; pow <= 3; pow++) {
    for (const m of [1, 2, 5]) {
      const s = m * 10 ** pow;
      if (seconds / s <= 25) return +s.toFixed(6);
    }
  }
  return 1000;
}

/** Runs a benchmark script's main: its result is the exit code; a throw is printed and exits 1. */
export function runMain(main: () => Promise<number>): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

/**
 * Runs a benchmark's configurations one after another. A run that throws is recorded in `failures` as
 * "<what>: <why>" and the next one runs; each outcome gets a line on stderr after `tag`.
 */
export async function runEach<C, R>(
  configs: readonly C[],
  describe: { tag: (c: C) => string; what: (c: C) => string; summary: (r: R) => string },
  run: (c: C) => Promise<R>,
): Promise<{ results: R[]; failures: string[] }> {
  const results: R[] = [];
  const failures: string[] = [];
  for (const c of configs) {
    try {
      const r = await run(c);
      results.push(r);
      process.stderr.write(`${describe.tag(c)} ${describe.summary(r)}\n`);
    } catch (err) {
      endProgress();
      const message = err instanceof Error ? err.message : String(err);
      failures.push(`${describe.what(c)}: ${message}`);
      process.stderr.write(`${describe.tag(c)} failed: ${message}\n`);
    }
  }
  return { results, failures };
}

/** A text table whose first column is a label (left-aligned) and the others figures (right-aligned). */
export function labelledTextTable(columns: readonly string[], rows: string[][]): string {
  const widths = columns.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (c: readonly string[]): string =>
    c.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  return [line(columns), ...rows.map(line)].join('\n');
}

/** The same as a Markdown table. */
export function labelledMarkdownTable(columns: readonly string[], rows: string[][]): string {
  return [
    `| ${columns.join(' | ')} |`,
    `|${columns.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/**
 * A scenario's end-of-run summary: its title, then one `name  value` line per row (names padded to one
 * width), then the warnings and any further notes (e.g. `error: …`), and a closing blank line.
 */
export function summaryText(
  title: string,
  rows: readonly (readonly [string, string])[],
  warnings: readonly string[],
  notes: readonly string[] = [],
): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return [
    title,
    ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`),
    ...warnings.map((w) => `  warning: ${w}`),
    ...notes,
    '',
  ].join('\n');
}
