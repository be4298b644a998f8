/**
 * The primary's side of GET /metrics: asks every live worker for its registry, waits at most
 * GATHER_TIMEOUT_MS (a worker that is dead, restarting or stuck is left out, and the answer says how many
 * reported), and merges them with prom-client's AggregatorRegistry.aggregate. Every worker's series keep
 * their `worker` label; each switchboard_ series also appears once more without it, the cluster's total
 * (summed, or the worst worker's for the event-loop delay: each metric's `aggregator` decides).
 *
 * Our own messages rather than AggregatorRegistry.clusterMetrics(): that one fails the whole scrape
 * when one worker does not answer within 5 s, and its listener in the primary throws on a response it
 * did not ask for.
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import type { MetricsJson, MetricsToPrimary, MetricsToWorker } from './ipc.js';

/** How long the primary waits for the workers' registries. */
const GATHER_TIMEOUT_MS = 2_000;

interface Gathering {
  reports: MetricsJson[];
  /** Workers asked and not answered yet. */
  pending: Set<Worker>;
  finish: () => void;
}

export class MetricsGatherer {
  /** The primary's own series (no `worker` label). */
  private readonly registry = new Registry();
  private readonly reporting: Gauge;
  private readonly restarts: Counter;
  private readonly gatherings = new Map<number, Gathering>();
  private nextId = 1;

  /** `workers`: the worker slots configured; `live`: the worker processes now connected. */
  constructor(
    workers: number,
    private readonly live: () => Worker[],
  ) {
    const registers = [this.registry];
    new Gauge({
      name: 'switchboard_workers',
      help: 'Worker processes configured (--workers)',
      registers,
    }).set(workers);
    this.reporting = new Gauge({
      name: 'switchboard_workers_reporting',
      help: 'Workers whose metrics are in this answer (fewer than switchboard_workers: some did not answer)',
      registers,
    });
    this.restarts = new Counter({
      name: 'switchboard_worker_restarts_total',
      help: 'Workers that died unplanned and were started again',
      registers,
    });
  }

  workerRestarted(): void {
    this.restarts.inc();
  }

  /** Handles a worker's metrics message; false for any other message. */
  onMessage(from: Worker, m: { type: string }): boolean {
    const message = m as MetricsToPrimary;
    if (message.type === 'metrics-scrape') {
      void this.gather().then((text) => send(from, { type: 'metrics-text', id: message.id, text }));
      return true;
    }
    if (message.type === 'metrics-report') {
      const gathering = this.gatherings.get(message.id);
      if (gathering?.pending.delete(from)) {
        gathering.reports.push(message.metrics);
        if (gathering.pending.size === 0) gathering.finish();
      }
      return true;
    }
    return false;
  }

  /** Every live worker's metrics and the primary's own, as Prometheus text. */
  private async gather(): Promise<string> {
    const id = this.nextId++;
    const workers = this.live();
    const reports = await new Promise<MetricsJson[]>((resolve) => {
      const gathering: Gathering = {
        reports: [],
        pending: new Set(workers),
        finish: () => {
          clearTimeout(timer);
          this.gatherings.delete(id);
          resolve(gathering.reports);
        },
      };
      const timer = setTimeout(gathering.finish, GATHER_TIMEOUT_MS);
      this.gatherings.set(id, gathering);
      if (workers.length === 0) gathering.finish();
      for (const w of workers) send(w, { type: 'metrics-collect', id });
    });
    this.reporting.set(reports.length);
    const merged = AggregatorRegistry.aggregate([
      ...reports,
      ...reports.map(clusterTotals),
      await this.registry.getMetricsAsJSON(),
    ]);
    return merged.metrics();
  }
}

/** A worker's switchboard_ series without their `worker` label: aggregated, they make the cluster's totals. */
function clusterTotals(report: MetricsJson): MetricsJson {
  return report
    .filter((metric) => metric.name.startsWith('switchboard_'))
    .map((metric) => ({
      ...metric,
      values: metric.values.map((v) => {
        const { worker: _worker, ...labels } = v.labels;
        return { ...v, labels };
      }),
    }));
}

function send(worker: Worker, message: MetricsToWorker): void {
  if (worker.isConnected()) worker.send(message);
}
