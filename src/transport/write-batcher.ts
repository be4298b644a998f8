/**
 * Writes made during one loop tick go out together: a connection that writes registers once per tick,
 * and every registered connection is flushed once, on setImmediate (one writev for TCP, one binary
 * message for WebSocket).
 */
import { OncePerTurn } from '../util/once-per-turn.js';

export interface Flushable {
  flushBatch(): void;
}

export class WriteBatcher {
  private pending: Flushable[] = [];
  private readonly turn = new OncePerTurn(() => this.flush());

  add(conn: Flushable): void {
    this.pending.push(conn);
    this.turn.request();
  }

  private flush(): void {
    const list = this.pending;
    this.pending = [];
    for (const conn of list) conn.flushBatch();
  }
}
