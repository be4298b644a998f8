/**
 * TCP (and later TLS) adapter behind the Connection interface. Writes made during one loop tick are
 * corked and go to the kernel together (one writev) when the batcher uncorks them.
 */
import type { Socket } from 'node:net';
import type { Connection, ConnectionHandler, TransportKind } from './connection.js';

/** Uncorks every connection that wrote during this tick, once, on setImmediate. */
export class WriteBatcher {
  private corked: TcpConnection[] = [];
  private scheduled = false;

  add(conn: TcpConnection): void {
    this.corked.push(conn);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const list = this.corked;
    this.corked = [];
    for (const conn of list) conn.uncork();
  };
}

export class TcpConnection implements Connection {
  readonly remote: string;
  private corked = false;
  private handler: ConnectionHandler | null = null;
  closed = false;

  constructor(
    private readonly socket: Socket,
    private readonly batcher: WriteBatcher,
    private readonly highWaterBytes: number,
    readonly kind: TransportKind = 'tcp',
  ) {
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
  }

  attach(handler: ConnectionHandler): void {
    this.handler = handler;
    const socket = this.socket;
    socket.on('data', (chunk: Buffer) => handler.onData(chunk));
    socket.on('drain', () => handler.onDrain());
    // Errors (ECONNRESET, EPIPE) are followed by 'close'; the session logs the close reason once.
    socket.on('error', () => {});
    socket.once('close', (hadError: boolean) => {
      this.closed = true;
      handler.onClose(hadError);
    });
  }

  send(bytes: Uint8Array): boolean {
    if (this.closed || this.socket.writableEnded) return false;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      this.batcher.add(this);
    }
    this.socket.write(bytes);
    return this.socket.writableLength < this.highWaterBytes;
  }

  /** Called by the batcher. */
  uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  end(): void {
    this.uncork();
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** The handler attached, for tests and diagnostics. */
  get attached(): boolean {
    return this.handler !== null;
  }
}
