/**
 * Latency figures from an HdrHistogram of microseconds (docs/BENCHMARKS.md, "Latency"): the summary
 * percentiles, the percentile distribution for the reports' curve (log-scaled x axis from 0 to
 * 99.999 %), and the histogram as text so generator processes can send theirs to the parent.
 */
import hdr from 'hdr-histogram-js';
import type { LineSeries } from './chart.js';

export type Histogram = hdr.Histogram;

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** µs resolution, 3 significant digits: the conventions' histogram. */
export function newHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, numberOfSignificantValueDigits: 3 });
}

const ms = (us: number): number => Math.round(us) / 1000;

/** p50 / p90 / p99 / p99.9 / max in ms (µs precision); zeros for an empty histogram. */
export function latencySummary(h: Histogram): LatencySummary {
  if (h.totalCount === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
  // A percentile is the top of its bucket, which can pass the exact maximum by one rounding step.
  const max = ms(h.maxValue);
  const at = (p: number): number => Math.min(max, ms(h.getValueAtPercentile(p)));
  return { p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max };
}

/** Percentile → x position on the log scale: −log10(1 − p/100) (0 % → 0, 90 % → 1, 99.999 % → 5). */
export function percentileToX(percentile: number): number {
  return -Math.log10(Math.max(1e-9, 1 - percentile / 100));
}

/**
 * The percentile distribution as [percentile, ms] points, evenly spaced on the log scale from 0 % to
 * 99.999 % (`perDecade` points per "nine") plus the usual ones (50, 75, 90, 99, 99.9 …), then the
 * maximum as 100 %. Empty for an empty histogram.
 */
export function percentileCurve(h: Histogram, perDecade = 20): [number, number][] {
  if (h.totalCount === 0) return [];
  const percentiles = new Set([50, 75, 90, 99, 99.9, 99.99, 99.999]);
  for (let i = 0; i <= 5 * perDecade; i++) {
    percentiles.add(Math.round(100 * (1 - 10 ** (-i / perDecade)) * 10_000) / 10_000);
  }
  const points: [number, number][] = [...percentiles]
    .sort((a, b) => a - b)
    .map((p) => [p, ms(h.getValueAtPercentile(p))]);
  points.push([100, ms(h.maxValue)]);
  return points;
}

/** The histogram as compressed base64 (HdrHistogram's interchange form). */
export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

/** Adds an encoded histogram (from `encodeHistogram`) into `into`. */
export function addEncoded(into: Histogram, encoded: string): void {
  const h = hdr.decodeFromCompressedBase64(encoded);
  into.add(h);
  h.destroy();
}

/**
 * Latency over time as chart lines (p50, p99, max): one [x, summary] per interval; an interval without
 * deliveries (null) has no point.
 */
export function latencyLines(byInterval: readonly [x: number, LatencySummary | null][]): LineSeries[] {
  return (['p50', 'p99', 'max'] as const).map((k) => ({
    name: k,
    points: byInterval.flatMap(([x, l]): [number, number][] => (l === null ? [] : [[x, l[k]]])),
  }));
}
