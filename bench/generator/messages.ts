/** The IPC messages between `bench connections` (the parent) and its generator processes. */

/** One source address and the slice of local ports this generator may bind on it. */
export interface SourceSlice {
  address: string;
  /** First port of the slice. */
  portLow: number;
  /** Last port of the slice (inclusive). */
  portHigh: number;
}

export interface GeneratorConfig {
  /** Target of every connection (a loopback IPv4 address). */
  host: string;
  port: number;
  /** Global index of this generator's first client: its users are bench-<firstIndex> … */
  firstIndex: number;
  count: number;
  /** Client i (global index) binds sources[i % sources.length]. */
  sources: SourceSlice[];
  /** Connects per second this generator may start; 0 = no limit. */
  rate: number;
  /** Most connections in progress (connect → WELCOME) at once, so a storm does not overflow the backlog. */
  concurrency: number;
  /** PING every heartbeatMs of WELCOME; false = hold silently. */
  heartbeatPing: boolean;
  /** HS256 secret for the HELLO tokens; '' = open mode (empty token). */
  tokenSecret: string;
  /** Lifetime of the tokens, ms. */
  tokenTtlMs: number;
  /** Time limit of one TCP connect, ms (then ETIMEDOUT). */
  connectTimeoutMs: number;
  /** Time limit from connect to WELCOME, ms (then NO_WELCOME). */
  welcomeTimeoutMs: number;
}

/** Counters of one generator. Every client ends its connect phase in exactly one of held or failed. */
export interface GeneratorStats {
  /** Clients whose connect has started (retries on another port not counted again). */
  started: number;
  /** Connects in progress (started, neither WELCOMEd nor failed). */
  connecting: number;
  /** Clients that received WELCOME. */
  welcomed: number;
  /** WELCOMEd and still open. */
  open: number;
  /** Clients that never got a WELCOME, by reason: an ERROR name (SERVER_FULL) or errno (ECONNREFUSED). */
  failed: number;
  failedByError: Record<string, number>;
  /** WELCOMEd connections that the server closed (or that broke) before the end, by reason. */
  dropped: number;
  droppedByError: Record<string, number>;
  /** Every client has been WELCOMEd or has failed. */
  connectDone: boolean;
  /** Date.now() when the last client of the connect phase was resolved (0 before). */
  connectDoneAt: number;
  /** Ports given up after EADDRINUSE / EADDRNOTAVAIL, each retried on another port. */
  portRetries: number;
}

export type ParentMessage =
  | { type: 'start'; config: GeneratorConfig }
  /** The connect phase's time limit passed: start no more, fail those in progress. */
  | { type: 'stop-connecting' }
  /** The hold is over: report how many are open, close them all, report, exit. */
  | { type: 'close' };

export type ChildMessage =
  | { type: 'ready'; pid: number }
  | { type: 'progress'; stats: GeneratorStats }
  | {
      type: 'done';
      /** Open connections when the close order arrived (the held figure at the end of the hold). */
      openAtClose: number;
      stats: GeneratorStats;
      /** CPU time of this generator process, s. */
      cpuSeconds: number;
    }
  | { type: 'fatal'; message: string };
