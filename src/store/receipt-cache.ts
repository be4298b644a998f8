import type { ReceiptSource } from './inbox-store.js';

/**
 * The receipt fields (seq, sender, sender's device, client message id) of one SQLite shard's most
 * recently stored direct messages, by row id: an ACK's receipt lookup takes them from here instead of
 * reading a row each from the table, which was ≈ 5 % of a loaded worker's CPU and its largest
 * allocation per durable message (a row array and two strings per receipt).
 *
 * Bounded: the oldest entries make room for new ones (a ring of row ids), and a lookup that misses reads
 * the row. An entry lives only while its row is live: the store deletes it when the row is removed,
 * because SQLite may give a deleted row's id to a new row.
 */
export class ReceiptSourceCache {
  private readonly byId = new Map<number, ReceiptSource>();
  /** Row ids in the order they were added; 0 = an empty slot (row ids start at 1). */
  private readonly ring: Float64Array;
  private next = 0;

  constructor(capacity: number) {
    this.ring = new Float64Array(Math.max(1, capacity));
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: number): ReceiptSource | undefined {
    return this.byId.get(id);
  }

  add(id: number, source: ReceiptSource): void {
    const oldest = this.ring[this.next]!;
    if (oldest !== 0) this.byId.delete(oldest);
    this.ring[this.next] = id;
    this.next = this.next + 1 === this.ring.length ? 0 : this.next + 1;
    this.byId.set(id, source);
  }

  delete(id: number): void {
    this.byId.delete(id);
  }
}
