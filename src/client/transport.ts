/**
 * What the SDK needs from a transport, and nothing more: open a byte stream to an endpoint, write
 * bytes, close it, and hear about bytes and the close. TCP (tcp-transport.ts) implements it for Node;
 * a browser WebSocket transport can implement it without touching client.ts.
 */

export interface TransportHandlers {
  /** The connection is open: bytes may be written. */
  onOpen(): void;
  /** Bytes from the server, split anywhere (the SDK's FrameDecoder reassembles frames). */
  onData(chunk: Uint8Array): void;
  /** The connection is gone, or could not be opened (`err` says why when it was not a clean close). Called once. */
  onClose(err?: Error): void;
}

export interface TransportSocket {
  /** Queues bytes; safe to call only between onOpen and onClose. */
  send(bytes: Uint8Array): void;
  /** Flushes what is queued, then closes; onClose follows. */
  close(): void;
  /** Bytes queued and not yet handed to the network (0 when the transport cannot tell). */
  readonly bufferedAmount: number;
}

export interface ClientTransport {
  /** Starts connecting; every outcome is reported through `handlers`, never thrown. */
  connect(endpoint: string, handlers: TransportHandlers): TransportSocket;
}
