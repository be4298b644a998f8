/**
 * The NATS core driver (for nats-server), its text protocol hand-encoded on a raw socket: control
 * lines end with CRLF; PUB and MSG carry a byte count and then that many payload bytes and a CRLF.
 *
 * - connect: wait for the server's INFO, send `CONNECT {"verbose":false,"pedantic":false}` and PING;
 *   connected on the PONG (an `-ERR` fails it). PONG to every PING of the server.
 * - subscribe: `SUB u.<user> 1`, then PING: the PONG says the subscription is registered.
 * - publish: `PUB u.<to> <n>` + payload. NATS core has no acknowledgement and no store: a message
 *   reaches the subscribers connected at that moment, or no one.
 * - receive: a message is delivered when the recipient receives the MSG.
 */
import net from 'node:net';
import {
  type ConnHandlers,
  type Driver,
  endSocket,
  HANDSHAKE_TIMEOUT_MS,
  type PeerConn,
  Pending,
} from './driver.js';

const CRLF = Buffer.from('\r\n');
const PING = Buffer.from('PING\r\n');
const PONG = Buffer.from('PONG\r\n');
const CONNECT = Buffer.from('CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n');

const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;
const TAB = 0x09;

export class NatsDriver implements Driver {
  readonly name = 'NATS core';
  /** `PUB <subject> <n>\r\n` per subject and payload length. */
  private readonly heads = new Map<string, Buffer>();

  head(to: string, length: number): Buffer {
    const key = `${length}:${to}`;
    let h = this.heads.get(key);
    if (h === undefined) {
      h = Buffer.from(`PUB u.${to} ${length}\r\n`, 'latin1');
      this.heads.set(key, h);
    }
    return h;
  }

  connect(port: number, user: string, handlers: ConnHandlers): Promise<PeerConn> {
    return new NatsConn(this, user, handlers).open(port);
  }
}

class NatsConn implements PeerConn {
  private socket!: net.Socket;
  private pending: Buffer | null = null;
  /** Waiters for PONG, oldest first (the server answers PINGs in order). */
  private readonly pongs: Pending[] = [];
  private connected = false;
  private failed = false;
  private closing = false;
  private sawInfo = false;

  constructor(
    private readonly driver: NatsDriver,
    readonly user: string,
    private readonly handlers: ConnHandlers,
  ) {}

  async open(port: number): Promise<PeerConn> {
    const socket = net.connect({ host: '127.0.0.1', port });
    this.socket = socket;
    socket.setNoDelay(true);
    const ready = new Pending(HANDSHAKE_TIMEOUT_MS, `${this.user}: no INFO and PONG`);
    this.pongs.push(ready);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(`socket error: ${err.message}`));
    socket.on('close', () => this.fail('connection closed by the server'));
    try {
      await ready.promise;
    } catch (err) {
      socket.destroy();
      throw err;
    }
    this.connected = true;
    return this;
  }

  private ping(timeoutMs: number, what: string): Promise<void> {
    if (this.failed) return Promise.reject(new Error(`${this.user}: the connection failed`));
    const p = new Pending(timeoutMs, `${this.user}: ${what}`);
    this.pongs.push(p);
    this.socket.write(PING);
    return p.promise;
  }

  subscribe(): Promise<void> {
    this.socket.write(`SUB u.${this.user} 1\r\n`, 'latin1');
    return this.ping(HANDSHAKE_TIMEOUT_MS, 'no PONG after SUB');
  }

  publish(to: string, payload: Uint8Array): void {
    const head = this.driver.head(to, payload.length);
    const out = Buffer.allocUnsafe(head.length + payload.length + 2);
    head.copy(out, 0);
    out.set(payload, head.length);
    out[out.length - 2] = CR;
    out[out.length - 1] = LF;
    this.socket.write(out);
  }

  flush(timeoutMs = HANDSHAKE_TIMEOUT_MS): Promise<void> {
    return this.ping(timeoutMs, 'no PONG');
  }

  private onData(chunk: Buffer): void {
    const buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    let off = 0;
    for (;;) {
      const eol = buf.indexOf(CRLF, off);
      if (eol < 0) break;
      const op = buf[off]! | 0x20; // lower case
      if (op === 0x6d /* m: MSG <subject> <sid> [reply-to] <#bytes> */) {
        // The byte count is the last field of the line.
        let i = eol;
        while (i > off && (buf[i - 1] === SPACE || buf[i - 1] === TAB)) i--;
        let size = 0;
        let scale = 1;
        while (i > off && buf[i - 1]! >= 0x30 && buf[i - 1]! <= 0x39) {
          size += (buf[i - 1]! - 0x30) * scale;
          scale *= 10;
          i--;
        }
        const start = eol + 2;
        if (buf.length < start + size + 2) break; // The payload is still coming.
        this.handlers.onMessage(buf.subarray(start, start + size));
        if (this.failed) return;
        off = start + size + 2;
        continue;
      }
      const line = buf.toString('latin1', off, eol);
      off = eol + 2;
      this.onLine(line);
      if (this.failed) return;
    }
    if (off < buf.length) this.pending = Buffer.from(buf.subarray(off));
  }

  private onLine(line: string): void {
    const word = line.split(/[ \t]/, 1)[0]!.toUpperCase();
    switch (word) {
      case 'PING':
        this.socket.write(PONG);
        return;
      case 'PONG':
        this.pongs.shift()?.resolve();
        return;
      case 'INFO':
        if (!this.sawInfo) {
          this.sawInfo = true;
          this.handlers.onFirstByte?.();
          this.socket.write(CONNECT);
        }
        return;
      case '+OK':
        return;
      case '-ERR':
        this.fail(`server error: ${line.slice(5)}`);
        return;
      default:
        this.fail(`unexpected line from the server: ${line.slice(0, 80)}`);
    }
  }

  private fail(why: string): void {
    if (this.failed || this.closing) return;
    this.failed = true;
    const err = new Error(`${this.user}: ${why}`);
    for (const p of this.pongs.splice(0)) p.reject(err);
    this.socket.destroy();
    if (this.connected) this.handlers.onFail(why);
  }

  close(): Promise<void> {
    this.closing = true;
    return endSocket(this.socket, null);
  }

  destroy(): void {
    this.closing = true;
    this.socket.destroy();
  }
}
