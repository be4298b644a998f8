/**
 * Every limit and default of the server in one place, each with its unit and why
 * (PROTOCOL.md section 7 "Defaults"). `serve` flags override these; nothing else hard-codes them.
 */

export interface Limits {
  /** Largest SEND payload, bytes. Larger → PAYLOAD_TOO_LARGE (request-level). */
  maxPayload: number;
  /** Largest frame after HELLO, bytes: maxPayload + 1 KiB of headers (section 2.2). */
  maxFrame: number;
  /** Largest first frame (HELLO), bytes: a HELLO is small; bigger is an attack or a confused client. */
  maxHelloFrame: number;
  /** From accept to a complete HELLO, ms: the defence against clients that connect and never send. */
  handshakeTimeoutMs: number;
  /** Heartbeat a client is told to keep, ms; the server closes after 2× without a complete frame. */
  heartbeatMs: number;
  /** Most unacknowledged DELIVERs outstanding on one session. */
  window: number;
  /** Grace after a fatal ERROR before the socket is destroyed, ms (section 4.6). */
  closeGraceMs: number;
  /** Spread of the reconnect delay suggested with SHUTTING_DOWN / SERVER_FULL, ms (section 7). */
  reconnectSpreadMs: number;
  /**
   * Connections this process holds at most; beyond it SERVER_FULL. 0 = derived from the fd limit;
   * negative = none (a worker whose share of a small global cap is 0).
   */
  maxConnections: number;
  /** Outbound bytes buffered on one socket before the server stops reading from it. */
  writeHighWaterBytes: number;
  /** SENDs of one session awaiting the store before the server stops reading from it. */
  maxPendingSends: number;
  /** Messages read from the store per replay page. */
  replayPageSize: number;
  /** Users one session may WATCH at once; a WATCH past it is ignored for the users over it. */
  maxWatchedUsers: number;
  /** Per-session SEND rate limit, messages per second; 0 = none (the default). */
  rateLimitPerSecond: number;
  /** Inbox cap: messages (section 5, Retention). */
  inboxMaxMessages: number;
  /** Inbox cap: payload bytes. */
  inboxMaxBytes: number;
  /** Retention period, ms (7 days). */
  retentionMs: number;
  /** Listen backlog: the default 511 overflowed under a connect storm (1 s SYN retransmits). */
  listenBacklog: number;
  /** File descriptors kept free for the store, logs and listeners when deriving maxConnections. */
  reservedFds: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxPayload: 64 * KiB,
  maxFrame: 64 * KiB + KiB,
  maxHelloFrame: 4096,
  handshakeTimeoutMs: 5_000,
  heartbeatMs: 30_000,
  window: 1000,
  closeGraceMs: 1_000,
  reconnectSpreadMs: 10_000,
  maxConnections: 0,
  writeHighWaterBytes: 1 * MiB,
  maxPendingSends: 1024,
  replayPageSize: 256,
  maxWatchedUsers: 1000,
  rateLimitPerSecond: 0,
  inboxMaxMessages: 10_000,
  inboxMaxBytes: 64 * MiB,
  retentionMs: 7 * 24 * 3600 * 1000,
  listenBacklog: 4096,
  reservedFds: 512,
});

/** Limits with overrides; maxFrame follows maxPayload unless given. */
export function makeLimits(overrides: Partial<Limits> = {}): Limits {
  const limits = { ...DEFAULT_LIMITS, ...overrides };
  if (overrides.maxPayload !== undefined && overrides.maxFrame === undefined) {
    limits.maxFrame = limits.maxPayload + KiB;
  }
  return limits;
}
