/**
 * The Switchboard client SDK for Node: the runtime-neutral core (core.ts, which browsers import
 * instead) plus the TCP transport and the file storage hook.
 */
export * from './core.js';
export { defaultStateDir, FileStorage, stateFileName } from './file-storage.js';
export { DEFAULT_PORT, parseEndpoint, TcpTransport, type TcpTransportOptions } from './tcp-transport.js';
