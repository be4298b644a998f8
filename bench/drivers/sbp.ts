/**
 * The SBP/1 driver: Switchboard's own protocol, on the load generators' raw connection
 * (bench/lib/sbp-conn.ts: TCP, HELLO in open mode, WELCOME, the codec of src/protocol only).
 *
 * - A user is one device (`bench`); its inbox exists without subscribing.
 * - publish = SEND to the user, durable (answered ACCEPTED once stored in both inboxes) or ephemeral
 *   (flag bit 0: only to connected devices, seq 0, never stored — SBP's analogue of MQTT QoS 0 and
 *   NATS core).
 * - A message is delivered when the recipient receives the DELIVER; the sender's own copy of a durable
 *   message (PROTOCOL.md section 5) is acknowledged but is not passed on.
 * - ACK as the SDK does: after window/2 stored DELIVERs (the server's WELCOME window), or at the latest
 *   DEFAULT_ACK_DELAY_MS (100 ms) after the first unacknowledged one; PONG to PING; any ERROR or BYE
 *   fails the connection (as in bench/lib/throughput.ts).
 *
 * A reconnect that finds stored messages (`replay: true`, the drain) takes its own socket with the same
 * codec: the replay can arrive in the same TCP chunk as WELCOME, and sbp-conn's `Conn.open` treats any
 * frame before its promise settles as a handshake failure.
 */
import net from 'node:net';
import { DEFAULT_ACK_DELAY_MS } from '../../src/client/client.js';
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  isFatalCode,
  SbpError,
  type WelcomeFrame,
} from '../../src/protocol/index.js';
import { Acker } from '../lib/acker.js';
import { Conn, describeFrame } from '../lib/sbp-conn.js';
import {
  type ConnHandlers,
  type Driver,
  endSocket,
  HANDSHAKE_TIMEOUT_MS,
  type PeerConn,
  Pending,
} from './driver.js';

export interface SbpOptions {
  /** Ephemeral SENDs (flag bit 0) instead of durable ones. */
  ephemeral: boolean;
  /** The device name of every connection (default `bench`). */
  device?: string;
  /**
   * Messages may be stored for this user already (a reconnect): take frames from the first byte on,
   * so a replay arriving with WELCOME is not lost.
   */
  replay?: boolean;
  /**
   * ACK at the latest this long after the first unacknowledged DELIVER, as the SDK does (default its
   * DEFAULT_ACK_DELAY_MS); 0 = only every window/2 DELIVERs.
   */
  ackDelayMs?: number;
}

const FLAG_EPHEMERAL = 1;
const CLIENT_LIMITS = { firstFrame: 66_560, frame: 66_560 };

/** The bytes a session writes and how it ends; either sbp-conn's Conn or a replay-safe socket. */
interface Wire {
  write(bytes: Uint8Array): void;
  close(): Promise<void>;
  destroy(): void;
}

export class SbpDriver implements Driver {
  readonly name: string;
  /**
   * Per recipient and payload length, a SEND's bytes up to its payload (clientMsgId 1): copied, the
   * clientMsgId patched in, the payload appended — the NATS driver's `PUB` head, SBP's way.
   */
  private readonly templates = new Map<string, Buffer>();

  constructor(readonly opts: SbpOptions) {
    this.name = opts.ephemeral ? 'SBP/1, ephemeral SEND' : 'SBP/1, durable SEND';
  }

  /** The bytes before the payload of a SEND to `to` with a payload of `length` bytes, cached. */
  template(to: string, length: number): Buffer {
    const key = `${length}:${to}`;
    let t = this.templates.get(key);
    if (t === undefined) {
      const frame = encodeFrame({
        type: 'SEND',
        clientMsgId: 1,
        flags: this.opts.ephemeral ? FLAG_EPHEMERAL : 0,
        to,
        payload: new Uint8Array(length),
      });
      t = Buffer.from(frame.subarray(0, frame.length - length));
      this.templates.set(key, t);
    }
    return t;
  }

  async connect(port: number, user: string, handlers: ConnHandlers): Promise<PeerConn> {
    const device = this.opts.device ?? 'bench';
    if (this.opts.replay) return openReplaySafe(this, port, user, device, handlers);
    handlers.onFirstByte?.();
    const conn = await Conn.open(port, user, device);
    const session = new SbpSession(this, user, conn.welcome!, handlers, {
      write: (bytes) => conn.write(bytes),
      close: () => {
        const closed = new Promise<void>((resolve) => {
          if (conn.socket.destroyed) resolve();
          else conn.socket.once('close', () => resolve());
        });
        conn.close();
        return closed;
      },
      destroy: () => conn.socket.destroy(),
    });
    conn.onFrame = (frame) => session.onFrame(frame);
    conn.onDeliver = (seq, fromMe, payload) => session.onDeliver(seq, fromMe, payload);
    conn.onFail = (why) => session.fail(why);
    return session;
  }
}

class SbpSession implements PeerConn {
  private nextId = 1;
  private accepted = 0;
  private sent = 0;
  private readonly acker: Acker;
  private failed = false;
  private closing = false;
  private flushes: { upTo: number; pending: Pending }[] = [];
  private readonly pongs = new Map<number, Pending>();
  private nonce = 1;

  constructor(
    private readonly driver: SbpDriver,
    readonly user: string,
    welcome: WelcomeFrame,
    private readonly handlers: ConnHandlers,
    private readonly wire: Wire,
  ) {
    this.acker = new Acker(
      Math.max(1, Math.floor(welcome.window / 2)),
      driver.opts.ackDelayMs ?? DEFAULT_ACK_DELAY_MS,
      (ack) => wire.write(ack),
    );
  }

  subscribe(): Promise<void> {
    return Promise.resolve(); // Every user has an inbox.
  }

  publish(to: string, payload: Uint8Array): void {
    const id = this.nextId++;
    const head = this.driver.template(to, payload.length);
    // From Node's Buffer pool, as the MQTT and NATS drivers write theirs.
    const bytes = Buffer.allocUnsafe(head.length + payload.length);
    head.copy(bytes, 0);
    // Frame header (4 + 1 bytes), then the u64 clientMsgId; the payload ends the frame.
    bytes.writeUInt32BE(Math.floor(id / 0x1_0000_0000), 5);
    bytes.writeUInt32BE(id >>> 0, 9);
    bytes.set(payload, head.length);
    this.sent++;
    this.wire.write(bytes);
  }

  flush(timeoutMs = HANDSHAKE_TIMEOUT_MS): Promise<void> {
    if (this.failed) return Promise.reject(new Error(`${this.user}: the connection failed`));
    if (this.driver.opts.ephemeral) {
      // Ephemeral SENDs get no answer: a PING behind them is answered once they have been handled.
      const nonce = this.nonce++;
      const p = new Pending(timeoutMs, `${this.user}: no PONG`);
      this.pongs.set(nonce, p);
      this.wire.write(encodeFrame({ type: 'PING', nonce }));
      return p.promise;
    }
    if (this.accepted >= this.sent) return Promise.resolve();
    const p = new Pending(timeoutMs, `${this.user}: not every SEND was ACCEPTED`);
    this.flushes.push({ upTo: this.sent, pending: p });
    return p.promise;
  }

  /** A DELIVER, decoded or read in place (sbp-conn's onDeliver). */
  onDeliver(seq: number, fromMe: boolean, payload: Uint8Array): void {
    if (seq > 0) this.acker.delivered(seq);
    // The sender's own copy (PROTOCOL.md section 5): acknowledged above, not a delivery.
    if (!fromMe) this.handlers.onMessage(payload);
  }

  onFrame(frame: Frame): void {
    switch (frame.type) {
      case 'DELIVER':
        this.onDeliver(frame.seq, frame.from === this.user, frame.payload);
        return;
      case 'ACCEPTED': {
        this.accepted++;
        if (this.flushes.length > 0) {
          this.flushes = this.flushes.filter((f) => {
            if (this.accepted < f.upTo) return true;
            f.pending.resolve();
            return false;
          });
        }
        return;
      }
      case 'PING':
        this.wire.write(encodeFrame({ type: 'PONG', nonce: frame.nonce }));
        return;
      case 'PONG': {
        const p = this.pongs.get(frame.nonce);
        this.pongs.delete(frame.nonce);
        p?.resolve();
        return;
      }
      case 'ERROR': {
        // Any ERROR ends a run: a fatal one closes the connection, and a request-level one (e.g.
        // INBOX_FULL) means messages are no longer delivered.
        const kind = isFatalCode(frame.code) ? 'fatal' : 'request-level';
        this.fail(`got ${kind} ${describeFrame(frame)} (ref ${frame.ref})`);
        return;
      }
      case 'BYE':
        this.fail(`server sent BYE ${frame.code} (${frame.reason})`);
        return;
      default:
      // RECEIPT, PRESENCE, DONE: nothing to do.
    }
  }

  fail(why: string): void {
    if (this.failed || this.closing) return;
    this.failed = true;
    this.acker.stop();
    const err = new Error(`${this.user}: ${why}`);
    for (const f of this.flushes) f.pending.reject(err);
    for (const p of this.pongs.values()) p.reject(err);
    this.wire.destroy();
    this.handlers.onFail(why);
  }

  close(): Promise<void> {
    this.closing = true;
    this.acker.stop();
    return this.wire.close();
  }

  destroy(): void {
    this.closing = true;
    this.acker.stop();
    this.wire.destroy();
  }
}

/** HELLO on a socket whose frames all go to the session from the first byte on (replay included). */
function openReplaySafe(
  driver: SbpDriver,
  port: number,
  user: string,
  device: string,
  handlers: ConnHandlers,
): Promise<PeerConn> {
  const welcomed = new Pending<PeerConn>(HANDSHAKE_TIMEOUT_MS, `${user}: no WELCOME`);
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  const decoder = new FrameDecoder('serverToClient', CLIENT_LIMITS);
  let session: SbpSession | null = null;
  const fail = (why: string): void => {
    if (session !== null) session.fail(why);
    else {
      socket.destroy();
      welcomed.reject(new Error(`${user}: ${why}`));
    }
  };
  const wire: Wire = {
    write: (bytes) => socket.write(bytes),
    close: () => endSocket(socket, encodeFrame({ type: 'BYE', code: 0, reason: 'bench done' })),
    destroy: () => socket.destroy(),
  };
  socket.on('connect', () => {
    handlers.onFirstByte?.();
    socket.write(encodeFrame({ type: 'HELLO', version: 1, user, device, token: '', resumeAfter: 0 }));
  });
  socket.on('data', (chunk) => {
    try {
      decoder.push(chunk, (frame) => {
        if (session !== null) {
          session.onFrame(frame);
          return;
        }
        if (frame.type !== 'WELCOME') {
          fail(`expected WELCOME, got ${describeFrame(frame)}`);
          return;
        }
        decoder.setLimits({ firstFrame: CLIENT_LIMITS.firstFrame, frame: frame.maxPayload + 1024 });
        session = new SbpSession(driver, user, frame, handlers, wire);
        welcomed.resolve(session);
      });
    } catch (err) {
      fail(err instanceof SbpError ? `bad frame from the server: ${err.message}` : String(err));
    }
  });
  socket.on('error', (err) => fail(`socket error: ${err.message}`));
  socket.on('close', () => fail('connection closed by the server'));
  welcomed.promise.catch(() => socket.destroy());
  return welcomed.promise;
}
