/**
 * A probe connection in a thread of its own (ping-probe-worker.ts): PING every few ms while a scenario
 * runs, and the PONG round trips. A PING is answered by the server's event loop that holds the probe's
 * session, so a round trip bounds from above how long that loop made a ready callback wait, plus one
 * loopback round trip and the probe thread's own (small) delay. The thread keeps the generator's busy
 * main loop out of the figure.
 */
import { Worker } from 'node:worker_threads';
import { addEncoded, type LatencySummary, latencySummary, newHistogram } from './latency.js';

export interface ProbeConfig {
  host: string;
  port: number;
  /** A user of its own (not a member of anything the scenario sends to). */
  user: string;
  intervalMs: number;
}

export type ToProbe = { type: 'start' } | { type: 'stop' };

export type FromProbe =
  | { type: 'ready'; node: string }
  | { type: 'result'; pings: number; answered: number; histogram: string }
  | { type: 'failed'; message: string };

export interface ProbeResult {
  /** WELCOME's node: the server process that held the probe's session. */
  node: string;
  intervalMs: number;
  pings: number;
  answered: number;
  /** PING → PONG round trips, ms. */
  rttMs: LatencySummary;
}

const READY_TIMEOUT_MS = 15_000;
const RESULT_TIMEOUT_MS = 5_000;

export class PingProbe {
  private failure: string | null = null;
  private onMessage: (m: FromProbe) => void = () => {};
  private stopped = false;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly worker: Worker,
    private readonly config: ProbeConfig,
    readonly node: string,
  ) {
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (m: FromProbe) => {
      if (m.type === 'failed') this.failure ??= m.message;
      this.onMessage(m);
    });
  }

  /** Starts the thread and its connection; resolves once it has its WELCOME. */
  static open(config: ProbeConfig): Promise<PingProbe> {
    const worker = new Worker(new URL('./ping-probe-worker.js', import.meta.url), { workerData: config });
    return new Promise((resolve, reject) => {
      const fail = (why: string): void => {
        clearTimeout(timer);
        void worker.terminate();
        reject(new Error(`the probe connection: ${why}`));
      };
      const timer = setTimeout(() => fail(`not ready within ${READY_TIMEOUT_MS / 1000} s`), READY_TIMEOUT_MS);
      worker.once('error', (err) => fail(err.message));
      worker.once('message', (m: FromProbe) => {
        if (m.type !== 'ready') {
          fail(m.type === 'failed' ? m.message : `unexpected ${m.type}`);
          return;
        }
        clearTimeout(timer);
        resolve(new PingProbe(worker, config, m.node));
      });
    });
  }

  /** Why the probe's connection failed, or null. */
  get failed(): string | null {
    return this.failure;
  }

  start(): void {
    this.worker.postMessage({ type: 'start' } satisfies ToProbe);
  }

  /** Stops pinging; resolves with the round trips once the last PONGs are in (or given up on). */
  stop(): Promise<ProbeResult> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`the probe sent no result within ${RESULT_TIMEOUT_MS / 1000} s`));
      }, RESULT_TIMEOUT_MS);
      this.onMessage = (m) => {
        if (m.type !== 'result') return;
        clearTimeout(timer);
        const h = newHistogram();
        addEncoded(h, m.histogram);
        const rttMs = latencySummary(h);
        h.destroy();
        resolve({
          node: this.node,
          intervalMs: this.config.intervalMs,
          pings: m.pings,
          answered: m.answered,
          rttMs,
        });
      };
      this.stopped = true;
      this.worker.postMessage({ type: 'stop' } satisfies ToProbe);
    });
  }

  /**
   * Ends the thread and its connection: once stopped it ends by itself (it is terminated if it has not
   * within 2 s); otherwise at once.
   */
  async close(): Promise<void> {
    const timer = setTimeout(() => void this.worker.terminate(), this.stopped ? 2000 : 0);
    await this.exited;
    clearTimeout(timer);
  }
}
