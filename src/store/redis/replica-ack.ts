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
 * Which masters have replicas comes from CLUSTER NODES, read at open and every second: a replica counts
 * until the cluster flags it failed, whatever the state of its link (a replica whose link just dropped
 * can still be promoted, so its master's writes must wait for it, and fail, meanwhile). CLUSTER SLOTS,
 * from which ioredis knows the nodes, leaves out replicas whose offset it has not heard of yet. A slot
 * whose master has no such replica is written without WAIT: no failover can take its writes back, and
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

/**
 * Replicas not flagged failed per master address (`host:port`), from CLUSTER NODES text: one node per
 * line, `<id> <ip:port@cport[,hostname]> <flags> <master id or -> …`.
 */
export function replicasByMaster(clusterNodes: string): Map<string, number> {
  const addressOf = new Map<string, string>();
  const replicasOf = new Map<string, number>();
  for (const line of clusterNodes.split('\n')) {
    const [id, address, flags, masterId] = line.trim().split(' ');
    if (id === undefined || address === undefined || flags === undefined || masterId === undefined) continue;
    const flagList = flags.split(',');
    addressOf.set(id, address.split('@')[0]!);
    if (
      (flagList.includes('slave') || flagList.includes('replica')) &&
      !flagList.includes('fail') &&
      masterId !== '-'
    ) {
      replicasOf.set(masterId, (replicasOf.get(masterId) ?? 0) + 1);
    }
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
    const ack = new ReplicaAck(client, Math.max(1, Math.floor(commandTimeoutMs / 2)));
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
    this.replicas = replicasByMaster(String(await this.cluster.call('CLUSTER', 'NODES')));
  }

  /** Replicas (not flagged failed) of the master that serves `key`'s slot now, as far as known. */
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
