/**
 * The InboxStore interface: everything the server keeps durably about users' inboxes.
 * Sessions never touch a store directly; the router does. Every backend (SQLite now, Redis later)
 * passes the same conformance suite (test/store/conformance.ts).
 *
 * All methods are async so that networked backends fit; a backend batches the calls made during
 * one event-loop tick into one commit, and a promise resolves only once its write is durable.
 */

/** One message as stored in one user's inbox. */
export interface StoredMessage {
  /** Position in the owner's inbox: 1, 2, 3, … gap-free, never reused. */
  seq: number;
  /** Server time in ms since the epoch, the same for every copy of a message. */
  timestamp: number;
  from: string;
  fromDevice: string;
  clientMsgId: number;
  /** The address as sent: the peer's user id for a direct message, `#group` for a group one. */
  to: string;
  payload: Uint8Array;
}

export interface AppendRequest {
  /** The user whose inbox receives this copy. */
  inbox: string;
  from: string;
  fromDevice: string;
  clientMsgId: number;
  to: string;
  payload: Uint8Array;
  /** Timestamp to store if this copy is new; a duplicate keeps its original. */
  timestamp: number;
}

export type AppendResult =
  /** Stored now with this seq. */
  | { status: 'stored'; seq: number; timestamp: number }
  /** Already stored (same inbox, from, fromDevice, clientMsgId): nothing written. */
  | { status: 'duplicate'; seq: number; timestamp: number }
  /** The inbox is at its message or byte cap: nothing written. */
  | { status: 'full' };

/** What a RECEIPT needs of a message: who sent it from which device, and its id there. */
export interface ReceiptSource {
  seq: number;
  from: string;
  fromDevice: string;
  clientMsgId: number;
}

export interface DeviceState {
  /** Highest seq stored in the user's inbox so far (0 for a new inbox). */
  lastSeq: number;
  /** Highest seq this device has acknowledged (0 for a new device). */
  ackedSeq: number;
}

export interface InboxCaps {
  maxMessages: number;
  maxBytes: number;
  retentionMs: number;
}

export interface InboxStore {
  /**
   * True when every append made during one tick is answered at the same moment (after that tick's
   * commit), as the SQLite store does: callers may then gather appends into fewer calls at no cost in
   * latency. False or absent when calls are answered as their own writes return (Redis: per user), where
   * a call gathering many inboxes would wait for the slowest.
   */
  readonly settlesPerTick?: boolean;
  /**
   * Appends copies, each deduplicated in its own inbox by (from, fromDevice, clientMsgId).
   * Requests to one inbox get ascending seqs in array order, and calls made in order are stored in
   * order. Resolves once every stored copy is durable (per the configured durability).
   */
  append(requests: readonly AppendRequest[]): Promise<AppendResult[]>;
  /** Registers a device as seen at `now` (a completed HELLO) and returns its cursor and the inbox head. */
  openDevice(user: string, device: string, now: number): Promise<DeviceState>;
  /** Messages with seq > afterSeq in seq order, at most `limit`. Purged messages are skipped. */
  read(user: string, afterSeq: number, limit: number): Promise<StoredMessage[]>;
  /**
   * The direct messages addressed to `user` by others (not its own copies of what it sent, not group
   * messages, not notes to itself) with afterSeq < seq ≤ upToSeq, in seq order, at most `limit`: what an
   * ACK over that range confirms to their senders (RECEIPT). Purged messages are skipped.
   */
  receiptSources(user: string, afterSeq: number, upToSeq: number, limit: number): Promise<ReceiptSource[]>;
  /**
   * Moves the device's cursor forward to `seq` (never back). The server never acks above the inbox's
   * lastSeq (a session refuses an ACK above what it delivered); what a store does with such a cursor at
   * its cap (whether it counts seqs appended in the same tick) is its own.
   */
  ack(user: string, device: string, seq: number): Promise<void>;
  /** Highest seq stored for the user (0 when none). */
  lastSeq(user: string): Promise<number>;
  /**
   * One bounded step of the retention sweep at time `now`: removes at most `maxMessages` messages that
   * are older than the retention period or acknowledged by every device seen within it. Returns how
   * many it removed (0 = nothing left to do now). A sweep asks with one `now` for all its steps, and a
   * store may go on from where its last step at that `now` stopped.
   */
  purge(now: number, maxMessages: number): Promise<number>;
  /**
   * Group membership (PROTOCOL.md section 6), kept with the group's own hash (its `#name`): adds `user`
   * to `group`, creating the group; idempotent. Resolves once durable, in order with the other writes.
   */
  join(group: string, user: string): Promise<void>;
  /** Removes `user` from `group`; idempotent. A group whose last member leaves no longer exists. */
  leave(group: string, user: string): Promise<void>;
  /** The members of `group` in ascending order ([] when the group does not exist). */
  members(group: string): Promise<string[]>;
  /** Commits what is pending and releases the engine. */
  close(): Promise<void>;
  /**
   * A cheap round trip to the engine (GET /readyz); rejects when it cannot answer. A backend without it
   * counts as reachable.
   */
  ping?(): Promise<void>;
}

/**
 * Told about every per-tick commit a backend makes (the writes queued in one loop tick): how long it
 * took, in seconds, and how many operations it carried. For the metrics: the SQLite and Redis stores
 * take one in their `onCommit` field.
 */
export type CommitObserver = (seconds: number, ops: number) => void;

/**
 * What "stored durably" promises (PROTOCOL.md section 5): `normal` survives a crash of any server
 * process; `full` also a power loss (SQLite: fsync per commit; Redis: appendfsync always, checked).
 */
export type Durability = 'normal' | 'full';

/** Why an append request is unusable (a programming error: rejected with TypeError), or null. */
export function badAppend(r: AppendRequest | undefined): string | null {
  if (r === null || typeof r !== 'object') return 'append request is not an object';
  if (typeof r.inbox !== 'string') return 'inbox must be a string';
  if (typeof r.from !== 'string') return 'from must be a string';
  if (typeof r.fromDevice !== 'string') return 'fromDevice must be a string';
  if (typeof r.to !== 'string') return 'to must be a string';
  if (!Number.isSafeInteger(r.clientMsgId)) return 'clientMsgId must be a safe integer';
  if (!Number.isSafeInteger(r.timestamp)) return 'timestamp must be an integer';
  if (!(r.payload instanceof Uint8Array)) return 'payload must be a Uint8Array';
  return null;
}

/**
 * Why the arguments of the other calls are unusable (a programming error: rejected with TypeError), or
 * null: the checks every backend makes, with the same messages.
 */
export const badCall = {
  openDevice: (user: unknown, device: unknown, now: unknown): string | null =>
    typeof user !== 'string' || typeof device !== 'string' || !Number.isFinite(now)
      ? 'openDevice(user: string, device: string, now: number)'
      : null,
  ack: (user: unknown, device: unknown, seq: unknown): string | null =>
    typeof user !== 'string' || typeof device !== 'string' || !Number.isSafeInteger(seq)
      ? 'ack(user: string, device: string, seq: integer)'
      : null,
  read: (user: unknown, afterSeq: unknown, limit: number): string | null =>
    typeof user !== 'string' || !Number.isFinite(afterSeq) || !(limit >= 0)
      ? 'read(user: string, afterSeq: number, limit: number)'
      : null,
  lastSeq: (user: unknown): string | null => (typeof user !== 'string' ? 'lastSeq(user: string)' : null),
  members: (group: unknown): string | null => (typeof group !== 'string' ? 'members(group: string)' : null),
  membership: (kind: 'join' | 'leave', group: unknown, user: unknown): string | null =>
    typeof group !== 'string' || typeof user !== 'string' ? `${kind}(group: string, user: string)` : null,
  purge: (now: unknown): string | null =>
    !Number.isFinite(now) ? 'purge(now: number, maxMessages: number)' : null,
};

/** Raised by a backend that cannot reach its engine: the session answers STORE_UNAVAILABLE. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/** A call on a store that has been closed. */
export function closedError(): StoreUnavailableError {
  return new StoreUnavailableError('the store is closed');
}

/** An engine's failure as StoreUnavailableError, its message prefixed with the backend (`sqlite store`). */
export function unavailableError(backend: string, err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new StoreUnavailableError(`${backend}: ${message}`, { cause: err });
}
