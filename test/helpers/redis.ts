/**
 * Real redis-server processes for tests: one server or a Redis Cluster of 3 masters and 3 replicas. The
 * code lives in bench/lib/redis-server.ts, which the benchmarks use too.
 */
export * from '../../bench/lib/redis-server.js';
