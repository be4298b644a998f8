/**
 * The thread of a PingProbe (ping-probe.ts): one SBP/1 connection that, between 'start' and 'stop',
 * writes a PING every `intervalMs` on schedule (whether or not earlier ones are answered) and times
 * each PONG. Its own event loop has nothing else to do, so the round trips it records are not delayed
 * by the generator's main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { encodeFrame } from '../../src/protocol/index.js';
import { encodeHistogram, newHistogram } from './latency.js';
import type { FromProbe, ProbeConfig, ToProbe } from './ping-probe.js';
import { Conn } from './sbp-conn.js';
import { nowNs } from './throughput.js';

/** After 'stop', how long PINGs still unanswered may take. */
const LAST_PONGS_MS = 1000;

const config = workerData as ProbeConfig;
const port = parentPort!;
const post = (m: FromProbe): void => port.postMessage(m);

const histogram = newHistogram();
const sentAt = new Map<number, number>();
let nonce = 0;
let pinging = false;
let timer: NodeJS.Timeout | undefined;
let lastPongs: (() => void) | null = null;

function main(conn: Conn): void {
  const ping = (at: number): void => {
    if (!pinging) return;
    nonce++;
    sentAt.set(nonce, nowNs());
    conn.write(encodeFrame({ type: 'PING', nonce }));
    // The next one is due `intervalMs` after this one was due, however late this one went out.
    const next = at + config.intervalMs * 1e6;
    timer = setTimeout(() => ping(next), Math.max(0, (next - nowNs()) / 1e6));
  };
  port.on('message', (m: ToProbe) => {
    if (m.type === 'start' && !pinging) {
      pinging = true;
      ping(nowNs());
    } else if (m.type === 'stop') {
      pinging = false;
      clearTimeout(timer);
      let finished = false;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        post({
          type: 'result',
          pings: nonce,
          answered: histogram.totalCount,
          histogram: encodeHistogram(histogram),
        });
        conn.close();
        port.close();
      };
      if (sentAt.size === 0) finish();
      else {
        lastPongs = finish;
        setTimeout(finish, LAST_PONGS_MS).unref();
      }
    }
  });
}

Conn.open(config.port, config.user, 'probe', {
  host: config.host,
  onFrame: (f, c) => {
    if (f.type === 'PONG') {
      const sent = sentAt.get(f.nonce);
      if (sent === undefined) return;
      sentAt.delete(f.nonce);
      histogram.recordValue(Math.max(1, Math.round((nowNs() - sent) / 1000))); // µs
      if (sentAt.size === 0 && lastPongs) {
        const done = lastPongs;
        lastPongs = null;
        done();
      }
    } else if (f.type === 'PING') {
      c.write(encodeFrame({ type: 'PONG', nonce: f.nonce }));
    }
  },
  onFail: (why) => post({ type: 'failed', message: `the probe's connection: ${why}` }),
}).then(
  (conn) => {
    main(conn);
    post({ type: 'ready', node: conn.welcome!.node });
  },
  (err: unknown) => {
    post({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    port.close();
  },
);
