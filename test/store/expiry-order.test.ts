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
    order.forgetScan(); // not deleted: the next call must read from the heads again
    assert.deepEqual(ids(order.expired(log.read, 1_055, 2)), [1, 2]);
    order.forgetScan();
    // The clock steps back: a second run, read from its own head.
    log.append(order, [1_080 - NEW_RUN_LATENESS_MS - 1, 1_080 - NEW_RUN_LATENESS_MS + 5]);
    assert.equal(order.slackMs, 30);
    assert.equal(order.runCount, 2);
    assert.deepEqual(ids(order.expired(log.read, 1_000, 10)), [6, 7]);
    order.forgetScan();
    assert.deepEqual(log.sweep(order, 1_100, 10), [1, 2, 3, 4, 5, 6, 7]);
    // The next sweep finds the first run empty and forgets it; the last stays for the rows to come.
    assert.equal(order.runCount, 2);
    assert.deepEqual(log.sweep(order, 1_101, 10), []);
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

  it('goes on from where the last call at the same cutoff stopped, not reading again what is not due', () => {
    const order = new ExpiryOrder();
    const log = new Log(Number.POSITIVE_INFINITY);
    // A row every 100 ms, each followed by one 9 s late: 180 rows between the cutoff and cutoff + slack.
    const stamps: number[] = [];
    for (let t = 1_000_000; t < 1_100_000; t += 100) stamps.push(t, t - 9_000);
    log.append(order, stamps);
    assert.equal(order.slackMs, 9_000);
    const cutoff = 1_050_000;
    const due = log.rows.filter((r) => r.ts < cutoff).length;
    const timesRead = new Map<number, number>();
    const counting = (after: number, before: number, limit: number) => {
      const rows = log.read(after, before, limit);
      for (const r of rows) timesRead.set(r.id, (timesRead.get(r.id) ?? 0) + 1);
      return rows;
    };
    let steps = 0;
    for (; ; steps++) {
      const got = order.expired(counting, cutoff, 5);
      log.rows = log.rows.filter((r) => !got.some((g) => g.id === r.id));
      if (got.length === 0) break;
    }
    assert.ok(steps >= 200, `${steps} steps`);
    assert.ok(log.rows.every((r) => r.ts >= cutoff));
    assert.equal(log.rows.length, stamps.length - due);
    // A row not due is read by the step that passes it, and perhaps by the first reads (16 rows) of the
    // steps before it that took their 5 rows short of it: not by every step after it.
    const notDue = log.rows.map((r) => timesRead.get(r.id) ?? 0);
    assert.ok(Math.max(...notDue) <= 4, `a row not due read ${Math.max(...notDue)} times in ${steps} steps`);
    // A row appended below the scan's stop (the clock stepped back) is found by the same scan.
    log.append(order, [cutoff - 1]);
    const late = log.rows.at(-1)!.id;
    assert.deepEqual(log.sweep(order, cutoff, 5), [late]);
  });

  it('lets the slack shrink again once the rows that widened it are gone', () => {
    const order = new ExpiryOrder();
    const log = new Log();
    let clock = 1_000_000;
    const tick = (lateMs: number) => {
      clock += 1_000;
      log.append(order, [clock, clock - lateMs]);
    };
    for (let i = 0; i < 10; i++) tick(40);
    tick(4_000); // a stall: one row 4 s late
    for (let i = 0; i < 10; i++) tick(40);
    assert.equal(order.slackMs, 4_000);
    // A sweep that leaves every row: the stall's row is kept, so is its slack.
    log.sweep(order, 1_000_000, 100);
    assert.equal(order.slackMs, 4_000);
    // Every row up to the stall's gone, then every row appended before that sweep: the slack is back to
    // what the rows left were appended with.
    for (let i = 0; i < 10; i++) tick(30);
    while (log.sweep(order, clock - 5_000, 7).length > 0);
    log.sweep(order, clock - 4_999, 7);
    for (let i = 0; i < 10; i++) tick(20);
    while (log.sweep(order, clock - 15_000, 7).length > 0);
    log.sweep(order, clock - 14_999, 7);
    assert.equal(order.slackMs, 30);
    assert.ok(log.rows.every((r) => r.ts >= clock - 15_000));
  });

  it('lets the slack shrink after the log was emptied and its row ids start again at 1', () => {
    const order = new ExpiryOrder();
    const log = new Log();
    log.append(order, [1_000, 1_010, 1_020, 1_020 - 5_000, 1_030]);
    assert.equal(order.slackMs, 5_000);
    assert.equal(log.sweep(order, 10_000, 10).length, 5);
    log.append(order, [20_000, 20_050, 20_030]);
    assert.equal(log.rows[0]!.id, 1);
    assert.equal(order.slackMs, 5_000);
    // The rows appended before the log was emptied are gone: the next sweep turns the generation.
    assert.deepEqual(log.sweep(order, 15_000, 10), []);
    assert.equal(order.slackMs, 20);
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
          between: fc.array(fc.integer({ min: -3 * NEW_RUN_LATENESS_MS, max: 3 * NEW_RUN_LATENESS_MS }), {
            maxLength: 3,
          }),
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
            // Rows may come between its steps (`between`), stamped around the clock, some due.
            const cutoff = clock + o.sweep;
            for (let k = 0; ; k++) {
              const got = log.sweep(order, cutoff, o.budget);
              assert.ok(got.length <= o.budget);
              if (got.length === 0) break;
              const stamp = o.between[k];
              if (stamp !== undefined) log.append(order, [clock + stamp]);
            }
            const left = log.rows.filter((r) => r.ts < cutoff);
            assert.deepEqual(left, [], `due rows left: ${JSON.stringify(left)}`);
          } else {
            order = log.rebuilt();
          }
        }
      }),
      { numRuns: 400 },
    );
  });
});
