/**
 * Storm scenario (`switchboard bench storm`): N connected clients are cut at once, and come back.
 *
 * Each client i is a fresh user (`st<run id>-u<i>`, device d) and a sender: it keeps a few durable
 * SENDs in flight (`--in-flight`, default 2; `--client-rate r` paces it to at most r new messages per
 * second) to user i+1 (mod N), so every user has exactly one sender. A client sends at most 4 000
 * messages (its own inbox and its recipient's then stay under the default inbox cap of 10 000). A SEND stays pending until ACCEPTED; after
 * each reconnect a client re-sends every pending SEND in ascending clientMsgId order with its original
 * clientMsgId (as the SDK does, PROTOCOL.md section 5), and after STORE_UNAVAILABLE it waits a jittered
 * back-off and does the same. Clients do not ACK during the storm (they reconnect with resumeAfter = the
 * highest seq they saw, so nothing is replayed to them), so every stored message is still in the inbox
 * when it is read back at the end.
 *
 * Phases, each with a time limit: connect all (max(60 s, 10 ms per client)); send for `--before`; the
 * cut; wait until every client has its WELCOME again (`--timeout`, default 120 s); send for `--after`;
 * stop new SENDs and wait until every pending one is ACCEPTED (30 s); close; read every recipient's inbox
 * (a fresh replay of device d from seq 0, ACKing as it goes; max(60 s, 20 ms per client)) and check that
 * every ACCEPTED clientMsgId is stored exactly once in its recipient's inbox. The inboxes are read even
 * when not every client came back in time (the run has failed then, but lost and duplicates still count).
 *
 * The cut:
 * - default: every client destroys its socket at the same moment and reconnects at once;
 * - `--restart`: SIGTERM to the server (`--server-pid`, else the process listening on the port). The
 *   bench does not restart it: the caller's supervisor (systemd, a container runtime, a test) must bring
 *   it back on the same port and data folder; the clients retry (back-off 25 ms doubling to 250 ms,
 *   with jitter) until it answers;
 * - `--restart-cmd <cmd>`: runs `sh -c <cmd>` (e.g. `systemctl restart switchboard`) as the cut.
 * The clients ignore the reconnect delay suggested by SHUTTING_DOWN: all come back at once, the worst case.
 * At most `--concurrency` connects are in progress at once (default 512, as `bench connections`); a TCP
 * connect has 10 s, and then a client waits for WELCOME as long as the phase lasts (as the SDK does).
 *
 * In the default closed loop, N × K messages are always in flight: with thousands of clients that
 * saturates a server, and reconnects then compete with that load. `--client-rate` paces the senders to
 * measure reconnects against a server that is not saturated.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import {
  ACCEPTED_FLAG_DUPLICATE,
  encodeFrame,
  errorName,
  type Frame,
  FrameDecoder,
  isFatalCode,
  SbpError,
} from '../src/protocol/index.js';
import { parseTarget } from './connections.js';
import { intFlag } from './lib/flags.js';
import {
  type Histogram,
  type LatencySummary,
  latencySummary,
  newHistogram,
  percentileCurve,
} from './lib/latency.js';
import { loadAverage } from './lib/machine.js';
import { readProcessTable, serverRootsForPort } from './lib/proc.js';
import { endProgress, int, progress, round, summaryText } from './lib/report.js';
import { Conn, mapLimit } from './lib/sbp-conn.js';
import { nowNs } from './lib/throughput.js';
import { commandText, type ReportInput } from './report-html.js';

// ------------------------------------------------------------------ options

export type StormCut = 'client' | 'sigterm' | 'command';

export interface StormFlags {
  count: string;
  inFlight?: string;
  clientRate?: string;
  size?: string;
  before?: string;
  after?: string;
  timeout?: string;
  restart?: boolean;
  serverPid?: string;
  restartCmd?: string;
  concurrency?: string;
  target?: string;
  json?: boolean;
  report?: string;
}

export interface StormOptions {
  host: string;
  port: number;
  count: number;
  inFlight: number;
  /** New messages per second per client at most (0 = no pacing). */
  clientRate: number;
  size: number;
  beforeMs: number;
  afterMs: number;
  /** Time limit for every client to be back after the cut. */
  backTimeoutMs: number;
  cut: StormCut;
  serverPid: number | null;
  restartCmd: string | null;
  concurrency: number;
  json: boolean;
  report: string | null;
}

/** New messages per client at most: with the default inbox cap (10 000) an inbox holds both directions. */
export const MAX_MESSAGES_PER_CLIENT = 4000;
const CONNECT_TIMEOUT_MS = 10_000;
const SETTLE_LIMIT_MS = 30_000;
const CLOSE_LIMIT_MS = 5_000;
const SAMPLE_MS = 100;

export function resolveStormOptions(flags: StormFlags, parseDuration: (t: string) => number): StormOptions {
  const { host, port } = parseTarget(flags.target ?? 'sbp://127.0.0.1:7070');
  const count = intFlag(flags.count, '--count', 2);
  if (flags.restart && flags.restartCmd !== undefined) {
    throw new Error('give --restart (SIGTERM to the server) or --restart-cmd, not both');
  }
  if (flags.serverPid !== undefined && !flags.restart) {
    throw new Error('--server-pid is the process --restart sends SIGTERM to: give --restart too');
  }
  const clientRate = Number(flags.clientRate ?? '0');
  if (!Number.isFinite(clientRate) || clientRate < 0) {
    throw new Error(`--client-rate must be a number ≥ 0, not "${flags.clientRate}"`);
  }
  return {
    host,
    port,
    count,
    inFlight: intFlag(flags.inFlight ?? '2', '--in-flight', 1),
    clientRate,
    size: intFlag(flags.size ?? '100', '--size', 0),
    beforeMs: parseDuration(flags.before ?? '2s'),
    afterMs: parseDuration(flags.after ?? '2s'),
    backTimeoutMs: parseDuration(flags.timeout ?? '120s'),
    cut: flags.restart ? 'sigterm' : flags.restartCmd !== undefined ? 'command' : 'client',
    serverPid: flags.serverPid === undefined ? null : intFlag(flags.serverPid, '--server-pid', 1),
    restartCmd: flags.restartCmd ?? null,
    concurrency: intFlag(flags.concurrency ?? '512', '--concurrency', 1),
    json: flags.json ?? false,
    report: flags.report ?? null,
  };
}

// ------------------------------------------------------------------ the clients

/** Connects in progress at most; the rest wait their turn in order. */
class ConnectLimiter {
  private inProgress = 0;
  private readonly queue: StormClient[] = [];

  constructor(private readonly limit: number) {}

  request(c: StormClient): void {
    if (this.inProgress < this.limit) {
      this.inProgress++;
      c.connectNow();
    } else {
      this.queue.push(c);
    }
  }

  release(): void {
    this.inProgress--;
    while (this.inProgress < this.limit && this.queue.length > 0) {
      const next = this.queue.shift()!;
      this.inProgress++;
      next.connectNow();
    }
  }

  clear(): void {
    this.queue.length = 0;
  }
}

/** What every client shares: the target, the switches of the phases, the counters. */
class Storm {
  sending = false;
  /** Reconnect when a connection is lost (false while closing at the end). */
  reconnect = true;
  up = 0;
  welcomes = 0;
  /** First WELCOME of a client that lost its session after the cut. */
  firstWelcomeAfterCutNs: number | null = null;
  /** nowNs() of the cut: a client that loses its session after it and gets WELCOME again is back. */
  cutNs = Number.POSITIVE_INFINITY;
  connectAttempts = 0;
  readonly connectFailures: Record<string, number> = {};
  readonly errorsByName: Record<string, number> = {};
  acceptedInSample = 0;
  resent = 0;
  duplicateAccepts = 0;
  readonly latency: Histogram = newHistogram();
  readonly limiter: ConnectLimiter;
  readonly payload: Uint8Array;
  readonly backAfterCut = new Set<StormClient>();

  constructor(readonly opts: StormOptions) {
    this.limiter = new ConnectLimiter(opts.concurrency);
    this.payload = new Uint8Array(opts.size).fill(0x61);
  }

  countError(name: string): void {
    this.errorsByName[name] = (this.errorsByName[name] ?? 0) + 1;
  }

  connectFailed(reason: string): void {
    this.connectFailures[reason] = (this.connectFailures[reason] ?? 0) + 1;
  }
}

type ClientState = 'down' | 'waiting' | 'connecting' | 'up' | 'closing' | 'closed';

class StormClient {
  state: ClientState = 'down';
  private socket: net.Socket | null = null;
  private decoder: FrameDecoder | null = null;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  /** Highest seq DELIVERed: resumeAfter of the next HELLO (nothing is replayed, nothing is ACKed). */
  private lastSeq = 0;
  nextId = 1;
  /** clientMsgId → nowNs() of its first send, in ascending clientMsgId order. */
  readonly pending = new Map<number, number>();
  readonly accepted: number[] = [];
  /** Answered with an ERROR that is not retried (e.g. INBOX_FULL). */
  readonly refused = new Set<number>();
  private holdUntilNs = 0;
  private lastNewNs = 0;
  lastWriteMs = 0;
  heartbeatMs = 30_000;
  /** Lost its session after the cut (so its next WELCOME makes it back). */
  lostAfterCut = false;
  /** nowNs() of its latest WELCOME. */
  welcomeNs = 0;
  private readonly sendTemplate: Uint8Array;

  constructor(
    readonly index: number,
    readonly user: string,
    readonly peer: string,
    private readonly storm: Storm,
  ) {
    this.sendTemplate = encodeFrame({
      type: 'SEND',
      clientMsgId: 1,
      flags: 0,
      to: peer,
      payload: storm.payload,
    });
    // Spread the first sends of the clients over one pacing interval.
    const interval = storm.opts.clientRate > 0 ? 1e9 / storm.opts.clientRate : 0;
    this.lastNewNs = nowNs() - Math.random() * interval;
  }

  /** Queues a connect (now, or after `delayMs`). */
  connect(delayMs = 0): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.state = 'waiting';
    if (delayMs > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.storm.limiter.request(this);
      }, delayMs);
    } else {
      this.storm.limiter.request(this);
    }
  }

  /** Called by the limiter: the TCP connect and the HELLO. */
  connectNow(): void {
    if (this.state !== 'waiting') {
      this.storm.limiter.release();
      return;
    }
    this.state = 'connecting';
    this.storm.connectAttempts++;
    this.decoder = new FrameDecoder('serverToClient', { firstFrame: 66_560, frame: 66_560 });
    const socket = net.connect({ host: this.storm.opts.host, port: this.storm.opts.port });
    this.socket = socket;
    socket.setNoDelay(true);
    // A time limit on the TCP connect only, as the SDK's transport: once connected, the client waits for
    // WELCOME as long as the phase allows (a timeout here would only requeue it behind its own corpse).
    this.timer = setTimeout(() => {
      this.timer = null;
      this.lost(socket, 'CONNECT_TIMEOUT');
    }, CONNECT_TIMEOUT_MS);
    socket.on('connect', () => {
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = null;
      }
      this.write(
        encodeFrame({
          type: 'HELLO',
          version: 1,
          user: this.user,
          device: 'd',
          token: '',
          resumeAfter: this.lastSeq,
        }),
      );
    });
    socket.on('data', (chunk) => {
      if (socket !== this.socket) return;
      try {
        this.decoder!.push(chunk, (f) => this.onFrame(f));
      } catch (err) {
        this.lost(socket, err instanceof SbpError ? 'BAD_FRAME' : 'CLIENT_ERROR');
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => this.lost(socket, err.code ?? 'SOCKET_ERROR'));
    socket.on('close', () => this.lost(socket, 'CLOSED'));
  }

  /** The client-side cut: the socket is destroyed at once; the client reconnects. */
  cut(): void {
    if (this.socket) this.lost(this.socket, 'CUT');
  }

  /** The socket is gone (or must go): back to 'down', and a reconnect unless the run is closing. */
  private lost(socket: net.Socket, reason: string): void {
    if (socket !== this.socket) return;
    this.socket = null;
    socket.destroy();
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const was = this.state;
    if (was === 'connecting') {
      this.storm.limiter.release();
      this.storm.connectFailed(reason);
      this.failures++;
    } else if (was === 'up') {
      this.storm.up--;
      if (nowNs() >= this.storm.cutNs) this.lostAfterCut = true;
    }
    if (was === 'closing') {
      this.state = 'closed';
      return;
    }
    this.state = 'down';
    if (!this.storm.reconnect) return;
    // Straight back after losing a session; after failed connects, back-off 25 ms doubling to 250 ms,
    // jittered (short, so the time to all back measures the server more than the back-off).
    const delay =
      this.failures === 0 ? 0 : Math.min(250, 25 * 2 ** (this.failures - 1)) * (0.5 + Math.random());
    this.connect(delay);
  }

  private write(bytes: Uint8Array): void {
    this.lastWriteMs = Date.now();
    this.socket?.write(bytes);
  }

  private writeSend(id: number): void {
    const bytes = this.sendTemplate.slice();
    const view = new DataView(bytes.buffer);
    view.setUint32(5, Math.floor(id / 0x1_0000_0000));
    view.setUint32(9, id >>> 0);
    this.write(bytes);
  }

  /** Every pending SEND again, in ascending clientMsgId order (after a reconnect or a back-off). */
  private resendPending(): void {
    for (const id of this.pending.keys()) {
      this.writeSend(id);
      this.storm.resent++;
    }
  }

  /** New SENDs while there is room in flight, the pacing allows and the run is sending. */
  pump(): void {
    const { storm } = this;
    if (this.state !== 'up' || !storm.sending) return;
    const now = nowNs();
    if (now < this.holdUntilNs) return;
    const interval = storm.opts.clientRate > 0 ? 1e9 / storm.opts.clientRate : 0;
    while (
      this.pending.size < storm.opts.inFlight &&
      this.nextId <= MAX_MESSAGES_PER_CLIENT &&
      now - this.lastNewNs >= interval
    ) {
      const id = this.nextId++;
      this.pending.set(id, now);
      this.lastNewNs = interval > 0 ? Math.max(this.lastNewNs + interval, now - interval) : now;
      this.writeSend(id);
    }
  }

  ping(): void {
    if (this.state === 'up' && Date.now() - this.lastWriteMs > this.heartbeatMs / 2) {
      this.write(encodeFrame({ type: 'PING', nonce: 1 }));
    }
  }

  private onFrame(f: Frame): void {
    const { storm } = this;
    switch (f.type) {
      case 'WELCOME': {
        if (this.state !== 'connecting') return;
        if (this.timer) {
          clearTimeout(this.timer);
          this.timer = null;
        }
        this.state = 'up';
        this.failures = 0;
        this.heartbeatMs = f.heartbeatMs;
        this.decoder!.setLimits({ firstFrame: 66_560, frame: f.maxPayload + 1024 });
        storm.limiter.release();
        storm.up++;
        storm.welcomes++;
        this.welcomeNs = nowNs();
        if (this.lostAfterCut) {
          storm.firstWelcomeAfterCutNs ??= this.welcomeNs;
          storm.backAfterCut.add(this);
        }
        this.holdUntilNs = 0;
        this.resendPending();
        this.pump();
        return;
      }
      case 'ACCEPTED': {
        const sentAt = this.pending.get(f.clientMsgId);
        if (sentAt === undefined) return; // answered already (a re-send's second answer)
        this.pending.delete(f.clientMsgId);
        this.accepted.push(f.clientMsgId);
        if (f.flags & ACCEPTED_FLAG_DUPLICATE) storm.duplicateAccepts++;
        storm.acceptedInSample++;
        storm.latency.recordValue(Math.max(1, Math.round((nowNs() - sentAt) / 1000)));
        this.pump();
        return;
      }
      case 'DELIVER':
        if (f.seq > this.lastSeq) this.lastSeq = f.seq;
        return;
      case 'ERROR': {
        const name = errorName(f.code);
        storm.countError(name);
        if (isFatalCode(f.code)) return; // the server closes the connection: reconnect then
        if (name === 'STORE_UNAVAILABLE') {
          // As the SDK: nothing new for a jittered back-off, then every pending SEND again, in order.
          const wait = 200 + Math.random() * 300;
          this.holdUntilNs = nowNs() + wait * 1e6;
          setTimeout(() => {
            if (this.state === 'up' && nowNs() >= this.holdUntilNs) {
              this.resendPending();
              this.pump();
            }
          }, wait + 1);
          return;
        }
        if (this.pending.delete(f.ref)) this.refused.add(f.ref);
        this.pump();
        return;
      }
      case 'PING':
        this.write(encodeFrame({ type: 'PONG', nonce: f.nonce }));
        return;
      case 'BYE':
        if (this.socket) this.lost(this.socket, 'BYE');
        return;
      default:
    }
  }

  /** BYE and FIN; no reconnect. */
  close(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.state === 'up') this.storm.up--;
    if (this.state === 'connecting') this.storm.limiter.release();
    const socket = this.socket;
    if (socket === null) {
      this.state = 'closed';
      return;
    }
    this.state = 'closing';
    socket.end(encodeFrame({ type: 'BYE', code: 0, reason: 'bench done' }));
  }

  destroy(): void {
    this.socket?.destroy();
    this.socket = null;
    this.state = 'closed';
  }
}

// ------------------------------------------------------------------ the run

export interface StormResult {
  scenario: 'storm';
  target: string;
  /** Every client back, nothing lost, nothing stored twice. */
  ok: boolean;
  failure: string | null;
  count: number;
  cut: StormCut;
  inFlight: number;
  clientRate: number;
  size: number;
  secondsToAllConnected: number;
  /** From the cut to the last client's WELCOME. */
  secondsToAllBack: number | null;
  /** From the cut to the first client's WELCOME (the server's downtime, with --restart). */
  secondsToFirstBack: number | null;
  /** Clients back ÷ secondsToAllBack. */
  reconnectsPerSecond: number | null;
  /** Clients back ÷ (last WELCOME − first WELCOME after the cut): the rate once the server answers. */
  reconnectsPerSecondOnceUp: number | null;
  back: number;
  connectAttempts: number;
  connectFailuresByError: Record<string, number>;
  /** SENDs answered ACCEPTED. */
  accepted: number;
  /** ACCEPTED clientMsgIds missing from their recipient's inbox. */
  lost: number;
  /** Extra copies: one (sender, clientMsgId) stored more than once in its recipient's inbox. */
  duplicates: number;
  /** Re-sent SENDs (after a reconnect or STORE_UNAVAILABLE), and ACCEPTED answers with the duplicate flag. */
  resent: number;
  duplicateAccepts: number;
  /** Sent, never ACCEPTED (refused with an ERROR, or still pending at the end), and how many of them were stored anyway. */
  unconfirmed: number;
  unconfirmedStored: number;
  /** Stored messages from a sender with a clientMsgId it never sent. */
  unexpected: number;
  /** Inboxes read back at the end (one per client). */
  inboxesRead: number;
  errorsByName: Record<string, number>;
  /** Time of the first send to ACCEPTED, re-sends included. */
  acceptLatencyMs: LatencySummary;
  acceptLatencyPercentiles: [number, number][];
  timeline: {
    intervalSeconds: number;
    /** Clients with a session (WELCOMEd and open) at each sample, from the start of the connect phase. */
    connected: number[];
    /** ACCEPTED answers in each interval. */
    accepted: number[];
    cutAtSeconds: number | null;
    allBackAtSeconds: number | null;
  };
  generatorCpuSeconds: number;
  loadAverage: [number, number, number];
  cores: number;
  node: string;
  warnings: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
  return true;
}

/** Every DELIVER of `user`'s inbox (device d from seq 0), counted per clientMsgId of `from`. */
async function readInbox(
  opts: StormOptions,
  user: string,
  from: string,
): Promise<{ counts: Map<number, number>; error: string | null }> {
  const counts = new Map<number, number>();
  let lastSeq = 0;
  let highest = 0;
  let unacked = 0;
  let ackEvery = 500;
  let resolveDone!: () => void;
  let failed: string | null = null;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });
  let conn: Conn | null = null;
  try {
    conn = await Conn.open(opts.port, user, 'd', {
      host: opts.host,
      onWelcome: (w) => {
        lastSeq = w.lastSeq;
        ackEvery = Math.max(1, Math.floor(w.window / 2));
        if (lastSeq === 0) resolveDone();
      },
      onFail: (why) => {
        failed ??= why;
        resolveDone();
      },
      onFrame: (f, c) => {
        if (f.type === 'DELIVER' && f.seq > highest) {
          highest = f.seq;
          if (f.from === from) counts.set(f.clientMsgId, (counts.get(f.clientMsgId) ?? 0) + 1);
          if (++unacked >= ackEvery || f.seq >= lastSeq) {
            unacked = 0;
            c.write(encodeFrame({ type: 'ACK', seq: f.seq }));
          }
          if (f.seq >= lastSeq) resolveDone();
        } else if (f.type === 'ERROR') {
          failed ??= `ERROR ${errorName(f.code)} (${f.message})`;
          resolveDone();
        } else if (f.type === 'PING') {
          c.write(encodeFrame({ type: 'PONG', nonce: f.nonce }));
        }
      },
    });
    const timer = new Promise<void>((r) => setTimeout(r, 30_000).unref());
    await Promise.race([done, timer]);
    if (failed === null && highest < lastSeq) failed = `read ${highest} of ${lastSeq} seqs within 30 s`;
  } catch (err) {
    failed ??= err instanceof Error ? err.message : String(err);
  } finally {
    conn?.close();
  }
  return { counts, error: failed === null ? null : `${user}: ${failed}` };
}

export async function runStorm(opts: StormOptions): Promise<StormResult> {
  const target = `sbp://${opts.host}:${opts.port}`;
  const warnings: string[] = [];
  const load = loadAverage();
  const cpu0 = process.cpuUsage();
  const N = opts.count;

  // The process the cut signals, found before anything starts.
  let sigtermPid: number | null = null;
  if (opts.cut === 'sigterm') {
    if (opts.serverPid !== null) {
      if (!readProcessTable().has(opts.serverPid))
        throw new Error(`--server-pid ${opts.serverPid}: no such process`);
      sigtermPid = opts.serverPid;
    } else {
      const roots = serverRootsForPort(opts.host, opts.port);
      if (roots.length !== 1) {
        throw new Error(
          `--restart: ${roots.length === 0 ? 'no readable process' : `${roots.length} processes`} listen on ` +
            `${opts.host}:${opts.port}; give --server-pid`,
        );
      }
      sigtermPid = roots[0]!;
    }
  }

  const storm = new Storm(opts);
  const id = randomBytes(4).toString('hex');
  const users = Array.from({ length: N }, (_, i) => `st${id}-u${i}`);
  const clients = users.map((u, i) => new StormClient(i, u, users[(i + 1) % N]!, storm));
  const t0 = nowNs();
  const connected: number[] = [];
  const accepted: number[] = [];
  const sampler = setInterval(() => {
    connected.push(storm.up);
    accepted.push(storm.acceptedInSample);
    storm.acceptedInSample = 0;
  }, SAMPLE_MS);
  const pacer = setInterval(() => {
    for (const c of clients) c.pump();
  }, 20);
  const pinger = setInterval(() => {
    for (const c of clients) c.ping();
  }, 1000);
  let phase = 'connecting';
  const printer = setInterval(() => {
    const acc = clients.reduce((n, c) => n + c.accepted.length, 0);
    progress(
      `[storm] ${phase}  up ${int(storm.up)}/${int(N)}  accepted ${int(acc)}  ` +
        `${((nowNs() - t0) / 1e9).toFixed(1)} s`,
    );
  }, 1000);
  let failure: string | null = null;
  let secondsToAllConnected = 0;
  let cutChild: ChildProcess | null = null;
  let counts: { counts: Map<number, number>; error: string | null }[] = [];
  let allBackNs: number | null = null;
  let verify = false;

  try {
    // ---- connect
    for (const c of clients) c.connect();
    const connectLimit = Math.max(60_000, N * 10);
    if (!(await until(() => storm.up === N, connectLimit))) {
      throw new Error(`only ${storm.up} of ${N} clients connected within ${connectLimit / 1000} s`);
    }
    secondsToAllConnected = (nowNs() - t0) / 1e9;
    // From here on the inboxes are read back at the end, even if not every client comes back.
    verify = true;

    // ---- before the cut: messages in flight
    phase = 'sending';
    storm.sending = true;
    for (const c of clients) c.pump();
    await sleep(opts.beforeMs);

    // ---- the cut
    phase = 'cut';
    storm.cutNs = nowNs();
    if (opts.cut === 'client') {
      for (const c of clients) c.cut();
    } else if (opts.cut === 'sigterm') {
      process.kill(sigtermPid!, 'SIGTERM');
    } else {
      cutChild = spawn('sh', ['-c', opts.restartCmd!], { stdio: ['ignore', 2, 2] });
      cutChild.on('exit', (code, signal) => {
        if (code !== 0) warnings.push(`--restart-cmd exited with ${signal ?? `code ${code}`}`);
      });
    }
    // Back = lost its session after the cut and has a session again (a restart takes a moment to begin,
    // and a client that reached the old server while it shut down is cut again).
    phase = 'waiting for all to be back';
    const isBack = (c: StormClient): boolean => c.lostAfterCut && c.state === 'up';
    if (!(await until(() => clients.every(isBack), opts.backTimeoutMs))) {
      throw new Error(
        `only ${clients.filter(isBack).length} of ${N} clients were back within ${opts.backTimeoutMs / 1000} s of the cut`,
      );
    }
    allBackNs = Math.max(...clients.map((c) => c.welcomeNs));

    // ---- after the storm: sending on, then everything pending answered
    phase = 'sending after the storm';
    await sleep(opts.afterMs);
    storm.sending = false;
    phase = 'settling';
    const settled = await until(() => clients.every((c) => c.pending.size === 0), SETTLE_LIMIT_MS);
    if (!settled) {
      const left = clients.reduce((n, c) => n + c.pending.size, 0);
      warnings.push(
        `${left} SENDs were still not ACCEPTED ${SETTLE_LIMIT_MS / 1000} s after sending stopped`,
      );
    }
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err);
  } finally {
    storm.sending = false;
    storm.reconnect = false;
    storm.limiter.clear();
    clearInterval(sampler);
    clearInterval(pacer);
    clearInterval(pinger);
    phase = 'closing';
    for (const c of clients) c.close();
    await until(() => clients.every((c) => c.state === 'closed'), CLOSE_LIMIT_MS);
    for (const c of clients) c.destroy();
    if (cutChild && cutChild.exitCode === null && cutChild.signalCode === null) {
      warnings.push('--restart-cmd was still running at the end: stopped');
      cutChild.kill('SIGTERM');
    }
  }

  // ---- read the inboxes back
  if (verify) {
    phase = 'reading the inboxes';
    const verifyLimit = Math.max(60_000, N * 20);
    const reading = mapLimit(clients, 64, (c) => readInbox(opts, c.peer, c.user));
    const result = await Promise.race([
      reading,
      new Promise<null>((r) => setTimeout(() => r(null), verifyLimit).unref()),
    ]);
    if (result === null) failure ??= `the inboxes were not read back within ${verifyLimit / 1000} s`;
    else counts = result;
    const firstError = counts.find((c) => c.error !== null)?.error;
    if (firstError) failure ??= `reading the inboxes back: ${firstError}`;
  }
  clearInterval(printer);
  endProgress();

  // ---- figures
  let acceptedTotal = 0;
  let lost = 0;
  let duplicates = 0;
  let unconfirmed = 0;
  let unconfirmedStored = 0;
  let unexpected = 0;
  clients.forEach((c, i) => {
    acceptedTotal += c.accepted.length;
    const inbox = counts[i]?.counts;
    const notAccepted = [...c.refused, ...c.pending.keys()];
    unconfirmed += notAccepted.length;
    if (!inbox) return;
    for (const id of c.accepted) if (!inbox.has(id)) lost++;
    for (const [id, n] of inbox) {
      if (n > 1) duplicates += n - 1;
      if (id >= c.nextId) unexpected++;
    }
    for (const id of notAccepted) if (inbox.has(id)) unconfirmedStored++;
  });
  const verified = counts.length === N && counts.every((c) => c.error === null);
  const back = allBackNs !== null ? N : storm.backAfterCut.size;
  const allBack = allBackNs !== null;
  const toAllBack = allBackNs !== null ? (allBackNs - storm.cutNs) / 1e9 : null;
  const first = storm.firstWelcomeAfterCutNs;
  const toFirstBack = first === null ? null : (first - storm.cutNs) / 1e9;
  const onceUp =
    allBackNs !== null && first !== null && allBackNs > first ? N / ((allBackNs - first) / 1e9) : null;
  if (verified && lost > 0) failure ??= `${lost} ACCEPTED messages are missing from their inboxes`;
  if (verified && duplicates > 0) failure ??= `${duplicates} messages are stored more than once`;
  const cpu = process.cpuUsage(cpu0);
  const cutAt = Number.isFinite(storm.cutNs) ? (storm.cutNs - t0) / 1e9 : null;
  return {
    scenario: 'storm',
    target,
    ok: failure === null && allBack && verified,
    failure,
    count: N,
    cut: opts.cut,
    inFlight: opts.inFlight,
    clientRate: opts.clientRate,
    size: opts.size,
    secondsToAllConnected: round(secondsToAllConnected, 3),
    secondsToAllBack: toAllBack === null ? null : round(toAllBack, 3),
    secondsToFirstBack: toFirstBack === null ? null : round(toFirstBack, 3),
    reconnectsPerSecond: toAllBack === null || toAllBack <= 0 ? null : Math.round(N / toAllBack),
    reconnectsPerSecondOnceUp: onceUp === null ? null : Math.round(onceUp),
    back,
    connectAttempts: storm.connectAttempts,
    connectFailuresByError: storm.connectFailures,
    accepted: acceptedTotal,
    lost: verified ? lost : -1,
    duplicates: verified ? duplicates : -1,
    resent: storm.resent,
    duplicateAccepts: storm.duplicateAccepts,
    unconfirmed,
    unconfirmedStored,
    unexpected,
    inboxesRead: counts.filter((c) => c.error === null).length,
    errorsByName: storm.errorsByName,
    acceptLatencyMs: latencySummary(storm.latency),
    acceptLatencyPercentiles: percentileCurve(storm.latency),
    timeline: {
      intervalSeconds: SAMPLE_MS / 1000,
      connected,
      accepted,
      cutAtSeconds: cutAt === null ? null : round(cutAt, 3),
      allBackAtSeconds: toAllBack === null || cutAt === null ? null : round(cutAt + toAllBack, 3),
    },
    generatorCpuSeconds: round((cpu.user + cpu.system) / 1e6, 2),
    loadAverage: load,
    cores: os.cpus().length,
    node: process.version,
    warnings,
  };
}

// ------------------------------------------------------------------ summary, table, report

function describeCut(r: StormResult): string {
  switch (r.cut) {
    case 'client':
      return 'client side: every socket destroyed at once';
    case 'sigterm':
      return 'SIGTERM to the server; its supervisor restarts it';
    case 'command':
      return '--restart-cmd';
  }
}

export function stormSummary(r: StormResult): [string, string][] {
  const s = (v: number | null): string => (v === null ? '–' : `${v} s`);
  const l = r.acceptLatencyMs;
  const counts = (m: Record<string, number>): string =>
    Object.keys(m).length === 0
      ? 'none'
      : Object.entries(m)
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${k} ${int(v)}`)
          .join(', ');
  return [
    ['result', r.ok ? 'ok' : `FAILED${r.failure ? `: ${r.failure.split('\n')[0]}` : ''}`],
    ['target', r.target],
    [
      'clients',
      `${int(r.count)}, each keeping ${r.inFlight} durable SENDs in flight` +
        `${r.clientRate > 0 ? ` (≤ ${r.clientRate} new/s)` : ''} to the next`,
    ],
    ['cut', describeCut(r)],
    ['all connected in', s(r.secondsToAllConnected)],
    ['back', `${int(r.back)} of ${int(r.count)}`],
    ['first back after', s(r.secondsToFirstBack)],
    ['all back after', s(r.secondsToAllBack)],
    ['reconnects/s', r.reconnectsPerSecond === null ? '–' : int(r.reconnectsPerSecond)],
    [
      'reconnects/s once the server answered',
      r.reconnectsPerSecondOnceUp === null ? '–' : int(r.reconnectsPerSecondOnceUp),
    ],
    [
      'connect attempts (failed, by reason)',
      `${int(r.connectAttempts)} (${counts(r.connectFailuresByError)})`,
    ],
    ['ACCEPTED', int(r.accepted)],
    ['lost (ACCEPTED, not in the inbox)', r.lost < 0 ? 'not verified' : int(r.lost)],
    ['stored twice', r.duplicates < 0 ? 'not verified' : int(r.duplicates)],
    ['re-sent / ACCEPTED as duplicate', `${int(r.resent)} / ${int(r.duplicateAccepts)}`],
    ['never ACCEPTED (of them stored)', `${int(r.unconfirmed)} (${int(r.unconfirmedStored)})`],
    ['inboxes read back', `${int(r.inboxesRead)} of ${int(r.count)}`],
    [
      'SEND → ACCEPTED ms p50 / p90 / p99 / p99.9 / max',
      [l.p50, l.p90, l.p99, l.p999, l.max].map((v) => v.toFixed(2)).join(' / '),
    ],
    ['errors received', counts(r.errorsByName)],
    ['generator CPU', `${r.generatorCpuSeconds} s`],
    ['load average at start', r.loadAverage.join(', ')],
  ];
}

export function stormTable(r: StormResult): string {
  return summaryText(
    `Switchboard storm benchmark → ${r.target}; ${r.cores} cores shared, Node ${r.node}`,
    stormSummary(r),
    r.warnings,
  );
}

export function stormReport(r: StormResult, command = commandText()): ReportInput {
  const t = r.timeline;
  const at = (i: number): number => (i + 1) * t.intervalSeconds;
  const marks: { at: number; label: string }[] = [];
  if (t.cutAtSeconds !== null) marks.push({ at: t.cutAtSeconds, label: 'cut' });
  if (t.allBackAtSeconds !== null) marks.push({ at: t.allBackAtSeconds, label: 'all back' });
  const xMax = Math.max(1, t.connected.length * t.intervalSeconds);
  // ACCEPTED per bucket of `k` samples, so a long run draws at most ~150 points.
  const k = Math.max(1, Math.ceil(t.accepted.length / 150));
  const acceptedPoints: [number, number][] = [];
  for (let i = 0; i < t.accepted.length; i += k) {
    const chunk = t.accepted.slice(i, i + k);
    const span = chunk.length * t.intervalSeconds;
    acceptedPoints.push([i * t.intervalSeconds + span / 2, chunk.reduce((a, b) => a + b, 0) / span]);
  }
  return {
    scenario: 'storm',
    title: 'Switchboard bench storm',
    command,
    summary: stormSummary(r),
    notes: [
      'Back = WELCOME received again after the cut. Lost and stored-twice are read from the recipients’ inboxes ' +
        'after the storm (a fresh replay of every inbox), against every clientMsgId that was ACCEPTED.',
      ...r.warnings,
    ],
    loadAverage: r.loadAverage,
    connections: {
      title: 'Clients with a session',
      subtitle: `${int(r.count)} clients; ${describeCut(r)}`,
      xLabel: 'seconds since the first connect',
      unit: 'connected clients',
      series: [{ name: 'connected', points: t.connected.map((v, i) => [at(i), v]) }],
      marks,
      xMax,
    },
    throughput: {
      title: 'ACCEPTED per second',
      subtitle: `durable SENDs answered, ${Math.round(k * t.intervalSeconds * 1000)} ms buckets`,
      xLabel: 'seconds since the first connect',
      unit: 'ACCEPTED/s',
      series: [{ name: 'ACCEPTED', points: acceptedPoints }],
      marks,
      xMax,
    },
    latency: {
      title: 'SEND → ACCEPTED latency by percentile (HdrHistogram)',
      subtitle: `${int(r.accepted)} ACCEPTED, from each message's first send (re-sends included); max ${r.acceptLatencyMs.max} ms`,
      points: r.acceptLatencyPercentiles,
      unit: 'latency, ms',
    },
    result: r,
  };
}
