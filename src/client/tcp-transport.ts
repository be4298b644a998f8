/**
 * The Node TCP transport of the SDK: `host:port` endpoints (`[::1]:7070` for IPv6), and SBP over TLS with
 * `tls://host:port` (the server's --tls-cert; a private CA is given as `tls.ca`).
 */
import net from 'node:net';
import tls from 'node:tls';
import type { ClientTransport, TransportHandlers, TransportSocket } from './transport.js';

export const DEFAULT_PORT = 7070;

/** Splits `host:port`, `[v6]:port`, or a bare host (default port 7070), each optionally `tls://`. */
export function parseEndpoint(endpoint: string): { host: string; port: number; tls: boolean } {
  const secure = endpoint.startsWith('tls://');
  if (secure) endpoint = endpoint.slice('tls://'.length);
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(endpoint) ?? /^([^:]*)(?::(\d+))?$/.exec(endpoint);
  const host = m?.[1] || '127.0.0.1';
  const port = m?.[2] === undefined ? DEFAULT_PORT : Number(m[2]);
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`not a host:port endpoint: "${endpoint}"`);
  }
  return { host, port, tls: secure };
}

export interface TcpTransportOptions {
  /** Abandon a TCP connect that has not completed after this long, ms (default 10 000). */
  connectTimeoutMs?: number;
  /** How long close() waits for a clean FIN exchange before destroying the socket, ms (default 1 000). */
  closeGraceMs?: number;
  /** TLS settings for `tls://` endpoints (e.g. `ca` for a private certificate authority). */
  tls?: tls.ConnectionOptions;
}

export class TcpTransport implements ClientTransport {
  constructor(private readonly options: TcpTransportOptions = {}) {}

  connect(endpoint: string, handlers: TransportHandlers): TransportSocket {
    const { connectTimeoutMs = 10_000, closeGraceMs = 1_000 } = this.options;
    let closed = false;
    let error: Error | undefined;
    let socket: net.Socket;
    const finish = (err?: Error): void => {
      if (closed) return;
      closed = true;
      handlers.onClose(err);
    };
    try {
      const { host, port, tls: secure } = parseEndpoint(endpoint);
      socket = secure
        ? tls.connect({ ...this.options.tls, host, port, servername: net.isIP(host) ? undefined : host })
        : net.createConnection({ host, port });
    } catch (err) {
      queueMicrotask(() => finish(err as Error));
      return { send() {}, close() {}, bufferedAmount: 0 };
    }
    socket.setNoDelay(true);
    socket.setTimeout(connectTimeoutMs, () => {
      socket.destroy(new Error(`connect to ${endpoint} timed out after ${connectTimeoutMs} ms`));
    });
    socket.on(socket instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => {
      socket.setTimeout(0);
      socket.setKeepAlive(true, 30_000);
      handlers.onOpen();
    });
    socket.on('data', (chunk: Buffer) => {
      if (!closed) handlers.onData(chunk);
    });
    socket.on('error', (err) => {
      error = err;
    });
    socket.on('close', () => finish(error));
    return {
      send(bytes: Uint8Array): void {
        if (!closed && socket.writable) socket.write(bytes);
      },
      close(): void {
        if (closed || socket.destroyed) return;
        if (socket.connecting) {
          socket.destroy();
          return;
        }
        socket.end();
        setTimeout(() => socket.destroy(), closeGraceMs).unref();
      },
      get bufferedAmount(): number {
        return socket.writableLength;
      },
    };
  }
}
