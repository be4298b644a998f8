/**
 * Each inbox's live messages in one SQLite shard, held in memory: seq → the row id of its message (any
 * nonzero integer to this class: the store negates the ids of messages no receipt is due for).
 *
 * Why: the message table is an append-only log in row-id order, with no index by (user, seq). Such an
 * index is a B-tree ordered by user, so every copy appended dirtied a page of its own somewhere in it,
 * which the commit wrote to the WAL and a checkpoint wrote again; measured, that index was half of the
 * store's CPU per message. A shard has one writer (its process), so this map stays true, and it is rebuilt
 * from the table when the file is opened (`add` in row-id order).
 *
 * Live means stored and not yet removed: the seqs above the inbox's purged_through whose rows still hold
 * their payload. An inbox's seqs are contiguous from its first live one, except where the retention
 * sweep deleted one out of order (kept as a hole).
 */
interface LiveInbox {
  /** The seq of ids[head]. */
  first: number;
  head: number;
  /** Row ids by seq from `first` on; 0 marks a hole (row ids start at 1). */
  ids: number[];
}

/** Where live message `seq` sits in the inbox's array, or -1 when it is not live. */
function slotOf(inbox: LiveInbox, seq: number): number {
  const i = inbox.head + seq - inbox.first;
  return i >= inbox.head && i < inbox.ids.length && inbox.ids[i] !== 0 ? i : -1;
}

/** Compact an inbox's array once this many removed entries lead it and they are the larger half. */
const COMPACT_AFTER = 1024;

export class LiveIndex {
  private readonly inboxes = new Map<string, LiveInbox>();
  private entries = 0;

  /** Live messages held (the memory this costs: about 8–16 bytes each). */
  get size(): number {
    return this.entries;
  }

  /** Records message `seq` of `user`'s inbox at row `id`. Seqs of an inbox arrive in increasing order. */
  add(user: string, seq: number, id: number): void {
    const inbox = this.inboxes.get(user);
    if (inbox === undefined) {
      this.inboxes.set(user, { first: seq, head: 0, ids: [id] });
      this.entries++;
      return;
    }
    let next = inbox.first + inbox.ids.length - inbox.head;
    if (seq < next) throw new Error(`live index: seq ${seq} of an inbox after ${next - 1}`);
    while (next < seq) {
      inbox.ids.push(0);
      next++;
    }
    inbox.ids.push(id);
    this.entries++;
  }

  /**
   * The live messages of `user` with afterSeq < seq ≤ upToSeq, in seq order, at most `limit`: their
   * seqs and row ids, written to the first places of the two arrays given. Returns how many.
   */
  range(
    user: string,
    afterSeq: number,
    upToSeq: number,
    limit: number,
    seqs: number[],
    ids: number[],
  ): number {
    // Written by index and never truncated: `length = 0` would drop the arrays' storage, and every call
    // would grow it again (several reallocations per call, on every read and receipt lookup).
    const inbox = this.inboxes.get(user);
    if (inbox === undefined || limit <= 0) return 0;
    const { first, head, ids: all } = inbox;
    const from = head + Math.max(0, Math.floor(afterSeq) + 1 - first);
    const to = Math.min(all.length, head + Math.floor(upToSeq) + 1 - first);
    let n = 0;
    for (let i = from; i < to && n < limit; i++) {
      const id = all[i]!;
      if (id === 0) continue;
      seqs[n] = first + i - head;
      ids[n] = id;
      n++;
    }
    return n;
  }

  /** Whether message `seq` of `user`'s inbox is live. */
  has(user: string, seq: number): boolean {
    const inbox = this.inboxes.get(user);
    return inbox !== undefined && slotOf(inbox, seq) >= 0;
  }

  /** Removes `user`'s entries with seq ≤ throughSeq (acknowledged, now tombstones). */
  removeThrough(user: string, throughSeq: number): void {
    const inbox = this.inboxes.get(user);
    if (inbox === undefined) return;
    const end = Math.min(inbox.ids.length, inbox.head + throughSeq + 1 - inbox.first);
    for (let i = inbox.head; i < end; i++) if (inbox.ids[i] !== 0) this.entries--;
    if (end > inbox.head) {
      inbox.first += end - inbox.head;
      inbox.head = end;
    }
    this.settle(user, inbox);
  }

  /** Removes one entry (a message the retention sweep deleted). */
  remove(user: string, seq: number): void {
    const inbox = this.inboxes.get(user);
    if (inbox === undefined) return;
    const i = slotOf(inbox, seq);
    if (i < 0) return;
    inbox.ids[i] = 0;
    this.entries--;
    this.settle(user, inbox);
  }

  /** Forgets everything (before a rebuild). */
  clear(): void {
    this.inboxes.clear();
    this.entries = 0;
  }

  /** Drops leading holes, an inbox left empty, and the removed head of a long array. */
  private settle(user: string, inbox: LiveInbox): void {
    const ids = inbox.ids;
    while (inbox.head < ids.length && ids[inbox.head] === 0) {
      inbox.head++;
      inbox.first++;
    }
    if (inbox.head === ids.length) {
      this.inboxes.delete(user);
      return;
    }
    if (inbox.head >= COMPACT_AFTER && inbox.head * 2 >= ids.length) {
      inbox.ids = ids.slice(inbox.head);
      inbox.head = 0;
    }
  }
}
