/**
 * One raw SBP/1 connection for the load generators: TCP to a loopback address (127.0.0.1 by default),
 * HELLO (open mode, no token), WELCOME, then every frame to `onFrame`. Only the codec of src/protocol —
 * no SDK in the measured path.
 */
import net from 'node:net';
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
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

export class Conn {
  readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder('serverToClient', CLIENT_LIMITS);
  onFrame: (frame: Frame) => void = () => {};
  onFail: (why: string) => void = () => {};
  welcome: WelcomeFrame | null = null;
  private closing = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
  }

  static open(port: number, user: string, device: string, options: OpenOptions = {}): Promise<Conn> {
    return new Promise((resolve, reject) => {
      options.onStart?.();
      const socket = net.connect({ host: options.host ?? '127.0.0.1', port });
      socket.setNoDelay(true);
      const conn = new Conn(socket);
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
      this.decoder.push(chunk, (frame) => this.onFrame(frame));
    } catch (err) {
      this.fail(err instanceof SbpError ? `bad frame from the server: ${err.message}` : String(err));
    }
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
