import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ExpiryOrder, type LogRow, NEW_RUN_LATENESS_MS } from '../../src/store/expiry-order.js';

/** A log in row-id order, read as the store reads it: a few rows of an id range at a time. */
class Log {
  rows: LogRow[] = [];
  reads = 0;

  read = (after: number, before: number, limit: number): LogRow[] => {
    this.reads++;
    return this.rows.filter((r) => r.id > after && r.id < before).slice(0, Math.min(limit, this.readMost));
  };

  /** Fewer than the order asks for, so that reads end and resume inside runs. */
  constructor(private readonly readMost = 3) {}

  append(order: ExpiryOrder, stamps: number[]): void {
    for (const ts of stamps) {
      const id = (this.rows.at(-1)?.id ?? 0) + 1;
      this.rows.push({ id, ts });
      order.appended(id, ts);
    }
  }

  /** One sweep step: what the order finds, deleted. */
  sweep(order: ExpiryOrder, cutoff: number, budget: number): number[] {
    const taken = order.expired(this.read, cutoff, budget).map((r) => r.id);
    this.rows = this.rows.filter((r) => !taken.includes(r.id));
    return taken;
  }

  /** A reopen: the order rebuilt from the rows that remain. */
  rebuilt(): ExpiryOrder {
    const order = new ExpiryOrder();
    order.rebuild(
      this.rows.map((r) => r.ts),
      (i) => this.rows[i]!.id,
    );
    return order;
  }
}

const ids = (rows: readonly LogRow[]) => rows.map((r) => r.id);

describe('ExpiryOrder', () => {
  it('widens the slack by a late row, and starts a run at a row later than NEW_RUN_LATENESS_MS', () => {
    const order = new ExpiryOrder();
    const log = new Log();
    log.append(order, [1_000, 1_050, 1_020, 1_080, 1_060]);
    assert.equal(order.slackMs, 30);
    assert.equal(order.runCount, 1);
    // Everything before 1 055, in row-id order; the read stops at 1 055 + 30.
    assert.deepEqual(ids(order.expired(log.read, 1_055, 10)), [1, 2, 3]);
    assert.deepEqual(ids(order.expired(log.read, 1_055, 2)), [1, 2]);
    // The clock steps back: a second run, read from its own head.
    log.append(order, [1_080 - NEW_RUN_LATENESS_MS - 1, 1_080 - NEW_RUN_LATENESS_MS + 5]);
    assert.equal(order.slackMs, 30);
    assert.equal(order.runCount, 2);
    assert.deepEqual(ids(order.expired(log.read, 1_000, 10)), [6, 7]);
    assert.deepEqual(log.sweep(order, 1_100, 10), [1, 2, 3, 4, 5, 6, 7]);
    // The next sweep finds the first run empty and forgets it; the last stays for the rows to come.
    assert.equal(order.runCount, 2);
    assert.deepEqual(log.sweep(order, 1_100, 10), []);
    assert.equal(order.runCount, 1);
  });

  it('stops reading at the first row stamped past cutoff + slack, reading few rows first', () => {
    const order = new ExpiryOrder();
    const log = new Log(Number.POSITIVE_INFINITY);
    log.append(
      order,
      Array.from({ length: 3_000 }, (_, i) => 1_000 + i),
    );
    let asked = 0;
    const read = (after: number, before: number, limit: number) => {
      asked += limit;
      return log.read(after, before, limit);
    };
    assert.equal(order.expired(read, 1_005, 100).length, 5);
    assert.deepEqual([log.reads, asked], [1, 16]);
    assert.equal(order.expired(read, 2_000, 2_000).length, 1_000);
    assert.ok(asked < 2_000, `${asked} rows asked for 1 001`);
  });

  it('rebuilds the runs and the slack it built while appending', () => {
    const order = new ExpiryOrder();
    const log = new Log();
    log.append(order, [50_000, 49_990, 50_010, 100, 90, 120, 90_000, 89_000]);
    const rebuilt = log.rebuilt();
    assert.deepEqual([rebuilt.runCount, rebuilt.slackMs], [order.runCount, order.slackMs]);
    assert.deepEqual([order.runCount, order.slackMs], [2, 1_000]);
  });

  it('finds the rows whose ids were used before, once the rows above them were gone', () => {
    // SQLite gives a new row max(id) + 1: with every row gone, ids start at 1 again.
    const order = new ExpiryOrder();
    const log = new Log();
    log.append(order, [1_000, 1_010, 1_020, 1_020 - NEW_RUN_LATENESS_MS - 1, 1_030]);
    assert.equal(order.runCount, 2);
    assert.equal(log.sweep(order, 5_000, 10).length, 5);
    log.append(order, [2_000, 2_010]);
    assert.deepEqual(
      log.rows.map((r) => r.id),
      [1, 2],
    );
    assert.deepEqual(log.sweep(order, 2_005, 10), [1]);
    // Reopened with only row 2 left, then emptied and filled again.
    const reopened = log.rebuilt();
    assert.deepEqual(log.sweep(reopened, 3_000, 10), [2]);
    log.append(reopened, [3_100]);
    assert.deepEqual(log.sweep(reopened, 3_200, 10), [1]);
  });

  it('sweeps exactly the rows stamped before the cutoff, whatever the clock did', () => {
    const step = fc.oneof(
      { arbitrary: fc.integer({ min: -50, max: 100 }), weight: 8 }, // the clock's own jitter
      { arbitrary: fc.integer({ min: -3 * NEW_RUN_LATENESS_MS, max: 3 * NEW_RUN_LATENESS_MS }), weight: 1 },
    );
    const op = fc.oneof(
      { arbitrary: fc.record({ append: fc.array(step, { maxLength: 12 }) }), weight: 3 },
      {
        arbitrary: fc.record({
          // Up to past every row: the ids of an emptied log start again at 1.
          sweep: fc.integer({ min: -3 * NEW_RUN_LATENESS_MS, max: 3 * NEW_RUN_LATENESS_MS }),
          budget: fc.integer({ min: 1, max: 6 }),
        }),
        weight: 2,
      },
      { arbitrary: fc.constant({ reopen: true as const }), weight: 1 },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        let order = new ExpiryOrder();
        const log = new Log();
        let clock = 100_000;
        for (const o of ops) {
          if ('append' in o) {
            log.append(
              order,
              o.append.map((dt) => (clock += dt)),
            );
          } else if ('sweep' in o) {
            // Steps until nothing is left to take: exactly the rows stamped before the cutoff.
            const cutoff = clock + o.sweep;
            const expired = ids(log.rows.filter((r) => r.ts < cutoff));
            const taken: number[] = [];
            for (;;) {
              const got = log.sweep(order, cutoff, o.budget);
              assert.ok(got.length <= o.budget);
              if (got.length === 0) break;
              taken.push(...got);
            }
            assert.deepEqual(
              taken.sort((a, b) => a - b),
              expired,
            );
          } else {
            order = log.rebuilt();
          }
        }
      }),
      { numRuns: 400 },
    );
  });
});
