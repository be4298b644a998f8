/**
 * Writes a replica has acknowledged, for `--durability full` on Redis Cluster.
 *
 * Redis replicates asynchronously: a master that answers a write and dies before its replica has
 * received it is replaced by that replica without the write, and a message already ACCEPTED would be
 * gone. So with durability full a write is sent with `WAIT 1 <ms>` right behind it in one pipeline —
 * the same connection to the same master, which makes WAIT cover it — and counts as done only once a
 * replica has acknowledged it; otherwise it fails as the store being unavailable, and the client sends
 * it again (dedupe answers a write that was applied after all).
 *
 * Which masters have replicas comes from CLUSTER NODES and each master's INFO (a new replica reaches the
 * other nodes' CLUSTER NODES only by gossip), read at open and every second (CLUSTER SLOTS, from which
 * ioredis knows the nodes, leaves out replicas whose offset it has not heard of yet). A replica
 * counts while it could be promoted: always while the cluster has not flagged it failed, whatever the
 * state of its link, and once flagged, until it has been silent longer than the oldest data Redis lets a
 * replica be promoted with (cluster-node-timeout × cluster-replica-validity-factor + the replication
 * ping period; forever with a factor of 0). A failed replica that comes back within that time can still
 * take over from a master that died meanwhile, with none of what the master wrote since. So while a
 * master's replica is down, that master's writes fail (STORE_UNAVAILABLE) for up to that time (about
 * 160 s with Redis's defaults), then go on without WAIT: no failover can take them back then, and
 * its AOF (appendfsync always, as durability full requires) holds them. One Redis server (`redis://`)
 * has no automatic failover here, so it needs none either.
 */
import calculateSlot from 'cluster-key-slot';
import { Cluster } from 'ioredis';
import type { StoreClient } from './connection.js';

/** What a pipeline gives back: one [error, reply] per command. */
type PipelineResult = [Error | null, unknown][] | null;

export class ReplicaAckError extends Error {
  override name = 'ReplicaAckError';
}

/** How long after its last answer a failed replica can still be promoted, ms (Infinity: always). */
export function promotableForMs(
  nodeTimeoutMs: number,
  validityFactor: number,
  pingPeriodSeconds: number,
): number {
  return validityFactor === 0
    ? Number.POSITIVE_INFINITY
    : nodeTimeoutMs * validityFactor + pingPeriodSeconds * 1000;
}

/**
 * Replicas that could be promoted, per master address (`host:port`), from CLUSTER NODES text: one node
 * per line, `<id> <ip:port@cport[,hostname]> <flags> <master id or -> <ping sent> <pong received> …`. A
 * replica flagged `fail` counts until `now` is `promotableMs` past its last pong.
 */
export function replicasByMaster(
  clusterNodes: string,
  now: number,
  promotableMs: number,
): Map<string, number> {
  const addressOf = new Map<string, string>();
  const replicasOf = new Map<string, number>();
  for (const line of clusterNodes.split('\n')) {
    const [id, address, flags, masterId, , pongReceived] = line.trim().split(' ');
    if (id === undefined || address === undefined || flags === undefined || masterId === undefined) continue;
    addressOf.set(id, address.split('@')[0]!);
    const flagList = flags.split(',');
    if (!(flagList.includes('slave') || flagList.includes('replica')) || masterId === '-') continue;
    if (flagList.includes('fail') && !(now - Number(pongReceived) < promotableMs)) continue;
    replicasOf.set(masterId, (replicasOf.get(masterId) ?? 0) + 1);
  }
  const out = new Map<string, number>();
  for (const [masterId, n] of replicasOf) {
    const address = addressOf.get(masterId);
    if (address !== undefined) out.set(address, n);
  }
  return out;
}

export class ReplicaAck {
  private replicas = new Map<string, number>();
  private readonly timer: ReturnType<typeof setInterval>;

  /**
   * @param waitMs how long WAIT waits for a replica: less than the command timeout, so that its own
   *   answer, not the timeout, says what happened.
   */
  private constructor(
    private readonly cluster: Cluster,
    private readonly waitMs: number,
    private readonly promotableMs: number,
  ) {
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), 1_000);
    this.timer.unref();
  }

  /** A ReplicaAck, its first view of the replicas read, when durability full asks for one (Redis Cluster only), else null. */
  static async forStore(
    client: StoreClient,
    durability: 'normal' | 'full',
    commandTimeoutMs: number,
  ): Promise<ReplicaAck | null> {
    if (durability !== 'full' || !(client instanceof Cluster)) return null;
    const config = (await client.call(
      'CONFIG',
      'GET',
      'cluster-node-timeout',
      'cluster-replica-validity-factor',
      'repl-ping-replica-period',
    )) as string[];
    const setting = (name: string) => Number(config[config.indexOf(name) + 1]);
    const promotable = promotableForMs(
      setting('cluster-node-timeout'),
      setting('cluster-replica-validity-factor'),
      setting('repl-ping-replica-period'),
    );
    // A setting that could not be read keeps failed replicas counted: writes wait rather than risk one.
    const ack = new ReplicaAck(
      client,
      Math.max(1, Math.floor(commandTimeoutMs * 0.8)),
      Number.isNaN(promotable) ? Number.POSITIVE_INFINITY : promotable,
    );
    try {
      await ack.refresh();
    } catch (err) {
      ack.stop();
      throw err;
    }
    return ack;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Reads CLUSTER NODES from any node. */
  async refresh(): Promise<void> {
    const masters = this.cluster.nodes('master');
    const [nodes, ...infos] = await Promise.all([
      this.cluster.call('CLUSTER', 'NODES'),
      ...masters.map((m) => m.call('INFO', 'replication').catch(() => '')),
    ]);
    const replicas = replicasByMaster(String(nodes), Date.now(), this.promotableMs);
    masters.forEach((m, i) => {
      // A master knows the replicas linked to it at once; the other nodes hear of a new one by gossip.
      const linked = Number(/^connected_slaves:(\d+)/m.exec(String(infos[i]))?.[1] ?? 0);
      const address = `${m.options.host}:${m.options.port}`;
      if (linked > (replicas.get(address) ?? 0)) replicas.set(address, linked);
    });
    this.replicas = replicas;
  }

  /** Replicas that could take over from the master that serves `key`'s slot now, as far as known. */
  replicasOf(key: string): number {
    const master = this.cluster.slots[calculateSlot(key)]?.[0];
    return master === undefined ? 0 : (this.replicas.get(master) ?? 0);
  }

  /**
   * Runs the writes `queue` puts on a pipeline (commands on `key`'s slot), followed by WAIT when that slot
   * has a replica; resolves with their replies once a replica has them, rejects with a command's error
   * or a ReplicaAckError.
   */
  async write(key: string, queue: (pipeline: ReturnType<Cluster['pipeline']>) => void): Promise<unknown[]> {
    const pipeline = this.cluster.pipeline();
    queue(pipeline);
    const writes = pipeline.length;
    const replicas = this.replicasOf(key);
    if (replicas > 0) pipeline.call('WAIT', 1, this.waitMs);
    const results = (await pipeline.exec()) as PipelineResult;
    if (results === null || results.length < writes) throw new ReplicaAckError('the write was not sent');
    for (const [error] of results) if (error) throw error;
    if (replicas > 0 && !(Number(results[writes]?.[1]) >= 1)) {
      throw new ReplicaAckError(
        `no replica acknowledged the write within ${this.waitMs} ms (durability full needs one)`,
      );
    }
    return results.slice(0, writes).map(([, reply]) => reply);
  }
}
