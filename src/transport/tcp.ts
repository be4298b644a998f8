/**
 * TCP (and TLS) adapter behind the Connection interface. Writes made during one loop tick are held
 * and go to the socket together, as one buffer, when the batcher flushes them.
 */
import type { Socket } from 'node:net';
import type { Connection, ConnectionHandler, TransportKind } from './connection.js';
import type { Flushable, WriteBatcher } from './write-batcher.js';

/** The connection a socket belongs to: lets every socket share the same four listener functions. */
const kConnection = Symbol('connection');
type TaggedSocket = Socket & { [kConnection]: TcpConnection };

function onSocketData(this: TaggedSocket, chunk: Buffer): void {
  this[kConnection].handler!.onData(chunk);
}
function onSocketDrain(this: TaggedSocket): void {
  this[kConnection].handler!.onDrain();
}
function onSocketClose(this: TaggedSocket, hadError: boolean): void {
  const conn = this[kConnection];
  conn.closed = true;
  conn.handler!.onClose(hadError);
}
/** Errors (ECONNRESET, EPIPE) are followed by 'close'; the session logs the close reason once. */
function ignoreSocketError(): void {}

/**
 * Kept small: a server holds hundreds of thousands of these. No closures per connection (shared
 * listeners find the connection through a symbol on the socket), the peer's address built only when
 * a log line asks for it.
 */
export class TcpConnection implements Connection, Flushable {
  /**
   * This tick's frames, written as one buffer at the flush. Held here rather than in a corked socket:
   * a corked stream keeps an entry object per write and builds a writev list from them, which cost
   * more than copying a few short frames into one buffer. Null when nothing waits (most connections).
   */
  private pending: Uint8Array[] | null = null;
  private pendingBytes = 0;
  handler: ConnectionHandler | null = null;
  closed = false;

  constructor(
    private readonly socket: Socket,
    private readonly batcher: WriteBatcher,
    private readonly highWaterBytes: number,
    readonly kind: TransportKind = 'tcp',
  ) {
    socket.setNoDelay(true);
  }

  get remote(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  attach(handler: ConnectionHandler): void {
    this.handler = handler;
    const socket = this.socket as TaggedSocket;
    socket[kConnection] = this;
    socket.on('data', onSocketData);
    socket.on('drain', onSocketDrain);
    socket.on('error', ignoreSocketError);
    socket.once('close', onSocketClose);
  }

  send(bytes: Uint8Array): boolean {
    if (this.closed || this.socket.writableEnded) return false;
    if (this.pending === null) {
      this.pending = [bytes];
      this.batcher.add(this);
    } else this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    return this.socket.writableLength + this.pendingBytes < this.highWaterBytes;
  }

  /** Called by the batcher once per tick. */
  flushBatch(): void {
    this.writePending();
  }

  private writePending(): void {
    const pending = this.pending;
    if (pending === null) return;
    this.pending = null;
    const bytes = this.pendingBytes;
    this.pendingBytes = 0;
    if (this.closed || this.socket.writableEnded) return;
    this.socket.write(pending.length === 1 ? pending[0]! : Buffer.concat(pending, bytes));
  }

  get bufferedBytes(): number {
    return this.socket.writableLength + this.pendingBytes;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  end(): void {
    this.writePending();
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
