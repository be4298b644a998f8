/** A token bucket for the connect rate: `rate` tokens per second, bursts of at most `burst`. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst = Math.max(1, rate / 20),
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = Math.min(1, this.burst);
    this.last = this.now();
  }

  /** Takes one token if there is one. A rate of 0 means no limit. */
  take(): boolean {
    if (this.rate <= 0) return true;
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until the next token (0 if one is there). */
  msUntilNext(): number {
    if (this.rate <= 0) return 0;
    this.refill();
    return this.tokens >= 1 ? 0 : ((1 - this.tokens) * 1000) / this.rate;
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.rate) / 1000);
    this.last = t;
  }
}
