/**
 * A raw SBP/1 client for the wire tests, in the style of nats-server's send/expect: frames are written
 * by hand with the codec, everything the server sends is decoded and queued, and every wait is bounded
 * (a wait that runs out fails the test with what arrived instead).
 *
 * `expect` takes the next unread frame and fails when it is not the one expected; `waitFor` takes the
 * first unread frame that matches and leaves the others queued (for answers whose relative order the
 * protocol does not fix, e.g. ACCEPTED versus the sender's own DELIVER).
 *
 * Two transports (PROTOCOL.md section 1), chosen by SWITCHBOARD_TEST_TRANSPORT=tcp|ws (default tcp):
 * over TCP the client writes bytes to the socket; over WebSocket (the `ws` package, path /sbp,
 * subprotocol sbp.v1, on the server's HTTP port: pass `portOf(server)`) each send/sendRaw is one binary
 * message, and the client checks what the contract says of the server's messages (binary, whole frames,
 * at most 256 KiB, a fatal ERROR followed by the close code 4000 + its code).
 */
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import { type RawData, WebSocket } from 'ws';
import {
  type AcceptedFrame,
  type DeliverFrame,
  ErrorCode,
  type ErrorFrame,
  type ErrorName,
  encodeFrame,
  errorName,
  type Frame,
  FrameDecoder,
  type FrameTypeName,
  isFatalCode,
  type WelcomeFrame,
} from '../../src/protocol/index.js';

export const HOST = '127.0.0.1';

export type Transport = 'tcp' | 'ws';

function transportFromEnv(): Transport {
  const value = process.env.SWITCHBOARD_TEST_TRANSPORT ?? 'tcp';
  if (value !== 'tcp' && value !== 'ws') {
    throw new Error(`SWITCHBOARD_TEST_TRANSPORT=${value}: expected tcp or ws`);
  }
  return value;
}

/** The transport the wire tests run over (SWITCHBOARD_TEST_TRANSPORT, default tcp). */
export const TRANSPORT: Transport = transportFromEnv();

/** The port a client of this transport connects to: the SBP port for TCP, the HTTP port for WebSocket. */
export function portOf(server: { port: number; httpPort: number }, transport: Transport = TRANSPORT): number {
  return transport === 'ws' ? server.httpPort : server.port;
}

/** The WebSocket endpoint (PROTOCOL.md section 1). */
export const WS_PATH = '/sbp';
export const WS_SUBPROTOCOL = 'sbp.v1';
/** Largest WebSocket message either side may send, bytes. */
export const MAX_WS_MESSAGE = 256 * 1024;
/** A fatal ERROR closes the WebSocket with this + its code. */
export const WS_CLOSE_ERROR_BASE = 4000;

/**
 * One client-to-server WebSocket frame, written by hand (for bytes a `ws` client would not send: a
 * message split over TCP writes, one that never completes). Masked with the all-zero key, so the payload
 * goes out as it is. `declaredLength` (default: the payload's) is what the header announces.
 */
export function wsClientFrame(
  payload: Uint8Array,
  opts: { opcode?: number; fin?: boolean; declaredLength?: number } = {},
): Buffer {
  const length = opts.declaredLength ?? payload.length;
  const first = (opts.fin === false ? 0 : 0x80) | (opts.opcode ?? 0x2);
  let header: Buffer;
  if (length < 126) {
    header = Buffer.from([first, 0x80 | length]);
  } else if (length < 65_536) {
    header = Buffer.alloc(4);
    header[0] = first;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  return Buffer.concat([header, Buffer.alloc(4), payload]);
}
/** Default bound of every wait, ms. */
export const DEFAULT_TIMEOUT_MS = 3000;
/** maxFrame before WELCOME: the default maxPayload + 1 KiB. */
const DEFAULT_MAX_FRAME = 66_560;
/** A fatal ERROR is followed by the close within 1 s (PROTOCOL.md section 7). */
export const FATAL_CLOSE_MS = 1000;

type Matcher = FrameTypeName | ((frame: Frame) => boolean);
type FrameOf<T extends FrameTypeName> = Extract<Frame, { type: T }>;

export interface HelloOptions {
  token?: string;
  resumeAfter?: number;
  version?: number;
  timeoutMs?: number;
}

export interface ConnectOptions {
  /** The server's loopback address (default HOST). */
  host?: string;
  /** Bound of the TCP connect (and of the WebSocket upgrade), ms. */
  timeoutMs?: number;
  /** Keep our side open after the server's FIN (a peer that never closes), instead of closing too. TCP only. */
  halfOpen?: boolean;
  /** Default: TRANSPORT (SWITCHBOARD_TEST_TRANSPORT). */
  transport?: Transport;
}

/** A short readable form of a frame for failure messages (payloads as text when printable). */
export function describe(frame: Frame | undefined): string {
  if (!frame) return 'nothing';
  const shown: Record<string, unknown> = { ...frame };
  if ('payload' in frame) {
    const text = Buffer.from(frame.payload).toString('utf8');
    shown.payload = frame.payload.length > 64 ? `<${frame.payload.length} bytes>` : text;
  }
  if (frame.type === 'ERROR') shown.code = `${frame.code} ${errorName(frame.code)}`;
  return JSON.stringify(shown);
}

function matches(m: Matcher, frame: Frame): boolean {
  return typeof m === 'string' ? frame.type === m : m(frame);
}

function matcherName(m: Matcher): string {
  return typeof m === 'string' ? m : 'a frame matching the predicate';
}

export class WireClient {
  /** Every frame received, in order. */
  readonly frames: Frame[] = [];
  /** Frames received and not yet taken by expect/waitFor. */
  private readonly unread: Frame[] = [];
  /** A client's limit is maxFrame from WELCOME, 66 560 before it (section 2.2): larger is a server bug. */
  private readonly decoder = new FrameDecoder('serverToClient', {
    firstFrame: DEFAULT_MAX_FRAME,
    frame: DEFAULT_MAX_FRAME,
  });
  private readonly waiters = new Set<() => void>();
  /** The server closed its side (FIN) or the socket is gone. */
  ended = false;
  closed = false;
  /** Set when the server sent bytes that do not decode: a server bug the next wait reports. */
  decodeError: Error | null = null;
  socketError: Error | null = null;
  /** Time (Date.now) the connection was established. */
  connectedAt = 0;
  /** Time each frame arrived, parallel to `frames`. */
  readonly arrivals: number[] = [];
  endedAt = 0;
  /** Called with every frame as it arrives (before any expect/waitFor takes it). */
  readonly listeners = new Set<(frame: Frame) => void>();
  readonly transport: Transport;
  /** WebSocket: the close code the connection ended with (1006 when it ended without a close frame). */
  closeCode: number | null = null;
  closeReason = '';
  /** WebSocket: the number of frames in each message the server sent, in order. */
  readonly messageFrames: number[] = [];
  /** WebSocket: the size of each message the server sent, bytes. */
  readonly messageSizes: number[] = [];

  /**
   * `socket` is the TCP connection under both transports; `ws`, when given, the WebSocket over it (the
   * client then speaks through it, and `socket` is there for raw writes).
   */
  constructor(
    readonly socket: net.Socket,
    readonly label = 'client',
    private readonly halfOpen = false,
    readonly ws: WebSocket | null = null,
  ) {
    this.transport = ws ? 'ws' : 'tcp';
    socket.setNoDelay(true);
    if (ws) {
      ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(data as Buffer, isBinary));
      ws.on('error', (err) => {
        this.socketError = err;
      });
      ws.on('close', (code: number, reason: Buffer) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.markEnded();
        this.closed = true;
        this.wake();
      });
      return;
    }
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.socketError = err;
    });
    socket.on('end', () => {
      this.markEnded();
      // Finish our side too, as a well-behaved peer would.
      if (!socket.destroyed && !this.halfOpen) socket.end();
    });
    socket.on('close', () => {
      this.markEnded();
      this.closed = true;
      this.wake();
    });
  }

  /** A WebSocket message: binary, whole frames, at most 256 KiB (PROTOCOL.md section 1). */
  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.decodeError) return;
    if (!isBinary) {
      this.decodeError = new Error('the server sent a text message');
    } else if (data.length > MAX_WS_MESSAGE) {
      this.decodeError = new Error(
        `the server sent a message of ${data.length} bytes, over ${MAX_WS_MESSAGE}`,
      );
    } else {
      const before = this.frames.length;
      this.onData(data);
      this.messageSizes.push(data.length);
      this.messageFrames.push(this.frames.length - before);
      if (!this.decodeError && (data.length === 0 || this.decoder.midFrame)) {
        this.decodeError = new Error('a message from the server does not hold whole frames');
      }
    }
    this.wake();
  }

  private markEnded(): void {
    if (!this.ended) {
      this.ended = true;
      this.endedAt = Date.now();
    }
    this.wake();
  }

  private onData(chunk: Buffer): void {
    if (this.decodeError) return;
    try {
      this.decoder.push(chunk, (frame) => {
        // Payloads are views into the chunk: keep copies.
        const kept =
          'payload' in frame ? ({ ...frame, payload: Uint8Array.from(frame.payload) } as Frame) : frame;
        if (kept.type === 'WELCOME') {
          const maxFrame = kept.maxPayload + 1024;
          this.decoder.setLimits({ firstFrame: maxFrame, frame: maxFrame });
        }
        this.frames.push(kept);
        this.arrivals.push(Date.now());
        this.unread.push(kept);
        for (const l of this.listeners) l(kept);
      });
    } catch (err) {
      this.decodeError = err as Error;
    }
    this.wake();
  }

  private wake(): void {
    const list = [...this.waiters];
    this.waiters.clear();
    for (const w of list) w();
  }

  /** Resolves on the next event (frame, end, close) or after ms; never rejects. */
  private async nextEvent(deadline: number): Promise<void> {
    const ms = deadline - Date.now();
    if (ms <= 0) return;
    await new Promise<void>((resolve) => {
      const waiter = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        resolve();
      }, ms);
      this.waiters.add(waiter);
    });
  }

  private fail(message: string): never {
    const extra = this.decodeError ? ` (the server's bytes did not decode: ${this.decodeError.message})` : '';
    throw new Error(`[${this.label}] ${message}${extra}`);
  }

  // ------------------------------------------------------------ sending

  send(frame: Frame): void {
    this.sendRaw(encodeFrame(frame));
  }

  /** TCP: writes the bytes. WebSocket: sends them as one binary message. */
  sendRaw(bytes: Uint8Array): void {
    if (this.ws) {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
      return;
    }
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.socket.write(bytes);
  }

  /** WebSocket only: a text message. */
  sendTextMessage(message: string): void {
    if (!this.ws) throw new Error(`[${this.label}] a text message needs a WebSocket`);
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(message);
  }

  /**
   * The bytes this transport puts on the TCP connection to carry `bytes` in one piece: the bytes
   * themselves over TCP, one binary message (a hand-written frame) over WebSocket. For tests that split
   * or trickle what they send with writeSocket.
   */
  onTheWire(bytes: Uint8Array): Buffer {
    return this.ws ? wsClientFrame(bytes) : Buffer.from(bytes);
  }

  /** Writes bytes straight to the TCP connection, under the WebSocket if there is one. */
  writeSocket(bytes: Uint8Array): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.socket.write(bytes);
  }

  /** Sends HELLO and expects WELCOME as the next frame. */
  async hello(user: string, device: string, opts: HelloOptions = {}): Promise<WelcomeFrame> {
    this.sendHello(user, device, opts);
    return this.expect('WELCOME', opts.timeoutMs);
  }

  sendHello(user: string, device: string, opts: HelloOptions = {}): void {
    this.send({
      type: 'HELLO',
      version: opts.version ?? 1,
      user,
      device,
      token: opts.token ?? '',
      resumeAfter: opts.resumeAfter ?? 0,
    });
  }

  /** A durable SEND (flags 0) of a UTF-8 text. */
  sendText(clientMsgId: number, to: string, text: string, flags = 0): void {
    this.send({ type: 'SEND', clientMsgId, flags, to, payload: new TextEncoder().encode(text) });
  }

  // ------------------------------------------------------------ receiving

  /** The next unread frame, which must match; fails with what arrived instead (or nothing). */
  expect<T extends FrameTypeName>(type: T, timeoutMs?: number): Promise<FrameOf<T>>;
  expect(predicate: (frame: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  async expect(m: Matcher, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const next = this.unread[0];
      if (next) {
        if (!matches(m, next)) this.fail(`expected ${matcherName(m)}, got ${describe(next)}`);
        this.unread.shift();
        return next;
      }
      if (this.decodeError || this.ended) {
        this.fail(`expected ${matcherName(m)}, but the server closed the connection`);
      }
      if (Date.now() >= deadline) this.fail(`expected ${matcherName(m)} within ${timeoutMs} ms, got nothing`);
      await this.nextEvent(deadline);
    }
  }

  /** The first unread frame that matches (others stay unread, in order). */
  waitFor<T extends FrameTypeName>(type: T, timeoutMs?: number): Promise<FrameOf<T>>;
  waitFor(predicate: (frame: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  async waitFor(m: Matcher, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    let scanned = 0;
    for (;;) {
      for (let i = scanned; i < this.unread.length; i++) {
        if (matches(m, this.unread[i]!)) return this.unread.splice(i, 1)[0]!;
      }
      scanned = this.unread.length;
      if (this.decodeError || this.ended) {
        this.fail(
          `waited for ${matcherName(m)}, but the server closed the connection; unread: ${this.unreadText()}`,
        );
      }
      if (Date.now() >= deadline) {
        this.fail(`waited ${timeoutMs} ms for ${matcherName(m)}; unread: ${this.unreadText()}`);
      }
      await this.nextEvent(deadline);
    }
  }

  /** Takes `count` frames that match, in arrival order, leaving the others unread. */
  async collect(m: Matcher, count: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    const out: Frame[] = [];
    while (out.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.fail(`collected ${out.length} of ${count} × ${matcherName(m)} within ${timeoutMs} ms`);
      }
      try {
        out.push(await this.waitFor(m as (frame: Frame) => boolean, left));
      } catch (err) {
        this.fail(`collected ${out.length} of ${count} × ${matcherName(m)}: ${(err as Error).message}`);
      }
    }
    return out;
  }

  /** The next frame must be ERROR with this code (and `ref`, when given). */
  async expectError(code: ErrorName, opts: { ref?: number; timeoutMs?: number } = {}): Promise<ErrorFrame> {
    const frame = await this.expect('ERROR', opts.timeoutMs);
    if (frame.code !== ErrorCode[code]) {
      this.fail(`expected ERROR ${code}, got ${describe(frame)}`);
    }
    if (opts.ref !== undefined && frame.ref !== opts.ref) {
      this.fail(`expected ERROR ${code} with ref ${opts.ref}, got ${describe(frame)}`);
    }
    return frame;
  }

  /** The next DELIVER. */
  expectDeliver(timeoutMs?: number): Promise<DeliverFrame> {
    return this.expect('DELIVER', timeoutMs);
  }

  /** The ACCEPTED for this clientMsgId, wherever it is among the unread frames. */
  waitAccepted(clientMsgId: number, timeoutMs?: number): Promise<AcceptedFrame> {
    return this.waitFor(
      (f) => f.type === 'ACCEPTED' && f.clientMsgId === clientMsgId,
      timeoutMs,
    ) as Promise<AcceptedFrame>;
  }

  /**
   * The server closes the connection with nothing more unread (unless allowUnread): fails when a frame
   * arrives instead or the socket stays open past the timeout. When the last frame was a fatal ERROR,
   * the close must have come within 1 s of it (section 7), plus a margin for a loaded machine, and a
   * WebSocket must have closed with 4000 + its code (unless `code` names the close code expected).
   * Resolves with the WebSocket close code (null over TCP).
   */
  async expectClosed(
    timeoutMs = DEFAULT_TIMEOUT_MS,
    opts: { allowUnread?: boolean; code?: number } = {},
  ): Promise<number | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!opts.allowUnread && this.unread.length > 0) {
        this.fail(`expected the connection to close, got ${describe(this.unread[0])}`);
      }
      if (this.ended) {
        const last = this.frames.at(-1);
        const fatal = last?.type === 'ERROR' && isFatalCode(last.code) ? last.code : 0;
        if (fatal) {
          const after = this.endedAt - this.arrivals.at(-1)!;
          if (after > FATAL_CLOSE_MS + 1000) {
            this.fail(
              `closed ${after} ms after the fatal ERROR ${errorName(fatal)} (at most ${FATAL_CLOSE_MS} ms)`,
            );
          }
        }
        if (this.ws) {
          const want = opts.code ?? (fatal ? WS_CLOSE_ERROR_BASE + fatal : undefined);
          if (want !== undefined && this.closeCode !== want) {
            this.fail(`the WebSocket closed with ${this.closeCode}, expected ${want}`);
          }
        }
        if (this.decodeError) this.fail('the server broke the framing');
        return this.closeCode;
      }
      if (Date.now() >= deadline) this.fail(`the connection was still open after ${timeoutMs} ms`);
      await this.nextEvent(deadline);
    }
  }

  /** No frame matching (default: any) arrives within ms. */
  async expectNothing(ms: number, m: Matcher = () => true): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = this.unread.find((f) => matches(m, f));
      if (hit) this.fail(`expected nothing for ${ms} ms, got ${describe(hit)}`);
      if (Date.now() >= deadline) return;
      await this.nextEvent(deadline);
    }
  }

  /** PING with a nonce and wait for its PONG as the next frame: a round trip through the session. */
  async ping(nonce: number = Math.floor(Math.random() * 2 ** 32), timeoutMs?: number): Promise<void> {
    this.send({ type: 'PING', nonce });
    const pong = await this.expect('PONG', timeoutMs);
    if (pong.nonce !== nonce) this.fail(`PONG nonce ${pong.nonce}, sent ${nonce}`);
  }

  get unreadCount(): number {
    return this.unread.length;
  }

  /** Takes every unread frame. */
  drain(): Frame[] {
    return this.unread.splice(0, this.unread.length);
  }

  unreadText(): string {
    if (this.unread.length === 0) return 'nothing';
    const shown = this.unread.slice(0, 5).map(describe).join(', ');
    return this.unread.length > 5 ? `${shown}, … (${this.unread.length} frames)` : shown;
  }

  /** Closes our side and destroys the socket shortly after; never waits long. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.ws) {
      const ws = this.ws;
      const closed = once(ws, 'close');
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      const timer = setTimeout(() => ws.terminate(), 200);
      await Promise.race([closed, new Promise((r) => setTimeout(r, 500))]);
      clearTimeout(timer);
      ws.terminate();
      return;
    }
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), 200);
    await Promise.race([once(this.socket, 'close'), new Promise((r) => setTimeout(r, 500))]);
    clearTimeout(timer);
    this.socket.destroy();
  }

  destroy(): void {
    if (this.ws) this.ws.terminate();
    else this.socket.destroy();
  }
}

/**
 * Opens a connection to the server on loopback over `opts.transport` (default TRANSPORT): TCP to the SBP
 * port, or a WebSocket to /sbp on the HTTP port (pass `portOf(server)`).
 */
export async function connect(port: number, label?: string, opts: ConnectOptions = {}): Promise<WireClient> {
  if ((opts.transport ?? TRANSPORT) === 'ws') return connectWebSocket(port, label, opts);
  const socket = net.createConnection({
    host: opts.host ?? HOST,
    port,
    allowHalfOpen: opts.halfOpen ?? false,
  });
  const client = new WireClient(socket, label, opts.halfOpen ?? false);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`[${label ?? 'client'}] connect to port ${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  client.connectedAt = Date.now();
  return client;
}

export interface WebSocketOptions extends ConnectOptions {
  /** Default /sbp. */
  path?: string;
  /** Subprotocols offered; default [sbp.v1]. */
  protocols?: string[];
}

/** A WebSocket client (the `ws` package) on /sbp with the subprotocol sbp.v1: resolves once it is open. */
export async function connectWebSocket(
  port: number,
  label?: string,
  opts: WebSocketOptions = {},
): Promise<WireClient> {
  if (opts.halfOpen) throw new Error('halfOpen is a TCP option');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // The server's handshake deadline runs from the TCP accept: so does connectedAt (taken just before).
  const connectedAt = Date.now();
  const ws = new WebSocket(
    `ws://${opts.host ?? HOST}:${port}${opts.path ?? WS_PATH}`,
    opts.protocols ?? [WS_SUBPROTOCOL],
    {
      perMessageDeflate: false,
      handshakeTimeout: timeoutMs,
    },
  );
  let socket: net.Socket | null = null;
  ws.once('upgrade', (res: IncomingMessage) => {
    socket = res.socket as net.Socket;
  });
  const client = await new Promise<WireClient>((resolve, reject) => {
    ws.once('open', () => {
      if (ws.protocol !== WS_SUBPROTOCOL) {
        ws.terminate();
        reject(new Error(`[${label ?? 'client'}] the server chose the subprotocol "${ws.protocol}"`));
        return;
      }
      resolve(new WireClient(socket!, label, false, ws));
    });
    ws.once('error', (err) => {
      reject(new Error(`[${label ?? 'client'}] WebSocket to port ${port}: ${err.message}`));
    });
  });
  client.connectedAt = connectedAt;
  return client;
}

/** Connects and completes the handshake: the client and its WELCOME. */
export async function session(
  port: number,
  user: string,
  device: string,
  opts: HelloOptions & { transport?: Transport; host?: string } = {},
): Promise<{ client: WireClient; welcome: WelcomeFrame }> {
  const client = await connect(port, `${user}/${device}`, { transport: opts.transport, host: opts.host });
  const welcome = await client.hello(user, device, opts);
  return { client, welcome };
}

export function text(payload: Uint8Array): string {
  return Buffer.from(payload).toString('utf8');
}

export function bytes(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

export function fromHex(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Closes every client given, in parallel, each bounded. */
export async function closeAll(clients: Iterable<WireClient | undefined>): Promise<void> {
  await Promise.all([...clients].map((c) => c?.close()));
}

/** Deterministic PRNG (mulberry32) for reproducible random inputs. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
