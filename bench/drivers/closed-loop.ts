/**
 * The measurements of the peer benchmarks, over any driver (driver.ts), so Switchboard, Mosquitto and
 * NATS are loaded by the same generator code:
 *
 * - `closedLoop`: the users workload of docs/BENCHMARKS.md, run exactly as bench/lib/throughput.ts runs
 *   it for SBP — U users, each keeping K messages in flight to users picked uniformly at random among
 *   the others; a message completes when its recipient receives it, and its sender then sends the next
 *   one; a warm-up, then a measured window; latency = receive time − send time on this process's one
 *   monotonic clock, in an HdrHistogram (µs, 3 significant digits); server CPU = user + system time of
 *   the server's process tree over the window, generator CPU = this process's, other CPU = the rest of
 *   the machine's busy time. Any connection failure, a 5 s stall or a dead server fails the run.
 *   Each payload carries its sender and message number in its first 8 bytes, so every protocol matches
 *   a delivery to its send the same way (and duplicates and losses are counted).
 * - `drain`: M messages published to a user whose connection is closed, then the time from its
 *   reconnect's first byte to the last message of the replay.
 * - `holdConnections`: N idle connections (handshake answered), held, and the server's RSS per
 *   connection.
 */
import hdr from 'hdr-histogram-js';
import {
  cpusAllowed,
  type MachineCpu,
  machineCpu,
  settledTreeRss,
  type TreeCpu,
  totalRss,
  treeCpu,
  treeCpusAllowed,
  treeRss,
} from '../lib/proc.js';
import { endProgress, progress, round } from '../lib/report.js';
import { mapLimit } from '../lib/sbp-conn.js';
import type { Driver, PeerConn } from './driver.js';

const HR_BASE = process.hrtime.bigint();
/** Nanoseconds on the monotonic clock, as an exact number (relative to this module's load). */
export function nowNs(): number {
  return Number(process.hrtime.bigint() - HR_BASE);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Bytes of the tag at the start of each payload: u32 sender index · u32 message number. */
export const TAG_BYTES = 8;
/** Connects (or subscribes) in progress at once while a run sets up. */
const SETUP_CONCURRENCY = 32;
/** No delivery for this long fails a run. */
const STALL_MS = 5000;

// ------------------------------------------------------------------ closed loop

export interface LoopOptions {
  /** Shown in progress lines, e.g. "mosquitto qos1". */
  label: string;
  users: number;
  /** Messages each user keeps in flight. */
  inFlight: number;
  payloadBytes: number;
  warmupMs: number;
  durationMs: number;
  /** After the window: how long to wait for the messages still in flight (they count as lost after). */
  settleMs?: number;
  /**
   * For protocols that may drop a message (MQTT QoS 0, NATS core, SBP ephemeral): a message not
   * delivered this long after it was sent counts as lost, and its sender sends the next one, so a drop
   * does not shrink the loop for good. 0 (the default) = never: a message that is not delivered stalls
   * its slot, and the run fails after 5 s without deliveries.
   */
  lossTimeoutMs?: number;
  /** User names are `<prefix><index>` (default `bench-u`). */
  userPrefix?: string;
  /** The server's root pid: its tree's CPU is measured; null = not measured (tests). */
  serverPid: number | null;
  /** False once the server process has exited (checked every tick). */
  serverAlive?: () => boolean;
  /** Progress lines on stderr (default true). */
  progress?: boolean;
}

export interface LoopResult {
  /** Length of the measured window as run, s. */
  windowSeconds: number;
  /** Messages delivered inside the window. */
  delivered: number;
  msgPerSec: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  /** Every message sent, warm-up and settling included. */
  sentTotal: number;
  /** Every message delivered (matched to its send), warm-up and settling included. */
  deliveredTotal: number;
  /** Deliveries that match no message in flight: a duplicate, or one already counted lost. */
  duplicates: number;
  /** Messages given up after `lossTimeoutMs`, plus those not delivered by the end of the settling time. */
  lost: number;
  serverCpuSeconds: number | null;
  /** Server CPU over the window, % of one core. */
  serverCpuPercent: number | null;
  serverCpuUsPerMsg: number | null;
  generatorCpuPercent: number;
  otherCpuPercent: number | null;
  /** The CPUs the server's processes and this generator were allowed during the window. */
  serverCpus: string | null;
  generatorCpus: string | null;
}

class Sender {
  nextId = 1;
  /** Send time (ns) of each message in flight, by message number. */
  readonly sentAt = new Map<number, number>();
  conn: PeerConn | null = null;

  constructor(
    readonly index: number,
    readonly user: string,
  ) {}
}

/** A uniformly random user other than `s` among `u`. */
function randomOther(s: number, u: number): number {
  const j = Math.floor(Math.random() * (u - 1));
  return j >= s ? j + 1 : j;
}

export async function closedLoop(driver: Driver, port: number, opts: LoopOptions): Promise<LoopResult> {
  if (opts.users < 2) throw new Error('the users workload needs at least 2 users');
  if (opts.payloadBytes < TAG_BYTES) throw new Error(`payloads must be at least ${TAG_BYTES} bytes`);
  const show = opts.progress !== false;
  const label = `[${opts.label}]`;
  const prefix = opts.userPrefix ?? 'bench-u';
  const senders = Array.from({ length: opts.users }, (_, i) => new Sender(i, `${prefix}${i}`));
  const scratch = new Uint8Array(opts.payloadBytes).fill(0x61);
  const tag = new DataView(scratch.buffer);

  let sending = true;
  let failure: string | null = null;
  let failed: () => void = () => {};
  const failedPromise = new Promise<void>((resolve) => {
    failed = resolve;
  });
  const fail = (why: string): void => {
    if (failure !== null || !sending) return;
    failure = why;
    failed();
  };

  const histogram = hdr.build({ lowestDiscernibleValue: 1, numberOfSignificantValueDigits: 3 });
  let windowStartNs = Number.POSITIVE_INFINITY;
  let windowEndNs = Number.POSITIVE_INFINITY;
  let inWindow = 0;
  let sentTotal = 0;
  let deliveredTotal = 0;
  let duplicates = 0;
  let inFlightNow = 0;
  let expired = 0;
  let settled: () => void = () => {};

  const sendNext = (s: Sender): void => {
    const id = s.nextId++;
    const to = randomOther(s.index, opts.users);
    tag.setUint32(0, s.index);
    tag.setUint32(4, id);
    s.sentAt.set(id, nowNs());
    sentTotal++;
    inFlightNow++;
    s.conn!.publish(senders[to]!.user, scratch);
  };

  const onMessage = (payload: Uint8Array): void => {
    const now = nowNs();
    if (payload.length !== opts.payloadBytes) {
      fail(`a message of ${payload.length} bytes arrived; ${opts.payloadBytes} were sent`);
      return;
    }
    const view = new DataView(payload.buffer, payload.byteOffset, TAG_BYTES);
    const sender = senders[view.getUint32(0)];
    const id = view.getUint32(4);
    const sent = sender?.sentAt.get(id);
    if (sender === undefined || sent === undefined) {
      duplicates++;
      return;
    }
    sender.sentAt.delete(id);
    deliveredTotal++;
    inFlightNow--;
    if (now >= windowStartNs && now < windowEndNs) {
      inWindow++;
      histogram.recordValue(Math.max(1, Math.round((now - sent) / 1000))); // µs
    }
    if (sending) sendNext(sender);
    else if (inFlightNow === 0) settled();
  };

  /** Gives up the messages sent before `cutoff` (ns); in a closed loop their senders send the next. */
  const expire = (cutoff: number): void => {
    for (const s of senders) {
      let gone = 0;
      // A Map iterates in insertion order: the oldest message first.
      for (const [id, at] of s.sentAt) {
        if (at >= cutoff) break;
        s.sentAt.delete(id);
        gone++;
      }
      expired += gone;
      inFlightNow -= gone;
      for (let k = 0; k < gone && sending; k++) sendNext(s);
    }
  };

  const conns: PeerConn[] = [];
  let ticker: NodeJS.Timeout | undefined;
  let printer: NodeJS.Timeout | undefined;
  let sweeper: NodeJS.Timeout | undefined;
  try {
    if (show) progress(`${label} connecting ${opts.users.toLocaleString('en-US')} clients…`);
    await mapLimit(senders, SETUP_CONCURRENCY, async (s) => {
      s.conn = await driver.connect(port, s.user, {
        onMessage,
        onFail: (why) => fail(`${s.user}: ${why}`),
      });
      conns.push(s.conn);
    });
    await mapLimit(senders, SETUP_CONCURRENCY, (s) => s.conn!.subscribe());
    if (failure !== null) throw new Error(failure);

    // Closed loop: every user starts with `inFlight` messages in flight.
    const t0 = nowNs();
    for (const s of senders) for (let k = 0; k < opts.inFlight; k++) sendNext(s);

    const lossMs = opts.lossTimeoutMs ?? 0;
    if (lossMs > 0) sweeper = setInterval(() => expire(nowNs() - lossMs * 1e6), 250);
    const warmupEnd = t0 + opts.warmupMs * 1e6;
    const windowEnd = warmupEnd + opts.durationMs * 1e6;
    let cpuStart: TreeCpu | null = null;
    let cpuEnd: TreeCpu | null = null;
    let genStart: NodeJS.CpuUsage | null = null;
    let genEnd: NodeJS.CpuUsage | null = null;
    let machineStart: MachineCpu | null = null;
    let machineEnd: MachineCpu | null = null;
    let serverCpus: string | null = null;
    let generatorCpus: string | null = null;
    let windowOpen = false;
    let lastSeen = 0;
    let lastChange = Date.now();

    const finished = new Promise<void>((resolve) => {
      // The window opens and closes on the clock; the tick checks boundaries and stalls.
      const tick = (): void => {
        const now = nowNs();
        if (!windowOpen && now >= warmupEnd) {
          windowOpen = true;
          if (opts.serverPid !== null) {
            serverCpus = treeCpusAllowed(opts.serverPid);
            cpuStart = treeCpu(opts.serverPid);
          }
          generatorCpus = cpusAllowed('self');
          machineStart = machineCpu();
          genStart = process.cpuUsage();
          windowStartNs = now;
        }
        if (windowOpen && now >= windowEnd) {
          // Deliveries are counted up to this tick, CPU is read at it: both cover the same span.
          windowEndNs = now;
          if (opts.serverPid !== null) cpuEnd = treeCpu(opts.serverPid);
          genEnd = process.cpuUsage(genStart!);
          machineEnd = machineCpu();
          sending = false;
          resolve();
          return;
        }
        if (deliveredTotal !== lastSeen) {
          lastSeen = deliveredTotal;
          lastChange = Date.now();
        } else if (Date.now() - lastChange > STALL_MS) {
          fail(`no message delivered for ${STALL_MS / 1000} s`);
        }
        if (opts.serverAlive && !opts.serverAlive()) fail('the server process exited');
        ticker = setTimeout(
          tick,
          Math.min(100, Math.max(1, ((windowOpen ? windowEnd : warmupEnd) - now) / 1e6)),
        );
      };
      ticker = setTimeout(tick, 1);
    });
    if (show) {
      let lastPrint = t0;
      let lastPrinted = 0;
      printer = setInterval(() => {
        const now = nowNs();
        const d = deliveredTotal;
        const rate = ((d - lastPrinted) * 1e9) / (now - lastPrint);
        lastPrint = now;
        lastPrinted = d;
        const phase =
          now < warmupEnd
            ? `warm-up ${((now - t0) / 1e9).toFixed(1)}/${opts.warmupMs / 1000} s`
            : `${((now - warmupEnd) / 1e9).toFixed(1)}/${opts.durationMs / 1000} s`;
        const p99 = inWindow > 0 ? `  p99 ${(histogram.getValueAtPercentile(99) / 1000).toFixed(2)} ms` : '';
        progress(
          `${label} ${phase}  ${Math.round(rate).toLocaleString('en-US')} msg/s  delivered ${d.toLocaleString('en-US')}${p99}`,
        );
      }, 1000);
    }
    // The run is bounded: the window, or the first failure, or a hard deadline.
    const deadline = setTimeout(() => fail('hard deadline passed'), opts.warmupMs + opts.durationMs + 15_000);
    await Promise.race([finished, failedPromise]);
    clearTimeout(deadline);
    clearInterval(printer);
    clearInterval(sweeper);
    clearTimeout(ticker);
    sending = false;
    if (failure !== null) throw new Error(failure);

    // Let the messages still in flight arrive, so losses and duplicates can be counted.
    if (inFlightNow > 0) {
      await Promise.race([
        new Promise<void>((resolve) => {
          settled = resolve;
        }),
        sleep(opts.settleMs ?? 2000),
      ]);
    }
    if (show) endProgress();

    const windowS = (windowEndNs - windowStartNs) / 1e9;
    const gen = genEnd! as NodeJS.CpuUsage;
    const genSeconds = (gen.user + gen.system) / 1e6;
    const serverCpu =
      cpuStart !== null && cpuEnd !== null
        ? (cpuEnd as TreeCpu).seconds - (cpuStart as TreeCpu).seconds
        : null;
    const mStart = machineStart as MachineCpu | null;
    const mEnd = machineEnd as MachineCpu | null;
    const other =
      mStart && mEnd
        ? Math.max(0, mEnd.busySeconds - mStart.busySeconds - (serverCpu ?? 0) - genSeconds)
        : null;
    const ms = (us: number): number => Math.round(us) / 1000;
    const delivered = inWindow;
    return {
      windowSeconds: round(windowS, 3),
      delivered,
      msgPerSec: Math.round(delivered / windowS),
      latencyMs: {
        p50: ms(histogram.getValueAtPercentile(50)),
        p90: ms(histogram.getValueAtPercentile(90)),
        p99: ms(histogram.getValueAtPercentile(99)),
        p999: ms(histogram.getValueAtPercentile(99.9)),
        max: ms(histogram.maxValue),
      },
      sentTotal,
      deliveredTotal,
      duplicates,
      lost: expired + inFlightNow,
      serverCpuSeconds: serverCpu === null ? null : round(serverCpu, 2),
      serverCpuPercent: serverCpu === null ? null : round((serverCpu / windowS) * 100, 1),
      serverCpuUsPerMsg:
        serverCpu === null || delivered === 0 ? null : round((serverCpu * 1e6) / delivered, 2),
      generatorCpuPercent: round((genSeconds / windowS) * 100, 1),
      otherCpuPercent: other === null ? null : round((other / windowS) * 100, 1),
      serverCpus,
      generatorCpus,
    };
  } finally {
    sending = false;
    clearTimeout(ticker);
    clearInterval(printer);
    clearInterval(sweeper);
    if (show) endProgress();
    await Promise.all(conns.map((c) => c.close()));
  }
}

// ------------------------------------------------------------------ drain

export interface DrainOptions {
  /** Messages stored for the offline user. */
  messages: number;
  payloadBytes: number;
  /** How long the replay may take before the drain fails, ms (default 60 000). */
  timeoutMs?: number;
  /** User names (default `drain-r` receives, `drain-s` sends). */
  receiver?: string;
  sender?: string;
}

export interface DrainResult {
  messages: number;
  /** Time to publish the M messages and have the server take them all (flush), ms. */
  storeMs: number;
  /** From the reconnect's first byte to the last message of the replay, ms. */
  drainMs: number;
  /** Messages of the replay per second. */
  msgPerSec: number;
  /** Distinct messages received, duplicates and missing ones (after the timeout, if it ran out). */
  received: number;
  duplicates: number;
  missing: number;
}

/**
 * Connects the receiver once (so its session or subscription exists), closes it, publishes M messages
 * to it from another user and waits until the server has taken them (every ACCEPTED / PUBACK), then
 * reconnects the receiver and times the replay, checking each message arrives exactly once.
 * `receiverDriver` connects the receiver (its SBP form must take a replay that comes with WELCOME).
 */
export async function drain(
  senderDriver: Driver,
  receiverDriver: Driver,
  port: number,
  opts: DrainOptions,
): Promise<DrainResult> {
  const m = opts.messages;
  if (m < 1) throw new Error('a drain needs at least one message');
  if (opts.payloadBytes < TAG_BYTES) throw new Error(`payloads must be at least ${TAG_BYTES} bytes`);
  const receiver = opts.receiver ?? 'drain-r';
  const senderUser = opts.sender ?? 'drain-s';
  const noMessages = (): void => {};
  let failure: string | null = null;
  const onFail = (why: string): void => {
    failure ??= why;
  };

  // 1. The receiver's session exists (and its subscription), then it goes offline.
  const first = await receiverDriver.connect(port, receiver, { onMessage: noMessages, onFail });
  await first.subscribe();
  await first.close();

  // 2. M messages for it, stored by the server.
  const sender = await senderDriver.connect(port, senderUser, { onMessage: noMessages, onFail });
  const payload = new Uint8Array(opts.payloadBytes).fill(0x62);
  const tag = new DataView(payload.buffer);
  const storeStart = nowNs();
  try {
    for (let i = 0; i < m; i++) {
      tag.setUint32(0, 0);
      tag.setUint32(4, i);
      sender.publish(receiver, payload);
    }
    await sender.flush(opts.timeoutMs ?? 60_000);
  } finally {
    await sender.close();
  }
  const storeMs = (nowNs() - storeStart) / 1e6;
  if (failure !== null) throw new Error(`storing the messages: ${failure}`);

  // 3. The reconnect and its replay.
  const seen = new Uint8Array(m);
  let received = 0;
  let duplicates = 0;
  let firstByteNs = 0;
  let lastNs = 0;
  let conn: PeerConn | null = null;
  let settle: (outcome: 'done' | 'failed' | 'timeout') => void = () => {};
  const outcomePromise = new Promise<'done' | 'failed' | 'timeout'>((resolve) => {
    settle = resolve;
  });
  const onMessage = (p: Uint8Array): void => {
    const i = new DataView(p.buffer, p.byteOffset, TAG_BYTES).getUint32(4);
    if (i >= m || seen[i] === 1) {
      duplicates++;
      return;
    }
    seen[i] = 1;
    received++;
    if (received === m) {
      lastNs = nowNs();
      settle('done');
    }
  };
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const timer = setTimeout(() => settle('timeout'), timeoutMs);
  try {
    conn = await receiverDriver.connect(port, receiver, {
      onMessage,
      onFail: (why) => {
        onFail(why);
        settle('failed');
      },
      onFirstByte: () => {
        firstByteNs = nowNs();
      },
    });
    // Subscribed again, as a client does after a reconnect (a persistent MQTT session still has its
    // subscription; a clean session or NATS gets only what is published from now on).
    conn.subscribe().catch((err: Error) => {
      onFail(err.message);
      settle('failed');
    });
  } catch (err) {
    onFail(err instanceof Error ? err.message : String(err));
    settle('failed');
  }
  const outcome = await outcomePromise;
  clearTimeout(timer);
  // A moment for duplicates that would follow the last new message.
  if (outcome === 'done') await sleep(200);
  await (conn as PeerConn | null)?.close();
  if (outcome === 'failed') throw new Error(`the replay: ${failure}`);
  const drainMs = outcome === 'done' ? (lastNs - firstByteNs) / 1e6 : Number.NaN;
  return {
    messages: m,
    storeMs: round(storeMs, 1),
    drainMs: round(drainMs, 2),
    msgPerSec: outcome === 'done' ? Math.round(m / (drainMs / 1000)) : 0,
    received,
    duplicates,
    missing: m - received,
  };
}

// ------------------------------------------------------------------ idle connections

export interface HoldOptions {
  label: string;
  count: number;
  holdMs: number;
  /** Handshakes in progress at once (default 256). */
  concurrency?: number;
  userPrefix?: string;
  /** The server's root pid: its tree's RSS is measured. */
  serverPid: number;
  progress?: boolean;
}

export interface HoldResult {
  count: number;
  /** Connected (handshake answered) and still open at the end of the hold. */
  held: number;
  failed: number;
  /** Connected, then closed by the server before the end of the hold. */
  dropped: number;
  secondsToAllConnected: number;
  connectsPerSecond: number;
  holdSeconds: number;
  serverRssBeforeBytes: number;
  serverRssBytes: number;
  rssPerConnectionBytes: number | null;
  firstError: string | null;
}

/** Opens `count` connections (handshake only, no subscription), holds them, measures the server's RSS. */
export async function holdConnections(driver: Driver, port: number, opts: HoldOptions): Promise<HoldResult> {
  const show = opts.progress !== false;
  const prefix = opts.userPrefix ?? 'idle-';
  const conns: PeerConn[] = [];
  let failed = 0;
  let dropped = 0;
  let firstError: string | null = null;
  await sleep(500);
  const rssBefore = totalRss(await settledTreeRss([opts.serverPid]));
  const t0 = nowNs();
  let lastShown = 0;
  try {
    await mapLimit(
      Array.from({ length: opts.count }, (_, i) => i),
      opts.concurrency ?? 256,
      async (i) => {
        try {
          conns.push(
            await driver.connect(port, `${prefix}${i}`, {
              onMessage: () => {},
              onFail: (why) => {
                dropped++;
                firstError ??= why;
              },
            }),
          );
        } catch (err) {
          failed++;
          firstError ??= err instanceof Error ? err.message : String(err);
        }
        if (show && Date.now() - lastShown > 1000) {
          lastShown = Date.now();
          progress(`[${opts.label}] ${conns.length.toLocaleString('en-US')} connected, ${failed} failed`);
        }
      },
    );
    const connectS = (nowNs() - t0) / 1e9;
    if (show)
      progress(`[${opts.label}] holding ${conns.length.toLocaleString('en-US')} for ${opts.holdMs / 1000} s`);
    await sleep(opts.holdMs);
    const rss = totalRss(treeRss([opts.serverPid]));
    const held = conns.length - dropped;
    if (show) endProgress();
    return {
      count: opts.count,
      held,
      failed,
      dropped,
      secondsToAllConnected: round(connectS, 2),
      connectsPerSecond: Math.round(conns.length / connectS),
      holdSeconds: opts.holdMs / 1000,
      serverRssBeforeBytes: rssBefore,
      serverRssBytes: rss,
      rssPerConnectionBytes: held > 0 ? Math.round((rss - rssBefore) / held) : null,
      firstError,
    };
  } finally {
    for (const c of conns) c.destroy();
  }
}
