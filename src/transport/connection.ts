/**
 * One small interface over every transport (TCP now; TLS and WebSocket later): the session writes
 * frame bytes and reads byte chunks through it and never sees the socket.
 */
export type TransportKind = 'tcp' | 'tls' | 'ws';

export interface ConnectionHandler {
  /** Bytes from the peer (for WebSocket: one message's bytes). */
  onData(chunk: Uint8Array): void;
  /** The outbound buffer went back under its high-water mark. */
  onDrain(): void;
  /** The connection is gone (after end, destroy or a peer/network close). Called once. */
  onClose(hadError: boolean): void;
}

export interface Connection {
  readonly kind: TransportKind;
  /** `address:port` of the peer, for logs. */
  readonly remote: string;
  /** Starts delivering events to `handler`; set once, right after accept. */
  attach(handler: ConnectionHandler): void;
  /**
   * Queues frame bytes; writes made in one loop tick go out together. Returns false once the
   * outbound buffer is over its high-water mark (wait for onDrain).
   */
  send(bytes: Uint8Array): boolean;
  /** Bytes queued and not yet handed to the kernel. */
  readonly bufferedBytes: number;
  /** Stops/starts reading from the peer (backpressure toward a client that floods). */
  pause(): void;
  resume(): void;
  /** Flushes what is queued, then closes the write side (FIN). */
  end(): void;
  /** Closes at once, dropping anything queued. */
  destroy(): void;
  readonly closed: boolean;
}
