/**
 * Helpers for the multi-worker tests (test/cluster/): which worker a process or a user is, sessions
 * spread over every worker, a sender that keeps SENDs pipelined and re-sends what was not ACCEPTED the
 * way the SDK does, and the CLI as a child process.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import {
  ErrorCode,
  encodeFrame,
  errorName,
  type Frame,
  isFatalCode,
  type WelcomeFrame,
} from '../../src/protocol/index.js';
import { DEFAULT_SHARD_COUNT, shardOf } from '../../src/store/shard.js';
import { connect, sleep, type WireClient } from '../wire/harness.js';
import { type ExpectedMessage, inboxProblems, readInbox } from './audit.js';
import { BIN, type ServerProcess } from './server-process.js';

/** resumeAfter that counts as lastSeq: a sender that only wants what arrives from now on. */
export const FROM_NOW = Number.MAX_SAFE_INTEGER;

/**
 * The home worker (0-based) of a user: shard s of the data folder's shards belongs to worker s mod N
 * (PROTOCOL.md appendix, ARCHITECTURE.md "Ownership"). WELCOME names worker k as `w<k+1>`.
 */
export function homeWorkerOf(user: string, workers: number, shardCount = DEFAULT_SHARD_COUNT): number {
  return shardOf(user, shardCount) % workers;
}

/** WELCOME's node for a 0-based worker index on one machine. */
export function nodeName(worker: number): string {
  return `w${worker + 1}`;
}

/** `count` user ids `<prefix><i>` whose home is `worker` of `workers`. */
export function usersHomedOn(prefix: string, worker: number, workers: number, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) {
    if (i > 100_000) throw new Error(`no ${count} users with prefix ${prefix} homed on worker ${worker}`);
    const user = `${prefix}${i}`;
    if (homeWorkerOf(user, workers) === worker) out.push(user);
  }
  return out;
}

/** The worker index a worker process was started with (from its environment, Linux /proc); null if gone. */
export function workerIndexOfPid(pid: number): number | null {
  try {
    const env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    const entry = env.find((e) => e.startsWith('SWITCHBOARD_WORKER_INDEX='));
    return entry ? Number(entry.slice('SWITCHBOARD_WORKER_INDEX='.length)) : null;
  } catch {
    return null;
  }
}

/** The server's worker processes by index (workers that are gone or not yet started are missing). */
export function workersByIndex(server: ServerProcess): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of server.workerPids()) {
    const index = workerIndexOfPid(pid);
    if (index !== null) out.set(index, pid);
  }
  return out;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `check` every `everyMs` until it returns a value other than undefined/false, or fails after timeoutMs. */
export async function eventually<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() >= deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------- sessions

export interface Placed {
  user: string;
  device: string;
  client: WireClient;
  welcome: WelcomeFrame;
}

/** Connects and completes the handshake with generous bounds (a loaded 2-core machine). */
export async function openSession(
  port: number,
  user: string,
  device: string,
  opts: { timeoutMs?: number; resumeAfter?: number; token?: string; host?: string } = {},
): Promise<Placed> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const client = await connect(port, `${user}/${device}`, { timeoutMs, host: opts.host });
  try {
    const welcome = await client.hello(user, device, {
      timeoutMs,
      resumeAfter: opts.resumeAfter ?? 0,
      token: opts.token ?? '',
    });
    return { user, device, client, welcome };
  } catch (err) {
    client.destroy();
    throw err;
  }
}

/**
 * One session per user, opened one after the other, until the sessions sit on all `workers` workers
 * (WELCOME's node): when some worker has none once every user is connected, users of the busiest worker
 * connect again (the primary hands connections round-robin, so a new connection lands elsewhere).
 */
export async function sessionsOnAllWorkers(
  port: number,
  users: readonly string[],
  workers: number,
  clients: WireClient[],
  device = 'd1',
  tokenOf: (user: string) => string = () => '',
): Promise<Map<string, Placed>> {
  const placed = new Map<string, Placed>();
  for (const user of users) {
    const p = await openSession(port, user, device, { token: tokenOf(user) });
    clients.push(p.client);
    placed.set(user, p);
  }
  for (let attempt = 0; attempt < 40; attempt++) {
    const byNode = new Map<string, Placed[]>();
    for (let w = 0; w < workers; w++) byNode.set(nodeName(w), []);
    for (const p of placed.values()) byNode.get(p.welcome.node)?.push(p);
    if ([...byNode.values()].every((list) => list.length > 0)) return placed;
    const busiest = [...byNode.values()].sort((a, b) => b.length - a.length)[0]!;
    const moved = busiest[0]!;
    await moved.client.close();
    const again = await openSession(port, moved.user, device, { token: tokenOf(moved.user) });
    clients.push(again.client);
    placed.set(moved.user, again);
  }
  const nodes = [...placed.values()].map((p) => p.welcome.node);
  throw new Error(`sessions did not reach all ${workers} workers: ${nodes.join(' ')}`);
}

// ---------------------------------------------------------------- a sender that re-sends

export interface SenderOptions {
  port: number;
  /** Several nodes: connects to `port` first, then to the next of these after each failed attempt or lost connection. */
  ports?: number[];
  user: string;
  /** Default `d1`. */
  device?: string;
  /** clientMsgIds 1 … total (at most: see finish()). */
  total: number;
  recipientOf: (id: number) => string;
  /** Default `<user>:<id>`. */
  payloadOf?: (id: number) => string;
  /** SENDs written and not yet ACCEPTED at most (default 100). */
  inFlight?: number;
  /** SENDs written in one go (default 25). */
  chunk?: number;
  /** Pause after each chunk, ms (default 0: the next loop turn). */
  paceMs?: number;
}

export interface AcceptedRecord {
  timestamp: number;
  flags: number;
}

/**
 * A sender as the SDK behaves (PROTOCOL.md section 5): clientMsgIds ascending, SENDs pipelined; after a
 * STORE_UNAVAILABLE it writes nothing new, and after a short jittered delay writes every SEND not yet
 * ACCEPTED again, ascending (the server refuses later SENDs until the failed one comes again); when the
 * connection ends (a crash, SHUTTING_DOWN, …) it connects again (HELLO refused or no answer: again, with
 * back-off) and re-sends every SEND not yet ACCEPTED, in ascending clientMsgId order, before any new one.
 * It reconnects after tens of ms instead of the suggested delay, to keep the tests short.
 *
 * Every ACCEPTED is kept with its timestamp; what the protocol forbids is collected in `problems`
 * (a first SEND answered as a duplicate, a duplicate with another timestamp, an unexpected error).
 */
export class ResendingSender {
  readonly user: string;
  readonly device: string;
  readonly accepted = new Map<number, AcceptedRecord>();
  /** How many times each clientMsgId was written. */
  readonly attempts = new Map<number, number>();
  /** WELCOME's node of each session, in order. */
  readonly nodes: string[] = [];
  /** ERROR answers by code name. */
  readonly errors = new Map<string, number>();
  readonly problems: string[] = [];
  /** Sessions opened (the first one included). */
  sessions = 0;
  private client: WireClient | null = null;
  private next = 1;
  /** Written and not yet ACCEPTED. */
  private readonly outstanding = new Set<number>();
  private wake: (() => void) | null = null;
  /** Waiting to write the outstanding SENDs again after STORE_UNAVAILABLE: nothing new meanwhile. */
  private stalled = false;
  private generation = 0;
  private readonly generationOf = new Map<number, number>();
  private lastConnectError = '';
  private readonly ports: number[];
  private portIndex = 0;
  private readonly opts: Required<Omit<SenderOptions, 'device' | 'payloadOf' | 'ports'>> & {
    payloadOf: (id: number) => string;
  };

  constructor(opts: SenderOptions) {
    this.user = opts.user;
    this.device = opts.device ?? 'd1';
    this.ports = [opts.port, ...(opts.ports ?? []).filter((p) => p !== opts.port)];
    this.opts = {
      port: opts.port,
      user: opts.user,
      total: opts.total,
      recipientOf: opts.recipientOf,
      payloadOf: opts.payloadOf ?? ((id) => `${opts.user}:${id}`),
      inFlight: opts.inFlight ?? 100,
      chunk: opts.chunk ?? 25,
      paceMs: opts.paceMs ?? 0,
    };
  }

  /** WELCOME's node of the current session. */
  get node(): string {
    return this.nodes.at(-1) ?? '';
  }

  /** clientMsgIds written at least once. */
  get written(): number {
    return this.next - 1;
  }

  get current(): WireClient | null {
    return this.client;
  }

  /** Opens the first session (so a test can see where it landed before the traffic starts). */
  async start(timeoutMs = 15_000): Promise<void> {
    await this.reconnect(Date.now() + timeoutMs);
  }

  /** Sends every message and waits until each is ACCEPTED (reconnecting and re-sending as needed). */
  async run(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    const { inFlight, chunk, paceMs } = this.opts;
    while (this.accepted.size < this.opts.total) {
      const total = this.opts.total;
      if (Date.now() > until) {
        throw new Error(
          `[${this.user}] ${this.accepted.size} of ${total} SENDs ACCEPTED within ${timeoutMs} ms ` +
            `(${this.written} written, ${this.outstanding.size} outstanding, errors ${this.errorText()}, ` +
            `sessions ${this.nodes.join(' ')})`,
        );
      }
      const c = this.client;
      if (!c || c.ended) {
        await this.reconnect(until);
        continue;
      }
      const room = this.stalled
        ? 0
        : Math.min(inFlight - this.outstanding.size, chunk, total - this.next + 1);
      if (room > 0) {
        const frames: Uint8Array[] = [];
        for (let k = 0; k < room; k++) frames.push(this.encode(this.next++));
        c.sendRaw(Buffer.concat(frames));
        if (paceMs > 0) await sleep(paceMs);
        else await new Promise((r) => setImmediate(r));
      } else {
        await this.waitEvent(100);
      }
    }
  }

  /** No new clientMsgId from now on: run() ends once every one written so far is ACCEPTED. */
  finish(): void {
    this.opts.total = this.next - 1;
    this.poke();
  }

  /** The clientMsgIds run() sends (all of them ACCEPTED once it resolves). */
  get total(): number {
    return this.opts.total;
  }

  errorText(): string {
    return this.errors.size === 0 ? 'none' : [...this.errors].map(([k, v]) => `${k}×${v}`).join(' ');
  }

  close(): Promise<void> {
    const c = this.client;
    this.client = null;
    return c ? c.close() : Promise.resolve();
  }

  private encode(id: number): Uint8Array {
    this.attempts.set(id, (this.attempts.get(id) ?? 0) + 1);
    this.generationOf.set(id, this.generation);
    this.outstanding.add(id);
    return encodeFrame({
      type: 'SEND',
      clientMsgId: id,
      flags: 0,
      to: this.opts.recipientOf(id),
      payload: new TextEncoder().encode(this.opts.payloadOf(id)),
    });
  }

  private waitEvent(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }

  private poke(): void {
    this.wake?.();
  }

  private async reconnect(until: number): Promise<void> {
    this.client?.destroy();
    this.client = null;
    let backoff = 20;
    for (;;) {
      if (Date.now() > until) {
        throw new Error(`[${this.user}] could not connect again: ${this.lastConnectError}`);
      }
      let c: WireClient | null = null;
      try {
        const port = this.ports[this.portIndex++ % this.ports.length]!;
        c = await connect(port, `${this.user}/${this.device}`, { timeoutMs: 5000 });
        const conn = c;
        conn.listeners.add((f) => this.onFrame(conn, f));
        conn.socket.on('close', () => this.poke());
        const welcome = await conn.hello(this.user, this.device, {
          resumeAfter: FROM_NOW,
          timeoutMs: 10_000,
        });
        this.client = conn;
        this.stalled = false;
        this.generation++;
        this.sessions++;
        this.nodes.push(welcome.node);
        // Every SEND not yet ACCEPTED again, ascending, before any new one.
        const again = [...this.outstanding].sort((a, b) => a - b);
        for (let i = 0; i < again.length; i += this.opts.chunk) {
          conn.sendRaw(Buffer.concat(again.slice(i, i + this.opts.chunk).map((id) => this.encode(id))));
        }
        return;
      } catch (err) {
        this.lastConnectError = (err as Error).message;
        c?.destroy();
        await sleep(backoff / 2 + Math.random() * backoff);
        backoff = Math.min(backoff * 2, 400);
      }
    }
  }

  private onFrame(conn: WireClient, f: Frame): void {
    if (f.type === 'ACCEPTED') {
      this.outstanding.delete(f.clientMsgId);
      const before = this.accepted.get(f.clientMsgId);
      if (before && before.timestamp !== f.timestamp) {
        this.problems.push(
          `${this.user}: ${f.clientMsgId} ACCEPTED with timestamp ${before.timestamp}, then ${f.timestamp}`,
        );
      }
      if (f.flags !== 0 && (this.attempts.get(f.clientMsgId) ?? 0) <= 1) {
        this.problems.push(`${this.user}: first SEND of ${f.clientMsgId} came back as a duplicate`);
      }
      if (!before) this.accepted.set(f.clientMsgId, { timestamp: f.timestamp, flags: f.flags });
      this.poke();
      return;
    }
    if (f.type !== 'ERROR') return;
    const name = errorName(f.code);
    this.errors.set(name, (this.errors.get(name) ?? 0) + 1);
    if (isFatalCode(f.code) || this.client !== conn) return; // the connection ends: reconnect
    if (f.code === ErrorCode.STORE_UNAVAILABLE) {
      // As the SDK: the server refuses later SENDs until the failed one comes again, so stop, wait a
      // little, and write every outstanding SEND again in ascending order (answers to writes made
      // before the last such rewind are stale: a newer write of that id is on its way).
      if ((this.generationOf.get(f.ref) ?? 0) < this.generation || this.stalled) return;
      this.stalled = true;
      setTimeout(
        () => {
          this.stalled = false;
          if (this.client !== conn || conn.ended) return;
          this.generation++;
          const again = [...this.outstanding].sort((a, b) => a - b);
          for (let i = 0; i < again.length; i += this.opts.chunk) {
            conn.sendRaw(Buffer.concat(again.slice(i, i + this.opts.chunk).map((id) => this.encode(id))));
          }
          this.poke();
        },
        20 + Math.random() * 40,
      );
      return;
    }
    this.problems.push(`${this.user}: unexpected ERROR ${name} (ref ${f.ref}): ${f.message}`);
  }
}

// ---------------------------------------------------------------- the CLI

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `switchboard <args>` as a child process (bounded: killed after timeoutMs). */
export function runCli(args: string[], timeoutMs = 20_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------- the audit after a run

/**
 * Reads back every inbox a run of re-sending senders wrote to (each recipient's and each sender's own)
 * and returns what is wrong: for every clientMsgId 1..count(sender) ACCEPTED by sender j, the message
 * (payload `<user>:<id>`, its ACCEPTED timestamp) must be in the inbox of `recipientOf(j, id)` and in the
 * sender's own, exactly once, in send order.
 */
export async function auditSenders(
  port: number,
  recipients: readonly string[],
  senders: readonly ResendingSender[],
  count: (sender: ResendingSender) => number,
  recipientOf: (senderIndex: number, id: number) => string,
  clients: WireClient[],
): Promise<string[]> {
  const expected = new Map<string, ExpectedMessage[]>(
    [...recipients, ...senders.map((s) => s.user)].map((u) => [u, []]),
  );
  senders.forEach((s, j) => {
    for (let id = 1; id <= count(s); id++) {
      const to = recipientOf(j, id);
      const m: ExpectedMessage = {
        from: s.user,
        fromDevice: 'd1',
        clientMsgId: id,
        to,
        payload: `${s.user}:${id}`,
        timestamp: s.accepted.get(id)!.timestamp,
      };
      expected.get(to)!.push(m);
      expected.get(s.user)!.push(m);
    }
  });
  const problems: string[] = [];
  for (const [user, want] of expected) {
    problems.push(...inboxProblems(user, await readInbox(port, user, clients), want));
    await sleep(0);
  }
  return problems;
}
