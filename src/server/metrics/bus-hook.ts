/**
 * Where the worker's bus (src/cluster/bus.ts) reports its batches for the metrics. A slot per process
 * rather than a constructor argument: a worker runs exactly one bus, made by the worker beside the
 * server, and the server's metrics never see it. No prom-client here: the bus stays free of it.
 */
export interface BusObserver {
  /** One per-tick write to a peer carried `messages` messages. */
  batchWritten(messages: number): void;
  /** A batch arrived `lagSeconds` after its first message was queued at the peer. */
  batchArrived(lagSeconds: number): void;
}

export const busMetricsHook: { observer: BusObserver | null } = { observer: null };

/**
 * A clock every process of the machine shares (CLOCK_MONOTONIC), in ms with sub-µs precision: a batch's
 * lag is measured across two worker processes.
 */
export function machineClockMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
