/** The primary ↔ worker messages over the cluster IPC channel. */
export type PrimaryMessage = { type: 'listen' } | { type: 'drain' } | { type: 'exit' };

export type WorkerMessage =
  /** Shards open and bus listening: ready to be told to listen. */
  | { type: 'prepared' }
  | { type: 'listening'; port: number; httpPort: number }
  /** Every session closed after SHUTTING_DOWN. */
  | { type: 'drained' };
