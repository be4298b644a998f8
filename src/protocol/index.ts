/** SBP/1: pure codec and incremental decoder. No sockets, no timers. */
export * from './codec.js';
export * from './decoder.js';
export * from './errors.js';
export * from './frames.js';
