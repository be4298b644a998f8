/**
 * A histogram cheap enough to observe every loop tick (store commits, bus batches): a typed array of
 * bucket counts and a sum, found with a short scan, where prom-client's Histogram hashes a label set per
 * observation. prom-client reads it only when scraped, as a metric of the registry.
 */
import type { Metric, Registry } from 'prom-client';

/** One series as prom-client's metrics give it from get(). */
interface Series {
  labels: { le?: number | string };
  value: number;
  metricName: string;
}

export class BucketHistogram {
  /** Observations per bucket: counts[i] those ≤ bounds[i] and above the bound before; the last, +Inf. */
  private readonly counts: Float64Array;
  private sum = 0;

  constructor(
    registry: Registry,
    private readonly name: string,
    help: string,
    /** Upper bounds, ascending. */
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
    // The registry asks a metric for get() (and reset() on resetMetrics): what prom-client's own give.
    const metric = {
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      get: async () => ({ name, help, type: 'histogram', aggregator: 'sum', values: this.values() }),
      reset: () => {},
    };
    registry.registerMetric(metric as unknown as Metric);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
  }

  /** The series prom-client's Histogram.get() gives: cumulative buckets, then _sum and _count. */
  private values(): Series[] {
    const bucket = `${this.name}_bucket`;
    let total = 0;
    const out: Series[] = this.bounds.map((le, i) => {
      total += this.counts[i]!;
      return { labels: { le }, value: total, metricName: bucket };
    });
    total += this.counts[this.bounds.length]!;
    out.push({ labels: { le: '+Inf' }, value: total, metricName: bucket });
    return [
      ...out,
      { labels: {}, value: this.sum, metricName: `${this.name}_sum` },
      { labels: {}, value: total, metricName: `${this.name}_count` },
    ];
  }
}
