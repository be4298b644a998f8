/**
 * The fleet: Switchboard nodes on several machines sharing one Redis (or Redis Cluster), found through
 * Redis only (ARCHITECTURE.md "Many machines"). Within a node the workers keep their local bus; across
 * nodes, what a user's home announces goes over Redis sharded pub/sub to the home worker of that user on
 * every other node, batched per turn of the event loop: one SPUBLISH per target worker and turn.
 *
 * - Registry: every worker refreshes its node's entry in the hash `sb:fleet` (node → worker count and a
 *   heartbeat time) every HEARTBEAT_MS; a node whose heartbeat is older than NODE_TTL_MS is dead. A
 *   starting worker also announces its node on `{sb:fleet}`, so the others send to it at once. Each
 *   worker listens on its own channel `{sb:<node>.w<k>}` (SSUBSCRIBE: one slot, its own shard).
 * - Directory: `{u:<user>}:dev` maps each connected device to the node holding its session, and
 *   `{u:<user>}:since` keeps the time of the last presence change; one Lua call per HELLO and per close
 *   updates them atomically in the user's slot, so a session of the same device on another node is
 *   replaced, and online/offline is decided once for the whole fleet. `sb:on:<node>` lists the users a
 *   node has sessions of, so that the devices of a dead node can be removed (reaped) by a live one.
 * - Pub/sub is only a doorbell: a stored message that a node misses (its subscription was reconnecting)
 *   is read from the inbox, since every session catches up from its position when the subscription is
 *   back (FleetHandler.resubscribed).
 *
 * Stored messages are announced to every other live node (each node's home worker of the inbox then
 * checks its own directory): N − 1 publishes per message, batched. That is cheap for the handful of
 * nodes this targets; a fleet of many nodes would publish to the nodes of the inbox's directory only.
 */
import { hostname } from 'node:os';
import { deserialize, serialize } from 'node:v8';
import { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Presence } from '../server/home.js';
import type { StoredMessage } from '../store/inbox-store.js';
import {
  backoff,
  createClient,
  parseStoreUrl,
  type StoreClient,
  type StoreTarget,
} from '../store/redis/connection.js';
import { shardOf } from '../store/shard.js';
import { OncePerTurn } from '../util/once-per-turn.js';
import { ownerOfShard } from './cluster-homes.js';

/** What the home of `key` (a user, or a #group) on one node tells its counterpart on the others. */
export type FleetNotice =
  | { k: 'stored'; key: string; m: StoredMessage }
  | { k: 'eph'; key: string; d: Uint8Array }
  | { k: 'pres'; key: string; p: Presence }
  | { k: 'replace'; key: string; device: string }
  /** A group's membership changed: cached member lists are dropped. */
  | { k: 'group'; key: string };

export interface FleetHandler {
  /** A notice for a user or group homed on this worker. */
  notice(n: FleetNotice): void;
  /** The subscription came back after an outage: notices may have been missed. */
  resubscribed(): void;
}

export const HEARTBEAT_MS = 2_000;
export const NODE_TTL_MS = 10_000;
const REGISTRY = 'sb:fleet';
/** Where a starting worker announces its node, so the others know it before their next heartbeat. */
const ANNOUNCE = '{sb:fleet}';

/** HELLO: the device now lives on this node. Returns [previous node or '', 1 if the user went online]. */
const OPEN = `
local prev = redis.call('HGET', KEYS[1], ARGV[1])
local empty = redis.call('HLEN', KEYS[1]) == 0
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if empty then redis.call('SET', KEYS[2], ARGV[3]) end
return {prev or '', empty and 1 or 0}`;

/** Close: the device's entry goes if this node still holds it. Returns 1 if the user went offline. */
const CLOSE = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SET', KEYS[2], ARGV[3])
  return 1
end
return 0`;

/** Reap: every device of a dead node goes. Returns 1 if the user went offline. */
const REAP = `
local gone = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i + 1] == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    gone = gone + 1
  end
end
if gone > 0 and redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0`;

const devKey = (user: string): string => `{u:${user}}:dev`;
const sinceKey = (user: string): string => `{u:${user}}:since`;
const usersOf = (node: string): string => `sb:on:${node}`;
const channelOf = (node: string, worker: number): string => `{sb:${node}.w${worker + 1}}`;

/** A node's default name: the machine and the SBP port, unique in a fleet. */
export function defaultNodeName(port: number): string {
  return `${hostname()}-${port}`;
}

export interface FleetOptions {
  url: string;
  node: string;
  /** This worker's index and the node's worker count. */
  worker: number;
  workers: number;
  shardCount: number;
  log: Logger;
}

type Scripted = StoreClient & {
  sbFleetOpen(k1: string, k2: string, device: string, node: string, now: string): Promise<[string, number]>;
  sbFleetClose(k1: string, k2: string, device: string, node: string, now: string): Promise<number>;
  sbFleetReap(k1: string, k2: string, node: string, now: string): Promise<number>;
};

export class Fleet {
  handler: FleetHandler | null = null;
  /** Live nodes other than this one → their worker count. */
  private readonly peers = new Map<string, number>();
  private readonly queues = new Map<string, FleetNotice[]>();
  private readonly turn = new OncePerTurn(() => this.flush());
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private subscribedOnce = false;
  private closed = false;

  private constructor(
    private readonly opts: FleetOptions,
    private readonly cmd: Scripted,
    private readonly sub: StoreClient,
  ) {}

  get node(): string {
    return this.opts.node;
  }

  static async open(opts: FleetOptions): Promise<Fleet> {
    const target = parseStoreUrl(opts.url);
    const cmd = createClient(target, 2_000) as Scripted;
    cmd.defineCommand('sbFleetOpen', { numberOfKeys: 2, lua: OPEN });
    cmd.defineCommand('sbFleetClose', { numberOfKeys: 2, lua: CLOSE });
    cmd.defineCommand('sbFleetReap', { numberOfKeys: 2, lua: REAP });
    const sub = subscriber(target);
    const fleet = new Fleet(opts, cmd, sub);
    await cmd.connect();
    await fleet.beat();
    await fleet.subscribe();
    fleet.heartbeat = setInterval(() => {
      fleet.beat().catch((err) => opts.log.warn({ err: (err as Error).message }, 'fleet heartbeat failed'));
    }, HEARTBEAT_MS);
    fleet.heartbeat.unref();
    return fleet;
  }

  // ------------------------------------------------------------ notices

  /** To the home worker of `n.key` on every other live node. */
  broadcast(n: FleetNotice): void {
    for (const [node, workers] of this.peers) this.queue(node, workers, n);
  }

  /** To the home worker of `n.key` on `node`. */
  sendTo(node: string, n: FleetNotice): void {
    const workers = this.peers.get(node);
    if (workers !== undefined) this.queue(node, workers, n);
  }

  private queue(node: string, workers: number, n: FleetNotice): void {
    const channel = channelOf(node, ownerOfShard(shardOf(n.key, this.opts.shardCount), workers));
    const q = this.queues.get(channel);
    if (q) q.push(n);
    else this.queues.set(channel, [n]);
    this.turn.request();
  }

  private flush(): void {
    for (const [channel, notices] of this.queues) {
      // A lost batch is only a missed doorbell: sessions read what they missed from the inbox.
      this.cmd.spublish(channel, serialize(notices)).catch(() => {});
    }
    this.queues.clear();
  }

  private async subscribe(): Promise<void> {
    const channel = channelOf(this.opts.node, this.opts.worker);
    this.sub.on('smessageBuffer', (from: Buffer, message: Buffer) => {
      if (from.toString() === ANNOUNCE) {
        const { node, workers } = JSON.parse(message.toString()) as { node: string; workers: number };
        if (node !== this.opts.node) this.peers.set(node, workers);
        return;
      }
      let notices: FleetNotice[];
      try {
        notices = deserialize(message) as FleetNotice[];
      } catch (err) {
        this.opts.log.warn({ err: (err as Error).message }, 'unreadable fleet notice');
        return;
      }
      for (const n of notices) this.handler?.notice(n);
    });
    this.sub.on('ready', () => {
      // The first 'ready' is the start; any later one follows an outage, when notices may have been lost.
      if (this.subscribedOnce) this.handler?.resubscribed();
      this.subscribedOnce = true;
    });
    if (this.sub instanceof Redis) await this.sub.connect();
    await this.sub.ssubscribe(channel);
    await this.sub.ssubscribe(ANNOUNCE);
    await this.cmd.spublish(ANNOUNCE, JSON.stringify({ node: this.opts.node, workers: this.opts.workers }));
  }

  // ------------------------------------------------------------ registry and directory

  private async beat(): Promise<void> {
    const now = Date.now();
    await this.cmd.hset(REGISTRY, this.opts.node, JSON.stringify({ workers: this.opts.workers, beat: now }));
    const all = await this.cmd.hgetall(REGISTRY);
    this.peers.clear();
    for (const [node, value] of Object.entries(all)) {
      if (node === this.opts.node) continue;
      const entry = JSON.parse(value) as { workers: number; beat: number };
      if (now - entry.beat < NODE_TTL_MS) this.peers.set(node, entry.workers);
      else if (this.opts.worker === 0) await this.reap(node, now);
    }
  }

  /** A session of (user, device) opened on this node: the previous node of that device ('' if none). */
  async openDevice(
    user: string,
    device: string,
    now: number,
  ): Promise<{ previous: string; online: boolean }> {
    const [previous, online] = await this.cmd.sbFleetOpen(
      devKey(user),
      sinceKey(user),
      device,
      this.opts.node,
      String(now),
    );
    this.cmd.sadd(usersOf(this.opts.node), user).catch(() => {});
    return { previous, online: online === 1 };
  }

  /** The session of (user, device) on this node closed: true if the user is now offline everywhere. */
  async closeDevice(user: string, device: string, now: number, lastHere: boolean): Promise<boolean> {
    const offline = await this.cmd.sbFleetClose(
      devKey(user),
      sinceKey(user),
      device,
      this.opts.node,
      String(now),
    );
    if (lastHere) this.cmd.srem(usersOf(this.opts.node), user).catch(() => {});
    return offline === 1;
  }

  /** The user's presence across the fleet (devices of dead nodes do not count). */
  async presence(user: string): Promise<Presence> {
    const [devices, since] = await Promise.all([this.cmd.hvals(devKey(user)), this.cmd.get(sinceKey(user))]);
    const online = devices.some((node) => node === this.opts.node || this.peers.has(node));
    return { online, since: Number(since ?? 0) };
  }

  /**
   * A node stopped beating: one live node (the lock) removes its devices, announces the users that went
   * offline, and forgets it. Its users are walked in small steps (SSCAN).
   */
  private async reap(dead: string, now: number): Promise<void> {
    const lock = await this.cmd.set(`sb:reap:${dead}`, this.opts.node, 'PX', NODE_TTL_MS, 'NX');
    if (lock !== 'OK') return;
    let cursor = '0';
    do {
      const [next, users] = await this.cmd.sscan(usersOf(dead), cursor, 'COUNT', 200);
      cursor = next;
      for (const user of users) {
        const offline = await this.cmd.sbFleetReap(devKey(user), sinceKey(user), dead, String(now));
        if (offline === 1) {
          // To every node's home of the user, this one's included (it may be another worker here).
          const n: FleetNotice = { k: 'pres', key: user, p: { online: false, since: now } };
          this.broadcast(n);
          this.queue(this.opts.node, this.opts.workers, n);
        }
      }
    } while (cursor !== '0');
    await this.cmd.del(usersOf(dead));
    await this.cmd.hdel(REGISTRY, dead);
    this.opts.log.info({ node: dead }, 'reaped a dead node');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.flush();
    await Promise.allSettled([this.cmd.quit(), this.sub.quit()]);
  }
}

/** The subscriber connection: resubscribes by itself after a reconnect (ioredis). */
function subscriber(target: StoreTarget): StoreClient {
  if (target.kind === 'single') return new Redis(target.url, { lazyConnect: true, retryStrategy: backoff });
  return new Cluster(target.nodes, {
    shardedSubscribers: true,
    clusterRetryStrategy: backoff,
    redisOptions: { username: target.username, password: target.password },
  });
}
