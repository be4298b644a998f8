/** Parsing of the benchmarks' command-line flags. */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { parseDuration } from '../../src/util/duration.js';

/** An integer flag value ≥ `min`; throws with the flag's name (as given, e.g. `--count`) otherwise. */
export function intFlag(text: string, flag: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} must be an integer ≥ ${min}, not "${text}"`);
  return n;
}

/** The shortest measured window a benchmark takes (`--duration`). */
export const MIN_WINDOW_MS = 100;

/** `--duration`: the measured window, at least MIN_WINDOW_MS; `parse` reads the text (default parseDuration). */
export function windowFlag(text: string, parse: (text: string) => number = parseDuration): number {
  const ms = parse(text);
  if (ms < MIN_WINDOW_MS) throw new Error(`--duration must be at least ${MIN_WINDOW_MS}ms`);
  return ms;
}

/** The flags every benchmark script takes besides its own: `--json`, `--write <file.md>`, `-h`/`--help`. */
const SCRIPT_FLAGS = {
  json: { type: 'boolean', default: false },
  write: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/**
 * A benchmark script's flags (strict: an unknown flag or a positional argument throws): its own
 * `options` and SCRIPT_FLAGS. `--help` prints `usage` and exits 0.
 */
export function scriptFlags<const O extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  usage: string,
  options: O,
) {
  const { values } = parseArgs<{ args: string[]; options: O & typeof SCRIPT_FLAGS; strict: true }>({
    args: argv,
    options: { ...options, ...SCRIPT_FLAGS },
    strict: true,
  });
  if ((values as { help?: boolean }).help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  return values;
}
