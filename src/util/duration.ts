/** Durations on the command line: a number of ms, or a number with a unit (`500ms`, `5s`, `2m`, `1h`, `7d`). */
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!m) throw new Error(`not a duration: "${text}" (use ms or a unit: 500ms, 5s, 2m, 1h, 7d)`);
  return Math.round(Number(m[1]) * UNITS[m[2] ?? 'ms']!);
}

/** Byte sizes: a number of bytes, or with a unit (`64KiB`, `1MiB`, `64k`, `1m`). */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$/i.exec(text);
  if (!m) throw new Error(`not a size: "${text}" (use bytes or a unit: 64KiB, 1MiB)`);
  const unit = (m[2] ?? 'b').toLowerCase()[0]!;
  const factor = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Math.round(Number(m[1]) * factor);
}
