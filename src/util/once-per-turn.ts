/**
 * Batching per turn of the event loop, the server's one way of grouping work (PROTOCOL.md appendix,
 * ARCHITECTURE.md "Every hop is batched"): whatever asks during a turn, `fn` runs once, on setImmediate,
 * after the I/O of that turn — a store commit, a bus or pub/sub batch, the socket writes.
 */
export class OncePerTurn {
  private pending = false;

  constructor(private readonly fn: () => void) {}

  /** Asks for the call; true when this is the first request since the last call (the batch is new). */
  request(): boolean {
    if (this.pending) return false;
    this.pending = true;
    setImmediate(this.run);
    return true;
  }

  private readonly run = (): void => {
    this.pending = false;
    this.fn();
  };
}
