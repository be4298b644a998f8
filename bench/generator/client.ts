/**
 * One held connection of the load generator: connect from an explicit local port, HELLO, wait for
 * WELCOME, then stay (the generator PINGs it), until it is closed with BYE. It reports how its connect
 * phase ended exactly once (welcomed or failed), and a later loss once (dropped).
 */
import net from 'node:net';
import { encodeFrame, errorName, type Frame, FrameDecoder, isFatalCode } from '../../src/protocol/index.js';
import type { PortAllocator } from './port-allocator.js';

/** Before WELCOME a client accepts the default maxFrame (PROTOCOL.md section 2.2). */
const DEFAULT_MAX_FRAME = 66_560;
/** Binds tried per client on other ports after EADDRINUSE / EADDRNOTAVAIL. */
const MAX_BIND_ATTEMPTS = 8;

export interface ClientHooks {
  /** The connect phase ended with WELCOME. */
  welcomed(client: BenchClient): void;
  /** The connect phase ended without WELCOME: `reason` is an ERROR name or an errno. */
  failed(client: BenchClient, reason: string): void;
  /** A WELCOMEd connection was lost before the generator closed it. */
  dropped(client: BenchClient, reason: string): void;
  /** The socket is gone (after any of the above, or after close()). */
  gone(client: BenchClient): void;
  /** A port was taken: the client tries another one. */
  portRetry(): void;
}

export interface ClientTarget {
  host: string;
  port: number;
  connectTimeoutMs: number;
  welcomeTimeoutMs: number;
}

type State = 'connecting' | 'handshake' | 'held' | 'closing' | 'done';

export class BenchClient {
  private state: State = 'connecting';
  private socket: net.Socket | null = null;
  private decoder = new FrameDecoder('serverToClient', {
    firstFrame: DEFAULT_MAX_FRAME,
    frame: DEFAULT_MAX_FRAME,
  });
  private timer: NodeJS.Timeout | null = null;
  private attempts = 0;
  /** From WELCOME: PING when nothing was sent for this long. */
  heartbeatMs = 0;
  /** performance.now() of the last frame written. */
  lastSentAt = 0;

  constructor(
    readonly index: number,
    private readonly user: string,
    private readonly token: string,
    private readonly source: number,
    private readonly ports: PortAllocator,
    private readonly target: ClientTarget,
    private readonly hooks: ClientHooks,
  ) {}

  get held(): boolean {
    return this.state === 'held';
  }

  connect(): void {
    this.attempts++;
    const socket = net.connect({
      host: this.target.host,
      port: this.target.port,
      localAddress: this.ports.address(this.source),
      localPort: this.ports.next(this.source),
    });
    this.socket = socket;
    this.arm(this.target.connectTimeoutMs, 'ETIMEDOUT');
    socket.once('connect', () => this.onConnect());
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => this.onError(socket, err));
    socket.on('close', () => this.onClose(socket));
  }

  /** Ends a connection the generator no longer wants: BYE, then the server closes it. */
  close(): void {
    if (this.state === 'connecting' || this.state === 'handshake') {
      this.end('ABORTED');
      this.socket?.destroy();
      return;
    }
    if (this.state !== 'held') return;
    this.state = 'closing';
    this.write(encodeFrame({ type: 'BYE', code: 0, reason: 'bench done' }));
  }

  /** Fails a connect still in progress (the connect phase's time limit passed). */
  abort(reason: string): void {
    if (this.state === 'connecting' || this.state === 'handshake') this.end(reason);
  }

  /** Drops the socket at once (the last step of closing). */
  destroy(): void {
    this.socket?.destroy();
  }

  ping(nonce: number): void {
    if (this.state === 'held') this.write(encodeFrame({ type: 'PING', nonce }));
  }

  private write(bytes: Uint8Array): void {
    this.lastSentAt = performance.now();
    this.socket?.write(bytes);
  }

  private onConnect(): void {
    if (this.state !== 'connecting') return;
    this.state = 'handshake';
    this.socket!.setNoDelay(true);
    this.arm(this.target.welcomeTimeoutMs, 'NO_WELCOME');
    this.write(
      encodeFrame({
        type: 'HELLO',
        version: 1,
        user: this.user,
        device: 'd',
        token: this.token,
        resumeAfter: 0,
      }),
    );
  }

  private onData(chunk: Uint8Array): void {
    if (this.state === 'done') return;
    try {
      this.decoder.push(chunk, (frame) => this.onFrame(frame));
    } catch {
      this.end('BAD_FRAME');
    }
  }

  private onFrame(frame: Frame): void {
    switch (frame.type) {
      case 'WELCOME':
        if (this.state !== 'handshake') {
          this.end('UNEXPECTED_WELCOME');
          return;
        }
        this.clearTimer();
        this.state = 'held';
        this.heartbeatMs = frame.heartbeatMs;
        this.decoder.setLimits({ firstFrame: DEFAULT_MAX_FRAME, frame: frame.maxPayload + 1024 });
        this.hooks.welcomed(this);
        return;
      case 'ERROR':
        // Request-level errors leave the session open; the bench sends nothing that earns one.
        if (this.state === 'held' && !isFatalCode(frame.code)) return;
        this.end(errorName(frame.code));
        return;
      case 'PING':
        this.write(encodeFrame({ type: 'PONG', nonce: frame.nonce }));
        return;
      case 'BYE':
        this.end(frame.code === 0 ? 'BYE' : errorName(frame.code));
        return;
      default:
        // DELIVERs, PONGs, PRESENCE…: nothing to do while holding.
        if (this.state === 'handshake') this.end(`UNEXPECTED_${frame.type}`);
    }
  }

  private onError(socket: net.Socket, err: NodeJS.ErrnoException): void {
    if (socket !== this.socket) return;
    const code = err.code ?? 'SOCKET_ERROR';
    if (
      this.state === 'connecting' &&
      (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL') &&
      this.attempts < MAX_BIND_ATTEMPTS
    ) {
      // The port is taken (bind), or its 4-tuple is (connect): another port.
      this.socket = null;
      socket.destroy();
      this.clearTimer();
      this.hooks.portRetry();
      this.connect();
      return;
    }
    this.end(code);
  }

  private onClose(socket: net.Socket): void {
    if (socket !== this.socket) return;
    this.end('CLOSED');
    this.clearTimer();
    this.state = 'done';
    this.socket = null;
    this.hooks.gone(this);
  }

  /** Records how the connection ended (once) and lets the socket go. */
  private end(reason: string): void {
    const state = this.state;
    if (state === 'done' || state === 'closing') return;
    this.state = 'closing';
    this.clearTimer();
    if (state === 'held') this.hooks.dropped(this, reason);
    else this.hooks.failed(this, reason);
    // After a fatal ERROR the server closes too; our FIN (then destroy) lets the socket go either way.
    if (reason !== 'CLOSED') this.socket?.destroySoon();
  }

  private arm(ms: number, reason: string): void {
    this.clearTimer();
    this.timer = setTimeout(() => {
      this.timer = null;
      this.end(reason);
      this.socket?.destroy();
    }, ms);
  }

  private clearTimer(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }
}
