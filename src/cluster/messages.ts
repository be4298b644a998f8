/**
 * The primary ↔ worker messages over the cluster IPC channel. Each side ignores a type it does not
 * handle, so the metrics messages (src/server/metrics/ipc.ts) share the channel with the orders.
 */
import type { MetricsToPrimary, MetricsToWorker } from '../server/metrics/ipc.js';

export type PrimaryMessage = { type: 'listen' } | { type: 'drain' } | { type: 'exit' } | MetricsToWorker;

export type WorkerMessage =
  /** Shards open and bus listening: ready to be told to listen. */
  | { type: 'prepared' }
  | { type: 'listening'; port: number; httpPort: number }
  /** Every session closed after SHUTTING_DOWN. */
  | { type: 'drained' }
  | MetricsToPrimary;
