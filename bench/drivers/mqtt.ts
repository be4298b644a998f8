/**
 * The MQTT 3.1.1 driver (for Mosquitto), packets hand-encoded on a raw socket (OASIS MQTT 3.1.1,
 * section 2: fixed header · remaining length as a base-128 varint · variable header · payload).
 *
 * - connect: CONNECT (protocol level 4, client id = the user, clean session off for persistent
 *   sessions, keep-alive 60 s) → CONNACK; PINGREQ every half keep-alive while open.
 * - subscribe: SUBSCRIBE `u/<user>` at the chosen QoS → SUBACK (a refused grant, 0x80, fails it).
 * - publish: PUBLISH to `u/<to>` at QoS 0 or QoS 1; at QoS 1 the broker answers PUBACK.
 * - receive: a message is delivered when the recipient receives the PUBLISH; at QoS 1 it answers
 *   PUBACK at once.
 * Only what these workloads use is decoded: CONNACK, PUBLISH, PUBACK, SUBACK, PINGRESP.
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

export type Qos = 0 | 1;

export interface MqttOptions {
  qos: Qos;
  /** CONNECT's clean-session flag: false keeps the session (subscriptions, queued QoS 1) offline. */
  cleanSession: boolean;
  /** Keep-alive told to the broker, s (default 60); a PINGREQ goes out every half of it. */
  keepAliveS?: number;
}

// Packet types (the high nibble of the first byte).
const CONNECT = 1;
const CONNACK = 2;
const PUBLISH = 3;
const PUBACK = 4;
const SUBSCRIBE = 8;
const SUBACK = 9;
const PINGREQ = 12;
const PINGRESP = 13;
const DISCONNECT = 14;

const PINGREQ_BYTES = Uint8Array.of(PINGREQ << 4, 0);
const DISCONNECT_BYTES = Uint8Array.of(DISCONNECT << 4, 0);

const CONNACK_CODES: Record<number, string> = {
  1: 'unacceptable protocol version',
  2: 'identifier rejected',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
};

/** The remaining-length varint (1–4 bytes) of `n`. */
export function encodeRemainingLength(n: number): number[] {
  if (n < 0 || n > 268_435_455) throw new Error(`MQTT remaining length out of range: ${n}`);
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** A u16-length-prefixed UTF-8 string. */
function mqttString(s: string): Buffer {
  const body = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(2 + body.length);
  out.writeUInt16BE(body.length, 0);
  body.copy(out, 2);
  return out;
}

export function encodeConnect(clientId: string, cleanSession: boolean, keepAliveS: number): Buffer {
  const id = mqttString(clientId);
  // Variable header: protocol name "MQTT", level 4, connect flags, keep-alive.
  const variable = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, cleanSession ? 0x02 : 0, 0, 0]);
  variable.writeUInt16BE(keepAliveS, 8);
  const rl = variable.length + id.length;
  return Buffer.concat([Buffer.from([CONNECT << 4, ...encodeRemainingLength(rl)]), variable, id]);
}

export function encodeSubscribe(packetId: number, topic: string, qos: Qos): Buffer {
  const t = mqttString(topic);
  const rl = 2 + t.length + 1;
  const out = Buffer.allocUnsafe(1 + encodeRemainingLength(rl).length + rl);
  let o = 0;
  out[o++] = (SUBSCRIBE << 4) | 0x02; // The reserved flags of SUBSCRIBE are 0010.
  for (const b of encodeRemainingLength(rl)) out[o++] = b;
  out.writeUInt16BE(packetId, o);
  o += 2;
  t.copy(out, o);
  o += t.length;
  out[o] = qos;
  return out;
}

/** The fixed header and topic of a PUBLISH to `topic` with `payloadLength` bytes (no packet id). */
function publishHead(topic: string, qos: Qos, payloadLength: number): Buffer {
  const t = mqttString(topic);
  const rl = t.length + (qos > 0 ? 2 : 0) + payloadLength;
  return Buffer.concat([Buffer.from([(PUBLISH << 4) | (qos << 1), ...encodeRemainingLength(rl)]), t]);
}

export function encodePuback(packetId: number): Buffer {
  return Buffer.from([PUBACK << 4, 2, packetId >> 8, packetId & 0xff]);
}

export class MqttDriver implements Driver {
  readonly name: string;
  /** PUBLISH heads per topic and payload length. */
  private readonly heads = new Map<string, Buffer>();

  constructor(readonly opts: MqttOptions) {
    this.name = `MQTT 3.1.1, QoS ${opts.qos}, ${opts.cleanSession ? 'clean session' : 'persistent session'}`;
  }

  head(to: string, length: number): Buffer {
    const key = `${length}:${to}`;
    let h = this.heads.get(key);
    if (h === undefined) {
      h = publishHead(`u/${to}`, this.opts.qos, length);
      this.heads.set(key, h);
    }
    return h;
  }

  connect(port: number, user: string, handlers: ConnHandlers): Promise<PeerConn> {
    return new MqttConn(this, user, handlers).open(port);
  }
}

class MqttConn implements PeerConn {
  private socket!: net.Socket;
  private pending: Buffer | null = null;
  private nextPacketId = 1;
  /** PUBLISHes sent at QoS 1 and not yet answered PUBACK. */
  private unacked = 0;
  private connack = new Pending<void>();
  private readonly subacks = new Map<number, Pending>();
  private flushes: { waitUnacked: boolean; pending: Pending }[] = [];
  private pingTimer: NodeJS.Timeout | undefined;
  private failed = false;
  private closing = false;

  constructor(
    private readonly driver: MqttDriver,
    readonly user: string,
    private readonly handlers: ConnHandlers,
  ) {}

  async open(port: number): Promise<PeerConn> {
    this.connack = new Pending<void>(HANDSHAKE_TIMEOUT_MS, `${this.user}: no CONNACK`);
    const socket = net.connect({ host: '127.0.0.1', port });
    this.socket = socket;
    socket.setNoDelay(true);
    const keepAlive = this.driver.opts.keepAliveS ?? 60;
    socket.on('connect', () => {
      this.handlers.onFirstByte?.();
      socket.write(encodeConnect(this.user, this.driver.opts.cleanSession, keepAlive));
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(`socket error: ${err.message}`));
    socket.on('close', () => this.fail('connection closed by the server'));
    try {
      await this.connack.promise;
    } catch (err) {
      socket.destroy();
      throw err;
    }
    if (keepAlive > 0) {
      this.pingTimer = setInterval(() => socket.write(PINGREQ_BYTES), (keepAlive * 1000) / 2);
      this.pingTimer.unref();
    }
    return this;
  }

  private packetId(): number {
    const id = this.nextPacketId;
    this.nextPacketId = id === 0xffff ? 1 : id + 1;
    return id;
  }

  subscribe(): Promise<void> {
    const id = this.packetId();
    const p = new Pending(HANDSHAKE_TIMEOUT_MS, `${this.user}: no SUBACK`);
    this.subacks.set(id, p);
    this.socket.write(encodeSubscribe(id, `u/${this.user}`, this.driver.opts.qos));
    return p.promise;
  }

  publish(to: string, payload: Uint8Array): void {
    const head = this.driver.head(to, payload.length);
    const qos1 = this.driver.opts.qos === 1;
    const out = Buffer.allocUnsafe(head.length + (qos1 ? 2 : 0) + payload.length);
    head.copy(out, 0);
    let o = head.length;
    if (qos1) {
      const id = this.packetId();
      out[o++] = id >> 8;
      out[o++] = id & 0xff;
      this.unacked++;
    }
    out.set(payload, o);
    this.socket.write(out);
  }

  flush(timeoutMs = HANDSHAKE_TIMEOUT_MS): Promise<void> {
    if (this.failed) return Promise.reject(new Error(`${this.user}: the connection failed`));
    if (this.driver.opts.qos === 1) {
      if (this.unacked === 0) return Promise.resolve();
      const p = new Pending(timeoutMs, `${this.user}: not every PUBLISH was answered PUBACK`);
      this.flushes.push({ waitUnacked: true, pending: p });
      return p.promise;
    }
    // QoS 0 has no answer: a PINGREQ behind the PUBLISHes is answered once they have been read.
    const p = new Pending(timeoutMs, `${this.user}: no PINGRESP`);
    this.flushes.push({ waitUnacked: false, pending: p });
    this.socket.write(PINGREQ_BYTES);
    return p.promise;
  }

  private onData(chunk: Buffer): void {
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    let off = 0;
    while (buf.length - off >= 2) {
      // Remaining length: 1–4 bytes after the first.
      let rl = 0;
      let mul = 1;
      let i = off + 1;
      let complete = false;
      for (; i < buf.length && i < off + 5; i++) {
        const b = buf[i]!;
        rl += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          i++;
          break;
        }
      }
      if (!complete) {
        if (i >= off + 5) {
          this.fail('malformed remaining length from the broker');
          return;
        }
        break; // The varint continues in the next chunk.
      }
      if (buf.length - i < rl) break;
      this.onPacket(buf, buf[off]!, i, rl);
      if (this.failed) return;
      off = i + rl;
    }
    if (off < buf.length) {
      buf = buf.subarray(off);
      // Keep only the unfinished packet; a copy, so the socket's chunk is not pinned.
      this.pending = Buffer.from(buf);
    }
  }

  private onPacket(buf: Buffer, first: number, start: number, length: number): void {
    switch (first >> 4) {
      case PUBLISH: {
        const qos = (first >> 1) & 3;
        const topicLength = buf.readUInt16BE(start);
        let o = start + 2 + topicLength;
        if (qos > 0) {
          const id = buf.readUInt16BE(o);
          o += 2;
          this.socket.write(encodePuback(id));
        }
        this.handlers.onMessage(buf.subarray(o, start + length));
        return;
      }
      case PUBACK: {
        this.unacked--;
        if (this.unacked === 0 && this.flushes.length > 0) this.settleFlushes(true);
        return;
      }
      case CONNACK: {
        const code = buf[start + 1]!;
        if (code !== 0) {
          this.fail(`CONNACK refused: ${CONNACK_CODES[code] ?? `code ${code}`}`);
          return;
        }
        this.connack.resolve();
        return;
      }
      case SUBACK: {
        const id = buf.readUInt16BE(start);
        const granted = buf[start + 2];
        const p = this.subacks.get(id);
        this.subacks.delete(id);
        if (granted === 0x80) p?.reject(new Error(`${this.user}: SUBSCRIBE refused`));
        else if (granted !== this.driver.opts.qos) {
          p?.reject(
            new Error(`${this.user}: SUBSCRIBE granted QoS ${granted}, asked ${this.driver.opts.qos}`),
          );
        } else p?.resolve();
        return;
      }
      case PINGRESP:
        if (this.flushes.length > 0) this.settleFlushes(false);
        return;
      default:
        this.fail(`unexpected packet type ${first >> 4} from the broker`);
    }
  }

  /** Resolves the flushes waiting for PUBACKs (`acks`) or for a PINGRESP (the oldest such one). */
  private settleFlushes(acks: boolean): void {
    if (acks) {
      this.flushes = this.flushes.filter((f) => {
        if (!f.waitUnacked) return true;
        f.pending.resolve();
        return false;
      });
      return;
    }
    const i = this.flushes.findIndex((f) => !f.waitUnacked);
    if (i >= 0) this.flushes.splice(i, 1)[0]!.pending.resolve();
  }

  private fail(why: string): void {
    if (this.failed || this.closing) return;
    this.failed = true;
    clearInterval(this.pingTimer);
    // A failure during the handshake rejects connect(); only a later one is reported to onFail.
    const connected = this.connack.settled;
    const err = new Error(`${this.user}: ${why}`);
    this.connack.reject(err);
    for (const p of this.subacks.values()) p.reject(err);
    for (const f of this.flushes) f.pending.reject(err);
    this.socket.destroy();
    if (connected) this.handlers.onFail(why);
  }

  close(): Promise<void> {
    this.closing = true;
    clearInterval(this.pingTimer);
    return endSocket(this.socket, DISCONNECT_BYTES);
  }

  destroy(): void {
    this.closing = true;
    clearInterval(this.pingTimer);
    this.socket.destroy();
  }
}
