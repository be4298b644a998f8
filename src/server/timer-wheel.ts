/**
 * One timer wheel per worker for every connection deadline (handshake, idle, close grace):
 * O(1) schedule and cancel, one interval for the whole process instead of a timer per connection.
 * Deadlines fire up to one resolution late, never early.
 */
export interface TimerEntry {
  /** Absolute deadline in ms (wheel clock) of the pending timer; set by the wheel. */
  timerDeadline: number;
  /** Bucket the entry sits in, or -1 when it is not scheduled; owned by the wheel. */
  timerSlot: number;
  onTimer(now: number): void;
}

export class TimerWheel {
  private readonly buckets: Set<TimerEntry>[];
  private cursor: number;
  private interval: ReturnType<typeof setInterval> | null = null;

  constructor(
    readonly resolutionMs = 100,
    private readonly slotCount = 1024,
    private readonly clock: () => number = Date.now,
  ) {
    this.buckets = Array.from({ length: slotCount }, () => new Set<TimerEntry>());
    this.cursor = Math.floor(clock() / resolutionMs);
  }

  /**
   * The wheel's clock, read now: a deadline computed from the time of the last tick would come early by
   * as long as the loop was busy since (a worker accepting a storm of connections is busy for a while).
   */
  get now(): number {
    return this.clock();
  }

  start(): void {
    if (this.interval) return;
    this.interval = setInterval(() => this.tick(this.clock()), this.resolutionMs);
    this.interval.unref();
  }

  stop(): void {
    if (this.interval) clearInterval(this.interval);
    this.interval = null;
  }

  schedule(entry: TimerEntry, deadline: number): void {
    this.cancel(entry);
    // The first slot whose time is at or after the deadline, so an entry is always due when its slot is
    // visited in its lap (a slot visited early would otherwise hold it a whole lap); never a slot the
    // cursor has already passed.
    const slot = Math.max(Math.ceil(deadline / this.resolutionMs), this.cursor + 1);
    const index = slot % this.slotCount;
    entry.timerDeadline = deadline;
    entry.timerSlot = index;
    this.buckets[index]!.add(entry);
  }

  cancel(entry: TimerEntry): void {
    if (entry.timerSlot >= 0) {
      this.buckets[entry.timerSlot]!.delete(entry);
      entry.timerSlot = -1;
    }
  }

  /** Fires every entry whose deadline is ≤ now. Entries of a later lap stay in their bucket. */
  tick(now: number): void {
    const target = Math.floor(now / this.resolutionMs);
    // After a long stall, one lap visits every bucket once.
    const steps = Math.min(target - this.cursor, this.slotCount);
    for (let i = 1; i <= steps; i++) {
      const bucket = this.buckets[(this.cursor + i) % this.slotCount]!;
      for (const entry of bucket) {
        if (entry.timerDeadline <= now) {
          bucket.delete(entry);
          entry.timerSlot = -1;
          entry.onTimer(now);
        }
      }
    }
    if (target > this.cursor) this.cursor = target;
  }
}
