/**
 * SwitchboardClient: the SBP/1 client SDK (PROTOCOL.md sections 4, 5 and 7), runtime-neutral (no Node
 * imports; the transport is injected).
 *
 * Life: start() loads the saved state and connects; on any loss it reconnects by itself with
 * exponential back-off and full jitter (or after the delay a SHUTTING_DOWN / SERVER_FULL suggests),
 * except after SESSION_REPLACED, UNAUTHORIZED or UNSUPPORTED_VERSION, which stop it with an 'error'
 * event. close() ACKs what was processed, says BYE and stops.
 *
 * Sending: a durable SEND gets clientMsgId = max(now, last + 1), is saved through the storage hook
 * (with the new last id) before it is written, and stays pending until ACCEPTED or a request-level
 * ERROR; after a reconnect every pending SEND is written again, in ascending id order, before any new
 * one. JOIN/LEAVE draw refs from the same counter and share that ordered outbox (not saved).
 *
 * Receiving: DELIVERs with seq ≤ processedSeq are dropped (duplicates after a reconnect); processedSeq
 * moves when the 'message' listeners have run. ACKs are cumulative, at least every window/2 messages
 * and after a short idle delay.
 */
import {
  ACCEPTED_FLAG_DUPLICATE,
  type ClientFrame,
  type DeliverFrame,
  ErrorCode,
  encodeFrame,
  errorName,
  type Frame,
  FrameDecoder,
  isFatalCode,
  isValidAddress,
  isValidId,
  PROTOCOL_VERSION,
  SbpError,
  SEND_FLAG_EPHEMERAL,
  type WelcomeFrame,
} from '../protocol/index.js';
import { TypedEmitter } from './emitter.js';
import {
  type ClientState,
  type ClientStorage,
  MemoryStorage,
  normalizeState,
  payloadBytes,
  toBase64,
} from './storage.js';
import type { ClientTransport, TransportSocket } from './transport.js';

/** Frame limit before WELCOME tells the real one (section 2.2): the default maxFrame. */
const DEFAULT_MAX_FRAME = 65_536 + 1_024;
/** A connection live at least this long resets the back-off. */
const STABLE_MS = 5_000;
/** Fatal codes after which the client must not reconnect by itself (section 4.6). */
const TERMINAL_CODES = new Set<number>([
  ErrorCode.SESSION_REPLACED,
  ErrorCode.UNAUTHORIZED,
  ErrorCode.UNSUPPORTED_VERSION,
]);
/** Fatal codes whose `ref` is a suggested reconnect delay (section 7). */
const DELAY_CODES = new Set<number>([ErrorCode.SHUTTING_DOWN, ErrorCode.SERVER_FULL]);

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * An SBP error (from the server, or the same check made locally: `local`), or a client-side condition
 * with code 0: CLOSED, NOT_CONNECTED, NOT_STARTED, CANCELLED, TIMEOUT, CONNECTION_LOST.
 */
export class SwitchboardError extends Error {
  constructor(
    readonly code: number,
    /** SBP error name (PAYLOAD_TOO_LARGE, …), or the client-side condition. */
    readonly codeName: string,
    message: string,
    /** The clientMsgId/ref it answers, or the suggested delay for SHUTTING_DOWN/SERVER_FULL. */
    readonly ref = 0,
    /** True when the SDK decided it without asking the server. */
    readonly local = false,
  ) {
    super(message);
    this.name = 'SwitchboardError';
  }

  get fatal(): boolean {
    return isFatalCode(this.code);
  }

  static fromWire(code: number, ref: number, message: string): SwitchboardError {
    return new SwitchboardError(code, errorName(code), message, ref);
  }

  static client(codeName: string, message: string): SwitchboardError {
    return new SwitchboardError(0, codeName, message, 0, true);
  }
}

export interface BackoffOptions {
  /** Cap of the first retry delay, ms (default 500). */
  initialMs?: number;
  /** Largest cap, ms (default 30 000). Each delay is uniform in [0, min(maxMs, initialMs · 2^attempt)]. */
  maxMs?: number;
}

/** How long a client waits at most after the first unacknowledged DELIVER before it ACKs, ms. */
export const DEFAULT_ACK_DELAY_MS = 100;

export interface ClientOptions {
  /** `host:port` (TCP) or whatever the transport understands; or several: one picked at random, the next after a failure. */
  endpoint?: string;
  endpoints?: string[];
  user: string;
  device: string;
  /** JWT for servers with a secret; a function is called before every HELLO (token refresh). */
  token?: string | (() => string | Promise<string>);
  transport: ClientTransport;
  /** Where the state lives across restarts (default: memory only). */
  storage?: ClientStorage;
  backoff?: BackoffOptions;
  /** ACK after this many DELIVERs (default and maximum: window/2). */
  ackEvery?: number;
  /** ACK at the latest this long after the first unacknowledged DELIVER, ms (default 100). */
  ackDelayMs?: number;
  /** From starting a connection to WELCOME, ms (default 10 000); then the attempt is abandoned. */
  handshakeTimeoutMs?: number;
}

export type ClientStateName = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

export interface ConnectedInfo {
  endpoint: string;
  node: string;
  lastSeq: number;
  ackedSeq: number;
  heartbeatMs: number;
  maxPayload: number;
  window: number;
}

export interface Message {
  /** Inbox seq; 0 for an ephemeral message (never stored, never ACKed). */
  seq: number;
  timestamp: number;
  from: string;
  fromDevice: string;
  clientMsgId: number;
  to: string;
  payload: Uint8Array;
  /** The payload as text when it is valid UTF-8, else null. */
  text: string | null;
  ephemeral: boolean;
}

export interface SendOptions {
  /** Typing indicators and the like: never stored, never ACCEPTED, never re-sent (section 5). */
  ephemeral?: boolean;
  /** Called with the clientMsgId as soon as it is drawn (before the save and the write). */
  onId?: (clientMsgId: number) => void;
}

export interface SendResult {
  clientMsgId: number;
  /** Server time the message was stored; 0 for an ephemeral send (never ACCEPTED). */
  timestamp: number;
  duplicate: boolean;
}

export interface AcceptedInfo extends SendResult {
  to: string;
}

export interface DisconnectedInfo {
  endpoint: string;
  /** bye, error, closed, network, protocol, timeout */
  reason: string;
  error?: Error;
}

export interface ReconnectingInfo {
  attempt: number;
  delayMs: number;
  /** Why the last attempt or connection ended. */
  lastError?: Error;
}

export interface ReceiptInfo {
  by: string;
  byDevice: string;
  fromDevice: string;
  clientMsgId: number;
  timestamp: number;
}

export interface PresenceInfo {
  user: string;
  online: boolean;
  since: number;
}

export interface RequestErrorInfo {
  ref: number;
  error: SwitchboardError;
}

export interface ClientEvents {
  /** A session is up (WELCOME). */
  connected: ConnectedInfo;
  message: Message;
  /** A durable SEND was ACCEPTED (also for SENDs restored from storage, which have no promise). */
  accepted: AcceptedInfo;
  /** A session that was up has ended; the client reconnects unless it is stopping. */
  disconnected: DisconnectedInfo;
  reconnecting: ReconnectingInfo;
  /** Fatal: the client has stopped and will not reconnect. */
  error: SwitchboardError;
  state: ClientStateName;
  receipt: ReceiptInfo;
  presence: PresenceInfo;
  /** A request-level ERROR that no promise is waiting for (ephemeral sends, restored sends). */
  requestError: RequestErrorInfo;
  /** Something went wrong that does not stop the client (a failed background save). */
  warning: Error;
}

type EntryKind = 'send' | 'join' | 'leave';

interface OutboxEntry {
  id: number;
  kind: EntryKind;
  to: string;
  payload: Uint8Array;
  base64: string | null;
  /** Included in a completed save (always true for JOIN/LEAVE, which are not saved). */
  persisted: boolean;
  /** ACCEPTED, DONE, failed or discarded: skip it. */
  done: boolean;
  /** STORE_UNAVAILABLE answers so far (for the retry back-off). */
  retries?: number;
  /** The connection's rewind generation when it was last written. */
  writtenGeneration?: number;
  resolve?: (value: SendResult) => void;
  reject?: (err: Error) => void;
}

interface Connection {
  endpoint: string;
  socket: TransportSocket | null;
  decoder: FrameDecoder;
  helloSent: boolean;
  live: boolean;
  closing: boolean;
  welcome: ConnectedInfo | null;
  liveSince: number;
  maxFrame: number;
  resumeAfter: number;
  lastWrite: number;
  lastRecv: number;
  lastPing: number;
  highestDelivered: number;
  ackedSent: number;
  unacked: number;
  ackEvery: number;
  queue: OutboxEntry[];
  queueHead: number;
  /** Set while waiting to write the outbox again after STORE_UNAVAILABLE: nothing new is written. */
  stalled: boolean;
  rewindTimer?: ReturnType<typeof setTimeout>;
  /** How many times the outbox was written again on this connection. */
  generation: number;
  handshakeTimer?: ReturnType<typeof setTimeout>;
  ackTimer?: ReturnType<typeof setTimeout>;
  heartbeatTimer?: ReturnType<typeof setInterval>;
  onClosed?: () => void;
}

export class SwitchboardClient extends TypedEmitter<ClientEvents> {
  readonly user: string;
  readonly device: string;
  private readonly endpoints: string[];
  private readonly transport: ClientTransport;
  private readonly storage: ClientStorage;
  private readonly token: ClientOptions['token'];
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly ackEveryOption: number | undefined;
  private readonly ackDelayMs: number;
  private readonly handshakeTimeoutMs: number;

  private stateName: ClientStateName = 'idle';
  private loading: Promise<void> | null = null;
  /** The saved state was read: only then may it be overwritten. */
  private loaded = false;
  private started: Promise<ConnectedInfo> | null = null;
  private resolveStarted?: (info: ConnectedInfo) => void;
  private rejectStarted?: (err: Error) => void;
  private closing: Promise<void> | null = null;
  private stopped = false;
  private conn: Connection | null = null;
  private endpointIndex: number;
  private attempt = 0;
  private suggestedDelay: number | null = null;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private lastInfo: ConnectedInfo | null = null;
  private maxFrame = DEFAULT_MAX_FRAME;

  private lastClientMsgId = 0;
  private processed = 0;
  /** Pending durable SENDs and JOIN/LEAVE requests, in ascending id order (Map keeps insertion order). */
  private readonly outbox = new Map<number, OutboxEntry>();
  private pendingSends = 0;
  /** Recent ephemeral ids, so an ERROR for one can be recognised. */
  private readonly ephemeralIds = new Set<number>();
  private readonly watched = new Set<string>();
  private pingNonce = 0;
  private readonly pings = new Map<
    number,
    { sentAt: number; resolve: (rtt: number) => void; reject: (e: Error) => void }
  >();

  private saveChain: Promise<void> = Promise.resolve();
  private nextSave: Promise<void> | null = null;

  constructor(options: ClientOptions) {
    super();
    if (!isValidId(options.user)) throw new TypeError(`not a valid user id: "${options.user}"`);
    if (!isValidId(options.device)) throw new TypeError(`not a valid device id: "${options.device}"`);
    this.endpoints = options.endpoints?.length
      ? [...options.endpoints]
      : options.endpoint
        ? [options.endpoint]
        : [];
    if (this.endpoints.length === 0) throw new TypeError('an endpoint is required');
    // Clients of a fleet spread over its nodes: each starts at a random endpoint, then takes the next one
    // after every lost or refused connection (SHUTTING_DOWN, SERVER_FULL: after the delay suggested).
    this.endpointIndex = Math.floor(Math.random() * this.endpoints.length);
    this.user = options.user;
    this.device = options.device;
    this.transport = options.transport;
    this.storage = options.storage ?? new MemoryStorage();
    this.token = options.token;
    this.initialMs = Math.max(1, options.backoff?.initialMs ?? 500);
    this.maxMs = Math.max(this.initialMs, options.backoff?.maxMs ?? 30_000);
    this.ackEveryOption = options.ackEvery;
    this.ackDelayMs = options.ackDelayMs ?? DEFAULT_ACK_DELAY_MS;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
  }

  get state(): ClientStateName {
    return this.stateName;
  }
  /** The last WELCOME, or null before the first. */
  get info(): ConnectedInfo | null {
    return this.lastInfo;
  }
  get connected(): boolean {
    return this.conn?.live === true;
  }
  /** The highest seq processed (the next HELLO's resumeAfter). */
  get processedSeq(): number {
    return this.processed;
  }
  /** Durable SENDs not yet ACCEPTED. */
  get pendingCount(): number {
    return this.pendingSends;
  }
  /** Bytes written and not yet handed to the network (back-pressure for bulk senders). */
  get bufferedAmount(): number {
    return this.conn?.socket?.bufferedAmount ?? 0;
  }

  /**
   * Loads the saved state and starts connecting. Resolves at the first WELCOME; rejects when the client
   * stops before that (a fatal error or close()). Calling it again returns the same promise.
   */
  start(): Promise<ConnectedInfo> {
    if (this.started) return this.started;
    this.started = new Promise<ConnectedInfo>((resolve, reject) => {
      this.resolveStarted = resolve;
      this.rejectStarted = reject;
    });
    this.started.catch(() => {}); // callers that do not await it must not see an unhandled rejection
    this.loading = (async () => {
      const state = normalizeState(await this.storage.load());
      this.lastClientMsgId = Math.max(this.lastClientMsgId, state.lastClientMsgId);
      this.processed = state.processedSeq;
      for (const p of state.pending) {
        if (this.outbox.has(p.clientMsgId)) continue;
        this.outbox.set(p.clientMsgId, {
          id: p.clientMsgId,
          kind: 'send',
          to: p.to,
          payload: payloadBytes(p.payload),
          base64: typeof p.payload === 'string' ? p.payload : null,
          persisted: true,
          done: false,
        });
        this.pendingSends++;
      }
      this.loaded = true;
    })();
    this.loading.then(
      () => this.openConnection(),
      (err) =>
        this.stop(SwitchboardError.client('STORAGE', `could not load the client state: ${String(err)}`)),
    );
    return this.started;
  }

  /**
   * Sends a message. Durable (default): resolves on ACCEPTED, rejects on a request-level ERROR for it
   * (SwitchboardError with the SBP name and code), or with CLOSED when the client stops first — the
   * message then stays saved and the next client on this storage re-sends it. Ephemeral: written only
   * when connected (else NOT_CONNECTED), resolves once written; an ERROR for it arrives as 'requestError'.
   */
  async send(to: string, payload: Uint8Array | string, options: SendOptions = {}): Promise<SendResult> {
    if (!this.loading) throw SwitchboardError.client('NOT_STARTED', 'call start() before send()');
    await this.loading;
    if (this.stopped) throw SwitchboardError.client('CLOSED', 'the client is closed');
    if (!isValidAddress(to)) {
      throw new SwitchboardError(
        ErrorCode.INVALID_ADDRESS,
        'INVALID_ADDRESS',
        `not a valid address: "${to}"`,
        0,
        true,
      );
    }
    const bytes = typeof payload === 'string' ? utf8.encode(payload) : payload.slice();
    const size = sendFrameSize(to, bytes);
    if (size > this.maxFrame) {
      throw new SwitchboardError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        'PAYLOAD_TOO_LARGE',
        `a SEND of ${size} bytes is over the frame limit of ${this.maxFrame}`,
        0,
        true,
      );
    }
    if (options.ephemeral) {
      const conn = this.conn;
      if (!conn?.live)
        throw SwitchboardError.client('NOT_CONNECTED', 'ephemeral messages need a live connection');
      const id = this.nextId();
      options.onId?.(id);
      this.rememberEphemeral(id);
      this.write(conn, { type: 'SEND', clientMsgId: id, flags: SEND_FLAG_EPHEMERAL, to, payload: bytes });
      return { clientMsgId: id, timestamp: 0, duplicate: false };
    }
    const entry = this.addEntry('send', to, bytes, false);
    options.onId?.(entry.id);
    const result = new Promise<SendResult>((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    this.persist().catch((err) => {
      this.settle(entry, SwitchboardError.client('STORAGE', `could not save the message: ${String(err)}`));
      if (this.conn?.live) this.flushOutbox(this.conn);
    });
    return result;
  }

  /**
   * Forgets a pending durable SEND (its promise rejects with CANCELLED). If it was written already, the
   * server may still store it. Returns false when it is not pending.
   */
  discard(clientMsgId: number): boolean {
    const entry = this.outbox.get(clientMsgId);
    if (entry?.kind !== 'send' || entry.done) return false;
    this.settle(entry, SwitchboardError.client('CANCELLED', 'discarded before it was accepted'));
    this.persist().catch((err) => this.emit('warning', err));
    return true;
  }

  /** Joins a group (`#name`); resolves on DONE. Re-sent after a reconnect until answered. */
  join(group: string): Promise<void> {
    return this.groupRequest('join', group);
  }

  /** Leaves a group (`#name`); resolves on DONE. */
  leave(group: string): Promise<void> {
    return this.groupRequest('leave', group);
  }

  /** Watches users' presence ('presence' events); kept across reconnects. */
  watch(users: string[]): void {
    const fresh = users.filter((u) => isValidId(u) && !this.watched.has(u));
    for (const u of fresh) this.watched.add(u);
    if (this.conn?.live && fresh.length) this.writeUsers(this.conn, 'WATCH', fresh);
  }

  unwatch(users: string[]): void {
    const gone = users.filter((u) => this.watched.delete(u));
    if (this.conn?.live && gone.length) this.writeUsers(this.conn, 'UNWATCH', gone);
  }

  /** Round trip to the server, ms. Rejects with NOT_CONNECTED when not connected or when the connection drops. */
  ping(): Promise<number> {
    const conn = this.conn;
    if (!conn?.live) return Promise.reject(SwitchboardError.client('NOT_CONNECTED', 'not connected'));
    const nonce = ++this.pingNonce;
    return new Promise<number>((resolve, reject) => {
      this.pings.set(nonce, { sentAt: Date.now(), resolve, reject });
      this.write(conn, { type: 'PING', nonce });
    });
  }

  /** ACKs what was processed, sends BYE, saves the state and stops. Pending promises reject with CLOSED. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      const conn = this.conn;
      let socketClosed: Promise<void> = Promise.resolve();
      if (conn?.socket && !conn.closing) {
        if (conn.live) this.sendAck(conn);
        if (conn.helloSent) this.write(conn, { type: 'BYE', code: 0, reason: 'bye' });
        socketClosed = new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 2_000);
          conn.onClosed = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      this.stop(null);
      await socketClosed;
      await this.persist().catch(() => {});
    })();
    return this.closing;
  }

  // ------------------------------------------------------------------ connection life

  private setState(state: ClientStateName): void {
    if (this.stateName === state) return;
    this.stateName = state;
    this.emit('state', state);
  }

  private openConnection(): void {
    if (this.stopped) return;
    const endpoint = this.endpoints[this.endpointIndex++ % this.endpoints.length]!;
    const now = Date.now();
    const conn: Connection = {
      endpoint,
      socket: null,
      decoder: new FrameDecoder('serverToClient', {
        firstFrame: DEFAULT_MAX_FRAME,
        frame: DEFAULT_MAX_FRAME,
      }),
      helloSent: false,
      live: false,
      closing: false,
      welcome: null,
      liveSince: 0,
      maxFrame: DEFAULT_MAX_FRAME,
      resumeAfter: 0,
      lastWrite: now,
      lastRecv: now,
      lastPing: 0,
      highestDelivered: 0,
      ackedSent: 0,
      unacked: 0,
      ackEvery: 1,
      queue: [],
      queueHead: 0,
      stalled: false,
      generation: 0,
    };
    this.conn = conn;
    this.setState('connecting');
    conn.handshakeTimer = setTimeout(() => {
      this.drop(
        conn,
        'timeout',
        new Error(`no WELCOME from ${endpoint} within ${this.handshakeTimeoutMs} ms`),
      );
    }, this.handshakeTimeoutMs);
    try {
      conn.socket = this.transport.connect(endpoint, {
        onOpen: () => {
          this.sendHello(conn).catch((err) => this.drop(conn, 'error', err as Error));
        },
        onData: (chunk) => this.onData(conn, chunk),
        onClose: (err) => {
          conn.onClosed?.();
          this.drop(conn, err ? 'network' : 'closed', err ?? new Error(`connection to ${endpoint} closed`));
        },
      });
    } catch (err) {
      this.drop(conn, 'error', err as Error);
    }
  }

  private async sendHello(conn: Connection): Promise<void> {
    const token = typeof this.token === 'function' ? await this.token() : (this.token ?? '');
    if (conn !== this.conn || conn.closing) return;
    conn.resumeAfter = this.processed;
    this.write(conn, {
      type: 'HELLO',
      version: PROTOCOL_VERSION,
      user: this.user,
      device: this.device,
      token,
      resumeAfter: conn.resumeAfter,
    });
    conn.helloSent = true;
  }

  /** Ends a connection (if it is still the current one) and schedules the next attempt. */
  private drop(conn: Connection, reason: string, error?: Error): void {
    if (conn !== this.conn || conn.closing) return;
    this.teardown(conn);
    this.conn = null;
    this.failPings('connection lost');
    if (conn.live) {
      if (Date.now() - conn.liveSince >= STABLE_MS) this.attempt = 0;
      this.emit('disconnected', { endpoint: conn.endpoint, reason, error });
    }
    this.scheduleReconnect(error);
  }

  private teardown(conn: Connection): void {
    conn.closing = true;
    clearTimeout(conn.handshakeTimer);
    clearTimeout(conn.ackTimer);
    clearTimeout(conn.rewindTimer);
    clearInterval(conn.heartbeatTimer);
    conn.socket?.close();
  }

  private scheduleReconnect(lastError?: Error): void {
    if (this.stopped) return;
    let delayMs: number;
    if (this.suggestedDelay !== null) {
      delayMs = this.suggestedDelay;
      this.suggestedDelay = null;
    } else {
      delayMs = Math.round(
        Math.random() * Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30)),
      );
    }
    this.attempt++;
    this.setState('reconnecting');
    this.emit('reconnecting', { attempt: this.attempt, delayMs, lastError });
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.openConnection(), delayMs);
  }

  /** Stops for good: with an error (emitted as 'error') or null for close(). */
  private stop(error: SwitchboardError | null): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    const conn = this.conn;
    this.conn = null;
    if (conn) {
      this.teardown(conn);
      if (conn.live)
        this.emit('disconnected', {
          endpoint: conn.endpoint,
          reason: error ? 'error' : 'closed',
          error: error ?? undefined,
        });
    }
    const reason = error ?? SwitchboardError.client('CLOSED', 'the client was closed');
    this.failPings('the client stopped');
    for (const entry of this.outbox.values()) {
      if (entry.kind === 'send') {
        // Stays saved (re-sent by the next client on this storage); only the promise settles.
        const reject = entry.reject;
        entry.resolve = entry.reject = undefined;
        reject?.(reason);
      } else {
        this.settle(entry, reason);
      }
    }
    this.rejectStarted?.(reason);
    this.setState('closed');
    if (error) this.emit('error', error);
  }

  private failPings(why: string): void {
    for (const p of this.pings.values()) p.reject(SwitchboardError.client('NOT_CONNECTED', why));
    this.pings.clear();
  }

  // ------------------------------------------------------------------ reading

  private onData(conn: Connection, chunk: Uint8Array): void {
    if (conn !== this.conn || conn.closing) return;
    conn.lastRecv = Date.now();
    try {
      conn.decoder.push(chunk, (frame) => {
        if (conn === this.conn && !conn.closing) this.onFrame(conn, frame);
      });
    } catch (err) {
      if (err instanceof SbpError) {
        // Section 4.6: a client reports a server's protocol error with BYE, then reconnects.
        this.write(conn, { type: 'BYE', code: err.code, reason: err.message.slice(0, 200) });
        this.drop(
          conn,
          'protocol',
          SwitchboardError.fromWire(err.code, 0, `bad frame from the server: ${err.message}`),
        );
      } else {
        this.drop(conn, 'error', err as Error);
      }
    }
  }

  private onFrame(conn: Connection, frame: Frame): void {
    if (!conn.live && frame.type !== 'WELCOME' && frame.type !== 'ERROR' && frame.type !== 'BYE') {
      this.violation(conn, `${frame.type} before WELCOME`);
      return;
    }
    switch (frame.type) {
      case 'WELCOME':
        if (conn.live) this.violation(conn, 'a second WELCOME');
        else this.onWelcome(conn, frame);
        return;
      case 'ACCEPTED': {
        const entry = this.outbox.get(frame.clientMsgId);
        if (entry?.kind !== 'send') return;
        const result: SendResult = {
          clientMsgId: frame.clientMsgId,
          timestamp: frame.timestamp,
          duplicate: (frame.flags & ACCEPTED_FLAG_DUPLICATE) !== 0,
        };
        this.settle(entry, null, result);
        this.persist().catch((err) => this.emit('warning', err));
        this.emit('accepted', { ...result, to: entry.to });
        return;
      }
      case 'DELIVER':
        this.onDeliver(conn, frame);
        return;
      case 'PING':
        this.write(conn, { type: 'PONG', nonce: frame.nonce });
        return;
      case 'PONG': {
        const p = this.pings.get(frame.nonce);
        if (p) {
          this.pings.delete(frame.nonce);
          p.resolve(Date.now() - p.sentAt);
        }
        return;
      }
      case 'DONE': {
        const entry = this.outbox.get(frame.ref);
        if (entry && entry.kind !== 'send') this.settle(entry, null);
        return;
      }
      case 'RECEIPT':
        this.emit('receipt', {
          by: frame.by,
          byDevice: frame.byDevice,
          fromDevice: frame.fromDevice,
          clientMsgId: frame.clientMsgId,
          timestamp: frame.timestamp,
        });
        return;
      case 'PRESENCE':
        this.emit('presence', { user: frame.user, online: frame.online === 1, since: frame.since });
        return;
      case 'ERROR':
        this.onError(conn, frame.code, frame.ref, frame.message);
        return;
      case 'BYE':
        this.drop(
          conn,
          'bye',
          SwitchboardError.fromWire(frame.code, 0, frame.reason || 'the server said BYE'),
        );
        return;
      default:
        // The decoder only lets server-to-client types through.
        return;
    }
  }

  private violation(conn: Connection, what: string): void {
    this.write(conn, { type: 'BYE', code: ErrorCode.PROTOCOL_VIOLATION, reason: what });
    this.drop(conn, 'protocol', SwitchboardError.fromWire(ErrorCode.PROTOCOL_VIOLATION, 0, what));
  }

  private onWelcome(conn: Connection, w: WelcomeFrame): void {
    clearTimeout(conn.handshakeTimer);
    const info: ConnectedInfo = {
      endpoint: conn.endpoint,
      node: w.node,
      lastSeq: w.lastSeq,
      ackedSeq: w.ackedSeq,
      heartbeatMs: w.heartbeatMs,
      maxPayload: w.maxPayload,
      window: w.window,
    };
    conn.live = true;
    conn.welcome = info;
    conn.liveSince = Date.now();
    conn.maxFrame = this.maxFrame = w.maxPayload + 1_024;
    conn.decoder.setLimits({ firstFrame: conn.maxFrame, frame: conn.maxFrame });
    const half = Math.max(1, Math.floor(w.window / 2));
    conn.ackEvery = Math.max(1, Math.min(this.ackEveryOption ?? half, half));
    // An inbox behind what this device processed was reset (or is another server's): follow it.
    if (w.lastSeq < this.processed) this.processed = w.lastSeq;
    conn.ackedSent = w.ackedSeq;
    this.lastInfo = info;
    if (w.heartbeatMs > 0) {
      const every = Math.max(20, Math.floor(w.heartbeatMs / 4));
      conn.heartbeatTimer = setInterval(() => this.heartbeat(conn, w.heartbeatMs), every);
    }
    this.writeOutboxAgain(conn);
    if (this.watched.size) this.writeUsers(conn, 'WATCH', [...this.watched]);
    // Processed last time but not ACKed (e.g. the process stopped first): ACK it now.
    if (this.processed > conn.ackedSent) this.scheduleAck(conn);
    this.setState('connected');
    this.emit('connected', info);
    this.resolveStarted?.(info);
  }

  private onDeliver(conn: Connection, d: DeliverFrame): void {
    const message = (seq: number): Message => {
      const payload = d.payload.slice();
      return {
        seq,
        timestamp: d.timestamp,
        from: d.from,
        fromDevice: d.fromDevice,
        clientMsgId: d.clientMsgId,
        to: d.to,
        payload,
        text: decodeText(payload),
        ephemeral: seq === 0,
      };
    };
    if (d.seq === 0) {
      this.emit('message', message(0));
      return;
    }
    if (d.seq > conn.highestDelivered) conn.highestDelivered = d.seq;
    conn.unacked++;
    if (d.seq > this.processed) {
      // Marked processed before the listeners run, so a listener that calls close() ACKs it.
      this.processed = d.seq;
      this.emit('message', message(d.seq));
    }
    if (conn === this.conn && !conn.closing) this.scheduleAck(conn);
  }

  private onError(conn: Connection, code: number, ref: number, text: string): void {
    const error = SwitchboardError.fromWire(code, ref, text);
    // STORE_UNAVAILABLE answering a HELLO is fatal: no session yet, `ref` is a retry delay (section 7).
    if (isFatalCode(code) || !conn.live) {
      if (TERMINAL_CODES.has(code)) {
        this.stop(error);
        return;
      }
      if (DELAY_CODES.has(code) || code === ErrorCode.STORE_UNAVAILABLE) this.suggestedDelay = ref;
      this.drop(conn, 'error', error);
      return;
    }
    const entry = this.outbox.get(ref);
    if (entry && !entry.done && code === ErrorCode.STORE_UNAVAILABLE) {
      // "Retry later" (section 7): the request stays pending and goes again with the same id, so a write
      // that reached the store after all comes back as a duplicate, never twice.
      this.rewind(conn, entry);
      return;
    }
    if (entry && !entry.done) {
      const waited = !!entry.reject;
      this.settle(entry, error);
      if (entry.kind === 'send') this.persist().catch((err) => this.emit('warning', err));
      if (!waited) this.emit('requestError', { ref, error });
      return;
    }
    this.ephemeralIds.delete(ref);
    this.emit('requestError', { ref, error });
  }

  /**
   * STORE_UNAVAILABLE: the server refuses later SENDs of this session until the failed one comes again
   * (so per-inbox order survives a server-side failure). Stop writing, wait a jittered back-off, then
   * write every pending request again in ascending id order, as after a reconnect.
   */
  private rewind(conn: Connection, entry: OutboxEntry): void {
    // An answer to a write made before the last rewind: a newer write of the request is on its way.
    if ((entry.writtenGeneration ?? 0) < conn.generation) return;
    entry.retries = (entry.retries ?? 0) + 1;
    if (conn.rewindTimer) return;
    conn.stalled = true;
    const cap = Math.min(this.maxMs, this.initialMs * 2 ** entry.retries);
    conn.rewindTimer = setTimeout(
      () => {
        conn.rewindTimer = undefined;
        conn.stalled = false;
        if (conn !== this.conn || !conn.live || conn.closing) return;
        conn.generation++;
        this.writeOutboxAgain(conn);
      },
      cap / 2 + Math.random() * (cap / 2),
    );
    (conn.rewindTimer as { unref?: () => void }).unref?.();
  }

  // ------------------------------------------------------------------ writing

  private write(conn: Connection, frame: ClientFrame): void {
    if (!conn.socket || conn.closing) return;
    conn.socket.send(encodeFrame(frame));
    conn.lastWrite = Date.now();
  }

  private writeUsers(conn: Connection, type: 'WATCH' | 'UNWATCH', users: string[]): void {
    for (let i = 0; i < users.length; i += 1000) this.write(conn, { type, users: users.slice(i, i + 1000) });
  }

  private nextId(): number {
    this.lastClientMsgId = Math.max(Date.now(), this.lastClientMsgId + 1);
    return this.lastClientMsgId;
  }

  private rememberEphemeral(id: number): void {
    this.ephemeralIds.add(id);
    if (this.ephemeralIds.size > 1000) this.ephemeralIds.delete(this.ephemeralIds.values().next().value!);
    this.persist().catch((err) => this.emit('warning', err));
  }

  private addEntry(kind: EntryKind, to: string, payload: Uint8Array, persisted: boolean): OutboxEntry {
    const entry: OutboxEntry = { id: this.nextId(), kind, to, payload, base64: null, persisted, done: false };
    this.outbox.set(entry.id, entry);
    if (kind === 'send') this.pendingSends++;
    if (this.conn?.live) this.conn.queue.push(entry);
    return entry;
  }

  private async groupRequest(kind: 'join' | 'leave', group: string): Promise<void> {
    if (!this.loading) throw SwitchboardError.client('NOT_STARTED', 'call start() first');
    await this.loading;
    if (this.stopped) throw SwitchboardError.client('CLOSED', 'the client is closed');
    if (!group.startsWith('#') || !isValidAddress(group)) {
      throw new SwitchboardError(
        ErrorCode.INVALID_ADDRESS,
        'INVALID_ADDRESS',
        `not a group address: "${group}"`,
        0,
        true,
      );
    }
    const entry = this.addEntry(kind, group, new Uint8Array(0), true);
    const done = new Promise<void>((resolve, reject) => {
      entry.resolve = () => resolve();
      entry.reject = reject;
    });
    if (this.conn?.live) this.flushOutbox(this.conn);
    return done;
  }

  /** Every pending request again, in ascending id order, before anything new (a reconnect, a rewind). */
  private writeOutboxAgain(conn: Connection): void {
    conn.queue = [...this.outbox.values()];
    conn.queueHead = 0;
    this.flushOutbox(conn);
  }

  /** Writes, in id order, every queued entry up to the first one not yet saved. */
  private flushOutbox(conn: Connection): void {
    while (conn.queueHead < conn.queue.length && conn === this.conn && !conn.closing && !conn.stalled) {
      const entry = conn.queue[conn.queueHead]!;
      if (entry.done) {
        conn.queueHead++;
        continue;
      }
      if (!entry.persisted) break;
      conn.queueHead++;
      entry.writtenGeneration = conn.generation;
      if (entry.kind === 'send') {
        const size = sendFrameSize(entry.to, entry.payload);
        if (size > conn.maxFrame) {
          const error = new SwitchboardError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            'PAYLOAD_TOO_LARGE',
            `a SEND of ${size} bytes is over the server's frame limit of ${conn.maxFrame}`,
            entry.id,
            true,
          );
          if (!entry.reject) this.emit('requestError', { ref: entry.id, error });
          this.settle(entry, error);
          this.persist().catch((err) => this.emit('warning', err));
          continue;
        }
        this.write(conn, {
          type: 'SEND',
          clientMsgId: entry.id,
          flags: 0,
          to: entry.to,
          payload: entry.payload,
        });
      } else {
        this.write(conn, { type: entry.kind === 'join' ? 'JOIN' : 'LEAVE', ref: entry.id, group: entry.to });
      }
    }
    if (conn.queueHead > 1024 && conn.queueHead * 2 > conn.queue.length) {
      conn.queue = conn.queue.slice(conn.queueHead);
      conn.queueHead = 0;
    }
  }

  /** Removes an entry from the outbox and settles its promise. */
  private settle(entry: OutboxEntry, error: Error | null, result?: SendResult): void {
    if (entry.done) return;
    entry.done = true;
    this.outbox.delete(entry.id);
    if (entry.kind === 'send') this.pendingSends--;
    const { resolve, reject } = entry;
    entry.resolve = entry.reject = undefined;
    if (error) reject?.(error);
    else resolve?.(result ?? { clientMsgId: entry.id, timestamp: 0, duplicate: false });
  }

  private scheduleAck(conn: Connection): void {
    if (conn.unacked >= conn.ackEvery) {
      this.sendAck(conn);
    } else if (!conn.ackTimer) {
      conn.ackTimer = setTimeout(() => {
        conn.ackTimer = undefined;
        if (conn === this.conn) this.sendAck(conn);
      }, this.ackDelayMs);
    }
  }

  private sendAck(conn: Connection): void {
    clearTimeout(conn.ackTimer);
    conn.ackTimer = undefined;
    conn.unacked = 0;
    const w = conn.welcome;
    if (!w) return;
    // Never above what the server allows (section 5): delivered here, the cursor, or the resume point.
    const ackable = Math.max(conn.highestDelivered, w.ackedSeq, Math.min(conn.resumeAfter, w.lastSeq));
    const seq = Math.min(this.processed, ackable);
    if (seq <= conn.ackedSent) return;
    this.write(conn, { type: 'ACK', seq });
    conn.ackedSent = seq;
    this.persist().catch((err) => this.emit('warning', err));
  }

  private heartbeat(conn: Connection, heartbeatMs: number): void {
    if (conn !== this.conn || conn.closing) return;
    const now = Date.now();
    if (now - conn.lastRecv > 2 * heartbeatMs) {
      this.drop(conn, 'timeout', new Error(`nothing from the server for ${now - conn.lastRecv} ms`));
      return;
    }
    // Idle on our side (section 4.5), or a quiet server we want to hear from (a dead peer shows as silence).
    const quiet = now - conn.lastRecv >= heartbeatMs && now - conn.lastPing >= heartbeatMs / 2;
    if (now - conn.lastWrite >= (heartbeatMs * 3) / 4 || quiet) {
      conn.lastPing = now;
      this.write(conn, { type: 'PING', nonce: ++this.pingNonce });
    }
  }

  // ------------------------------------------------------------------ saving

  /**
   * Saves the state. Saves never overlap; a change made while one runs is covered by the next, and
   * callers asking while a save is queued share it. Marks the SENDs it covered as persisted, then writes
   * those that wait for that.
   */
  private persist(): Promise<void> {
    if (!this.loaded) return Promise.resolve(); // never overwrite a state that was not read
    if (this.nextSave) return this.nextSave;
    const save = this.saveChain.then(async () => {
      this.nextSave = null;
      const entries: OutboxEntry[] = [];
      for (const e of this.outbox.values()) if (e.kind === 'send' && !e.done) entries.push(e);
      const state: ClientState = {
        lastClientMsgId: this.lastClientMsgId,
        processedSeq: this.processed,
        pending: entries.map((e) => {
          e.base64 ??= toBase64(e.payload);
          return { clientMsgId: e.id, to: e.to, payload: e.base64 };
        }),
      };
      await this.storage.save(state);
      for (const e of entries) e.persisted = true;
      if (this.conn?.live) this.flushOutbox(this.conn);
    });
    this.nextSave = save;
    this.saveChain = save.catch(() => {});
    return save;
  }
}

function sendFrameSize(to: string, payload: Uint8Array): number {
  return 4 + 1 + 8 + 1 + 2 + utf8.encode(to).length + 4 + payload.length;
}

function decodeText(payload: Uint8Array): string | null {
  try {
    return strictUtf8.decode(payload);
  } catch {
    return null;
  }
}
