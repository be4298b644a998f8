/**
 * The handshake deadline for TLS listeners (PROTOCOL.md section 4.1: the defence against clients that
 * connect and never send). Node's `handshakeTimeout` only starts once a ClientHello has arrived, so a
 * client that connects and sends nothing would hold its descriptor forever; here every TCP connection
 * of a TLS server is cut when its TLS handshake has not completed by the deadline counted from accept.
 * The accept time is handed on, so the SBP (or WebSocket) handshake that follows gets only the rest.
 */
import type { Socket } from 'node:net';
import type { TLSSocket, Server as TlsServer } from 'node:tls';

interface Pending {
  acceptedAt: number;
  timer: ReturnType<typeof setTimeout>;
}

export class TlsHandshakeDeadline {
  /** Raw TCP sockets whose TLS handshake is still running. */
  private readonly pending = new Map<Socket, Pending>();

  constructor(private readonly deadlineMs: number) {}

  /** Watches every connection `server` accepts. */
  watch(server: TlsServer): void {
    server.on('connection', (raw: Socket) => {
      const timer = setTimeout(() => {
        if (this.pending.delete(raw)) raw.destroy();
      }, this.deadlineMs);
      timer.unref();
      this.pending.set(raw, { acceptedAt: Date.now(), timer });
      raw.once('close', () => this.forget(raw));
    });
  }

  /** The handshake of `socket` completed: its accept time (now, if unknown); the deadline no longer applies. */
  secured(socket: TLSSocket): number {
    // A server-side TLSSocket keeps the TCP socket it wraps as _parent (stable since Node 0.11).
    const raw = (socket as unknown as { _parent?: Socket })._parent;
    const entry = raw ? this.forget(raw) : undefined;
    return entry?.acceptedAt ?? Date.now();
  }

  private forget(raw: Socket): Pending | undefined {
    const entry = this.pending.get(raw);
    if (!entry) return undefined;
    clearTimeout(entry.timer);
    this.pending.delete(raw);
    return entry;
  }
}
