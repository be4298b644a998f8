/**
 * The driver interface of the peer benchmarks: one user's connection to a messaging server, whatever
 * the protocol — Switchboard's SBP/1, MQTT 3.1.1 (Mosquitto) or NATS core. Each implementation
 * hand-encodes its packets on a raw `node:net` socket (no client library), so the load generator does
 * about the same work for every target and the figures compare the servers, not the clients.
 *
 * A user has one connection; it receives the messages addressed to it (its own topic or subject,
 * or its SBP inbox) and publishes to other users by name. Acknowledgements the protocol asks of a
 * receiver (SBP ACK, MQTT PUBACK) and keep-alives (PING/PINGREQ) are the driver's job; the engine
 * (closed-loop.ts) sees only payloads.
 */

export interface ConnHandlers {
  /**
   * A message from another user arrived. `payload` may be a view into the socket's buffer: read it
   * before returning, never keep it. The sender's own copies (SBP) are never passed here.
   */
  onMessage: (payload: Uint8Array) => void;
  /** The connection failed: closed by the server, a protocol error, a refused packet. Called once. */
  onFail: (why: string) => void;
  /** Called right before the first byte of the handshake is written (the drain's clock starts here). */
  onFirstByte?: () => void;
}

export interface PeerConn {
  readonly user: string;
  /**
   * Subscribes the user to its own topic or subject (`u/<user>`, `u.<user>`); resolves once the
   * server confirmed it (SUBACK; a PONG after the SUB). SBP needs none: an inbox exists per user.
   */
  subscribe(): Promise<void>;
  /** Sends `payload` to user `to`. The bytes are copied before it returns. */
  publish(to: string, payload: Uint8Array): void;
  /**
   * Resolves once the server has taken everything published so far: every SBP ACCEPTED or MQTT
   * PUBACK received, else a PING/PONG (PINGREQ/PINGRESP) round trip after the last publish.
   */
  flush(timeoutMs?: number): Promise<void>;
  /** A polite close (SBP BYE, MQTT DISCONNECT, FIN); resolves when the socket is closed (≤ 1 s). */
  close(): Promise<void>;
  /** Closes at once, without a goodbye. */
  destroy(): void;
}

export interface Driver {
  /** Which protocol and mode, e.g. "MQTT 3.1.1, QoS 1, persistent session". */
  readonly name: string;
  /** Connects `user` to the server on 127.0.0.1:`port`; resolves once the handshake is answered. */
  connect(port: number, user: string, handlers: ConnHandlers): Promise<PeerConn>;
}

/** How long a handshake, a SUBSCRIBE or a flush may take before it fails. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** A promise with its resolve and reject, settled at most once, with an optional deadline. */
export class Pending<T = void> {
  readonly promise: Promise<T>;
  private resolveFn!: (value: T) => void;
  private rejectFn!: (err: Error) => void;
  private timer: NodeJS.Timeout | undefined;
  settled = false;

  constructor(timeoutMs?: number, what = 'the server did not answer') {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    // A rejection nobody awaits (the connection failed before anyone asked) is not an error here.
    this.promise.catch(() => {});
    if (timeoutMs !== undefined) {
      this.timer = setTimeout(
        () => this.reject(new Error(`${what} within ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
      this.timer.unref();
    }
  }

  resolve(value: T): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.resolveFn(value);
  }

  reject(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.rejectFn(err);
  }
}

/** Resolves when `socket` has closed; ends it gracefully first, destroys it after `graceMs`. */
export function endSocket(
  socket: import('node:net').Socket,
  lastBytes: Uint8Array | null,
  graceMs = 1000,
): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) {
      resolve();
      return;
    }
    socket.once('close', () => resolve());
    const timer = setTimeout(() => socket.destroy(), graceMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    if (lastBytes !== null && socket.writable) socket.end(lastBytes);
    else socket.end();
  });
}
