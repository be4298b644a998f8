/**
 * Core benchmark (`npm run bench:core`): one real server process per durability mode, N sender/receiver
 * pairs over raw TCP with the SBP/1 codec, closed loop, measured after a warm-up.
 *
 * Conventions (the project's BENCH conventions): a message completes when its recipient receives the
 * DELIVER (the sender's own copy is not a delivery); the sender then sends its next one, keeping
 * `--window` messages in flight. Latency = receive time − send time on process.hrtime (sender and
 * receiver live in this process), in an HdrHistogram. Server CPU = user + system time of the server's
 * whole process tree over the measured window, from /proc/<pid>/stat.
 *
 *   node dist/bench/core.js [--pairs 100] [--duration 10s] [--warmup 2s] [--durability normal,full]
 *                           [--window 4] [--payload 100] [--ack-every n] [--json]
 *
 * Progress goes to stderr once a second; the final table (or, with --json, one JSON object) to stdout.
 * Every server it starts is stopped by PID (SIGTERM, then SIGKILL after 10 s) and its temp dir removed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import hdr from 'hdr-histogram-js';
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  isFatalCode,
  SbpError,
  type WelcomeFrame,
} from '../src/protocol/index.js';
import { parseDuration } from '../src/util/duration.js';
import { type TreeCpu, treeCpu } from './lib/proc.js';
import { endProgress, progress, round } from './lib/report.js';

// ------------------------------------------------------------------ options

type Durability = 'normal' | 'full';

interface Options {
  pairs: number;
  durationMs: number;
  warmupMs: number;
  durabilities: Durability[];
  /** Messages each sender keeps in flight. */
  window: number;
  payloadBytes: number;
  /** ACK after this many DELIVERs; 0 = half the server's window from WELCOME (PROTOCOL.md section 5). */
  ackEvery: number;
  json: boolean;
}

const USAGE = `usage: node dist/bench/core.js [options]
  --pairs <n>            sender/receiver pairs (default 100)
  --duration <duration>  measured window, e.g. 10s (default 10s)
  --warmup <duration>    warm-up before the window, excluded from the figures (default 2s)
  --durability <modes>   comma-separated: normal, full (default normal,full)
  --window <n>           messages each sender keeps in flight (default 4)
  --payload <bytes>      payload size (default 100)
  --ack-every <n>        ACK every n DELIVERs (default: half the server's WELCOME window)
  --json                 print one JSON object instead of the table
`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      pairs: { type: 'string', default: '100' },
      duration: { type: 'string', default: '10s' },
      warmup: { type: 'string', default: '2s' },
      durability: { type: 'string', default: 'normal,full' },
      window: { type: 'string', default: '4' },
      payload: { type: 'string', default: '100' },
      'ack-every': { type: 'string', default: '0' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (text: string, flag: string, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`--${flag} must be an integer ≥ ${min}, not "${text}"`);
    return n;
  };
  const durabilities = values.durability.split(',').map((s) => s.trim());
  for (const d of durabilities) {
    if (d !== 'normal' && d !== 'full') throw new Error(`--durability: "${d}" is not normal or full`);
  }
  const durationMs = parseDuration(values.duration);
  if (durationMs < 100) throw new Error('--duration must be at least 100ms');
  return {
    pairs: int(values.pairs, 'pairs', 1),
    durationMs,
    warmupMs: parseDuration(values.warmup),
    durabilities: durabilities as Durability[],
    window: int(values.window, 'window', 1),
    payloadBytes: int(values.payload, 'payload', 0),
    ackEvery: int(values['ack-every'], 'ack-every', 0),
    json: values.json,
  };
}

// ------------------------------------------------------------------ clocks and CPU

const HR_BASE = process.hrtime.bigint();
/** Nanoseconds on the monotonic clock, as an exact number (relative to this process's start). */
function nowNs(): number {
  return Number(process.hrtime.bigint() - HR_BASE);
}

// ------------------------------------------------------------------ the server process

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin', 'switchboard.js');
const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class ServerProcess {
  private readonly output: string[] = [];
  private exitInfo: string | null = null;
  private readonly exited: Promise<void>;

  private constructor(
    readonly child: ChildProcess,
    readonly pid: number,
    readonly dir: string,
    readonly port: number,
    readonly httpPort: number,
    private onListening: () => void,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
        resolve();
      });
    });
    child.on('error', (err) => this.output.push(`spawn error: ${err.message}`));
    const keep = (line: string): void => {
      if (line.trim() === '') return;
      if (line.includes('"listening"')) {
        try {
          if ((JSON.parse(line) as { msg?: unknown }).msg === 'listening') this.onListening();
        } catch {
          // Not a JSON log line.
        }
      }
      this.output.push(line);
      if (this.output.length > 40) this.output.shift();
    };
    // Always drain both pipes, so a chatty server never blocks on a full pipe.
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (text: string) => {
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) keep(line);
      });
    }
  }

  /** Starts `switchboard serve`; resolves once it logs "listening" or /healthz answers 200. */
  static async start(durability: Durability): Promise<ServerProcess> {
    const port = await freePort();
    let httpPort = await freePort();
    while (httpPort === port) httpPort = await freePort();
    const dir = mkdtempSync(path.join(os.tmpdir(), `switchboard-bench-${durability}-`));
    // SWITCHBOARD_BENCH_NODE_ARGS: extra node flags for the server (e.g. "--cpu-prof --cpu-prof-dir=prof").
    const nodeArgs = (process.env.SWITCHBOARD_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
    const args = [
      ...nodeArgs,
      BIN,
      'serve',
      '--port',
      String(port),
      '--http-port',
      String(httpPort),
      '--data',
      dir,
      '--durability',
      durability,
      '--log-level',
      'warn',
    ];
    const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid === undefined) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error('could not start the server process');
    }
    let listening = false;
    const server = new ServerProcess(child, child.pid, dir, port, httpPort, () => {
      listening = true;
    });
    started.add(server);
    // With --log-level warn the "listening" line may not be printed: /healthz decides then.
    const deadline = Date.now() + START_TIMEOUT_MS;
    let why = `the server did not answer /healthz within ${START_TIMEOUT_MS / 1000} s`;
    while (Date.now() < deadline) {
      if (!server.alive) {
        why = `the server exited during start-up (${server.exitInfo})`;
        break;
      }
      if (listening || (await healthy(httpPort))) return server;
      await sleep(100);
    }
    const tail = server.tail();
    await server.stop();
    throw new Error(tail ? `${why}\nlast server output:\n${tail}` : why);
  }

  tail(): string {
    return this.output.slice(-20).join('\n');
  }

  get alive(): boolean {
    return this.exitInfo === null;
  }

  /** SIGTERM, SIGKILL after 10 s; then removes the data dir. */
  async stop(): Promise<void> {
    if (this.alive) {
      try {
        process.kill(this.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), STOP_GRACE_MS).unref());
      if ((await Promise.race([this.exited.then(() => 'exited' as const), timer])) === 'timeout') {
        try {
          process.kill(this.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
        await Promise.race([this.exited, sleep(2000)]);
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    started.delete(this);
  }

  /** Synchronous last resort on an abrupt exit of the bench. */
  killNow(): void {
    if (this.alive) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const started = new Set<ServerProcess>();

async function healthy(httpPort: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ connections

const CLIENT_LIMITS = { firstFrame: 66_560, frame: 66_560 };

/** One raw SBP/1 connection: HELLO, WELCOME, then frames to `onFrame`. */
class Conn {
  readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder('serverToClient', CLIENT_LIMITS);
  onFrame: (frame: Frame) => void = () => {};
  onFail: (why: string) => void = () => {};
  welcome: WelcomeFrame | null = null;
  private closing = false;

  constructor(socket: net.Socket) {
    this.socket = socket;
  }

  static open(port: number, user: string, device: string): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.setNoDelay(true);
      const conn = new Conn(socket);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`${user}: no WELCOME within 10 s`));
      }, 10_000);
      conn.onFrame = (frame) => {
        clearTimeout(timer);
        if (frame.type !== 'WELCOME') {
          socket.destroy();
          reject(new Error(`${user}: expected WELCOME, got ${describe(frame)}`));
          return;
        }
        conn.welcome = frame;
        conn.decoder.setLimits({ firstFrame: CLIENT_LIMITS.firstFrame, frame: frame.maxPayload + 1024 });
        resolve(conn);
      };
      conn.onFail = (why) => {
        clearTimeout(timer);
        reject(new Error(`${user}: ${why}`));
      };
      socket.on('connect', () => {
        socket.write(encodeFrame({ type: 'HELLO', version: 1, user, device, token: '', resumeAfter: 0 }));
      });
      socket.on('data', (chunk) => conn.onData(chunk));
      socket.on('error', (err) => conn.fail(`socket error: ${err.message}`));
      socket.on('close', () => conn.fail('connection closed by the server'));
    });
  }

  private onData(chunk: Uint8Array): void {
    try {
      this.decoder.push(chunk, (frame) => this.onFrame(frame));
    } catch (err) {
      this.fail(err instanceof SbpError ? `bad frame from the server: ${err.message}` : String(err));
    }
  }

  private fail(why: string): void {
    if (this.closing) return;
    this.closing = true;
    this.socket.destroy();
    this.onFail(why);
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.socket.end(encodeFrame({ type: 'BYE', code: 0, reason: 'bench done' }));
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }
}

function describe(frame: Frame): string {
  return frame.type === 'ERROR' ? `ERROR ${frame.code} (${frame.message})` : frame.type;
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

// ------------------------------------------------------------------ one run

interface Result {
  durability: Durability;
  serverProcesses: number;
  /** Length of the measured window as run, s (the ticks that open and close it may be a few ms late). */
  windowSeconds: number;
  delivered: number;
  msgPerSec: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  serverCpuSeconds: number;
  serverCpuSecondsPer100k: number;
  serverCpuUsPerMsg: number;
  generatorCpuPercent: number;
}

/** Live counters of a run, for the progress line. */
interface Counters {
  delivered: number;
}

class Pair {
  private nextId = 1;
  /** Send time (ns) of each message in flight, by clientMsgId. */
  private readonly sentAt = new Map<number, number>();
  private readonly template: Uint8Array;
  private senderUnacked = 0;
  private receiverUnacked = 0;

  constructor(
    readonly sender: Conn,
    readonly receiver: Conn,
    readonly senderUser: string,
    readonly receiverUser: string,
    payload: Uint8Array,
    private readonly ackEvery: number,
    private readonly run: Run,
  ) {
    // Pre-encoded SEND: each message is a copy with its clientMsgId patched in (bytes 5–12).
    this.template = encodeFrame({ type: 'SEND', clientMsgId: 1, flags: 0, to: receiverUser, payload });
    sender.onFrame = (f) => this.onSenderFrame(f);
    receiver.onFrame = (f) => this.onReceiverFrame(f);
    sender.onFail = (why) => run.fail(`${senderUser}: ${why}`);
    receiver.onFail = (why) => run.fail(`${receiverUser}: ${why}`);
  }

  sendNext(): void {
    const id = this.nextId++;
    const bytes = this.template.slice();
    const view = new DataView(bytes.buffer);
    view.setUint32(5, Math.floor(id / 0x1_0000_0000));
    view.setUint32(9, id >>> 0);
    this.sentAt.set(id, nowNs());
    this.sender.write(bytes);
  }

  private onSenderFrame(frame: Frame): void {
    switch (frame.type) {
      case 'DELIVER': // the sender's own copy (PROTOCOL.md section 5): acknowledged, not a delivery
        if (frame.seq > 0 && ++this.senderUnacked >= this.ackEvery) {
          this.senderUnacked = 0;
          this.sender.write(encodeFrame({ type: 'ACK', seq: frame.seq }));
        }
        return;
      case 'ERROR':
        this.onError(frame, this.senderUser);
        return;
      default:
        this.common(this.sender, frame);
    }
  }

  private onReceiverFrame(frame: Frame): void {
    if (frame.type !== 'DELIVER') {
      if (frame.type === 'ERROR') this.onError(frame, this.receiverUser);
      else this.common(this.receiver, frame);
      return;
    }
    const now = nowNs();
    if (frame.seq > 0 && ++this.receiverUnacked >= this.ackEvery) {
      this.receiverUnacked = 0;
      this.receiver.write(encodeFrame({ type: 'ACK', seq: frame.seq }));
    }
    const sent = this.sentAt.get(frame.clientMsgId);
    if (sent === undefined || frame.from !== this.senderUser) return; // a re-delivery: already counted
    this.sentAt.delete(frame.clientMsgId);
    this.run.delivered(now, now - sent);
    if (this.run.sending) this.sendNext();
  }

  /**
   * Any ERROR ends the run: a fatal one closes the connection, and a request-level one (e.g.
   * INBOX_FULL once an inbox reaches its cap) means messages are no longer delivered, so the figures
   * would not measure what they claim.
   */
  private onError(frame: Extract<Frame, { type: 'ERROR' }>, who: string): void {
    const kind = isFatalCode(frame.code) ? 'fatal' : 'request-level';
    this.run.fail(`${who} got ${kind} ${describe(frame)} (ref ${frame.ref})`);
  }

  private common(conn: Conn, frame: Frame): void {
    if (frame.type === 'PING') conn.write(encodeFrame({ type: 'PONG', nonce: frame.nonce }));
    else if (frame.type === 'BYE') this.run.fail(`server sent BYE ${frame.code} (${frame.reason})`);
    // ACCEPTED, RECEIPT, PONG, PRESENCE, DONE: nothing to do.
  }
}

class Run {
  sending = true;
  readonly counters: Counters = { delivered: 0 };
  readonly histogram = hdr.build({ lowestDiscernibleValue: 1, numberOfSignificantValueDigits: 3 });
  windowStartNs = Number.POSITIVE_INFINITY;
  windowEndNs = Number.POSITIVE_INFINITY;
  inWindow = 0;
  failure: string | null = null;
  private failed: () => void = () => {};
  readonly failedPromise = new Promise<void>((resolve) => {
    this.failed = resolve;
  });

  delivered(nowNs: number, latencyNs: number): void {
    this.counters.delivered++;
    if (nowNs >= this.windowStartNs && nowNs < this.windowEndNs) {
      this.inWindow++;
      this.histogram.recordValue(Math.max(1, Math.round(latencyNs / 1000))); // µs
    }
  }

  fail(why: string): void {
    if (this.failure !== null || !this.sending) return;
    this.failure = why;
    this.failed();
  }
}

async function runMode(durability: Durability, opts: Options): Promise<Result> {
  progress(`[${durability}] starting the server…`);
  const server = await ServerProcess.start(durability);
  const conns: Conn[] = [];
  let ticker: NodeJS.Timeout | undefined;
  const run = new Run();
  try {
    progress(`[${durability}] connecting ${opts.pairs * 2} clients…`);
    const payload = new Uint8Array(opts.payloadBytes).fill(0x61);
    const indexes = Array.from({ length: opts.pairs }, (_, i) => i);
    const pairs = await mapLimit(indexes, 32, async (i) => {
      const senderUser = `bench-s${i}`;
      const receiverUser = `bench-r${i}`;
      const [sender, receiver] = await Promise.all([
        Conn.open(server.port, senderUser, 'bench'),
        Conn.open(server.port, receiverUser, 'bench'),
      ]);
      conns.push(sender, receiver);
      const ackEvery = opts.ackEvery || Math.max(1, Math.floor(receiver.welcome!.window / 2));
      return new Pair(sender, receiver, senderUser, receiverUser, payload, ackEvery, run);
    });

    // Closed loop: every sender starts with `window` messages in flight.
    const t0 = nowNs();
    for (const p of pairs) for (let k = 0; k < opts.window; k++) p.sendNext();

    const warmupEnd = t0 + opts.warmupMs * 1e6;
    const windowEnd = warmupEnd + opts.durationMs * 1e6;
    let cpuStart: TreeCpu | null = null;
    let genStart: NodeJS.CpuUsage | null = null;
    let cpuEnd: TreeCpu | null = null;
    let genEnd: NodeJS.CpuUsage | null = null;
    let lastSeen = 0;
    let lastChange = Date.now();

    const finished = new Promise<void>((resolve) => {
      // The window opens and closes on the clock; the tick checks boundaries and prints progress.
      const tick = (): void => {
        const now = nowNs();
        if (cpuStart === null && now >= warmupEnd) {
          cpuStart = treeCpu(server.pid);
          genStart = process.cpuUsage();
          run.windowStartNs = now;
        }
        if (cpuStart !== null && cpuEnd === null && now >= windowEnd) {
          // Deliveries are counted up to this tick, CPU is read at it: both cover the same span.
          run.windowEndNs = now;
          cpuEnd = treeCpu(server.pid);
          genEnd = process.cpuUsage(genStart!);
          run.sending = false;
          resolve();
          return;
        }
        if (run.counters.delivered !== lastSeen) {
          lastSeen = run.counters.delivered;
          lastChange = Date.now();
        } else if (Date.now() - lastChange > 5000) {
          run.fail('no message delivered for 5 s');
        }
        if (!server.alive) run.fail('the server process exited');
        ticker = setTimeout(
          tick,
          Math.min(100, Math.max(1, (cpuStart === null ? warmupEnd : windowEnd) - now) / 1e6),
        );
      };
      ticker = setTimeout(tick, 1);
    });
    let lastPrint = t0;
    let lastPrinted = 0;
    const printer = setInterval(() => {
      const now = nowNs();
      const d = run.counters.delivered;
      const rate = ((d - lastPrinted) * 1e9) / (now - lastPrint);
      lastPrint = now;
      lastPrinted = d;
      const phase =
        now < warmupEnd
          ? `warm-up ${((now - t0) / 1e9).toFixed(1)}/${opts.warmupMs / 1000} s`
          : `${((now - warmupEnd) / 1e9).toFixed(1)}/${opts.durationMs / 1000} s`;
      const p99 =
        run.inWindow > 0 ? `  p99 ${(run.histogram.getValueAtPercentile(99) / 1000).toFixed(2)} ms` : '';
      progress(
        `[${durability}] ${phase}  ${Math.round(rate).toLocaleString('en-US')} msg/s  delivered ${d.toLocaleString('en-US')}${p99}`,
      );
    }, 1000);
    // The run is bounded: the window, or the first failure, or a hard deadline.
    const deadline = setTimeout(
      () => run.fail('hard deadline passed'),
      opts.warmupMs + opts.durationMs + 15_000,
    );
    await Promise.race([finished, run.failedPromise]);
    clearTimeout(deadline);
    clearInterval(printer);
    if (ticker) clearTimeout(ticker);
    run.sending = false;
    endProgress();
    if (run.failure !== null) {
      const tail = server.tail();
      throw new Error(tail ? `${run.failure}\nlast server output:\n${tail}` : run.failure);
    }

    const windowS = (run.windowEndNs - run.windowStartNs) / 1e9;
    const serverCpu = cpuEnd!.seconds - cpuStart!.seconds;
    const gen = genEnd! as NodeJS.CpuUsage;
    const h = run.histogram;
    const ms = (us: number): number => Math.round(us) / 1000;
    const delivered = run.inWindow;
    return {
      durability,
      serverProcesses: (cpuStart as TreeCpu | null)?.processes ?? 1,
      delivered,
      msgPerSec: Math.round(delivered / windowS),
      latencyMs: {
        p50: ms(h.getValueAtPercentile(50)),
        p90: ms(h.getValueAtPercentile(90)),
        p99: ms(h.getValueAtPercentile(99)),
        p999: ms(h.getValueAtPercentile(99.9)),
        max: ms(h.maxValue),
      },
      windowSeconds: round(windowS, 3),
      serverCpuSeconds: round(serverCpu, 2),
      serverCpuSecondsPer100k: delivered > 0 ? round((serverCpu * 100_000) / delivered, 3) : 0,
      serverCpuUsPerMsg: delivered > 0 ? round((serverCpu * 1e6) / delivered, 2) : 0,
      generatorCpuPercent: round(((gen.user + gen.system) / 1e6 / windowS) * 100, 1),
    };
  } finally {
    run.sending = false;
    if (ticker) clearTimeout(ticker);
    for (const c of conns) c.close();
    await sleep(200);
    for (const c of conns) c.socket.destroy();
    progress(`[${durability}] stopping the server…`);
    await server.stop();
    endProgress();
  }
}

// ------------------------------------------------------------------ report

function table(opts: Options, results: Result[]): string {
  const head = [
    'durability',
    'msg/s',
    'p50 ms',
    'p90 ms',
    'p99 ms',
    'p99.9 ms',
    'max ms',
    'server CPU s/100k msg',
    'µs/msg',
    'generator CPU',
  ];
  const rows = results.map((r) => [
    r.durability,
    r.msgPerSec.toLocaleString('en-US'),
    r.latencyMs.p50.toFixed(2),
    r.latencyMs.p90.toFixed(2),
    r.latencyMs.p99.toFixed(2),
    r.latencyMs.p999.toFixed(2),
    r.latencyMs.max.toFixed(2),
    r.serverCpuSecondsPer100k.toFixed(2),
    r.serverCpuUsPerMsg.toFixed(1),
    `${r.generatorCpuPercent.toFixed(0)} %`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const procs = [...new Set(results.map((r) => r.serverProcesses))].join('/');
  return [
    `Switchboard core benchmark: ${opts.pairs} pairs, ${opts.window} in flight per sender, ` +
      `${opts.payloadBytes}-byte payloads, ${opts.warmupMs / 1000} s warm-up + ${opts.durationMs / 1000} s measured; ` +
      `SQLite store, server process tree of ${procs} process(es), ${os.cpus().length} cores shared, no pinning`,
    line(head),
    ...rows.map(line),
    '',
  ].join('\n');
}

// ------------------------------------------------------------------ main

function cleanupNow(): void {
  for (const s of started) s.killNow();
  started.clear();
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
    return 2;
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      endProgress();
      process.stderr.write(`${signal}: stopping the servers\n`);
      cleanupNow();
      process.exit(130);
    });
  }
  process.once('exit', cleanupNow);

  const results: Result[] = [];
  const failures: string[] = [];
  for (const durability of opts.durabilities) {
    try {
      const r = await runMode(durability, opts);
      results.push(r);
      if (!opts.json) {
        process.stderr.write(
          `[${durability}] ${r.msgPerSec.toLocaleString('en-US')} msg/s, p50 ${r.latencyMs.p50} ms, ` +
            `p99 ${r.latencyMs.p99} ms, server CPU ${r.serverCpuSecondsPer100k} s per 100k messages\n`,
        );
      }
    } catch (err) {
      endProgress();
      const message = err instanceof Error ? err.message : String(err);
      failures.push(`${durability}: ${message}`);
      process.stderr.write(`[${durability}] failed: ${message}\n`);
    }
  }

  if (opts.json) {
    const out = {
      benchmark: 'core',
      pairs: opts.pairs,
      windowPerSender: opts.window,
      payloadBytes: opts.payloadBytes,
      warmupSeconds: opts.warmupMs / 1000,
      durationSeconds: opts.durationMs / 1000,
      cores: os.cpus().length,
      node: process.version,
      results,
      failures,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } else if (results.length > 0) {
    process.stdout.write(table(opts, results));
  }
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    cleanupNow();
    process.exitCode = 1;
  },
);
