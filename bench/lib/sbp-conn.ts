/**
 * One raw SBP/1 connection for the load generators: TCP to 127.0.0.1, HELLO (open mode, no token),
 * WELCOME, then every frame to `onFrame`. Only the codec of src/protocol — no SDK in the measured path.
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

  static open(port: number, user: string, device: string): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
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
        resolve(conn);
      };
      conn.onFail = (why) => {
        clearTimeout(timer);
        reject(new Error(`${user}: ${why}`));
      };
      socket.on('connect', () => {
        socket.write(encodeFrame({ type: 'HELLO', version: 1, user, device, token: '', resumeAfter: 0 }));
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

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
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
