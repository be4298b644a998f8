/**
 * How the retention sweep finds one SQLite shard's expired rows without an index on `ts`.
 *
 * The log is appended in row-id order and its rows are stamped when stored, so row ids and timestamps
 * grow together, give or take a little: an own copy is stamped with its recipient copy's timestamp and
 * appended a commit later, behind rows stamped since. A row's *lateness* is how far its timestamp lies
 * below the highest one stored before it. With every row at most `slackMs` late, every row stored before
 * an expired row (ts < cutoff) has ts < cutoff + slackMs, so reading the log from its head in row-id
 * order until the first row stamped at or after cutoff + slackMs passes every expired row.
 *
 * A row later than NEW_RUN_LATENESS_MS (the clock stepped back) does not widen the slack: it starts a new
 * *run*, and lateness is measured within runs from then on. The sweep reads each run from its head. Runs
 * are as many as such clock steps among the rows kept: a handful.
 *
 * Built as rows are appended; rebuilt on open from the log in row-id order, over the rows that remain
 * (only the sweep deletes rows, and fewer rows only make runs and slack tighter). A new row's id is one
 * above the highest remaining (SQLite's rowid), so ids below a run's start come back only once that run
 * is empty.
 */

/** Lateness beyond which a row starts a new run instead of widening the slack, ms. */
export const NEW_RUN_LATENESS_MS = 10_000;

/** One row of the log, as the sweep reads it. */
export interface LogRow {
  id: number;
  ts: number;
}

/** Reads up to `limit` rows with `afterId` < id < `beforeId`, in row-id order. */
export type ReadLog<R extends LogRow> = (afterId: number, beforeId: number, limit: number) => readonly R[];

/**
 * Rows read at a time: few at first (a sweep with nothing to expire reads one row a run), then more, up
 * to the most.
 */
const FIRST_READ_ROWS = 16;
const MOST_READ_ROWS = 512;

export class ExpiryOrder {
  private slack = 0;
  /** Each run's first row id, ascending; rows are appended to the last run. */
  private readonly starts: number[] = [];
  /** The highest timestamp in the last run. */
  private runMaxTs = Number.NEGATIVE_INFINITY;

  /** A row appended to the log, in row-id order. */
  appended(id: number, ts: number): void {
    const starts = this.starts;
    if (starts.length > 0 && id < starts[starts.length - 1]!) {
      // SQLite gives a new row max(id) + 1, so ids are used again once the rows above them are gone (all
      // of them, when every row has expired): the runs from here up are empty, and this row starts one.
      while (starts.length > 0 && starts[starts.length - 1]! >= id) starts.pop();
      starts.push(id);
      this.runMaxTs = ts;
      return;
    }
    if (this.startsRun(ts)) starts.push(id);
  }

  /**
   * Rebuilds from the log's timestamps in row-id order; `idAt(i)` is the id of the i-th (asked only when
   * a run starts there).
   */
  rebuild(timestamps: Iterable<number>, idAt: (position: number) => number): void {
    let position = 0;
    for (const ts of timestamps) {
      if (this.startsRun(ts)) this.starts.push(idAt(position));
      position++;
    }
  }

  /** The most any row is late within its run, ms. */
  get slackMs(): number {
    return this.slack;
  }

  get runCount(): number {
    return this.starts.length;
  }

  /**
   * Up to `budget` expired rows (ts < cutoff), each run read from its head. A run found empty (before the
   * last) is forgotten.
   */
  expired<R extends LogRow>(read: ReadLog<R>, cutoff: number, budget: number): R[] {
    const found: R[] = [];
    const stopAt = cutoff + this.slack;
    for (let r = 0; r < this.starts.length && found.length < budget; r++) {
      const end = r + 1 < this.starts.length ? this.starts[r + 1]! : Number.MAX_SAFE_INTEGER;
      let after = this.starts[r]! - 1;
      let empty = true;
      let limit = FIRST_READ_ROWS;
      scan: for (; ; limit = Math.min(2 * limit, MOST_READ_ROWS)) {
        const rows = read(after, end, limit);
        if (rows.length === 0) break;
        empty = false;
        for (const row of rows) {
          after = row.id;
          if (row.ts >= stopAt) break scan;
          if (row.ts < cutoff) {
            found.push(row);
            if (found.length >= budget) break scan;
          }
        }
      }
      if (empty && r + 1 < this.starts.length) this.starts.splice(r--, 1);
    }
    return found;
  }

  /** Takes the next row's timestamp (in row-id order) into the last run; true when it starts a run. */
  private startsRun(ts: number): boolean {
    if (ts >= this.runMaxTs) {
      this.runMaxTs = ts;
      return this.starts.length === 0;
    }
    const lateness = this.runMaxTs - ts;
    if (lateness > NEW_RUN_LATENESS_MS) {
      this.runMaxTs = ts;
      return true;
    }
    if (lateness > this.slack) this.slack = lateness;
    return false;
  }
}
