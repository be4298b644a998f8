/**
 * Writes made during one loop tick go out together: a connection that writes registers once per tick,
 * and every registered connection is flushed once, on setImmediate (one writev for TCP, one binary
 * message for WebSocket).
 */
export interface Flushable {
  flushBatch(): void;
}

export class WriteBatcher {
  private pending: Flushable[] = [];
  private scheduled = false;

  add(conn: Flushable): void {
    this.pending.push(conn);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const list = this.pending;
    this.pending = [];
    for (const conn of list) conn.flushBatch();
  };
}
