/**
 * One raw SBP/1 connection for the load generators: TCP to a loopback address (127.0.0.1 by default),
 * HELLO (open mode, no token), WELCOME, then every frame to `onFrame`. Only the codec of src/protocol —
 * no SDK in the measured path.
 */
import net from 'node:net';
import {
  decodeFrameBody,
  ErrorCode,
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameType,
  SbpError,
  type WelcomeFrame,
} from '../../src/protocol/index.js';

const CLIENT_LIMITS = { firstFrame: 66_560, frame: 66_560 };
const WELCOME_TIMEOUT_MS = 10_000;

export interface OpenOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** HELLO's resumeAfter (default 0). */
  resumeAfter?: number;
  /**
   * Takes every frame after WELCOME from the start, those that arrive in the same chunk as WELCOME
   * included (a replay does that); without it they are dropped until `onFrame` is set.
   */
  onFrame?: (frame: Frame, conn: Conn) => void;
  /** Called with WELCOME as soon as it is decoded, before any frame after it. */
  onWelcome?: (welcome: WelcomeFrame, conn: Conn) => void;
  /** Takes a failure after WELCOME from the start (else set `onFail`). */
  onFail?: (why: string) => void;
  /** Called right before the connect starts (the reconnect's first byte), with no argument. */
  onStart?: () => void;
}

/**
 * Takes a DELIVER without decoding it into a frame object: its seq, whether it is from this
 * connection's own user (its own copy), and its payload (a view into the received bytes).
 */
export type DeliverSink = (seq: number, fromMe: boolean, payload: Uint8Array) => void;

export class Conn {
  readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder('serverToClient', CLIENT_LIMITS);
  onFrame: (frame: Frame) => void = () => {};
  onFail: (why: string) => void = () => {};
  /**
   * Set it (after WELCOME) and DELIVERs go there instead of onFrame, read in place: the peer drivers
   * (MQTT, NATS) read only the fields they need from the bytes, and a generator that decoded every
   * DELIVER whole (three strings, a frame object) would spend more per message on SBP than on them.
   */
  onDeliver: DeliverSink | null = null;
  welcome: WelcomeFrame | null = null;
  private closing = false;
  /** Framing without the decoder (with onDeliver): the bytes of an unfinished frame. */
  private lean = false;
  private rest: Uint8Array | null = null;
  private readonly userBytes: Uint8Array;

  private constructor(socket: net.Socket, user: string) {
    this.socket = socket;
    this.userBytes = Buffer.from(user, 'utf8');
  }

  static open(port: number, user: string, device: string, options: OpenOptions = {}): Promise<Conn> {
    return new Promise((resolve, reject) => {
      options.onStart?.();
      const socket = net.connect({ host: options.host ?? '127.0.0.1', port });
      socket.setNoDelay(true);
      const conn = new Conn(socket, user);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`${user}: no WELCOME within ${WELCOME_TIMEOUT_MS / 1000} s`));
      }, WELCOME_TIMEOUT_MS);
      conn.onFrame = (frame) => {
        clearTimeout(timer);
        if (frame.type !== 'WELCOME') {
          socket.destroy();
          reject(new Error(`${user}: expected WELCOME, got ${describeFrame(frame)}`));
          return;
        }
        conn.welcome = frame;
        conn.decoder.setLimits({ firstFrame: CLIENT_LIMITS.firstFrame, frame: frame.maxPayload + 1024 });
        // Frames after WELCOME in this same chunk go straight to the caller's handlers.
        const onFrame = options.onFrame;
        conn.onFrame = onFrame ? (f) => onFrame(f, conn) : () => {};
        options.onWelcome?.(frame, conn);
        conn.onFail = options.onFail ?? (() => {});
        resolve(conn);
      };
      conn.onFail = (why) => {
        clearTimeout(timer);
        reject(new Error(`${user}: ${why}`));
      };
      socket.on('connect', () => {
        socket.write(
          encodeFrame({
            type: 'HELLO',
            version: 1,
            user,
            device,
            token: '',
            resumeAfter: options.resumeAfter ?? 0,
          }),
        );
      });
      socket.on('data', (chunk) => conn.onData(chunk));
      socket.on('error', (err) => conn.fail(`socket error: ${err.message}`));
      socket.on('close', () => conn.fail('connection closed by the server'));
    });
  }

  private onData(chunk: Uint8Array): void {
    try {
      // The switch to in-place reading happens between chunks, once the decoder holds no partial frame.
      if (!this.lean && this.onDeliver !== null && this.welcome !== null && !this.decoder.midFrame) {
        this.lean = true;
      }
      if (this.lean) this.readInPlace(chunk);
      else this.decoder.push(chunk, (frame) => this.onFrame(frame));
    } catch (err) {
      this.fail(err instanceof SbpError ? `bad frame from the server: ${err.message}` : String(err));
    }
  }

  /** Frames by their length prefix; DELIVERs read in place, the others decoded. */
  private readInPlace(chunk: Uint8Array): void {
    let buf = chunk;
    if (this.rest !== null) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    const limit = (this.welcome?.maxPayload ?? CLIENT_LIMITS.frame) + 1024;
    let off = 0;
    while (buf.length - off >= 4 && !this.closing) {
      const length = ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
      if (length === 0 || length > limit) throw new SbpError(ErrorCode.MALFORMED, `frame length ${length}`);
      if (buf.length - off - 4 < length) break;
      const body = buf.subarray(off + 4, off + 4 + length);
      off += 4 + length;
      if (body[0] === FrameType.DELIVER && this.onDeliver !== null) this.deliverInPlace(body);
      else this.onFrame(decodeFrameBody(body, 'serverToClient'));
    }
    if (off < buf.length) this.rest = buf.slice(off);
  }

  /** DELIVER: u64 seq · u64 timestamp · id from · id fromDevice · u64 clientMsgId · address to · bytes payload. */
  private deliverInPlace(body: Uint8Array): void {
    const seq = readU32(body, 1) * 2 ** 32 + readU32(body, 5);
    let at = 17;
    const fromLength = (body[at]! << 8) | body[at + 1]!;
    at += 2;
    let fromMe = fromLength === this.userBytes.length;
    for (let i = 0; fromMe && i < fromLength; i++) fromMe = body[at + i] === this.userBytes[i];
    at += fromLength;
    at += 2 + ((body[at]! << 8) | body[at + 1]!); // fromDevice
    at += 8; // clientMsgId
    at += 2 + ((body[at]! << 8) | body[at + 1]!); // to
    const payloadLength = readU32(body, at);
    at += 4;
    if (at + payloadLength !== body.length)
      throw new SbpError(ErrorCode.MALFORMED, 'DELIVER fields do not fill the frame');
    this.onDeliver!(seq, fromMe, body.subarray(at, at + payloadLength));
  }

  private fail(why: string): void {
    if (this.closing) return;
    this.closing = true;
    this.socket.destroy();
    this.onFail(why);
  }

  /** Writes `bytes`; false when the socket's buffer is over its high-water mark (wait for 'drain'). */
  write(bytes: Uint8Array): boolean {
    return this.socket.write(bytes);
  }

  /** True once closed or failed. */
  get closed(): boolean {
    return this.closing;
  }

  /** BYE, then FIN; destroyed 1 s later if still open. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.socket.end(encodeFrame({ type: 'BYE', code: 0, reason: 'bench done' }));
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

export function describeFrame(frame: Frame): string {
  return frame.type === 'ERROR' ? `ERROR ${frame.code} (${frame.message})` : frame.type;
}

/** Runs `fn` over `items` with at most `limit` at once. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
