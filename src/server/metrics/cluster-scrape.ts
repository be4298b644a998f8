/**
 * GET /metrics in a cluster worker. Connections reach the workers round-robin, so a scrape may reach
 * any of them: the worker asks the primary, which gathers every worker's registry (gather.ts) and
 * answers with the whole cluster's text. The same listener answers the primary's requests for this
 * worker's own registry.
 */
import type { Registry } from 'prom-client';
import type { MetricsToPrimary, MetricsToWorker } from './ipc.js';

/**
 * How long a scrape waits for the primary before answering with this worker's metrics alone: longer than
 * the primary waits for the workers (GATHER_TIMEOUT_MS), shorter than Prometheus's default scrape timeout.
 */
const PRIMARY_TIMEOUT_MS = 4_000;

export class ClusterScrape {
  private nextId = 1;
  private readonly waiting = new Map<number, (text: string) => void>();

  constructor(private readonly registry: Registry) {
    process.on('message', this.onMessage);
  }

  /** The whole cluster's metrics; this worker's alone when the primary does not answer in time. */
  text(): Promise<string> {
    if (!process.connected) return this.registry.metrics();
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve(this.registry.metrics());
      }, PRIMARY_TIMEOUT_MS);
      timer.unref();
      this.waiting.set(id, (text) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(text);
      });
      tell({ type: 'metrics-scrape', id });
    });
  }

  close(): void {
    process.off('message', this.onMessage);
  }

  private readonly onMessage = (m: MetricsToWorker | { type?: unknown }): void => {
    if (m.type === 'metrics-collect') {
      const { id } = m as Extract<MetricsToWorker, { type: 'metrics-collect' }>;
      void this.registry.getMetricsAsJSON().then((metrics) => tell({ type: 'metrics-report', id, metrics }));
    } else if (m.type === 'metrics-text') {
      const { id, text } = m as Extract<MetricsToWorker, { type: 'metrics-text' }>;
      this.waiting.get(id)?.(text);
    }
  };
}

function tell(message: MetricsToPrimary): void {
  if (process.connected) process.send?.(message);
}
