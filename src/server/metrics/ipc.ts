/**
 * The metrics messages between a cluster's primary and its workers (they share the IPC channel with the
 * primary's orders, src/cluster/messages.ts). A scrape reaches one worker; the primary gathers every
 * worker's registry and sends that worker the whole cluster's text.
 */
import type { Registry } from 'prom-client';

/** What Registry.getMetricsAsJSON() gives, as it crosses the IPC channel (JSON). */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

export type MetricsToWorker =
  /** Asks for this worker's registry, for gathering `id`. */
  | { type: 'metrics-collect'; id: number }
  /** The whole cluster's metrics in the Prometheus text format, answering this worker's scrape `id`. */
  | { type: 'metrics-text'; id: number; text: string };

export type MetricsToPrimary =
  /** GET /metrics reached this worker: it asks for every worker's metrics. */
  | { type: 'metrics-scrape'; id: number }
  /** This worker's registry for gathering `id`. */
  | { type: 'metrics-report'; id: number; metrics: MetricsJson };
