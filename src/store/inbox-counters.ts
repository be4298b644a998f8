/**
 * Each inbox's counters in one SQLite shard, held in memory: the highest seq ever assigned, and the
 * count and bytes of its live messages (the caps). Why: written to the inbox's row on every commit that
 * appended to it, they were one more B-tree update per inbox per commit, ≈ 15 % of the store's CPU per
 * message. A shard has one writer (its process), so the memory stays true; on open the counters are
 * rebuilt from the message rows (count, bytes and the highest live seq, in the same scan as the live
 * index) and from the inbox row, which records the highest seq of rows that are gone (purged_through for
 * acknowledged ones, last_seq for expired ones: the store writes it when it removes rows).
 *
 * Changes inside a transaction are made in place; `begin` opens one, `rollback` puts back what it
 * changed, `commit` keeps it.
 */
export interface InboxCounters {
  lastSeq: number;
  count: number;
  bytes: number;
}

interface Entry extends InboxCounters {
  /** The transaction that last changed the entry, and its values before that transaction. */
  txn: number;
  savedLastSeq: number;
  savedCount: number;
  savedBytes: number;
}

/**
 * Entries of inboxes with no live message are dropped from memory once there are more than this (their
 * counters follow from the inbox row); those with live messages stay, as the live index's entries do.
 */
const KEEP_IDLE = 50_000;

export class InboxCounterTable {
  private readonly entries = new Map<string, Entry>();
  /** The open transaction's number (entries it changed carry it); a new one after every commit or rollback. */
  private txn = 1;
  private readonly touched: Entry[] = [];
  private trimAt = KEEP_IDLE;

  /** `persistedLastSeq`: the highest seq the inbox row records for a user not held (0 without a row). */
  constructor(private readonly persistedLastSeq: (user: string) => number) {}

  /** On open, before any transaction: one live message of `user` (rows in any order). */
  addLive(user: string, seq: number, bytes: number): void {
    const e = this.entries.get(user) ?? this.create(user, 0);
    if (seq > e.lastSeq) e.lastSeq = seq;
    e.count++;
    e.bytes += bytes;
  }

  /** On open, after the live rows: the highest seq an inbox row records for `user`. */
  raiseLastSeq(user: string, seq: number): void {
    const e = this.entries.get(user);
    if (e !== undefined && seq > e.lastSeq) e.lastSeq = seq;
  }

  /** The counters as they are (inside a transaction, with its changes). Not to be changed. */
  get(user: string): Readonly<InboxCounters> {
    return this.entries.get(user) ?? this.load(user);
  }

  /** The counters to change inside the open transaction. */
  touch(user: string): InboxCounters {
    const e = this.entries.get(user) ?? this.load(user);
    if (e.txn !== this.txn) {
      e.txn = this.txn;
      e.savedLastSeq = e.lastSeq;
      e.savedCount = e.count;
      e.savedBytes = e.bytes;
      this.touched.push(e);
    }
    return e;
  }

  /** The highest seq as of the last commit, ignoring the open transaction's appends. */
  committedLastSeq(user: string): number {
    const e = this.entries.get(user) ?? this.load(user);
    return e.txn === this.txn ? e.savedLastSeq : e.lastSeq;
  }

  /** Before a transaction: drops idle entries if there are too many. */
  begin(): void {
    if (this.entries.size > this.trimAt) this.trim();
  }

  commit(): void {
    this.touched.length = 0;
    this.txn++;
  }

  rollback(): void {
    for (const e of this.touched) {
      e.lastSeq = e.savedLastSeq;
      e.count = e.savedCount;
      e.bytes = e.savedBytes;
    }
    this.touched.length = 0;
    this.txn++;
  }

  private load(user: string): Entry {
    return this.create(user, this.persistedLastSeq(user));
  }

  private create(user: string, lastSeq: number): Entry {
    const e: Entry = { lastSeq, count: 0, bytes: 0, txn: 0, savedLastSeq: 0, savedCount: 0, savedBytes: 0 };
    this.entries.set(user, e);
    return e;
  }

  /** Between transactions: drops idle inboxes' entries, which load() rebuilds from their rows. */
  private trim(): void {
    for (const [user, e] of this.entries) if (e.count === 0) this.entries.delete(user);
    this.trimAt = Math.max(KEEP_IDLE, 2 * this.entries.size);
  }
}
