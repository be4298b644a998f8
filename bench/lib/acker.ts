/**
 * When a benchmark client ACKs its stored DELIVERs, as the SDK does: after `every` of them, or at the
 * latest `delayMs` after the first one left unacknowledged (0 = no timer, only every `every`). One piece
 * for bench:peers' SBP driver and the throughput generator.
 */
import { encodeFrame } from '../../src/protocol/index.js';

export class Acker {
  private unacked = 0;
  private lastSeq = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly every: number,
    private readonly delayMs: number,
    /** Writes an ACK frame (the caller skips it once its connection is gone). */
    private readonly write: (ack: Uint8Array) => void,
  ) {}

  /** A stored DELIVER (seq > 0) arrived. */
  delivered(seq: number): void {
    this.lastSeq = seq;
    if (++this.unacked >= this.every) this.ack();
    else if (this.timer === undefined && this.delayMs > 0) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (this.unacked > 0) this.ack();
      }, this.delayMs);
      this.timer.unref();
    }
  }

  /** The connection is closing: no ACK is written from now on by the timer. */
  stop(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private ack(): void {
    this.unacked = 0;
    this.stop();
    this.write(encodeFrame({ type: 'ACK', seq: this.lastSeq }));
  }
}
