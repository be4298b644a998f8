/** Parsing of the benchmarks' command-line flags. */
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
