/**
 * The runtime-neutral part of the SDK (no Node imports): what a browser bundle imports, together with
 * a transport of its own (e.g. WebSocket) and a storage hook (e.g. IndexedDB).
 */
export * from './client.js';
export { TypedEmitter } from './emitter.js';
export {
  type ClientState,
  type ClientStorage,
  emptyState,
  fromBase64,
  MemoryStorage,
  type PendingSend,
  toBase64,
} from './storage.js';
export type { ClientTransport, TransportHandlers, TransportSocket } from './transport.js';
export { WebSocketTransport, WS_SUBPROTOCOL } from './ws-transport.js';
