/**
 * The bus between the workers of one machine: a mesh of Unix sockets. Each worker listens on its own
 * socket and connects to every other worker; what a worker sends in one loop tick to one peer goes as
 * one write (a length-prefixed v8-serialized batch), so nothing waits on a per-message round trip.
 *
 * A worker's requests (and the notifications it originates) travel on its outbound connection to the
 * peer, answers come back on the same connection, so per peer everything is in order. A peer that is
 * not connected (starting, restarting) gets its messages queued for up to `waitMs`; requests in flight
 * when a peer's connection drops fail with BusUnavailableError (the session answers STORE_UNAVAILABLE
 * and the client re-sends; per-inbox dedupe makes that safe).
 */
import { existsSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import type { Logger } from 'pino';
import { busMetricsHook, machineClockMs } from '../server/metrics/bus-hook.js';
import { OncePerTurn } from '../util/once-per-turn.js';

export class BusUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BusUnavailableError';
  }
}

/** What a worker does with what arrives on the bus. */
export interface BusHandler {
  /** A request from `peer`; the returned value (or error) is sent back. */
  request(peer: number, op: string, args: unknown[]): Promise<unknown> | unknown;
  /** A notification from `peer`. */
  notify(peer: number, message: unknown): void;
  /** `peer`'s connection to us closed: it is gone or restarting (its sessions are gone). */
  peerLeft?(peer: number): void;
  /** Our connection to `peer` is up (again): state kept at the peer may need to be sent again. */
  peerJoined?(peer: number): void;
}

type Wire =
  | { t: 'hi'; from: number }
  /** The peer is retiring (a planned exit): queue new requests for its successor. */
  | { t: 'bye' }
  /** Answer to 'bye': nothing more comes on this connection. */
  | { t: 'ba' }
  | { t: 'q'; id: number; op: string; a: unknown[] }
  | { t: 'r'; id: number; v: unknown }
  | { t: 'x'; id: number; e: string }
  | { t: 'n'; m: unknown }
  /**
   * First in a batch when metrics are on: when (machineClockMs) its first message was queued, for the
   * receiver's lag. A receiver that does not know it ignores it, like any unknown `t`.
   */
  | { t: 'at'; at: number };

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** One socket with per-tick batching and length-prefixed v8 framing. */
class Link {
  /** Requests sent on this link and not answered yet: they fail if the link closes first. */
  readonly inflight = new Set<number>();
  private out: Wire[] = [];
  private readonly turn = new OncePerTurn(() => this.flush());
  private buffered: Buffer | null = null;

  constructor(
    readonly socket: Socket,
    private readonly onMessage: (m: Wire) => void,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.read(chunk));
  }

  send(m: Wire): void {
    if (this.turn.request() && busMetricsHook.observer) this.out.push({ t: 'at', at: machineClockMs() });
    this.out.push(m);
  }

  private flush(): void {
    if (this.out.length === 0 || this.socket.destroyed) return;
    const body = serialize(this.out);
    if (busMetricsHook.observer) {
      busMetricsHook.observer.batchWritten(this.out[0]!.t === 'at' ? this.out.length - 1 : this.out.length);
    }
    this.out = [];
    const header = Buffer.allocUnsafe(4);
    header.writeUInt32BE(body.length, 0);
    this.socket.cork();
    this.socket.write(header);
    this.socket.write(body);
    this.socket.uncork();
  }

  private read(chunk: Buffer): void {
    let buf = this.buffered ? Buffer.concat([this.buffered, chunk]) : chunk;
    let off = 0;
    while (buf.length - off >= 4) {
      const len = buf.readUInt32BE(off);
      if (buf.length - off - 4 < len) break;
      const batch = deserialize(buf.subarray(off + 4, off + 4 + len)) as Wire[];
      off += 4 + len;
      for (const m of batch) {
        if (m.t === 'at') busMetricsHook.observer?.batchArrived(Math.max(0, machineClockMs() - m.at) / 1000);
        else this.onMessage(m);
      }
    }
    buf = buf.subarray(off);
    this.buffered = buf.length > 0 ? Buffer.from(buf) : null;
  }
}

interface Peer {
  link: Link | null;
  /** Messages waiting for the connection, with when the oldest was queued. */
  queue: Wire[];
  queuedAt: number;
  pending: Map<number, Pending>;
  retry: ReturnType<typeof setTimeout> | null;
}

export function busSocketPath(runDir: string, worker: number): string {
  return join(runDir, `w${worker}.sock`);
}

export class Bus {
  private readonly peers = new Map<number, Peer>();
  private server: Server | null = null;
  private readonly inbound = new Set<Socket>();
  private nextId = 1;
  private closed = false;
  /** Requests from peers being handled here now. */
  private handling = 0;
  private readonly inboundLinks = new Map<Socket, { link: Link; from: number; acked: boolean }>();
  private retired: (() => void) | null = null;
  private sweep: ReturnType<typeof setInterval> | null = null;

  constructor(
    readonly me: number,
    readonly count: number,
    private readonly runDir: string,
    private readonly handler: BusHandler,
    private readonly log: Logger,
    /** How long messages for a peer that is not connected wait before failing, ms. */
    private readonly waitMs = 5000,
  ) {
    for (let w = 0; w < count; w++) {
      if (w !== me)
        this.peers.set(w, { link: null, queue: [], queuedAt: 0, pending: new Map(), retry: null });
    }
  }

  async start(): Promise<void> {
    const path = busSocketPath(this.runDir, this.me);
    if (existsSync(path)) unlinkSync(path); // left by a previous process of this worker
    this.server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(path, () => resolve());
    });
    for (const peer of this.peers.keys()) this.connect(peer);
    this.sweep = setInterval(() => this.expireQueues(), 250);
    this.sweep.unref();
  }

  /** Sends a request to `peer` and resolves with its answer. */
  request(peer: number, op: string, args: unknown[]): Promise<unknown> {
    const p = this.peers.get(peer);
    if (!p || this.closed) return Promise.reject(new BusUnavailableError(`no worker ${peer} on the bus`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      p.pending.set(id, { resolve, reject });
      this.send(p, { t: 'q', id, op, a: args });
    });
  }

  /** A one-way message to `peer` (dropped, with the rest of its queue, if the peer stays away). */
  notify(peer: number, message: unknown): void {
    const p = this.peers.get(peer);
    if (p && !this.closed) this.send(p, { t: 'n', m: message });
  }

  isConnected(peer: number): boolean {
    return this.peers.get(peer)?.link !== null;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.sweep) clearInterval(this.sweep);
    for (const [w, p] of this.peers) {
      if (p.retry) clearTimeout(p.retry);
      p.link?.socket.destroy();
      p.queue = [];
      this.failPending(p, `the bus is closing (worker ${w} unreachable)`);
    }
    for (const s of this.inbound) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private send(p: Peer, m: Wire): void {
    if (p.link) {
      if (m.t === 'q') p.link.inflight.add(m.id);
      p.link.send(m);
    } else {
      if (p.queue.length === 0) p.queuedAt = Date.now();
      p.queue.push(m);
    }
  }

  private connect(peer: number): void {
    if (this.closed) return;
    const p = this.peers.get(peer)!;
    p.retry = null;
    const socket = createConnection(busSocketPath(this.runDir, peer));
    let link: Link | null = null;
    socket.once('connect', () => {
      const up = new Link(socket, (m) => this.fromPeer(peer, p, up, m));
      link = up;
      up.send({ t: 'hi', from: this.me });
      p.link = up;
      const queued = p.queue;
      p.queue = [];
      for (const m of queued) this.send(p, m);
      this.log.debug({ peer }, 'bus connected');
      this.handler.peerJoined?.(peer);
    });
    socket.on('error', () => {});
    socket.once('close', () => {
      const wasUp = link !== null && p.link === link;
      if (wasUp) {
        p.link = null;
        this.log.warn({ peer }, 'bus connection lost');
      }
      // Answers to what was sent on this link can no longer come: their outcome is unknown.
      if (link) this.failInflight(p, link, `worker ${peer} went away`);
      if (!this.closed) p.retry = setTimeout(() => this.connect(peer), wasUp ? 10 : 100);
    });
  }

  /** Answers and notifications on our outbound connection to `peer`. */
  private fromPeer(peer: number, p: Peer, link: Link, m: Wire): void {
    if (m.t === 'bye') {
      // A planned exit: what we send from now on waits for its successor; answers to what is in
      // flight still come on this link, which the peer closes once it has answered everything.
      if (p.link === link) p.link = null;
      link.send({ t: 'ba' });
      this.log.debug({ peer }, 'peer retiring');
      return;
    }
    if (m.t === 'r' || m.t === 'x') {
      link.inflight.delete(m.id);
      const pending = p.pending.get(m.id);
      if (!pending) return;
      p.pending.delete(m.id);
      if (m.t === 'r') pending.resolve(m.v);
      else pending.reject(new BusUnavailableError(m.e));
    } else if (m.t === 'n') {
      this.handler.notify(peer, m.m);
    }
  }

  /** A peer's outbound connection: its requests (answered here) and its notifications. */
  private accept(socket: Socket): void {
    this.inbound.add(socket);
    const entry = { link: null as unknown as Link, from: -1, acked: false };
    const link = new Link(socket, (m) => {
      if (m.t === 'hi') entry.from = m.from;
      else if (m.t === 'q') this.answer(link, entry.from, m);
      else if (m.t === 'n') this.handler.notify(entry.from, m.m);
      else if (m.t === 'ba') {
        entry.acked = true;
        this.checkRetired();
      }
    });
    entry.link = link;
    this.inboundLinks.set(socket, entry);
    if (this.retired) link.send({ t: 'bye' });
    socket.on('error', () => {});
    socket.once('close', () => {
      this.inbound.delete(socket);
      this.inboundLinks.delete(socket);
      this.checkRetired();
      if (entry.from >= 0 && !this.closed && !this.retired) this.handler.peerLeft?.(entry.from);
    });
  }

  private answer(link: Link, from: number, q: { id: number; op: string; a: unknown[] }): void {
    let result: unknown;
    try {
      result = this.handler.request(from, q.op, q.a);
    } catch (err) {
      link.send({ t: 'x', id: q.id, e: err instanceof Error ? err.message : String(err) });
      return;
    }
    this.handling++;
    Promise.resolve(result)
      .then(
        (v) => link.send({ t: 'r', id: q.id, v }),
        (err) => link.send({ t: 'x', id: q.id, e: err instanceof Error ? err.message : String(err) }),
      )
      .finally(() => {
        this.handling--;
        this.checkRetired();
      });
  }

  /**
   * A planned exit: no new bus connections, every peer told to queue what it would send us for our
   * successor; resolves once every peer has acknowledged and every request received has been answered
   * (or after `timeoutMs`). Then the store can close without failing anyone's request.
   */
  retire(timeoutMs = 3000): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        self.retired = () => {};
        resolve();
      }
      this.retired = done;
      this.server?.close();
      for (const { link } of this.inboundLinks.values()) link.send({ t: 'bye' });
      this.checkRetired();
    });
  }

  private checkRetired(): void {
    if (!this.retired || this.handling > 0) return;
    for (const e of this.inboundLinks.values()) if (!e.acked) return;
    const done = this.retired;
    done();
  }

  /** Requests whose answer can no longer come fail (their outcome is unknown: the client re-sends). */
  private failPending(p: Peer, why: string): void {
    const err = new BusUnavailableError(why);
    for (const pending of p.pending.values()) pending.reject(err);
    p.pending.clear();
  }

  private failInflight(p: Peer, link: Link, why: string): void {
    const err = new BusUnavailableError(why);
    for (const id of link.inflight) {
      p.pending.get(id)?.reject(err);
      p.pending.delete(id);
    }
    link.inflight.clear();
  }

  /** Requests queued for a peer that has not come back within waitMs fail. */
  private expireQueues(): void {
    const now = Date.now();
    for (const [peer, p] of this.peers) {
      if (p.link || p.queue.length === 0 || now - p.queuedAt < this.waitMs) continue;
      const err = new BusUnavailableError(`worker ${peer} is not reachable`);
      for (const m of p.queue) {
        if (m.t !== 'q') continue;
        p.pending.get(m.id)?.reject(err);
        p.pending.delete(m.id);
      }
      p.queue = [];
    }
  }
}
