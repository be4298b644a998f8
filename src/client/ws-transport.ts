/**
 * The browser transport of the SDK: SBP over the platform's WebSocket (PROTOCOL.md section 1). The
 * endpoint is a `ws://` or `wss://` URL of the server's `/sbp`; the subprotocol is `sbp.v1` and every
 * binary message carries whole frames. The frames the SDK writes in one turn of the event loop go out
 * as one message (a reconnect re-sends the whole outbox at once), never more than 256 KiB in one.
 */
import type { ClientTransport, TransportHandlers, TransportSocket } from './transport.js';

export const WS_SUBPROTOCOL = 'sbp.v1';
/** The largest message either side sends (PROTOCOL.md section 1). */
const MAX_MESSAGE_BYTES = 256 * 1024;
/** WebSocket.OPEN, spelled out so the module loads where no WebSocket global exists (Node 20). */
const OPEN = 1;

export class WebSocketTransport implements ClientTransport {
  connect(endpoint: string, handlers: TransportHandlers): TransportSocket {
    let closed = false;
    const finish = (err?: Error): void => {
      if (closed) return;
      closed = true;
      handlers.onClose(err);
    };
    let ws: WebSocket;
    try {
      if (!/^wss?:\/\//i.test(endpoint)) throw new Error(`not a ws:// or wss:// URL: "${endpoint}"`);
      ws = new globalThis.WebSocket(endpoint, WS_SUBPROTOCOL);
    } catch (err) {
      queueMicrotask(() => finish(err as Error));
      return { send() {}, close() {}, bufferedAmount: 0 };
    }
    ws.binaryType = 'arraybuffer';

    let queued: Uint8Array<ArrayBuffer>[] = [];
    let queuedBytes = 0;
    const flush = (): void => {
      if (queuedBytes === 0) return;
      const parts = queued;
      const message = parts.length === 1 ? parts[0]! : concat(parts, queuedBytes);
      queued = [];
      queuedBytes = 0;
      if (!closed && ws.readyState === OPEN) ws.send(message);
    };

    ws.onopen = () => {
      if (!closed) handlers.onOpen();
    };
    ws.onmessage = (event: MessageEvent) => {
      // A text message is not SBP; the server never sends one, and the decoder only takes bytes.
      if (!closed && event.data instanceof ArrayBuffer) handlers.onData(new Uint8Array(event.data));
    };
    // The browser tells no more than "error" (no reason, by design); the close event that always
    // follows carries the code.
    ws.onerror = () => {};
    ws.onclose = (event: CloseEvent) => {
      queued = [];
      queuedBytes = 0;
      finish(
        event.code === 1000
          ? undefined
          : new Error(`WebSocket closed with ${event.code}${event.reason ? ` (${event.reason})` : ''}`),
      );
    };

    return {
      send(bytes: Uint8Array): void {
        if (closed || ws.readyState !== OPEN) return;
        if (queuedBytes > 0 && queuedBytes + bytes.length > MAX_MESSAGE_BYTES) flush();
        if (queuedBytes === 0) queueMicrotask(flush);
        // A copy: the caller may reuse its buffer before the microtask runs.
        queued.push(bytes.slice());
        queuedBytes += bytes.length;
      },
      close(): void {
        if (closed) return;
        flush();
        ws.close(1000);
      },
      get bufferedAmount(): number {
        return closed ? 0 : ws.bufferedAmount + queuedBytes;
      },
    };
  }
}

function concat(parts: Uint8Array<ArrayBuffer>[], length: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
