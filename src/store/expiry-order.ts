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

/** A run the current scan has read past its stop row: nothing more in it is due at that cutoff. */
const RUN_DONE = Number.MAX_SAFE_INTEGER;

export class ExpiryOrder {
  /**
   * The slack in two generations, so that it shrinks again once the rows that widened it are gone (a
   * stall of seconds between a recipient copy's commit and its own copy's would otherwise make every
   * later sweep read seconds' worth of rows not yet due): `olderSlack` bounds the rows appended before
   * the generation turned, whose ids are all below `mark`; `newerSlack` the rows appended since. When a
   * sweep finds no row below `mark` left, the generation turns: the newer becomes the older.
   */
  private olderSlack = 0;
  private newerSlack = 0;
  private mark = 0;
  /** One above the highest id appended (or read on open). */
  private nextId = 0;
  /** Each run's first row id, ascending; rows are appended to the last run. */
  private readonly starts: number[] = [];
  /** The highest timestamp in the last run. */
  private runMaxTs = Number.NEGATIVE_INFINITY;

  /**
   * The scan in progress: a sweep takes its expired rows in several budgeted calls at one cutoff, and
   * each call goes on from where the last one stopped in each run (by the run's first id), instead of
   * reading again the rows between the cutoff and cutoff + slack that are not due.
   */
  private scanCutoff = Number.NaN;
  private scanStop = Number.NEGATIVE_INFINITY;
  private readonly scanAfter = new Map<number, number>();

  /** A row appended to the log, in row-id order. */
  appended(id: number, ts: number): void {
    // A row the scan in progress may have passed, and would be due at its cutoff: scan again.
    if (ts < this.scanStop) this.forgetScan();
    if (id < this.nextId) {
      // SQLite gives a new row max(id) + 1, so an id is used again once every row from it up is gone
      // (all of them, when every row has expired). Every row appended before the generation turned then
      // lies below this one: the generation may turn once the rows below it are gone.
      this.forgetScan();
      if (this.mark > id) this.mark = id;
    }
    this.nextId = id + 1;
    const starts = this.starts;
    if (starts.length > 0 && id < starts[starts.length - 1]!) {
      // The runs from here up are empty, and this row starts one.
      while (starts.length > 0 && starts[starts.length - 1]! >= id) starts.pop();
      starts.push(id);
      this.runMaxTs = ts;
      return;
    }
    if (this.startsRun(ts)) starts.push(id);
  }

  /**
   * Rebuilds from the log's timestamps in row-id order; `idAt(i)` is the id of the i-th (asked only when
   * a run starts there, and for the last row).
   */
  rebuild(timestamps: Iterable<number>, idAt: (position: number) => number): void {
    let position = 0;
    for (const ts of timestamps) {
      if (this.startsRun(ts)) this.starts.push(idAt(position));
      position++;
    }
    if (position > 0) this.nextId = idAt(position - 1) + 1;
    this.turnGeneration();
  }

  /** The most any row kept may be late within its run, ms. */
  get slackMs(): number {
    return Math.max(this.olderSlack, this.newerSlack);
  }

  get runCount(): number {
    return this.starts.length;
  }

  /**
   * Up to `budget` expired rows (ts < cutoff), each run read from its head. A run found empty (before the
   * last) is forgotten. The caller deletes every row returned before it asks again at the same cutoff
   * (the next call goes on from where this one stopped), or calls forgetScan() when it could not.
   */
  expired<R extends LogRow>(read: ReadLog<R>, cutoff: number, budget: number): R[] {
    const found: R[] = [];
    if (cutoff !== this.scanCutoff) {
      this.forgetScan();
      this.scanCutoff = cutoff;
      this.scanStop = cutoff + this.slackMs;
    }
    const stopAt = this.scanStop;
    const starts = this.starts;
    // Whether the lowest id left is still to be seen: read from the first run's head, before any other.
    let headUnseen = true;
    let r = 0;
    for (; r < starts.length && found.length < budget; r++) {
      const start = starts[r]!;
      const end = r + 1 < starts.length ? starts[r + 1]! : Number.MAX_SAFE_INTEGER;
      const from = this.scanAfter.get(start) ?? start - 1;
      if (from !== start - 1) headUnseen = false;
      if (from === RUN_DONE) continue;
      let after = from;
      let done = false;
      let limit = FIRST_READ_ROWS;
      scan: for (; ; limit = Math.min(2 * limit, MOST_READ_ROWS)) {
        const rows = read(after, end, limit);
        if (rows.length === 0) {
          done = true;
          break;
        }
        if (headUnseen) {
          headUnseen = false;
          if (rows[0]!.id >= this.mark) this.turnGeneration();
        }
        for (const row of rows) {
          after = row.id;
          if (row.ts >= stopAt) {
            done = true;
            break scan;
          }
          if (row.ts < cutoff) {
            found.push(row);
            if (found.length >= budget) break scan;
          }
        }
      }
      this.scanAfter.set(start, done ? RUN_DONE : after);
      if (after === start - 1 && r + 1 < starts.length) {
        // Empty, and not the run the next rows go to.
        this.scanAfter.delete(start);
        starts.splice(r--, 1);
      }
    }
    // Every run read from its head and none held a row: nothing appended before the mark is left.
    if (headUnseen && r >= starts.length) this.turnGeneration();
    return found;
  }

  /** Drops the scan in progress (its rows were not deleted, or a row it would have to see came since). */
  forgetScan(): void {
    this.scanCutoff = Number.NaN;
    this.scanStop = Number.NEGATIVE_INFINITY;
    this.scanAfter.clear();
  }

  /** No row appended before the mark is left: the newer generation becomes the older, a new one starts. */
  private turnGeneration(): void {
    this.olderSlack = this.newerSlack;
    this.newerSlack = 0;
    this.mark = this.nextId;
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
    if (lateness > this.newerSlack) this.newerSlack = lateness;
    return false;
  }
}
