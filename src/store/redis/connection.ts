/**
 * Connecting the Redis store: the store URL, the ioredis client for one server or a cluster, and the
 * check of the servers' AOF settings against the configured durability.
 *
 * Fault behaviour, chosen so that every call settles within about commandTimeoutMs:
 * - no offline queue: while a connection is down, a command is rejected at once instead of waiting;
 * - a command in flight when its connection drops is rejected, never re-sent by the client library
 *   (maxRetriesPerRequest 0, no auto-resend; on a cluster no retry after a closed connection or
 *   CLUSTERDOWN). It may have been applied: the caller re-sends and per-inbox dedupe answers
 *   'duplicate', so nothing is stored twice;
 * - a reply that does not come within commandTimeoutMs rejects the command (a command queued behind a
 *   pipeline that hangs waits for that one first: at most twice the timeout in all);
 * - the connection itself reconnects with back-off (50 ms doubling up to 1 s), and a cluster client
 *   refreshes its slot map (on MOVED, and every second) so that a promoted replica is found.
 */
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

export type StoreTarget =
  | { kind: 'single'; url: string }
  | { kind: 'cluster'; nodes: { host: string; port: number }[]; username?: string; password?: string };

/**
 * `redis://[user:password@]host:port[/db]` (one server) or
 * `redis-cluster://[user:password@]host:port,host:port,…` (the seed nodes of a Redis Cluster).
 */
export function parseStoreUrl(url: string): StoreTarget {
  if (/^rediss?:\/\//i.test(url)) return { kind: 'single', url };
  const m = /^redis-cluster:\/\/(?:([^@]*)@)?(.+)$/i.exec(url);
  if (!m) throw new Error(`bad store URL ${JSON.stringify(url)}: expected redis://… or redis-cluster://…`);
  const nodes = m[2]!.split(',').map((hostPort) => {
    const at = hostPort.lastIndexOf(':');
    const port = Number(hostPort.slice(at + 1));
    if (at <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new Error(`bad node ${JSON.stringify(hostPort)} in store URL: expected host:port`);
    }
    return { host: hostPort.slice(0, at), port };
  });
  const target: StoreTarget = { kind: 'cluster', nodes };
  if (m[1] !== undefined) {
    const colon = m[1].indexOf(':');
    const user = decodeURIComponent(colon < 0 ? m[1] : m[1].slice(0, colon));
    if (user !== '') target.username = user;
    if (colon >= 0) target.password = decodeURIComponent(m[1].slice(colon + 1));
  }
  return target;
}

export type StoreClient = Redis | Cluster;

/** Reconnect back-off: 100, 200, 400, 800 ms, then every second. */
export const backoff = (attempt: number): number => Math.min(50 * 2 ** Math.min(attempt, 5), 1_000);

/** A client that is not connected yet (connect() it). */
export function createClient(target: StoreTarget, commandTimeoutMs: number): StoreClient {
  const perConnection: RedisOptions = {
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: commandTimeoutMs,
    connectTimeout: commandTimeoutMs,
  };
  if (target.kind === 'single') {
    return new Redis(target.url, {
      ...perConnection,
      lazyConnect: true,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      retryStrategy: backoff,
    });
  }
  const options: ClusterOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    clusterRetryStrategy: backoff,
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    slotsRefreshTimeout: commandTimeoutMs,
    slotsRefreshInterval: 1_000,
    redisOptions: {
      ...perConnection,
      ...(target.username !== undefined ? { username: target.username } : {}),
      ...(target.password !== undefined ? { password: target.password } : {}),
    },
  };
  return new Cluster(target.nodes, options);
}

/** Redis is reachable but does not fit the store's configuration (thrown by open, not retried). */
export class RedisConfigError extends Error {
  override name = 'RedisConfigError';
}

/**
 * Reads appendonly and appendfsync on every master (CONFIG GET). Durability 'full' needs appendonly yes
 * and appendfsync always everywhere (a write is then fsynced before Redis answers it) and refuses
 * otherwise, or when CONFIG is not permitted; 'normal' only warns when AOF is off.
 */
export async function checkDurability(
  client: StoreClient,
  durability: 'normal' | 'full',
  log: Pick<Logger, 'warn'> | undefined,
): Promise<void> {
  const masters = client instanceof Cluster ? client.nodes('master') : [client];
  const need = 'durability full needs appendonly yes and appendfsync always on every Redis master';
  for (const node of masters) {
    const where = `${node.options.host}:${node.options.port}`;
    let reply: unknown;
    try {
      reply = await node.call('CONFIG', 'GET', 'appendonly', 'appendfsync');
    } catch (err) {
      if (!isReplyError(err)) throw err;
      const msg = `cannot read the AOF settings of Redis at ${where}: CONFIG GET is not permitted (${(err as Error).message})`;
      if (durability === 'full') throw new RedisConfigError(`${msg}; ${need}`);
      log?.warn({ redis: where }, `${msg}; AOF is assumed off`);
      continue;
    }
    const settings = new Map<string, string>();
    const flat = reply as string[];
    for (let i = 0; i + 1 < flat.length; i += 2) settings.set(flat[i]!, flat[i + 1]!);
    const appendonly = settings.get('appendonly');
    const appendfsync = settings.get('appendfsync');
    if (durability === 'full' && (appendonly !== 'yes' || appendfsync !== 'always')) {
      throw new RedisConfigError(
        `Redis at ${where} has appendonly ${appendonly} and appendfsync ${appendfsync}: ${need}`,
      );
    }
    if (appendonly !== 'yes') {
      log?.warn(
        { redis: where },
        `Redis at ${where} has appendonly ${appendonly}: stored messages are lost when it restarts`,
      );
    }
  }
}

/** An error answered by Redis (as opposed to a connection failure). */
export function isReplyError(err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError';
}
