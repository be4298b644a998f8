/**
 * One small interface over every transport (TCP and WebSocket; TLS later): the session writes
 * frame bytes and reads byte chunks through it and never sees the socket.
 */
import type { ErrorCodeValue } from '../protocol/index.js';

export type TransportKind = 'tcp' | 'tls' | 'ws';

export interface ConnectionHandler {
  /**
   * Bytes from the peer. `wholeMessage` is true when the chunk is one whole transport message
   * (WebSocket), which must end on a frame boundary (PROTOCOL.md section 1); a TCP chunk may end anywhere.
   */
  onData(chunk: Uint8Array, wholeMessage?: boolean): void;
  /**
   * The transport refused what the peer sent (WebSocket: a text message, a message over 256 KiB): a
   * fatal protocol error, answered like one the decoder found.
   */
  onTransportError(code: ErrorCodeValue, message: string): void;
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
  /**
   * Flushes what is queued, then closes the write side (FIN). `errorCode` is the fatal ERROR just sent,
   * if that is why the connection ends (WebSocket closes with 4000 + it; TCP ignores it).
   */
  end(errorCode?: ErrorCodeValue): void;
  /** Closes at once, dropping anything queued. */
  destroy(): void;
  readonly closed: boolean;
}
