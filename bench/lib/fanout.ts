/**
 * The group fan-out scenario (`npm run bench:fanout`, docs/BENCHMARKS.md "Group fan-out") against a
 * running server, with raw SBP/1 connections (sbp-conn.ts):
 *
 * 1. `members` users (`<run>-m<i>`) and a sender (`<run>-s`, itself a member) connect, one device each,
 *    and JOIN the group `#<run>`, each waiting for its DONE. A probe user (`<run>-p`, not a member)
 *    connects from a thread of its own (ping-probe.ts).
 * 2. The sender writes `messages` durable group SENDs at once (clientMsgId 1 … M, `size`-byte payloads),
 *    and the probe PINGs every PROBE_INTERVAL_MS until the fan-out ends.
 * 3. Each member checks its DELIVERs — from the sender, to the group, clientMsgId 1 … M each once and in
 *    that order, seqs ascending — ACKs every window/2 DELIVERs (PROTOCOL.md section 5) and once it has
 *    all M. The fan-out ends at the last of the M × members member deliveries; the run, once the M
 *    ACCEPTEDs are in too.
 *
 * The sender's own copies are acknowledged but are not member deliveries (docs/BENCHMARKS.md, "What
 * counts"). Every phase has a time limit; an ERROR, a lost connection or the server going away fails the
 * run, and so does a member DELIVER out of order, twice, or not for the group.
 */
import { performance } from 'node:perf_hooks';
import { type DeliverFrame, encodeFrame, errorName, type Frame } from '../../src/protocol/index.js';
import { type LatencySummary, latencySummary, newHistogram } from './latency.js';
import { PingProbe, type ProbeResult } from './ping-probe.js';
import { bucketSeconds, endProgress, int, progress } from './report.js';
import { Conn, describeFrame, mapLimit } from './sbp-conn.js';
import { sleep } from './server.js';
import { nowNs } from './throughput.js';

/** How often the probe PINGs during the fan-out, ms. */
export const PROBE_INTERVAL_MS = 5;
/** Connects (each with its JOIN) in progress at once. */
const CONNECT_CONCURRENCY = 32;
/** A pause between the last DONE and the first SEND, so the fan-out starts on a quiet server. */
const SETTLE_MS = 200;

export interface FanoutConfig {
  /** A loopback IPv4 address. */
  host: string;
  port: number;
  /** Names the users and the group: `<run>-m<i>`, `<run>-s`, `<run>-p`, `#<run>`. */
  run: string;
  members: number;
  messages: number;
  size: number;
  /** Prefix of the progress lines, e.g. "[fan-out w1]". */
  label: string;
}

export interface FanoutHooks {
  /** Right before the first SEND is written (read CPU counters here), and at the last member delivery. */
  onStart?: () => void;
  onEnd?: () => void;
  /** Checked once a second: why the run cannot go on (e.g. the server exited), or null. */
  problem?: () => string | null;
  /** Every DELIVER a member (not the sender) receives, as it arrives. */
  onDeliver?: (member: string, frame: DeliverFrame) => void;
}

export interface FanoutResult {
  ok: boolean;
  failure: string | null;
  group: string;
  /** Members besides the sender; the group holds members + 1. */
  members: number;
  messages: number;
  size: number;
  /** messages × members. */
  expected: number;
  /** Member deliveries: each (member, message) counted once. */
  delivered: number;
  /** Members that received every message. */
  membersComplete: number;
  /** Member DELIVERs whose clientMsgId was not the one after the previous one's. */
  outOfOrder: number;
  /** Member DELIVERs of a message already received, or on a seq not above the previous one. */
  duplicates: number;
  /** Member DELIVERs not from the sender to the group. */
  unexpected: number;
  accepted: number;
  /** From writing the first SEND to the last member delivery. */
  fanoutMs: number;
  deliveriesPerSecond: number;
  /** SEND → ACCEPTED, each from the moment its SEND was written. */
  acceptedMs: LatencySummary;
  /** Per message (index 0 = clientMsgId 1), from the moment its SEND was written to its first / last member delivery. */
  firstDeliveryMs: number[];
  lastDeliveryMs: number[];
  /** The server's window (WELCOME) and the ACK interval used. */
  window: number;
  ackEvery: number;
  /** Sessions of the members and the sender per server process, by WELCOME's node. */
  sessionsByNode: Record<string, number>;
  probe: ProbeResult | null;
  /** The fan-out on the wall clock (ms since the Unix epoch): first SEND written, last member delivery. */
  startEpochMs: number;
  endEpochMs: number;
  /** Member deliveries per interval from the first SEND. */
  timeSeries: { intervalSeconds: number; delivered: number[] };
  errorsByName: Record<string, number>;
}

const epochMs = (): number => performance.timeOrigin + performance.now();
const ms = (ns: number): number => Math.round(ns / 1000) / 1000;

/** The first failure of a run, and a promise that settles on it. */
class Outcome {
  failure: string | null = null;
  private settle!: () => void;
  readonly failed = new Promise<void>((resolve) => {
    this.settle = resolve;
  });

  fail(why: string): void {
    if (this.failure !== null) return;
    this.failure = why;
    this.settle();
  }
}

/** `work`, or a failure: the run's, or `timeoutText` after `limitMs`. */
async function within<T>(
  work: Promise<T>,
  limitMs: number,
  timeoutText: () => string,
  outcome: Outcome,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const failed = outcome.failed.then(() => Promise.reject(new Error(outcome.failure!)));
  // A late rejection, after the race is decided, is not news.
  work.catch(() => {});
  failed.catch(() => {});
  try {
    const result = await Promise.race([
      work,
      failed,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(timeoutText())), limitMs);
      }),
    ]);
    return result;
  } finally {
    clearTimeout(timer);
  }
}

/** One connection of the run and when it last wrote (the keep-alive of PROTOCOL.md section 4.5). */
class Client {
  lastWriteMs = Date.now();
  unacked = 0;
  lastSeq = 0;
  private joined: ((error: string | null) => void) | null = null;

  constructor(
    readonly user: string,
    readonly conn: Conn,
  ) {}

  write(bytes: Uint8Array): void {
    this.lastWriteMs = Date.now();
    this.conn.write(bytes);
  }

  join(group: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.joined = (error) => (error === null ? resolve() : reject(new Error(error)));
      this.write(encodeFrame({ type: 'JOIN', ref: 1, group }));
    });
  }

  /** True when `frame` answered the JOIN. */
  answersJoin(frame: Frame): boolean {
    if (!this.joined || (frame.type !== 'DONE' && frame.type !== 'ERROR') || frame.ref !== 1) return false;
    const settle = this.joined;
    this.joined = null;
    settle(frame.type === 'DONE' ? null : `${this.user}: JOIN answered ${describeFrame(frame)}`);
    return true;
  }

  /** ACKs every `every` DELIVERs with seq > 0. */
  countForAck(seq: number, every: number): void {
    if (++this.unacked >= every) this.ackNow(seq);
  }

  ackNow(seq: number): void {
    this.unacked = 0;
    this.write(encodeFrame({ type: 'ACK', seq }));
  }
}

export async function runFanout(config: FanoutConfig, hooks: FanoutHooks = {}): Promise<FanoutResult> {
  const { members: N, messages: M, label } = config;
  const group = `#${config.run}`;
  const senderUser = `${config.run}-s`;
  const expected = N * M;
  const outcome = new Outcome();
  const errorsByName: Record<string, number> = {};
  const clients: Client[] = [];
  let sender: Client | null = null;
  /** Set once the run is over: a connect still in progress then closes at once. */
  let over = false;
  let probeOpening: Promise<PingProbe> | null = null;
  let probe: PingProbe | null = null;
  let probeResult: ProbeResult | null = null;
  let window = 0;
  let ackEvery = 1;
  let heartbeatMs = 30_000;

  // Member deliveries.
  const seen = new Uint8Array(N * (M + 1)); // member i, message k at i * (M + 1) + k
  const lastId = new Uint32Array(N);
  const counts = new Uint32Array(N);
  let delivered = 0;
  let membersComplete = 0;
  let outOfOrder = 0;
  let duplicates = 0;
  let unexpected = 0;
  const times = new Float64Array(expected); // ns after t0
  const firstNs = new Array<number>(M).fill(-1);
  const lastNs = new Array<number>(M).fill(-1);
  // The sender.
  const sentAt = new Float64Array(M + 1);
  const acceptedHist = newHistogram();
  let accepted = 0;
  let t0 = 0;
  let endNs = 0;
  let startEpochMs = 0;
  let endEpochMs = 0;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const maybeFinished = (): void => {
    if (delivered === expected && accepted === M) finish();
  };

  const onError = (who: string, f: Extract<Frame, { type: 'ERROR' }>): void => {
    const name = errorName(f.code);
    errorsByName[name] = (errorsByName[name] ?? 0) + 1;
    outcome.fail(`${who} got ${describeFrame(f)} (ref ${f.ref})`);
  };

  const onMemberDeliver = (i: number, c: Client, f: DeliverFrame): void => {
    const now = nowNs();
    hooks.onDeliver?.(c.user, f);
    if (f.seq === 0 || f.seq <= c.lastSeq) {
      // Nothing ephemeral is sent, and one session's seqs only go up (PROTOCOL.md section 4.3).
      if (f.seq === 0) unexpected++;
      else duplicates++;
      return;
    }
    c.lastSeq = f.seq;
    c.countForAck(f.seq, ackEvery);
    const k = f.clientMsgId;
    if (f.from !== senderUser || f.to !== group || k < 1 || k > M) {
      unexpected++;
      return;
    }
    const slot = i * (M + 1) + k;
    if (seen[slot] === 1) {
      duplicates++;
      return;
    }
    seen[slot] = 1;
    if (k !== lastId[i]! + 1) outOfOrder++;
    lastId[i] = k;
    if (delivered < expected) times[delivered] = now - t0;
    delivered++;
    if (firstNs[k - 1] === -1) firstNs[k - 1] = now - sentAt[k]!;
    lastNs[k - 1] = now - sentAt[k]!;
    if (++counts[i]! === M) {
      membersComplete++;
      if (c.unacked > 0) c.ackNow(f.seq);
    }
    if (delivered === expected) {
      endNs = now;
      endEpochMs = epochMs();
      hooks.onEnd?.();
      maybeFinished();
    }
  };

  const onSenderFrame = (c: Client, f: Frame): void => {
    switch (f.type) {
      case 'ACCEPTED': {
        if (f.clientMsgId < 1 || f.clientMsgId > M) return;
        acceptedHist.recordValue(Math.max(1, Math.round((nowNs() - sentAt[f.clientMsgId]!) / 1000)));
        accepted++;
        maybeFinished();
        return;
      }
      case 'DELIVER':
        // Its own copies (PROTOCOL.md section 5): acknowledged, not member deliveries.
        if (f.seq > c.lastSeq) {
          c.lastSeq = f.seq;
          c.countForAck(f.seq, ackEvery);
        }
        return;
      default:
    }
  };

  const open = async (user: string, member: number | null): Promise<Client> => {
    let client: Client | null = null;
    const conn = await Conn.open(config.port, user, 'd', {
      host: config.host,
      onFail: (why) => outcome.fail(`${user}: ${why}`),
      onFrame: (f) => {
        const c = client!;
        if (c.answersJoin(f)) return;
        if (f.type === 'ERROR') onError(user, f);
        else if (f.type === 'PING') c.write(encodeFrame({ type: 'PONG', nonce: f.nonce }));
        else if (f.type === 'BYE') outcome.fail(`${user}: the server sent BYE ${f.code} (${f.reason})`);
        else if (member === null) onSenderFrame(c, f);
        else if (f.type === 'DELIVER') onMemberDeliver(member, c, f);
      },
    });
    if (over) {
      conn.close();
      throw new Error('the run is over');
    }
    client = new Client(user, conn);
    clients.push(client);
    window = conn.welcome!.window;
    ackEvery = Math.max(1, Math.floor(window / 2));
    heartbeatMs = conn.welcome!.heartbeatMs;
    return client;
  };

  let phase = 'connecting';
  let joined = 0;
  let lastTick = { at: nowNs(), delivered: 0 };
  const ticker = setInterval(() => {
    const problem = hooks.problem?.() ?? null;
    if (problem !== null) outcome.fail(problem);
    // A client that has written nothing for a while PINGs, as clients must (PROTOCOL.md section 4.5).
    const quiet = Date.now() - heartbeatMs / 2;
    for (const c of clients) if (c.lastWriteMs < quiet) c.write(encodeFrame({ type: 'PING', nonce: 1 }));
    const now = nowNs();
    if (phase === 'fan-out') {
      const rate = ((delivered - lastTick.delivered) * 1e9) / (now - lastTick.at);
      progress(
        `${label} fan-out: ${int(delivered)}/${int(expected)} member deliveries (${int(rate)}/s), ` +
          `${accepted}/${M} ACCEPTED`,
      );
    } else {
      progress(`${label} ${phase}: ${int(clients.length)}/${int(N + 1)} connected, ${int(joined)} joined`);
    }
    lastTick = { at: now, delivered };
  }, 1000);

  try {
    // 1. The group: the sender creates it, the members join.
    progress(`${label} connecting ${int(N + 1)} clients and joining ${group}…`);
    const connectLimitMs = Math.max(60_000, (N + 1) * 20);
    await within(
      (async () => {
        sender = await open(senderUser, null);
        await sender.join(group);
        joined++;
        await mapLimit(
          Array.from({ length: N }, (_, i) => i),
          CONNECT_CONCURRENCY,
          async (i) => {
            if (outcome.failure !== null) return;
            const c = await open(`${config.run}-m${i}`, i);
            await c.join(group);
            joined++;
          },
        );
      })(),
      connectLimitMs,
      () =>
        `only ${int(clients.length)} of ${int(N + 1)} clients connected and ${int(joined)} joined ` +
        `within ${connectLimitMs / 1000} s`,
      outcome,
    );
    probeOpening = PingProbe.open({
      host: config.host,
      port: config.port,
      user: `${config.run}-p`,
      intervalMs: PROBE_INTERVAL_MS,
    });
    probe = await within(probeOpening, 20_000, () => 'the probe did not connect within 20 s', outcome);
    await sleep(SETTLE_MS);

    // 2. The fan-out.
    phase = 'fan-out';
    const sends = Array.from({ length: M }, (_, i) =>
      encodeFrame({
        type: 'SEND',
        clientMsgId: i + 1,
        flags: 0,
        to: group,
        payload: new Uint8Array(config.size).fill(0x61),
      }),
    );
    progress(`${label} fan-out: ${int(M)} SENDs to ${group} (${int(N + 1)} members)…`);
    probe.start();
    hooks.onStart?.();
    startEpochMs = epochMs();
    t0 = nowNs();
    lastTick = { at: t0, delivered: 0 };
    for (let k = 1; k <= M; k++) {
      sentAt[k] = nowNs();
      sender!.write(sends[k - 1]!);
    }
    const fanoutLimitMs = 30_000 + expected;
    await within(
      finished,
      fanoutLimitMs,
      () =>
        `only ${int(delivered)} of ${int(expected)} member deliveries (${int(membersComplete)} of ${int(N)} ` +
        `members complete) and ${accepted} of ${M} ACCEPTED within ${fanoutLimitMs / 1000} s ` +
        '(a group message skips a member whose inbox is full: the server’s inbox cap must allow every message)',
      outcome,
    );
    probeResult = await probe.stop();
    if (probe.failed !== null) outcome.fail(probe.failed);
  } catch (err) {
    outcome.fail(err instanceof Error ? err.message : String(err));
  } finally {
    over = true;
    clearInterval(ticker);
    endProgress();
    for (const c of clients) c.conn.close();
    // A probe still starting when the run failed is closed once started: its thread would keep us alive.
    const started = probe ?? (await probeOpening?.catch(() => null)) ?? null;
    await Promise.all([started?.close(), sleep(200)]);
    for (const c of clients) c.conn.socket.destroy();
  }

  if (outcome.failure === null) {
    const broken = [
      outOfOrder > 0 ? `${int(outOfOrder)} member DELIVERs out of order` : '',
      duplicates > 0 ? `${int(duplicates)} member DELIVERs twice` : '',
      unexpected > 0 ? `${int(unexpected)} member DELIVERs not from the sender to ${group}` : '',
    ].filter(Boolean);
    if (broken.length > 0) outcome.fail(broken.join(', '));
  }
  const fanoutNs = endNs > 0 ? endNs - t0 : 0;
  const interval = bucketSeconds(fanoutNs / 1e9);
  const series: number[] = [];
  for (let d = 0; d < Math.min(delivered, expected); d++) {
    const b = Math.floor(times[d]! / 1e9 / interval);
    series[b] = (series[b] ?? 0) + 1;
  }
  const sessionsByNode: Record<string, number> = {};
  for (const c of clients) {
    const node = c.conn.welcome!.node;
    sessionsByNode[node] = (sessionsByNode[node] ?? 0) + 1;
  }
  const acceptedMs = latencySummary(acceptedHist);
  acceptedHist.destroy();
  return {
    ok: outcome.failure === null,
    failure: outcome.failure,
    group,
    members: N,
    messages: M,
    size: config.size,
    expected,
    delivered,
    membersComplete,
    outOfOrder,
    duplicates,
    unexpected,
    accepted,
    fanoutMs: ms(fanoutNs),
    deliveriesPerSecond: fanoutNs > 0 ? Math.round((delivered * 1e9) / fanoutNs) : 0,
    acceptedMs,
    firstDeliveryMs: firstNs.map((v) => (v < 0 ? -1 : ms(v))),
    lastDeliveryMs: lastNs.map((v) => (v < 0 ? -1 : ms(v))),
    window,
    ackEvery,
    sessionsByNode,
    probe: probeResult,
    startEpochMs,
    endEpochMs,
    timeSeries: { intervalSeconds: interval, delivered: Array.from(series, (v) => v ?? 0) },
    errorsByName,
  };
}
