/** Parsing of the benchmarks' command-line flags. */

/** An integer flag value ≥ `min`; throws with the flag's name (as given, e.g. `--count`) otherwise. */
export function intFlag(text: string, flag: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} must be an integer ≥ ${min}, not "${text}"`);
  return n;
}
