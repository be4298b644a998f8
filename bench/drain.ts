/**
 * Drain scenario (`switchboard bench drain`): how fast a running server replays a full inbox to a device
 * that comes back.
 *
 * 1. A fresh user (`dr<run id>-r`, device d) connects once and leaves, so the next connect is a
 *    reconnect of a known device.
 * 2. Another fresh user sends it M messages, pipelined (every SEND written at once, as fast as the socket
 *    takes them), and waits for the M ACCEPTEDs: the messages are stored durably in the offline user's
 *    inbox. An INBOX_FULL answer ends the run: the server's inbox cap must allow M messages.
 * 3. The user reconnects. The replay is timed from the reconnect's first byte (just before the TCP connect)
 *    to the last DELIVER, ACKing every window/2 DELIVERs as it goes (PROTOCOL.md section 5), and checked:
 *    seqs 1 … M, in order, each once.
 *
 * Every phase has a time limit (store: 30 s + 5 ms per message; replay: 30 s + 2 ms per message). Server
 * CPU over the replay is that of the process tree listening on the target port (or --server-pid).
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { encodeFrame, errorName, type Frame, isFatalCode } from '../src/protocol/index.js';
import { parseTarget } from './connections.js';
import { intFlag } from './lib/flags.js';
import { loadAverage } from './lib/machine.js';
import { measuredServerRoots, type TreeCpu, treesCpu } from './lib/proc.js';
import { bucketSeconds, endProgress, int, progress, round, summaryText } from './lib/report.js';
import { Conn, describeFrame } from './lib/sbp-conn.js';
import { nowNs } from './lib/throughput.js';
import { commandText, type ReportInput, ratePoints } from './report-html.js';

export interface DrainFlags {
  messages: string;
  size?: string;
  target?: string;
  serverPid?: string;
  json?: boolean;
  report?: string;
}

export interface DrainOptions {
  host: string;
  port: number;
  messages: number;
  size: number;
  serverPid: number | null;
  json: boolean;
  report: string | null;
}

export function resolveDrainOptions(flags: DrainFlags): DrainOptions {
  const { host, port } = parseTarget(flags.target ?? 'sbp://127.0.0.1:7070');
  return {
    host,
    port,
    messages: intFlag(flags.messages, '--messages', 1),
    size: intFlag(flags.size ?? '100', '--size', 0),
    serverPid: flags.serverPid === undefined ? null : intFlag(flags.serverPid, '--server-pid', 1),
    json: flags.json ?? false,
    report: flags.report ?? null,
  };
}

export interface DrainResult {
  scenario: 'drain';
  target: string;
  ok: boolean;
  failure: string | null;
  messages: number;
  size: number;
  /** ACCEPTED answers to the sender (messages stored in the offline user's inbox). */
  stored: number;
  storeSeconds: number;
  storedPerSecond: number;
  /** DELIVERs of the replay (seq > 0), each seq counted once. */
  replayed: number;
  /** From the reconnect's first byte to the last DELIVER. */
  replayMs: number;
  messagesPerSecond: number;
  /** From the reconnect's first byte to WELCOME, and to the first DELIVER. */
  welcomeMs: number | null;
  firstDeliverMs: number | null;
  /** DELIVERs whose seq was not the next expected one (a gap, a repeat, a reorder). */
  outOfOrder: number;
  /** The server's window (WELCOME) and the ACK interval used. */
  window: number | null;
  ackEvery: number | null;
  serverPids: number[];
  serverCpuSeconds: number | null;
  serverCpuMicrosPerMessage: number | null;
  errorsByName: Record<string, number>;
  /** DELIVERs per interval of the replay, from the reconnect's first byte. */
  timeSeries: { intervalSeconds: number; delivered: number[] };
  loadAverage: [number, number, number];
  cores: number;
  node: string;
  warnings: string[];
}

class Failed extends Error {}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A promise that `settle` resolves or rejects once; rejects with `timeoutText` after `ms`. */
function deferred(ms: number, timeoutText: () => string) {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const timer = setTimeout(() => reject(new Failed(timeoutText())), ms);
  promise.then(
    () => clearTimeout(timer),
    () => clearTimeout(timer),
  );
  promise.catch(() => {});
  return { promise, resolve, reject };
}

export async function runDrain(opts: DrainOptions): Promise<DrainResult> {
  const target = `sbp://${opts.host}:${opts.port}`;
  const warnings: string[] = [];
  const { roots, warning } = measuredServerRoots(opts.serverPid, opts.host, opts.port, 'CPU');
  if (warning) warnings.push(warning);
  const load = loadAverage();
  const M = opts.messages;
  const id = randomBytes(4).toString('hex');
  const recipient = `dr${id}-r`;
  const senderUser = `dr${id}-s`;
  const errorsByName: Record<string, number> = {};
  const countError = (code: number): void => {
    const name = errorName(code);
    errorsByName[name] = (errorsByName[name] ?? 0) + 1;
  };
  const conns: Conn[] = [];
  const open = async (user: string, options: Parameters<typeof Conn.open>[3] = {}): Promise<Conn> => {
    const c = await Conn.open(opts.port, user, 'd', { host: opts.host, ...options });
    conns.push(c);
    return c;
  };

  let stored = 0;
  let storeSeconds = 0;
  let replayed = 0;
  let outOfOrder = 0;
  let replayNs = 0;
  let welcomeNs: number | null = null;
  let firstNs: number | null = null;
  let window: number | null = null;
  let ackEvery: number | null = null;
  let cpuStart: TreeCpu | null = null;
  let cpuEnd: TreeCpu | null = null;
  const times = new Float64Array(M);
  let failure: string | null = null;

  try {
    // 1. The recipient is known to the server, then offline.
    progress(`[drain] ${recipient} connects once, then goes offline…`);
    const first = await open(recipient);
    first.close();
    await sleep(100);

    // 2. M messages stored for it.
    const storeLimit = 30_000 + M * 5;
    const storing = deferred(
      storeLimit,
      () => `only ${int(stored)} of ${int(M)} messages ACCEPTED within ${storeLimit / 1000} s`,
    );
    let ownUnacked = 0;
    let senderAckEvery = 500;
    const sender = await open(senderUser, {
      onWelcome: (w) => {
        senderAckEvery = Math.max(1, Math.floor(w.window / 2));
      },
      onFail: (why) => storing.reject(new Failed(`the sender's connection: ${why}`)),
      onFrame: (f: Frame, c: Conn) => {
        switch (f.type) {
          case 'ACCEPTED':
            if (++stored === M) storing.resolve();
            return;
          case 'DELIVER':
            // Its own copies (PROTOCOL.md section 5): ACKed so they do not pile up.
            if (f.seq > 0 && ++ownUnacked >= senderAckEvery) {
              ownUnacked = 0;
              c.write(encodeFrame({ type: 'ACK', seq: f.seq }));
            }
            return;
          case 'ERROR':
            countError(f.code);
            if (errorName(f.code) === 'INBOX_FULL') {
              storing.reject(
                new Failed(
                  `INBOX_FULL after ${int(stored)} ACCEPTED: the server's inbox cap does not allow ${int(M)} messages ` +
                    `of ${opts.size} bytes; start it with --inbox-max-messages ${M} or more (default 10000) and ` +
                    `--inbox-max-bytes of at least ${M * opts.size} bytes (default 64MiB)`,
                ),
              );
            } else {
              storing.reject(
                new Failed(
                  `the sender got ${isFatalCode(f.code) ? 'fatal ' : ''}${describeFrame(f)} (ref ${f.ref})`,
                ),
              );
            }
            return;
          case 'PING':
            c.write(encodeFrame({ type: 'PONG', nonce: f.nonce }));
            return;
          default:
        }
      },
    });
    progress(`[drain] storing ${int(M)} messages of ${opts.size} bytes for ${recipient}…`);
    const storeStart = nowNs();
    const template = encodeFrame({
      type: 'SEND',
      clientMsgId: 1,
      flags: 0,
      to: recipient,
      payload: new Uint8Array(opts.size).fill(0x61),
    });
    const ticker = setInterval(() => progress(`[drain] stored ${int(stored)}/${int(M)}`), 1000);
    try {
      let sendFailed = false;
      storing.promise.catch(() => {
        sendFailed = true;
      });
      for (let i = 1; i <= M && !sendFailed; i++) {
        const bytes = template.slice();
        const view = new DataView(bytes.buffer);
        view.setUint32(5, Math.floor(i / 0x1_0000_0000));
        view.setUint32(9, i >>> 0);
        if (!sender.write(bytes)) {
          await Promise.race([
            new Promise((r) => sender.socket.once('drain', r)),
            storing.promise.catch(() => {}),
          ]);
        }
      }
      await storing.promise;
    } finally {
      clearInterval(ticker);
    }
    storeSeconds = (nowNs() - storeStart) / 1e9;
    sender.close();
    await sleep(100);

    // 3. The reconnect and its replay.
    progress(`[drain] ${recipient} reconnects: replay of ${int(M)} messages…`);
    const replayLimit = 30_000 + M * 2;
    const replaying = deferred(
      replayLimit,
      () => `only ${int(replayed)} of ${int(M)} messages replayed within ${replayLimit / 1000} s`,
    );
    let t0 = 0;
    let expected = 1;
    let highest = 0;
    let unacked = 0;
    if (roots.length > 0) cpuStart = treesCpu(roots);
    const conn = await open(recipient, {
      onStart: () => {
        t0 = nowNs();
      },
      onWelcome: (w) => {
        welcomeNs = nowNs() - t0;
        window = w.window;
        ackEvery = Math.max(1, Math.floor(w.window / 2));
      },
      onFail: (why) => replaying.reject(new Failed(`the recipient's connection: ${why}`)),
      onFrame: (f: Frame, c: Conn) => {
        switch (f.type) {
          case 'DELIVER': {
            if (f.seq === 0) return;
            const now = nowNs();
            if (f.seq !== expected) outOfOrder++;
            expected = f.seq + 1;
            if (f.seq <= highest) return; // seen already
            highest = f.seq;
            if (replayed < M) times[replayed] = now - t0;
            replayed++;
            firstNs ??= now - t0;
            if (++unacked >= (ackEvery ?? 1)) {
              unacked = 0;
              c.write(encodeFrame({ type: 'ACK', seq: f.seq }));
            }
            if (replayed === M) {
              replayNs = now - t0;
              if (unacked > 0) c.write(encodeFrame({ type: 'ACK', seq: f.seq }));
              replaying.resolve();
            }
            return;
          }
          case 'ERROR':
            countError(f.code);
            replaying.reject(new Failed(`the recipient got ${describeFrame(f)} (ref ${f.ref})`));
            return;
          case 'PING':
            c.write(encodeFrame({ type: 'PONG', nonce: f.nonce }));
            return;
          default:
        }
      },
    });
    const ticker2 = setInterval(() => progress(`[drain] replayed ${int(replayed)}/${int(M)}`), 1000);
    try {
      await replaying.promise;
    } finally {
      clearInterval(ticker2);
    }
    if (roots.length > 0) cpuEnd = treesCpu(roots);
    conn.close();
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err);
  } finally {
    endProgress();
    for (const c of conns) c.close();
    await sleep(200);
    for (const c of conns) c.socket.destroy();
  }

  if (failure === null && outOfOrder > 0) failure = `${outOfOrder} DELIVERs out of seq order`;
  const replaySeconds = replayNs / 1e9;
  const interval = bucketSeconds(replaySeconds);
  const series: number[] = [];
  for (let i = 0; i < Math.min(replayed, M); i++) {
    const b = Math.floor(times[i]! / 1e9 / interval);
    series[b] = (series[b] ?? 0) + 1;
  }
  const serverCpu = cpuStart !== null && cpuEnd !== null ? cpuEnd.seconds - cpuStart.seconds : null;
  return {
    scenario: 'drain',
    target,
    ok: failure === null,
    failure,
    messages: M,
    size: opts.size,
    stored,
    storeSeconds: round(storeSeconds, 3),
    storedPerSecond: storeSeconds > 0 ? Math.round(stored / storeSeconds) : 0,
    replayed: Math.min(replayed, M),
    replayMs: round(replayNs / 1e6, 2),
    messagesPerSecond: replayNs > 0 ? Math.round(M / replaySeconds) : 0,
    welcomeMs: welcomeNs === null ? null : round(welcomeNs / 1e6, 2),
    firstDeliverMs: firstNs === null ? null : round(firstNs / 1e6, 2),
    outOfOrder,
    window,
    ackEvery,
    serverPids: roots,
    serverCpuSeconds: serverCpu === null ? null : round(serverCpu, 3),
    serverCpuMicrosPerMessage:
      serverCpu === null || replayed === 0 ? null : round((serverCpu * 1e6) / replayed, 2),
    errorsByName,
    timeSeries: { intervalSeconds: interval, delivered: Array.from(series, (v) => v ?? 0) },
    loadAverage: load,
    cores: os.cpus().length,
    node: process.version,
    warnings,
  };
}

export function drainSummary(r: DrainResult): [string, string][] {
  const ms = (v: number | null): string => (v === null ? '–' : `${v} ms`);
  return [
    ['result', r.ok ? 'ok' : `FAILED: ${r.failure?.split('\n')[0]}`],
    ['target', r.target],
    ['messages', `${int(r.messages)} of ${r.size} bytes for one offline user`],
    [
      'stored (pipelined SENDs)',
      `${int(r.stored)} ACCEPTED in ${r.storeSeconds} s (${int(r.storedPerSecond)} msg/s)`,
    ],
    ['replayed', `${int(r.replayed)} of ${int(r.messages)}`],
    ['replay time (first byte → last DELIVER)', ms(r.replayMs)],
    ['replay rate', `${int(r.messagesPerSecond)} msg/s`],
    ['WELCOME after', ms(r.welcomeMs)],
    ['first DELIVER after', ms(r.firstDeliverMs)],
    ['window / ACK every', r.window === null ? '–' : `${r.window} / ${r.ackEvery}`],
    [
      'server CPU during the replay',
      r.serverCpuSeconds === null
        ? 'not measured'
        : `${r.serverCpuSeconds} s (${r.serverCpuMicrosPerMessage ?? '–'} µs per message)`,
    ],
    [
      'errors',
      Object.keys(r.errorsByName).length === 0
        ? 'none'
        : Object.entries(r.errorsByName)
            .map(([k, v]) => `${k} ${int(v)}`)
            .join(', '),
    ],
    ['load average at start', r.loadAverage.join(', ')],
  ];
}

export function drainTable(r: DrainResult): string {
  return summaryText(
    `Switchboard drain benchmark → ${r.target}; ${r.cores} cores shared, Node ${r.node}`,
    drainSummary(r),
    r.warnings,
  );
}

export function drainReport(r: DrainResult, command = commandText()): ReportInput {
  const marks: { at: number; label: string }[] = [];
  if (r.welcomeMs !== null) marks.push({ at: r.welcomeMs / 1000, label: 'WELCOME' });
  if (r.replayMs > 0) marks.push({ at: r.replayMs / 1000, label: 'last DELIVER' });
  return {
    scenario: 'drain',
    title: 'Switchboard bench drain',
    command,
    summary: drainSummary(r),
    notes: [
      'The replay is timed from the reconnect’s first byte (just before the TCP connect) to the last DELIVER; ' +
        'the client ACKs every window/2 DELIVERs as it goes.',
      ...r.warnings,
    ],
    loadAverage: r.loadAverage,
    throughput: {
      title: 'Replay: DELIVERs per second',
      subtitle: `${int(r.messages)} stored messages of ${r.size} bytes, ${r.timeSeries.intervalSeconds * 1000} ms buckets`,
      xLabel: 'seconds since the reconnect’s first byte',
      unit: 'msg/s',
      series: [
        { name: 'replayed', points: ratePoints(r.timeSeries.delivered, r.timeSeries.intervalSeconds) },
      ],
      marks,
      xMax: Math.max(r.replayMs / 1000, r.timeSeries.delivered.length * r.timeSeries.intervalSeconds),
    },
    result: r,
  };
}
