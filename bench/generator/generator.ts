/**
 * The clients of one generator process: starts them at the configured rate with a cap on connects in
 * progress, keeps the held ones alive with PINGs, counts how each ended, and closes them all at the end.
 */
import { SignJWT } from 'jose';
import { BenchClient, type ClientHooks } from './client.js';
import type { GeneratorConfig, GeneratorStats } from './messages.js';
import { PortAllocator } from './port-allocator.js';
import { TokenBucket } from './token-bucket.js';

export class Generator {
  readonly stats: GeneratorStats = {
    started: 0,
    connecting: 0,
    welcomed: 0,
    open: 0,
    failed: 0,
    failedByError: {},
    dropped: 0,
    droppedByError: {},
    connectDone: false,
    connectDoneAt: 0,
    portRetries: 0,
  };
  /** Clients with a socket (connecting, held or closing). */
  private readonly live = new Set<BenchClient>();
  private readonly ports: PortAllocator;
  private readonly bucket: TokenBucket;
  private readonly hooks: ClientHooks;
  private readonly key: Uint8Array | null;
  private next = 0;
  /** Starts awaiting their token signature. */
  private preparing = 0;
  private stopped = false;
  private pumpTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private nonce = 0;
  private onConnectDone: () => void = () => {};
  private allGone: (() => void) | null = null;

  constructor(private readonly config: GeneratorConfig) {
    this.ports = new PortAllocator(config.sources);
    this.bucket = new TokenBucket(config.rate);
    this.key = config.tokenSecret ? new TextEncoder().encode(config.tokenSecret) : null;
    const stats = this.stats;
    this.hooks = {
      welcomed: () => {
        stats.connecting--;
        stats.welcomed++;
        stats.open++;
        this.resolved();
      },
      failed: (_c, reason) => {
        stats.connecting--;
        stats.failed++;
        stats.failedByError[reason] = (stats.failedByError[reason] ?? 0) + 1;
        this.resolved();
      },
      dropped: (_c, reason) => {
        stats.open--;
        stats.dropped++;
        stats.droppedByError[reason] = (stats.droppedByError[reason] ?? 0) + 1;
      },
      gone: (c) => {
        this.live.delete(c);
        if (this.live.size === 0) this.allGone?.();
      },
      portRetry: () => {
        stats.portRetries++;
      },
    };
  }

  /** Starts connecting; `onConnectDone` runs once every client is WELCOMEd or failed. */
  start(onConnectDone: () => void): void {
    this.onConnectDone = onConnectDone;
    if (this.config.heartbeatPing) {
      this.pingTimer = setInterval(() => this.pingSweep(), 250);
    }
    this.pump();
    this.checkDone();
  }

  /** The connect phase's time limit passed: no more starts; those in progress and not started fail. */
  stopConnecting(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    const notStarted = this.config.count - this.next;
    if (notStarted > 0) {
      this.stats.failed += notStarted;
      this.stats.failedByError.NOT_STARTED = (this.stats.failedByError.NOT_STARTED ?? 0) + notStarted;
      this.next = this.config.count;
    }
    for (const c of this.live) c.abort('CONNECT_PHASE_TIMEOUT');
    this.checkDone();
  }

  /** Closes every connection (BYE; the server closes), destroying what is left after `graceMs`. */
  async closeAll(graceMs: number): Promise<void> {
    this.stopConnecting();
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.live.size > 0) {
      const gone = new Promise<void>((resolve) => {
        this.allGone = resolve;
      });
      for (const c of [...this.live]) c.close();
      this.stats.open = 0;
      const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([gone, timer]);
      for (const c of [...this.live]) c.destroy();
      // Sockets destroyed now report 'close' on the next ticks.
      await Promise.race([gone, new Promise<void>((resolve) => setTimeout(resolve, 1000).unref())]);
    }
  }

  /** Destroys every socket at once (the parent is gone). */
  destroyAll(): void {
    this.stopped = true;
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    for (const c of this.live) c.destroy();
  }

  private pump(): void {
    this.pumpTimer = null;
    const { count, concurrency } = this.config;
    while (!this.stopped && this.next < count && this.stats.connecting + this.preparing < concurrency) {
      if (!this.bucket.take()) {
        this.pumpTimer = setTimeout(() => this.pump(), Math.max(1, this.bucket.msUntilNext()));
        return;
      }
      this.launch(this.next++);
    }
  }

  private launch(local: number): void {
    const index = this.config.firstIndex + local;
    const user = `bench-${index}`;
    if (this.key === null) {
      this.connect(index, user, '');
      return;
    }
    this.preparing++;
    const now = Math.floor(Date.now() / 1000);
    new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(user)
      .setIssuedAt(now)
      .setExpirationTime(now + Math.ceil(this.config.tokenTtlMs / 1000))
      .sign(this.key)
      .then(
        (token) => {
          this.preparing--;
          if (this.stopped) {
            this.stats.failed++;
            this.stats.failedByError.NOT_STARTED = (this.stats.failedByError.NOT_STARTED ?? 0) + 1;
            this.checkDone();
            return;
          }
          this.connect(index, user, token);
        },
        () => {
          this.preparing--;
          this.stats.failed++;
          this.stats.failedByError.TOKEN = (this.stats.failedByError.TOKEN ?? 0) + 1;
          this.resolved();
        },
      );
  }

  private connect(index: number, user: string, token: string): void {
    const client = new BenchClient(
      index,
      user,
      token,
      this.ports.sourceOf(index),
      this.ports,
      this.config,
      this.hooks,
    );
    this.stats.started++;
    this.stats.connecting++;
    this.live.add(client);
    client.connect();
  }

  /** A connect attempt ended (WELCOME or failure): room for the next one. */
  private resolved(): void {
    if (!this.stopped && this.pumpTimer === null) this.pump();
    this.checkDone();
  }

  private checkDone(): void {
    if (this.stats.connectDone) return;
    const { stats } = this;
    if (stats.welcomed + stats.failed < this.config.count) return;
    stats.connectDone = true;
    stats.connectDoneAt = Date.now();
    this.onConnectDone();
  }

  /** PINGs every held connection that has sent nothing for about heartbeatMs (PROTOCOL.md section 4.5). */
  private pingSweep(): void {
    const now = performance.now();
    for (const c of this.live) {
      // 250 ms early at most, never late: the server's idle timeout is 2 × heartbeatMs.
      if (c.held && c.heartbeatMs > 0 && now - c.lastSentAt >= c.heartbeatMs - 250) c.ping(++this.nonce);
    }
  }
}
