/**
 * WebSocket adapter behind the Connection interface (PROTOCOL.md section 1): binary messages of whole
 * frames, at most 256 KiB each. Frames written during one loop tick go out as ONE binary message (frames
 * are never split across messages); a fatal ERROR is followed by the close code 4000 + its code; a text
 * message is refused with PROTOCOL_VIOLATION and close 1003, a message over 256 KiB with FRAME_TOO_LARGE
 * and close 4002. Whether a message ends on a frame boundary is checked by the session's decoder
 * (ConnectionHandler.onData's `wholeMessage`).
 */
import type { Socket } from 'node:net';
import { type RawData, WebSocket } from 'ws';
import { ErrorCode, type ErrorCodeValue } from '../protocol/index.js';
import type { Connection, ConnectionHandler, TransportKind } from './connection.js';
import type { Flushable, WriteBatcher } from './write-batcher.js';

/** The endpoint on the HTTP port, and the subprotocol a client must offer. */
export const WS_PATH = '/sbp';
export const WS_SUBPROTOCOL = 'sbp.v1';
/** Largest WebSocket message either side sends, bytes (256 KiB). */
export const MAX_WS_MESSAGE = 256 * 1024;
/**
 * Most pieces ws buffers for one message: TCP chunks of an unfinished frame, and WebSocket fragments.
 * ws keeps each piece as it came, so without these a peer trickling a 256 KiB message a byte at a time
 * would hold a Buffer object per byte. Past them ws closes with 1008 (policy violation), no ERROR: no
 * browser splits a message that finely.
 */
export const MAX_WS_PIECES = 1024;

const CLOSE_NORMAL = 1000;
const CLOSE_UNSUPPORTED_DATA = 1003;
/** What ws closes with on its own when a message passes maxPayload. */
const CLOSE_MESSAGE_TOO_BIG = 1009;
/** A fatal ERROR closes with this + its code (PROTOCOL.md section 1). */
export const CLOSE_ERROR_BASE = 4000;

/** ws's `handleProtocols`: picks sbp.v1 when offered (the server rejects an upgrade without it before). */
export function selectSubprotocol(protocols: Set<string>): string | false {
  return protocols.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false;
}

/** Whether a Sec-WebSocket-Protocol header offers sbp.v1. */
export function offersSubprotocol(header: string | undefined): boolean {
  if (!header) return false;
  for (const p of header.split(',')) if (p.trim() === WS_SUBPROTOCOL) return true;
  return false;
}

/** Whether a request URL names the endpoint (a query string is allowed). */
export function isEndpointPath(url: string | undefined): boolean {
  return url === WS_PATH || url?.startsWith(`${WS_PATH}?`) === true;
}

/** The connection a ws instance or its socket belongs to: every one shares the same listener functions. */
const kConnection = Symbol('connection');
type TaggedSocket = Socket & { [kConnection]: WebSocketConnection };

/**
 * The ws instances of the SBP endpoint (the server's `WebSocket` option). ws enforces maxPayload by
 * closing with 1009 on its own, from the frame header, before buffering the message; the contract wants
 * ERROR FRAME_TOO_LARGE first and close 4002, so that one close is turned into a refusal the session
 * answers (the socket is still open for writing: ws has only stopped reading).
 */
export class SbpWebSocket extends WebSocket {
  /** Set by WebSocketConnection.attach (a rejected upgrade has none). */
  declare [kConnection]?: WebSocketConnection;

  override close(code?: number, data?: string | Buffer): void {
    const conn = this[kConnection];
    if (code === CLOSE_MESSAGE_TOO_BIG && conn && !conn.ending && !conn.closed) {
      conn.refuse(ErrorCode.FRAME_TOO_LARGE, `a WebSocket message over ${MAX_WS_MESSAGE} bytes`);
      return;
    }
    super.close(code, data);
  }
}

const BINARY = { binary: true } as const;

function onWsMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  const conn = (this as SbpWebSocket)[kConnection]!;
  if (conn.ending || conn.refused) return;
  if (!isBinary) {
    conn.textRefused = true;
    conn.refuse(ErrorCode.PROTOCOL_VIOLATION, 'a text message: SBP/1 travels in binary messages');
    return;
  }
  // binaryType is ws's default 'nodebuffer': one Buffer per message.
  conn.handler!.onData(data as Buffer, true);
}
function onWsClose(this: WebSocket): void {
  const conn = (this as SbpWebSocket)[kConnection]!;
  conn.closed = true;
  conn.dropPending();
  conn.handler!.onClose(false);
}
function onSocketDrain(this: TaggedSocket): void {
  const conn = this[kConnection];
  if (!conn.closed) conn.handler!.onDrain();
}
/** Errors (a reset, a bad WebSocket frame) are followed by 'close'; the session logs the close once. */
function ignoreError(): void {}

/**
 * Kept small like TcpConnection: no closures per connection (shared listeners find the connection
 * through a symbol on the ws instance and on its socket), the frames of one tick kept as they are until
 * the batcher concatenates them.
 */
export class WebSocketConnection implements Connection, Flushable {
  handler: ConnectionHandler | null = null;
  closed = false;
  /** end() was called: nothing more is sent or handled. */
  ending = false;
  /** The transport refused a message (text or too large); later messages are dropped. */
  refused = false;
  /** A text message was refused: the close that follows its PROTOCOL_VIOLATION is 1003. */
  textRefused = false;
  /** Frames written this tick, not yet sent: one, or a list. */
  private pending: Uint8Array | Uint8Array[] | null = null;
  private pendingBytes = 0;

  constructor(
    private readonly ws: SbpWebSocket,
    private readonly socket: Socket,
    private readonly batcher: WriteBatcher,
    private readonly highWaterBytes: number,
  ) {}

  get kind(): TransportKind {
    return 'ws';
  }

  get remote(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  attach(handler: ConnectionHandler): void {
    this.handler = handler;
    const ws = this.ws;
    const socket = this.socket as TaggedSocket;
    ws[kConnection] = this;
    socket[kConnection] = this;
    ws.on('message', onWsMessage);
    ws.on('error', ignoreError);
    ws.once('close', onWsClose);
    socket.on('drain', onSocketDrain);
  }

  send(bytes: Uint8Array): boolean {
    if (this.closed || this.ending) return false;
    // A message stays within 256 KiB: what is queued goes out first when this frame would pass it.
    if (this.pendingBytes > 0 && this.pendingBytes + bytes.length > MAX_WS_MESSAGE) this.flush();
    const pending = this.pending;
    if (pending === null) {
      this.pending = bytes;
      this.batcher.add(this);
    } else if (Array.isArray(pending)) pending.push(bytes);
    else this.pending = [pending, bytes];
    this.pendingBytes += bytes.length;
    return this.bufferedBytes < this.highWaterBytes;
  }

  /** Called by the batcher once per tick. */
  flushBatch(): void {
    this.flush();
  }

  /** Sends what this tick queued as one binary message (also before a close, or at 256 KiB). */
  flush(): void {
    const pending = this.pending;
    if (pending === null) return;
    const length = this.pendingBytes;
    this.pending = null;
    this.pendingBytes = 0;
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(Array.isArray(pending) ? Buffer.concat(pending, length) : pending, BINARY);
  }

  dropPending(): void {
    this.pending = null;
    this.pendingBytes = 0;
  }

  /** The transport refuses what the peer sent: the session answers with a fatal ERROR and end(). */
  refuse(code: ErrorCodeValue, message: string): void {
    this.refused = true;
    this.handler!.onTransportError(code, message);
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount + this.pendingBytes;
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  /** Sends what is queued, then the close frame: 4000 + the fatal code, 1003 after a text message, else 1000. */
  end(errorCode?: ErrorCodeValue): void {
    if (this.ending || this.closed) return;
    this.flush();
    this.ending = true;
    let code: number = CLOSE_NORMAL;
    if (errorCode !== undefined) {
      code =
        errorCode === ErrorCode.PROTOCOL_VIOLATION && this.textRefused
          ? CLOSE_UNSUPPORTED_DATA
          : CLOSE_ERROR_BASE + errorCode;
    }
    this.ws.close(code);
  }

  destroy(): void {
    this.dropPending();
    this.ws.terminate();
  }
}
