/**
 * The embedded InboxStore: SQLite through better-sqlite3, one database file per shard
 * (`<dir>/shard-00.db` …), users mapped to shards by `shardOf` (shard.ts). A process opens the shards
 * it owns (its users' home shards); nothing is shared between shard files.
 *
 * Writes (append, ack, openDevice) are queued and committed together: one IMMEDIATE transaction per
 * shard per event-loop tick (on setImmediate), and a promise resolves only after its shard's COMMIT.
 * Every shard file is in WAL mode: `durability: 'normal'` runs `synchronous=NORMAL` (a commit is in the
 * OS's hands when COMMIT returns, so it survives kill -9 of the process, not a power cut), `'full'` runs
 * `synchronous=FULL` (one fsync of the WAL per commit batch, so it also survives power loss).
 *
 * Data format (schema version 7, in PRAGMA user_version; `meta` records the shard index and count):
 * - `inbox`: a row per user some of whose messages are gone — `purged_through`: every seq at or below it
 *   has been removed as acknowledged; `last_seq`: the highest seq of a message removed as expired. With
 *   the seqs of the rows, they give the highest seq ever assigned (seqs are never reused); that and each
 *   inbox's count and bytes (the caps) are held in memory (inbox-counters.ts), rebuilt on open.
 * - `message`: one row per stored copy, an append-only log in row-id order (`id`), payload last so that
 *   the other columns are read without touching its overflow pages. It has no index by (user, seq): that
 *   B-tree, ordered by user, made every append dirty a page of its own; each inbox's seq → id map of its
 *   live messages is held in memory instead (live-index.ts), rebuilt from the table on open. Dedupe uses
 *   the same rows (unique index on client_msg_id, sender, sender_device, user: led by the id, which grows
 *   with time, so inserts stay on its last pages): a message removed because every recent device
 *   acknowledged it stays as a *tombstone* until it is older than the retention period, when the row goes
 *   for good. A message can never outlive its retention, and its id only needs remembering that long, so
 *   one row serves both, and an append costs one insert instead of two. There is no index on `ts`: the
 *   sweep reads the expired rows from the head of the log (expiry-order.ts). The tombstones are the
 *   rows with seq ≤ `purged_through` (their payload NULLed only when large: TOMBSTONE_MIN_BYTES); the
 *   live messages are the rest.
 * - `device`: one row per (user, device) — `acked_seq` (the cursor), `last_seen` (last HELLO) and
 *   `ack_pending`, set when an ack may let the retention sweep remove messages (a partial index lists
 *   exactly those users, so the sweep never scans inboxes that have nothing to do).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { OncePerTurn } from '../util/once-per-turn.js';
import { ExpiryOrder, type LogRow } from './expiry-order.js';
import { InboxCounterTable } from './inbox-counters.js';
import {
  type AppendRequest,
  type AppendResult,
  badAppend,
  badCall,
  type CommitObserver,
  closedError,
  type DeviceState,
  type Durability,
  type InboxCaps,
  type InboxStore,
  type ReceiptSource,
  type StoredMessage,
  type StoreUnavailableError,
  unavailableError,
} from './inbox-store.js';
import { LiveIndex } from './live-index.js';
import { ReceiptSourceCache } from './receipt-cache.js';
import { DEFAULT_SHARD_COUNT, shardOf } from './shard.js';

export interface SqliteInboxStoreOptions {
  /** Directory of the shard files; created if missing. */
  dir: string;
  /** Shards of the data set, fixed when the files are created: default the count recorded there, else 16. */
  shardCount?: number;
  /** Which shard indexes this process owns and opens (default: all). */
  shards?: readonly number[];
  durability: Durability;
  caps: InboxCaps;
  /**
   * Extra per-connection pragmas applied after the defaults, e.g. `{ cache_size: -16000 }` or
   * `{ mmap_size: 268435456 }` (tuning and tests; names are plain identifiers).
   */
  pragmas?: Readonly<Record<string, string | number>>;
}

/** Version of the schema below, kept in PRAGMA user_version; a newer file is refused, not guessed at. */
export const SCHEMA_VERSION = 7;

/** The file name of shard `index`: shard-00.db, shard-01.db, … (three digits from shard 100 on). */
export function shardFileName(index: number): string {
  return `shard-${String(index).padStart(2, '0')}.db`;
}

const SCHEMA_V1 = `
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value ANY NOT NULL
) WITHOUT ROWID;

CREATE TABLE inbox (
  user TEXT PRIMARY KEY,
  last_seq INTEGER NOT NULL,
  count INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  purged_through INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE message (
  user TEXT NOT NULL,
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  sender TEXT NOT NULL,
  sender_device TEXT NOT NULL,
  client_msg_id INTEGER NOT NULL,
  addr TEXT NOT NULL,
  payload BLOB,
  PRIMARY KEY (user, seq)
);
CREATE UNIQUE INDEX message_dedupe ON message (user, sender, sender_device, client_msg_id);
CREATE INDEX message_ts ON message (ts);

CREATE TABLE device (
  user TEXT NOT NULL,
  device TEXT NOT NULL,
  acked_seq INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  ack_pending INTEGER NOT NULL,
  PRIMARY KEY (user, device)
) WITHOUT ROWID;
CREATE INDEX device_seen ON device (last_seen);
CREATE INDEX device_ack_pending ON device (user) WHERE ack_pending = 1;
`;

/** Version 2: group membership, in the shard of the group's name. */
const SCHEMA_V2 = `
CREATE TABLE member (
  grp TEXT NOT NULL,
  user TEXT NOT NULL,
  PRIMARY KEY (grp, user)
) WITHOUT ROWID;
`;

/**
 * Version 3: the dedupe index leads with client_msg_id instead of the inbox's user. Ids grow with time
 * (the SDK's are ms timestamps; counters grow too), so new entries land on the index's last pages,
 * where led by user every copy dirtied a page of its own somewhere in the index: each commit wrote
 * about one more WAL page per copy. Measured on a 1 000-user mix: the store's CPU per message −37 %.
 */
const SCHEMA_V3 = `
DROP INDEX message_dedupe;
CREATE UNIQUE INDEX message_dedupe ON message (client_msg_id, sender, sender_device, user);
`;

/**
 * Version 4: the message table becomes an append-only log in row-id order (`id INTEGER PRIMARY KEY`, an
 * alias of the row id that VACUUM keeps) with no (user, seq) key: each inbox's seq → row id map is held
 * in memory (live-index.ts). Rows are copied in (user, seq) order, so within an inbox, row ids grow with
 * seqs, as they do for every row appended later.
 */
const SCHEMA_V4 = `
CREATE TABLE message_v4 (
  id INTEGER PRIMARY KEY,
  user TEXT NOT NULL,
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  sender TEXT NOT NULL,
  sender_device TEXT NOT NULL,
  client_msg_id INTEGER NOT NULL,
  addr TEXT NOT NULL,
  payload BLOB
);
INSERT INTO message_v4 (user, seq, ts, sender, sender_device, client_msg_id, addr, payload)
  SELECT user, seq, ts, sender, sender_device, client_msg_id, addr, payload FROM message ORDER BY user, seq;
DROP TABLE message;
ALTER TABLE message_v4 RENAME TO message;
CREATE UNIQUE INDEX message_dedupe ON message (client_msg_id, sender, sender_device, user);
CREATE INDEX message_ts ON message (ts);
`;

/**
 * Version 5: the inbox row no longer holds the inbox's counters (count, bytes, the highest seq): they are
 * held in memory and rebuilt from the rows on open (inbox-counters.ts). `last_seq` stays as the highest
 * seq of the inbox's removed rows — version 4 kept it at the highest seq assigned, which is at least that.
 */
const SCHEMA_V5 = `
ALTER TABLE inbox DROP COLUMN count;
ALTER TABLE inbox DROP COLUMN bytes;
`;

/*
 * Version 6 changes no table: an acknowledged message's row keeps its payload unless that payload is
 * large enough to lie in overflow pages (TOMBSTONE_MIN_BYTES), so a row with a payload may be a tombstone
 * — those with seq ≤ their inbox's purged_through are. The version tells an older build, which took
 * every row with a payload for a waiting message, to refuse the file.
 */

/**
 * Version 7 drops the index on the message's timestamp: the retention sweep reads the expired rows from
 * the head of the log, in row-id order (expiry-order.ts). One B-tree insert less per stored copy: pinned,
 * 3.6 % less server CPU per message at saturation, 8 % less at 5 000 msg/s.
 */
const SCHEMA_V7 = `
DROP INDEX message_ts;
`;

/**
 * An acknowledged message's payload is set to NULL only from this size on: with 4 KiB pages a row
 * passes the 4 061 bytes a leaf page holds locally at about this payload and spills into overflow
 * pages, which the NULL returns to the file's free list for later appends to reuse. A smaller one lies
 * in its row's leaf page, whose freed bytes an append-only log never writes again, so NULLing it would
 * cost a page write for no space.
 */
export const TOMBSTONE_MIN_BYTES = 4000;

const SQL = {
  // The highest seq of an inbox's removed rows (inbox-counters.ts): one user's, and every user's on open.
  removedThrough: 'SELECT max(last_seq, purged_through) FROM inbox WHERE user = ?',
  allRemovedThrough: 'SELECT user, max(last_seq, purged_through) FROM inbox',
  insert: `INSERT INTO message (user, seq, ts, sender, sender_device, client_msg_id, addr, payload)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (client_msg_id, sender, sender_device, user) DO NOTHING`,
  original: `SELECT seq, ts FROM message
    WHERE client_msg_id = ? AND sender = ? AND sender_device = ? AND user = ?`,
  // Reads by row id: the live index (live-index.ts) gives each inbox's row ids in seq order. One point
  // lookup each: ≈ 1.2 µs per row, where a JSON array of ids (json_each) cost ≈ 11 µs per statement.
  readRow: `SELECT seq, ts AS timestamp, sender AS "from", sender_device AS fromDevice,
      client_msg_id AS clientMsgId, addr AS "to", payload
    FROM message WHERE id = ?`,
  // A replay of messages stored in a row (an offline inbox filling up) reads them as one span of the log.
  readSpan: `SELECT seq, ts AS timestamp, sender AS "from", sender_device AS fromDevice,
      client_msg_id AS clientMsgId, addr AS "to", payload
    FROM message WHERE id BETWEEN ? AND ? AND user = ? AND payload IS NOT NULL ORDER BY id`,
  receiptRow: 'SELECT seq, sender, sender_device, client_msg_id FROM message WHERE id = ?',
  // A receipt source is a direct message to the inbox's user from someone else (see liveId). Rows with
  // a payload at or below their inbox's purged_through are tombstones too (TOMBSTONE_MIN_BYTES): left
  // out here, in SQL (1 M rows, 90 % such tombstones: 0.32 s to open, against 0.85 s filtered in JS).
  // A user has an inbox row only once some of its messages are gone.
  liveRows: `SELECT user, seq, id, addr = user AND sender <> user, length(payload) FROM message
    WHERE payload IS NOT NULL
      AND seq > coalesce((SELECT purged_through FROM inbox WHERE inbox.user = message.user), 0)
    ORDER BY id`,
  openDevice: `INSERT INTO device (user, device, acked_seq, last_seen, ack_pending) VALUES (?, ?, 0, ?, 0)
    ON CONFLICT (user, device) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen),
      ack_pending = CASE WHEN acked_seq > 0 THEN 1 ELSE ack_pending END
    RETURNING acked_seq`,
  ack: `INSERT INTO device (user, device, acked_seq, last_seen, ack_pending) VALUES (?, ?, ?, 0, 1)
    ON CONFLICT (user, device) DO UPDATE SET acked_seq = excluded.acked_seq, ack_pending = 1
      WHERE excluded.acked_seq > acked_seq`,
  // Retention sweep.
  // The log in row-id order, for the retention sweep (expiry-order.ts): a run's rows, some at a time; on
  // open every timestamp, and the id of the i-th row where a run starts.
  logRange: `SELECT id, user, seq, ts, length(payload) AS size FROM message WHERE id > ? AND id < ?
    ORDER BY id LIMIT ?`,
  allTimestamps: 'SELECT ts FROM message ORDER BY id',
  idAt: 'SELECT id FROM message ORDER BY id LIMIT 1 OFFSET ?',
  deleteMessage: 'DELETE FROM message WHERE id = ?',
  inboxExpired: `INSERT INTO inbox (user, last_seq, purged_through) VALUES (?, ?, 0)
    ON CONFLICT (user) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)`,
  staleDevices: 'SELECT user, device FROM device WHERE last_seen < ? ORDER BY last_seen LIMIT ?',
  deleteDevice: 'DELETE FROM device WHERE user = ? AND device = ?',
  flagUser: 'UPDATE device SET ack_pending = 1 WHERE user = ? AND ack_pending = 0',
  pendingUsers: 'SELECT DISTINCT user FROM device WHERE ack_pending = 1 LIMIT ?',
  floor: 'SELECT min(acked_seq) FROM device WHERE user = ? AND last_seen >= ?',
  purgedThrough: 'SELECT purged_through FROM inbox WHERE user = ?',
  payloadSize: 'SELECT length(payload) FROM message WHERE id = ?',
  tombstone: 'UPDATE message SET payload = NULL WHERE id = ?',
  inboxPurged: `INSERT INTO inbox (user, last_seq, purged_through) VALUES (?, 0, ?)
    ON CONFLICT (user) DO UPDATE SET purged_through = max(purged_through, excluded.purged_through)`,
  clearPending: 'UPDATE device SET ack_pending = 0 WHERE user = ? AND ack_pending = 1',
  // Groups.
  join: 'INSERT INTO member (grp, user) VALUES (?, ?) ON CONFLICT DO NOTHING',
  leave: 'DELETE FROM member WHERE grp = ? AND user = ?',
  members: 'SELECT user FROM member WHERE grp = ? ORDER BY user',
  // Readiness: a read of the file, answered from the page cache.
  ping: 'SELECT count(*) FROM meta',
} as const;

/** One append() call: settled by the store's flush, in call order, once its shards have committed. */
interface AppendCall {
  results: AppendResult[];
  /** Why one of its shards' commits failed (the call is rejected with it), or null. */
  error: Error | null;
  resolve: (results: AppendResult[]) => void;
  reject: (err: Error) => void;
}

type Op =
  | { kind: 'append'; req: AppendRequest; call: AppendCall; index: number; result: AppendResult | null }
  | {
      kind: 'ack';
      user: string;
      device: string;
      seq: number;
      resolve: () => void;
      reject: (err: Error) => void;
    }
  | {
      kind: 'join' | 'leave';
      group: string;
      user: string;
      resolve: () => void;
      reject: (err: Error) => void;
    }
  | {
      kind: 'open';
      user: string;
      device: string;
      now: number;
      result: DeviceState | null;
      resolve: (state: DeviceState) => void;
      reject: (err: Error) => void;
    };

type Stmt = Database.Statement<unknown[], unknown>;
type Statements = { -readonly [K in keyof typeof SQL]: Stmt };

/**
 * A read whose rows lie within this many log rows of each other on average is one range scan instead of a
 * lookup per row: measured, 1.8 µs per row returned for a span of consecutive rows and 2.2 µs with 8 log
 * rows per row returned, against 2.3 µs per point lookup.
 */
const SPAN_READ_MAX_STRIDE = 8;

/** Row ids taken from the live index at a time by a lookup that filters them (receipt sources). */
const RANGE_CHUNK = 256;

/**
 * Receipt sources held in memory per shard (receipt-cache.ts): at 2 500 direct messages a second in one
 * shard (40 000 over 16), the last 3 s of them, for ≈ 0.6 MiB; an ACK later than that reads its rows.
 */
const RECEIPT_CACHE_ENTRIES = 8192;

/**
 * Changes to the live index made inside a transaction, applied only once it has committed (a rolled
 * back batch leaves the index as it was). Parallel arrays: no object per appended copy.
 */
class StagedChanges {
  readonly addUsers: string[] = [];
  readonly addSeqs: number[] = [];
  readonly addIds: number[] = [];
  readonly addTs: number[] = [];
  /** Receipt sources of appended direct messages, by row id (for the receipt cache). */
  readonly sourceIds: number[] = [];
  readonly sources: ReceiptSource[] = [];
  /** Acknowledged: each user's messages through a seq. */
  readonly purgedUsers: string[] = [];
  readonly purgedThrough: number[] = [];
  /** Expired: one message each. */
  readonly expiredUsers: string[] = [];
  readonly expiredSeqs: number[] = [];

  applyTo(index: LiveIndex, receipts: ReceiptSourceCache, expiry: ExpiryOrder): void {
    // Removals first: they concern committed seqs, below every seq this batch added.
    for (let i = 0; i < this.purgedUsers.length; i++)
      index.removeThrough(this.purgedUsers[i]!, this.purgedThrough[i]!);
    for (let i = 0; i < this.expiredUsers.length; i++)
      index.remove(this.expiredUsers[i]!, this.expiredSeqs[i]!);
    for (let i = 0; i < this.addUsers.length; i++) {
      index.add(this.addUsers[i]!, this.addSeqs[i]!, this.addIds[i]!);
      expiry.appended(Math.abs(this.addIds[i]!), this.addTs[i]!);
    }
    for (let i = 0; i < this.sourceIds.length; i++) receipts.add(this.sourceIds[i]!, this.sources[i]!);
    this.clear();
  }

  clear(): void {
    this.addUsers.length = 0;
    this.addSeqs.length = 0;
    this.addIds.length = 0;
    this.addTs.length = 0;
    this.sourceIds.length = 0;
    this.sources.length = 0;
    this.purgedUsers.length = 0;
    this.purgedThrough.length = 0;
    this.expiredUsers.length = 0;
    this.expiredSeqs.length = 0;
  }
}

/** A row the retention sweep may delete: `size` is null for a tombstone whose payload was dropped. */
interface ExpiringRow extends LogRow {
  user: string;
  seq: number;
  size: number | null;
}

/** One shard file: its connection, prepared statements and the ops queued for the next commit. */
class Shard {
  queue: Op[] = [];
  /** Each inbox's highest seq, count and bytes (inbox-counters.ts). */
  private readonly counters: InboxCounterTable;
  /** Each inbox's live messages: seq → row id (live-index.ts). */
  private readonly live = new LiveIndex();
  /** Receipt fields of recent direct messages by row id (receipt-cache.ts). */
  private readonly receipts = new ReceiptSourceCache(RECEIPT_CACHE_ENTRIES);
  /** How the sweep finds expired rows without an index on ts (expiry-order.ts). */
  private readonly expiry = new ExpiryOrder();
  private readonly staged = new StagedChanges();
  /** Scratch arrays for LiveIndex.range (reads are synchronous, one at a time). */
  private readonly seqs: number[] = [];
  private readonly ids: number[] = [];
  private readonly s: Statements;
  private readonly batchTx: (ops: Op[]) => void;
  private readonly purgeTx: (cutoff: number, budget: number) => number;

  constructor(
    readonly index: number,
    readonly db: Database.Database,
    private readonly caps: InboxCaps,
  ) {
    const s = {} as Statements;
    for (const key of Object.keys(SQL) as (keyof typeof SQL)[]) s[key] = db.prepare(SQL[key]);
    s.removedThrough.pluck();
    s.purgedThrough.pluck();
    s.openDevice.pluck();
    s.floor.pluck();
    s.pendingUsers.pluck();
    s.members.pluck();
    s.ping.pluck();
    s.payloadSize.pluck();
    s.allTimestamps.pluck();
    s.idAt.pluck();
    this.s = s;
    s.receiptRow.raw(true);
    this.counters = new InboxCounterTable((user) => this.removedThrough(user));
    for (const [user, seq, id, source, bytes] of s.liveRows.raw(true).iterate() as IterableIterator<
      [string, number, number, number, number]
    >) {
      this.live.add(user, seq, liveId(id, source === 1));
      this.counters.addLive(user, seq, bytes);
    }
    for (const [user, seq] of s.allRemovedThrough.raw(true).iterate() as IterableIterator<[string, number]>)
      this.counters.raiseLastSeq(user, seq);
    // Timestamps alone, no row array each: ≈ 0.2 s per million rows here, 3–4 × that with their ids.
    this.expiry.rebuild(
      s.allTimestamps.iterate() as IterableIterator<number>,
      (position) => s.idAt.get(position) as number,
    );
    this.batchTx = db.transaction((ops: Op[]) => this.runBatch(ops)).immediate;
    this.purgeTx = db.transaction((cutoff: number, budget: number) =>
      this.runPurge(cutoff, budget),
    ).immediate;
  }

  /**
   * Commits the queued ops in one transaction, then settles their promises (all rejected on failure);
   * an append's result is recorded in its call, which the store settles after every shard's commit.
   * Returns how many ops it carried.
   */
  commit(): number {
    const ops = this.queue;
    if (ops.length === 0) return 0;
    this.queue = [];
    this.counters.begin();
    try {
      this.batchTx(ops);
      this.counters.commit();
      this.staged.applyTo(this.live, this.receipts, this.expiry);
    } catch (err) {
      // Rolled back: the counters and the live index as they were.
      this.counters.rollback();
      this.staged.clear();
      const e = unavailable(err);
      for (const op of ops) {
        if (op.kind !== 'append') op.reject(e);
        else op.call.error ??= e;
      }
      return ops.length;
    }
    for (const op of ops) {
      if (op.kind === 'append') {
        op.call.results[op.index] = op.result!;
      } else if (op.kind === 'open') op.resolve(op.result!);
      else op.resolve();
    }
    return ops.length;
  }

  /** Inside the batch transaction: applies every op in call order. */
  private runBatch(ops: Op[]): void {
    const { maxMessages, maxBytes } = this.caps;
    for (const op of ops) {
      switch (op.kind) {
        case 'append': {
          const r = op.req;
          op.result = null;
          const st = this.counters.touch(r.inbox);
          const size = r.payload.byteLength;
          if (st.count + 1 > maxMessages || st.bytes + size > maxBytes) {
            // At the cap. A duplicate is answered as such, full or not, and changes nothing.
            op.result = this.original(r);
            if (op.result !== null) break;
            // Else first reclaim what every recent device has acknowledged (the sweep may not have run
            // since): a reader that keeps up must never see INBOX_FULL.
            this.reclaim(r.inbox, r.timestamp);
            if (st.count + 1 > maxMessages || st.bytes + size > maxBytes) {
              op.result = { status: 'full' };
              break;
            }
          }
          const seq = st.lastSeq + 1;
          const { changes, lastInsertRowid } = this.s.insert.run(
            r.inbox,
            seq,
            r.timestamp,
            r.from,
            r.fromDevice,
            r.clientMsgId,
            r.to,
            r.payload,
          );
          if (changes === 0) {
            op.result = this.original(r);
            if (op.result === null) throw new Error('dedupe conflict without an original row');
            break;
          }
          const staged = this.staged;
          staged.addUsers.push(r.inbox);
          staged.addSeqs.push(seq);
          const id = Number(lastInsertRowid);
          const receiptSource = r.to === r.inbox && r.from !== r.inbox;
          staged.addIds.push(liveId(id, receiptSource));
          staged.addTs.push(r.timestamp);
          if (receiptSource) {
            staged.sourceIds.push(id);
            staged.sources.push({ seq, from: r.from, fromDevice: r.fromDevice, clientMsgId: r.clientMsgId });
          }
          st.lastSeq = seq;
          st.count++;
          st.bytes += size;
          op.result = { status: 'stored', seq, timestamp: r.timestamp };
          break;
        }
        case 'ack':
          this.s.ack.run(op.user, op.device, op.seq);
          break;
        case 'join':
          this.s.join.run(op.group, op.user);
          break;
        case 'leave':
          this.s.leave.run(op.group, op.user);
          break;
        case 'open': {
          const ackedSeq = this.s.openDevice.get(op.user, op.device, op.now) as number;
          op.result = { lastSeq: this.counters.get(op.user).lastSeq, ackedSeq };
          break;
        }
      }
    }
  }

  /** The cap path: tombstones the inbox's acknowledged messages now (its counters shrink with them). */
  private reclaim(user: string, now: number): void {
    this.settleAcks(user, now - this.caps.retentionMs, this.caps.maxMessages + 1);
  }

  private original(r: AppendRequest): AppendResult | null {
    const row = this.s.original.get(r.clientMsgId, r.from, r.fromDevice, r.inbox) as
      | { seq: number; ts: number }
      | undefined;
    return row ? { status: 'duplicate', seq: row.seq, timestamp: row.ts } : null;
  }

  read(user: string, afterSeq: number, limit: number): StoredMessage[] {
    const { seqs, ids } = this;
    const n = this.live.range(user, afterSeq, Number.POSITIVE_INFINITY, limit, seqs, ids);
    if (n === 0) return [];
    const firstId = Math.abs(ids[0]!);
    const lastId = Math.abs(ids[n - 1]!);
    if (n >= 8 && lastId - firstId < SPAN_READ_MAX_STRIDE * n) {
      // Ids grow with seqs within an inbox, so the span holds exactly these rows, in seq order.
      const rows = this.s.readSpan.all(firstId, lastId, user) as StoredMessage[];
      if (rows.length !== n || rows[0]!.seq !== seqs[0] || rows[n - 1]!.seq !== seqs[n - 1])
        throw outOfStep(user);
      return rows;
    }
    const rows = new Array<StoredMessage>(n);
    for (let i = 0; i < n; i++) {
      const row = this.s.readRow.get(Math.abs(ids[i]!)) as StoredMessage | undefined;
      if (row === undefined || row.seq !== seqs[i]) throw outOfStep(user);
      rows[i] = row;
    }
    return rows;
  }

  lastSeq(user: string): number {
    return this.counters.get(user).lastSeq;
  }

  members(group: string): string[] {
    return this.s.members.all(group) as string[];
  }

  /** See SqliteInboxStore.inboxCounters. */
  inboxCounters(user: string): {
    held: { lastSeq: number; count: number; bytes: number };
    rows: { lastSeq: number; count: number; bytes: number };
  } {
    const { lastSeq, count, bytes } = this.counters.get(user);
    // Waiting messages (a payload, above purged_through) counted, and the highest seq of any row,
    // tombstones included.
    const purgedThrough = this.purgedThrough(user);
    const rows = this.db
      .prepare(
        `SELECT count(CASE WHEN seq > ? THEN payload END) AS count,
          coalesce(sum(CASE WHEN seq > ? THEN length(payload) END), 0) AS bytes,
          coalesce(max(seq), 0) AS top FROM message WHERE user = ?`,
      )
      .get(purgedThrough, purgedThrough, user) as { count: number; bytes: number; top: number };
    return {
      held: { lastSeq, count, bytes },
      rows: { lastSeq: Math.max(rows.top, this.removedThrough(user)), count: rows.count, bytes: rows.bytes },
    };
  }

  get liveMessages(): number {
    return this.live.size;
  }

  /** Throws when the file cannot be read. */
  ping(): void {
    this.s.ping.get();
  }

  receiptSources(user: string, afterSeq: number, upToSeq: number, limit: number): ReceiptSource[] {
    const { seqs, ids } = this;
    const found: ReceiptSource[] = [];
    let after = afterSeq;
    for (;;) {
      const n = this.live.range(user, after, upToSeq, RANGE_CHUNK, seqs, ids);
      for (let i = 0; i < n; i++) {
        const id = ids[i]!;
        if (id < 0) continue; // an own copy, a group message or a note to self
        const source = this.receipts.get(id) ?? this.receiptRowSource(id);
        if (source === undefined || source.seq !== seqs[i]) throw outOfStep(user);
        found.push(source);
        if (found.length >= limit) return found;
      }
      if (n < RANGE_CHUNK) return found;
      after = seqs[n - 1]!;
    }
  }

  /** The highest seq of `user`'s removed rows, as its inbox row records it (0 without a row). */
  private removedThrough(user: string): number {
    return (this.s.removedThrough.get(user) as number | undefined) ?? 0;
  }

  /** Every seq of `user` at or below this was removed as acknowledged (0 without an inbox row). */
  private purgedThrough(user: string): number {
    return (this.s.purgedThrough.get(user) as number | undefined) ?? 0;
  }

  /** A receipt source read from its row: one the receipt cache does not hold (any more). */
  private receiptRowSource(id: number): ReceiptSource | undefined {
    const row = this.s.receiptRow.get(id) as [number, string, string, number] | undefined;
    return row && { seq: row[0], from: row[1], fromDevice: row[2], clientMsgId: row[3] };
  }

  /** One bounded retention step in its own transaction; returns the work done (see purge()). */
  purge(cutoff: number, budget: number): number {
    this.counters.begin();
    try {
      const work = this.purgeTx(cutoff, budget);
      this.counters.commit();
      this.staged.applyTo(this.live, this.receipts, this.expiry);
      return work;
    } catch (err) {
      this.counters.rollback();
      this.staged.clear();
      this.expiry.forgetScan(); // the rows it found are still there
      throw err;
    }
  }

  private runPurge(cutoff: number, budget: number): number {
    const s = this.s;
    let work = 0;

    // 1. Messages and dedupe entries (tombstones) older than the retention period, from the log's head.
    const expired = this.expiry.expired(
      (after, before, limit) => s.logRange.all(after, before, limit) as ExpiringRow[],
      cutoff,
      budget,
    );
    if (expired.length > 0) {
      for (const row of expired) {
        s.deleteMessage.run(row.id);
        this.receipts.delete(row.id);
        // A tombstone (acknowledged, whatever its payload): purged_through already covers its seq.
        if (row.size === null || !this.live.has(row.user, row.seq)) continue;
        this.staged.expiredUsers.push(row.user);
        this.staged.expiredSeqs.push(row.seq);
        const st = this.counters.touch(row.user);
        st.count--;
        st.bytes -= row.size;
        // Its row gone, the seq is remembered here (it may be the inbox's highest).
        s.inboxExpired.run(row.user, row.seq);
      }
      work += expired.length;
    }

    // 2. Devices not seen within the retention period: forgotten, so they no longer hold messages back;
    //    the user's other devices are flagged so that step 3 recomputes the user's floor.
    if (work < budget) {
      const stale = s.staleDevices.all(cutoff, budget - work) as { user: string; device: string }[];
      for (const row of stale) {
        s.deleteDevice.run(row.user, row.device);
        s.flagUser.run(row.user);
      }
      work += stale.length;
    }

    // 3. Users flagged by an ack: remove what every device seen within the retention period has acked.
    if (work < budget) {
      const users = s.pendingUsers.all(budget - work) as string[];
      for (const user of users) {
        if (work >= budget) break;
        work += this.settleAcks(user, cutoff, budget - work);
      }
    }
    return work;
  }

  /** Tombstones the user's messages up to the minimum cursor of its recent devices; ≥ 1 unit of work. */
  private settleAcks(user: string, cutoff: number, room: number): number {
    const s = this.s;
    const floor = s.floor.get(user, cutoff) as number | null;
    let removed = 0;
    let complete = true;
    if (floor !== null) {
      const purgedThrough = this.purgedThrough(user);
      // Clamped to the committed highest seq: purged_through must never pass a seq that may still be
      // assigned, nor one this transaction appended (the live index has it only once it commits).
      const upper = Math.min(floor, this.counters.committedLastSeq(user));
      if (upper > purgedThrough) {
        // The live messages in (purged_through, upper], as the index had them when this transaction
        // began: it may still list messages this transaction deleted as expired (its removals are
        // applied at commit), which are skipped here.
        const { seqs, ids } = this;
        const n = this.live.range(user, purgedThrough, upper, room, seqs, ids);
        let through = upper;
        if (n === room) {
          through = seqs[n - 1]!;
          complete = through === upper;
        }
        let bytes = 0;
        for (let i = 0; i < n; i++) {
          const id = Math.abs(ids[i]!);
          const size = s.payloadSize.get(id) as number | null | undefined;
          if (size === undefined || size === null) continue; // deleted as expired (step 1)
          bytes += size;
          if (size >= TOMBSTONE_MIN_BYTES) s.tombstone.run(id);
          this.receipts.delete(id);
          removed++;
        }
        s.inboxPurged.run(user, through);
        const st = this.counters.touch(user);
        st.count -= removed;
        st.bytes -= bytes;
        this.staged.purgedUsers.push(user);
        this.staged.purgedThrough.push(through);
      }
    }
    if (complete) s.clearPending.run(user);
    return Math.max(1, removed);
  }
}

/**
 * The id kept in the live index for row `id`: negative when the message is no receipt source (an own
 * copy, a group message, a note to self), so that a receipt lookup skips those rows without reading them.
 */
function liveId(id: number, receiptSource: boolean): number {
  return receiptSource ? id : -id;
}

/** A row the live index points at is not the message it expects: a bug, reported as the store failing. */
function outOfStep(user: string): Error {
  return new Error(`live index out of step with the message table (inbox ${JSON.stringify(user)})`);
}

function unavailable(err: unknown): StoreUnavailableError {
  return unavailableError('sqlite store', err);
}

/** The shard count recorded in an existing data folder (from shard-00.db), or null for a new one. */
export function existingShardCount(dir: string): number | null {
  const first = join(dir, shardFileName(0));
  if (!existsSync(first)) return null;
  const db = new Database(first, { readonly: true, timeout: 500 });
  try {
    const row = db.prepare("SELECT value FROM meta WHERE key = 'shard_count'").get() as
      | { value: unknown }
      | undefined;
    return typeof row?.value === 'number' ? row.value : null;
  } catch {
    return null;
  } finally {
    db.close();
  }
}

function openShardFile(
  path: string,
  index: number,
  shardCount: number,
  durability: Durability,
  pragmas: Readonly<Record<string, string | number>>,
): Database.Database {
  // Each shard has one writer (its owning process): a busy lock is a misconfiguration, so wait only briefly
  // (the wait blocks the event loop) and fail that batch with StoreUnavailableError.
  const db = new Database(path, { timeout: 500 });
  try {
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`${path}: cannot switch to WAL (journal_mode is ${String(mode)})`);
    db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('temp_store = MEMORY');
    db.pragma('cache_size = -8192'); // 8 MiB of page cache per shard: 128 MiB for 16 shards
    db.pragma('journal_size_limit = 67108864'); // the WAL shrinks back to 64 MiB after a checkpoint
    for (const [name, value] of Object.entries(pragmas)) {
      if (!/^[a-z_]+$/.test(name)) throw new Error(`bad pragma name: ${name}`);
      if (typeof value !== 'number' && !/^[A-Za-z0-9_-]+$/.test(value))
        throw new Error(`bad pragma value: ${value}`);
      db.pragma(`${name} = ${value}`);
    }
    db.transaction(() => {
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) {
        throw new Error(`${path}: schema version ${version} is newer than this build's (${SCHEMA_VERSION})`);
      }
      if (version === 0) {
        db.exec(SCHEMA_V1);
        const put = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
        put.run('format', 'switchboard-inbox');
        put.run('shard_index', index);
        put.run('shard_count', shardCount);
      }
      // Each later version migrates one step, inside this transaction.
      if (version < 2) db.exec(SCHEMA_V2);
      if (version < 3) db.exec(SCHEMA_V3); // rebuilds one index: 0.4 s per million messages here
      if (version < 4) db.exec(SCHEMA_V4); // copies the message table: 2.5 s per million messages here
      if (version < 5) db.exec(SCHEMA_V5); // rewrites the inbox table: 0.6 s per million users here
      // Version 6 rewrites nothing (see TOMBSTONE_MIN_BYTES): user_version alone moves on.
      if (version < 7) db.exec(SCHEMA_V7); // drops one index
      if (version < SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
      const meta = new Map(
        (db.prepare('SELECT key, value FROM meta').all() as { key: string; value: unknown }[]).map((r) => [
          r.key,
          r.value,
        ]),
      );
      if (meta.get('shard_index') !== index || meta.get('shard_count') !== shardCount) {
        throw new Error(
          `${path} belongs to shard ${String(meta.get('shard_index'))} of ${String(meta.get('shard_count'))}, ` +
            `not shard ${index} of ${shardCount} (was the store created with another shard count?)`,
        );
      }
    }).immediate();
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

export class SqliteInboxStore implements InboxStore {
  /** Every append of a tick is answered after that tick's commit (see settleCalls). */
  readonly settlesPerTick = true;
  readonly shardCount: number;
  /** The shard indexes this store opened, ascending. */
  readonly shardIndexes: readonly number[];
  private readonly byIndex: (Shard | undefined)[];
  private readonly list: Shard[];
  private readonly dirty: Shard[] = [];
  /** Append calls not yet settled, in call order. */
  private calls: AppendCall[] = [];
  private readonly turn = new OncePerTurn(() => this.flush());
  private closed = false;
  private purgeCursor = 0;
  /** Told about every per-tick commit (its shards' transactions together; the metrics set it). */
  onCommit: CommitObserver | null = null;

  private constructor(
    shardCount: number,
    shards: Shard[],
    private readonly caps: InboxCaps,
  ) {
    this.shardCount = shardCount;
    this.list = shards;
    this.byIndex = new Array(shardCount);
    for (const shard of shards) this.byIndex[shard.index] = shard;
    this.shardIndexes = shards.map((s) => s.index);
  }

  /** Opens (creating what is missing) the shard files of `opts.dir` that this process owns. */
  static async open(opts: SqliteInboxStoreOptions): Promise<SqliteInboxStore> {
    const shardCount = opts.shardCount ?? existingShardCount(opts.dir) ?? DEFAULT_SHARD_COUNT;
    if (!Number.isInteger(shardCount) || shardCount < 1)
      throw new RangeError(`bad shard count: ${shardCount}`);
    const wanted = opts.shards ?? Array.from({ length: shardCount }, (_, i) => i);
    for (const i of wanted) {
      if (!Number.isInteger(i) || i < 0 || i >= shardCount) throw new RangeError(`bad shard index: ${i}`);
    }
    const indexes = [...new Set(wanted)].sort((a, b) => a - b);
    const { maxMessages, maxBytes, retentionMs } = opts.caps;
    if (!(maxMessages >= 0 && maxBytes >= 0 && retentionMs >= 0)) throw new RangeError('bad inbox caps');
    mkdirSync(opts.dir, { recursive: true });
    const shards: Shard[] = [];
    try {
      for (const i of indexes) {
        const db = openShardFile(
          join(opts.dir, shardFileName(i)),
          i,
          shardCount,
          opts.durability,
          opts.pragmas ?? {},
        );
        try {
          shards.push(new Shard(i, db, { ...opts.caps }));
        } catch (err) {
          db.close();
          throw err;
        }
      }
    } catch (err) {
      for (const shard of shards) shard.db.close();
      throw err;
    }
    return new SqliteInboxStore(shardCount, shards, { ...opts.caps });
  }

  /** Messages stored and not yet removed, over the open shards: the entries of their live indexes. */
  get liveMessages(): number {
    let n = 0;
    for (const shard of this.list) n += shard.liveMessages;
    return n;
  }

  /** Whether `user`'s shard is open in this store. */
  owns(user: string): boolean {
    return this.byIndex[shardOf(user, this.shardCount)] !== undefined;
  }

  /** Connection settings of one open shard (diagnostics and tests). */
  inspect(index: number): { journalMode: string; synchronous: number; userVersion: number } {
    const shard = this.byIndex[index];
    if (!shard || this.closed) throw new Error(`shard ${index} is not open`);
    return {
      journalMode: shard.db.pragma('journal_mode', { simple: true }) as string,
      synchronous: shard.db.pragma('synchronous', { simple: true }) as number,
      userVersion: shard.db.pragma('user_version', { simple: true }) as number,
    };
  }

  /**
   * An inbox's counters as held in memory (inbox-counters.ts) and as its rows give them: for tests and
   * for looking into a running store. `rows.lastSeq` is the highest seq among its rows and inbox row.
   */
  inboxCounters(user: string): {
    held: { lastSeq: number; count: number; bytes: number };
    rows: { lastSeq: number; count: number; bytes: number };
  } {
    const shard = this.shardFor(user);
    if (shard instanceof Error || this.closed)
      throw new Error(`the shard of ${JSON.stringify(user)} is not open`);
    return shard.inboxCounters(user);
  }

  /**
   * Queued for this tick's commit. The store keeps a reference to each payload until the promise settles:
   * the caller must not change those bytes meanwhile.
   */
  append(requests: readonly AppendRequest[]): Promise<AppendResult[]> {
    if (this.closed) return Promise.reject(closedError());
    const n = requests.length;
    if (n === 0) return Promise.resolve([]);
    const shards = new Array<Shard>(n);
    for (let i = 0; i < n; i++) {
      const r = requests[i];
      const bad = badAppend(r);
      if (bad !== null) return Promise.reject(new TypeError(bad));
      const shard = this.shardFor(r!.inbox);
      if (shard instanceof Error) return Promise.reject(shard);
      shards[i] = shard;
    }
    return new Promise<AppendResult[]>((resolve, reject) => {
      const call: AppendCall = {
        results: new Array<AppendResult>(n),
        error: null,
        resolve,
        reject,
      };
      this.calls.push(call);
      for (let i = 0; i < n; i++) {
        this.enqueue(shards[i]!, { kind: 'append', req: requests[i]!, call, index: i, result: null });
      }
    });
  }

  openDevice(user: string, device: string, now: number): Promise<DeviceState> {
    if (this.closed) return Promise.reject(closedError());
    const bad = badCall.openDevice(user, device, now);
    if (bad !== null) return Promise.reject(new TypeError(bad));
    const shard = this.shardFor(user);
    if (shard instanceof Error) return Promise.reject(shard);
    return new Promise<DeviceState>((resolve, reject) => {
      this.enqueue(shard, { kind: 'open', user, device, now, result: null, resolve, reject });
    });
  }

  async read(user: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    if (this.closed) throw closedError();
    const bad = badCall.read(user, afterSeq, limit);
    if (bad !== null) throw new TypeError(bad);
    const max = Math.floor(Math.min(limit, Number.MAX_SAFE_INTEGER));
    return this.readShard(user, (shard) => (max === 0 ? [] : shard.read(user, afterSeq, max)));
  }

  async receiptSources(
    user: string,
    afterSeq: number,
    upToSeq: number,
    limit: number,
  ): Promise<ReceiptSource[]> {
    if (this.closed) throw closedError();
    if (
      typeof user !== 'string' ||
      !Number.isFinite(afterSeq) ||
      !Number.isFinite(upToSeq) ||
      !(limit >= 0)
    ) {
      throw new TypeError('receiptSources(user: string, afterSeq: number, upToSeq: number, limit: number)');
    }
    const max = Math.floor(Math.min(limit, Number.MAX_SAFE_INTEGER));
    return this.readShard(user, (shard) =>
      max === 0 || upToSeq <= afterSeq ? [] : shard.receiptSources(user, afterSeq, upToSeq, max),
    );
  }

  ack(user: string, device: string, seq: number): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    const bad = badCall.ack(user, device, seq);
    if (bad !== null) return Promise.reject(new TypeError(bad));
    const shard = this.shardFor(user);
    if (shard instanceof Error) return Promise.reject(shard);
    return new Promise<void>((resolve, reject) => {
      this.enqueue(shard, { kind: 'ack', user, device, seq, resolve, reject });
    });
  }

  async lastSeq(user: string): Promise<number> {
    if (this.closed) throw closedError();
    const bad = badCall.lastSeq(user);
    if (bad !== null) throw new TypeError(bad);
    return this.readShard(user, (shard) => shard.lastSeq(user));
  }

  join(group: string, user: string): Promise<void> {
    return this.membership('join', group, user);
  }

  leave(group: string, user: string): Promise<void> {
    return this.membership('leave', group, user);
  }

  async members(group: string): Promise<string[]> {
    if (this.closed) throw closedError();
    const bad = badCall.members(group);
    if (bad !== null) throw new TypeError(bad);
    return this.readShard(group, (shard) => shard.members(group));
  }

  /** A join or leave, queued in the group's shard for this tick's commit. */
  private membership(kind: 'join' | 'leave', group: string, user: string): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    const bad = badCall.membership(kind, group, user);
    if (bad !== null) return Promise.reject(new TypeError(bad));
    const shard = this.shardFor(group);
    if (shard instanceof Error) return Promise.reject(shard);
    return new Promise<void>((resolve, reject) => {
      this.enqueue(shard, { kind, group, user, resolve, reject });
    });
  }

  /**
   * Commits what is queued, then one bounded step over the open shards (round robin): removes messages
   * older than the retention period (and forgets their dedupe entries, tombstones included), forgets
   * devices not seen within it, and removes messages acknowledged by every device seen within it.
   * Returns the units of work done, at most `maxMessages`: one per message removed, dedupe entry or device
   * forgotten, and one per inbox whose new acks freed nothing — so 0 means nothing is left to do now.
   */
  async purge(now: number, maxMessages: number): Promise<number> {
    if (this.closed) throw closedError();
    const bad = badCall.purge(now);
    if (bad !== null) throw new TypeError(bad);
    this.flush();
    let budget = Math.floor(Math.min(Math.max(maxMessages, 0), Number.MAX_SAFE_INTEGER));
    const cutoff = now - this.caps.retentionMs;
    const n = this.list.length;
    let done = 0;
    let failure: unknown = null;
    for (let k = 0; k < n && budget > 0; k++) {
      const shard = this.list[(this.purgeCursor + k) % n]!;
      try {
        const work = shard.purge(cutoff, budget);
        done += work;
        budget -= work;
      } catch (err) {
        failure ??= err;
      }
    }
    if (n > 0) this.purgeCursor = (this.purgeCursor + 1) % n;
    if (failure !== null) throw unavailable(failure);
    return done;
  }

  /** Reads every open shard file once (readiness). */
  async ping(): Promise<void> {
    if (this.closed) throw closedError();
    try {
      for (const shard of this.list) shard.ping();
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** Commits what is queued (those promises resolve), then closes every shard file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    let failure: unknown = null;
    for (const shard of this.list) {
      try {
        shard.db.close();
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== null) throw unavailable(failure);
  }

  private shardFor(user: string): Shard | Error {
    const index = shardOf(user, this.shardCount);
    return (
      this.byIndex[index] ?? new Error(`user ${JSON.stringify(user)} is in shard ${index}, not open here`)
    );
  }

  /** A synchronous read of `key`'s shard; a failure of the file is STORE_UNAVAILABLE. */
  private readShard<T>(key: string, read: (shard: Shard) => T): T {
    const shard = this.shardFor(key);
    if (shard instanceof Error) throw shard;
    try {
      return read(shard);
    } catch (err) {
      throw unavailable(err);
    }
  }

  private enqueue(shard: Shard, op: Op): void {
    if (shard.queue.push(op) === 1) this.dirty.push(shard);
    this.turn.request();
  }

  /**
   * Commits every shard with queued ops, one transaction each. The observer gets their time together:
   * every caller of the tick waits for all of them (the promises settle after the last).
   */
  private flush(): void {
    if (this.dirty.length === 0) return;
    const shards = this.dirty.splice(0);
    const observer = this.onCommit;
    const started = observer === null ? 0 : performance.now();
    let ops = 0;
    for (const shard of shards) ops += shard.commit();
    this.settleCalls();
    observer?.((performance.now() - started) / 1000, ops);
  }

  /**
   * Settles the append calls, in the order they were made, once every shard has committed: a call's
   * copies may sit in several shards, so settling each call as its last shard commits would answer a
   * later call before an earlier one that shares an inbox with it, and announce that inbox's seqs out of
   * order (a session then reads back from the store what it could have been handed live). Every call
   * made before this flush has its copies in shards this flush committed: append() queues them at once.
   */
  private settleCalls(): void {
    const calls = this.calls;
    this.calls = [];
    for (const call of calls) {
      if (call.error !== null) call.reject(call.error);
      else call.resolve(call.results);
    }
  }
}
