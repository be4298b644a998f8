/**
 * Writes a replica has acknowledged, for `--durability full` on Redis Cluster.
 *
 * Redis replicates asynchronously: a master that answers a write and dies before its replica has
 * received it is replaced by that replica without the write, and a message already ACCEPTED would be
 * gone. So with durability full the writes of one turn to one master go in one pipeline with
 * `WAIT 1 <ms>` behind them — the same connection to that master, which makes WAIT cover them — and
 * count as done only once a replica has acknowledged them; otherwise they fail as the store being
 * unavailable, and the clients send them again (dedupe answers a write that was applied after all).
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

/** The pipeline a write's commands are queued on. */
export type WritePipeline = ReturnType<Cluster['pipeline']>;

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

const UNKNOWN_MASTER = '?';

interface QueuedWrite {
  /** Its commands' places in the pipeline: [from, to). */
  from: number;
  to: number;
  resolve(replies: unknown[]): void;
  reject(err: Error): void;
}

export class ReplicaAck {
  private replicas = new Map<string, number>();
  /** This turn's writes, per master address. */
  private readonly turn = new Map<string, { pipeline: WritePipeline; writes: QueuedWrite[] }>();
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

  /** Reads CLUSTER NODES from any node and INFO replication from every master. */
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

  /** The master that serves `key`'s slot now, as ioredis knows it (`host:port`), or undefined. */
  private masterOf(key: string): string | undefined {
    return this.cluster.slots[calculateSlot(key)]?.[0];
  }

  /**
   * Runs the writes `queue` puts on a pipeline (commands on `key`'s slot); resolves with their replies
   * once a replica has them, rejects with a command's error or a ReplicaAckError. The writes of one turn
   * of the event loop bound for one master share one pipeline and one WAIT behind them all (WAIT covers
   * every earlier write of its connection): a round trip per master and turn, as auto-pipelining gives
   * the other writes.
   */
  write(key: string, queue: (pipeline: WritePipeline) => void): Promise<unknown[]> {
    // A slot whose master is not known yet (before the first slot map) is written with WAIT as well.
    const master = this.masterOf(key) ?? UNKNOWN_MASTER;
    let batch = this.turn.get(master);
    if (batch === undefined) {
      batch = { pipeline: this.cluster.pipeline(), writes: [] };
      this.turn.set(master, batch);
      if (this.turn.size === 1) process.nextTick(() => this.flush());
    }
    const from = batch.pipeline.length;
    queue(batch.pipeline);
    const to = batch.pipeline.length;
    return new Promise((resolve, reject) => batch.writes.push({ from, to, resolve, reject }));
  }

  /** Sends this turn's pipelines, each with WAIT behind it when its master has a replica. */
  private flush(): void {
    const batches = [...this.turn];
    this.turn.clear();
    for (const [master, { pipeline, writes }] of batches) {
      const count = pipeline.length;
      const replicas = master === UNKNOWN_MASTER ? 1 : (this.replicas.get(master) ?? 0);
      if (replicas > 0) pipeline.call('WAIT', 1, this.waitMs);
      pipeline.exec().then(
        (results: PipelineResult) => {
          const acked = replicas === 0 || Number(results?.[count]?.[1]) >= 1;
          for (const w of writes) {
            const mine = results?.slice(w.from, w.to);
            const failed = mine?.find(([error]) => error !== null)?.[0];
            if (mine === undefined || mine.length < w.to - w.from) {
              w.reject(new ReplicaAckError('the write was not sent'));
            } else if (failed) w.reject(failed);
            else if (!acked) {
              w.reject(
                new ReplicaAckError(
                  `no replica acknowledged the write within ${this.waitMs} ms (durability full needs one)`,
                ),
              );
            } else w.resolve(mine.map(([, reply]) => reply));
          }
        },
        (err: Error) => {
          for (const w of writes) w.reject(err);
        },
      );
    }
  }
}
