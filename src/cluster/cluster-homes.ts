/**
 * Homes across the workers of one machine: each user's home is the worker that owns the user's shard
 * (shard s belongs to worker s mod N); calls for users homed here go to the local Home, the others over
 * the bus to their home worker, and what homes announce comes back over the bus to this worker's router.
 */
import { encodeDeliver } from '../protocol/index.js';
import type {
  GroupMessage,
  GroupOutcome,
  Home,
  Homes,
  Presence,
  SessionRef,
  WorkerSink,
} from '../server/home.js';
import type { Router } from '../server/router.js';
import type { AppendRequest, AppendResult, DeviceState, StoredMessage } from '../store/inbox-store.js';
import { shardOf } from '../store/shard.js';
import type { Bus, BusHandler } from './bus.js';

/** The worker that owns shard `shard` when there are `workers` workers. */
export function ownerOfShard(shard: number, workers: number): number {
  return shard % workers;
}

/** The shards worker `worker` owns. */
export function shardsOfWorker(worker: number, workers: number, shardCount: number): number[] {
  const shards: number[] = [];
  for (let s = 0; s < shardCount; s++) if (ownerOfShard(s, workers) === worker) shards.push(s);
  return shards;
}

type Notice =
  /** A stored message, its DELIVER encoded by the home: the receiver only hands the bytes on. */
  | { k: 'stored'; inbox: string; seq: number; d: Uint8Array }
  | { k: 'eph'; user: string; d: Uint8Array; x: SessionRef }
  | { k: 'replace'; sid: number }
  | { k: 'pres'; user: string; p: Presence };

/** The bus requests a home answers; each runs the Home method it names (see apply). */
const OPS = new Set([
  'open',
  'close',
  'append',
  'read',
  'ack',
  'eph',
  'watch',
  'unwatch',
  'join',
  'leave',
  'gsend',
  'geph',
] as const);
type Op = typeof OPS extends Set<infer T> ? T : never;

/** Runs bus request `op` on a Home: the one place its arguments are unpacked. */
function apply(home: Home, op: Op, a: unknown[]): unknown {
  switch (op) {
    case 'open':
      return home.openSession(a[0] as string, a[1] as string, a[2] as SessionRef, a[3] as number);
    case 'close':
      return home.closeSession(a[0] as string, a[1] as string, a[2] as SessionRef);
    case 'append':
      return home.append(a[0] as AppendRequest[]);
    case 'read':
      return home.read(a[0] as string, a[1] as number, a[2] as number);
    case 'ack':
      return home.ack(a[0] as string, a[1] as string, a[2] as number, a[3] as number);
    case 'eph':
      return home.ephemeral(a[0] as string, a[1] as Uint8Array, a[2] as SessionRef);
    case 'watch':
      return home.watch(a[0] as string, a[1] as number);
    case 'unwatch':
      return home.unwatch(a[0] as string, a[1] as number);
    case 'join':
      return home.join(a[0] as string, a[1] as string);
    case 'leave':
      return home.leave(a[0] as string, a[1] as string);
    case 'gsend':
      return home.sendGroup(a[0] as string, a[1] as GroupMessage);
    case 'geph':
      return home.ephemeralGroup(a[0] as string, a[1] as string, a[2] as Uint8Array, a[3] as SessionRef);
  }
}

export class ClusterHomes implements Homes, BusHandler {
  bus!: Bus;

  constructor(
    private readonly me: number,
    private readonly workers: number,
    private readonly shardCount: number,
    private home: Home | null,
    private readonly router: Router,
  ) {}

  /** Set once the local Home exists (it needs this object's sink). */
  attachHome(home: Home): void {
    this.home = home;
  }

  homeOf(user: string): number {
    // One worker is home to everyone: no hash of the id on every call.
    if (this.workers === 1) return 0;
    return ownerOfShard(shardOf(user, this.shardCount), this.workers);
  }

  /** What the local Home announces, delivered here or sent to the worker holding the sessions. */
  readonly sink: WorkerSink = {
    stored: (worker, inbox, m) => {
      if (worker === this.me) this.router.stored(inbox, m);
      else {
        const d = encodeDeliver(m);
        this.bus.notify(worker, { k: 'stored', inbox, seq: m.seq, d } satisfies Notice);
      }
    },
    ephemeral: (worker, user, d, x) => {
      if (worker === this.me) this.router.ephemeral(user, d, x);
      else this.bus.notify(worker, { k: 'eph', user, d, x } satisfies Notice);
    },
    replace: (worker, _user, _device, sid) => {
      if (worker === this.me) this.router.replace(sid);
      else this.bus.notify(worker, { k: 'replace', sid } satisfies Notice);
    },
    presence: (worker, user, p) => {
      if (worker === this.me) this.router.presence(user, p);
      else this.bus.notify(worker, { k: 'pres', user, p } satisfies Notice);
    },
  };

  // ------------------------------------------------------------ Homes (this worker's calls)

  /**
   * A call for the home of `key` (a user, or a `#group`): run on the local Home when it is ours, else
   * sent to its home worker as bus request `op` (handled by request() below with the same arguments).
   */
  private call<T>(key: string, op: Op, args: unknown[]): Promise<T> {
    const w = this.homeOf(key);
    if (w === this.me) return Promise.resolve(apply(this.local(), op, args) as T | Promise<T>);
    return this.bus.request(w, op, args) as Promise<T>;
  }

  /** The same, for a call whose answer nobody waits for. */
  private tell(key: string, op: Op, args: unknown[]): void {
    const w = this.homeOf(key);
    if (w === this.me) apply(this.local(), op, args);
    else this.bus.request(w, op, args).catch(() => {});
  }

  openSession(user: string, device: string, ref: SessionRef, now: number): Promise<DeviceState> {
    return this.call(user, 'open', [user, device, ref, now]);
  }

  closeSession(user: string, device: string, ref: SessionRef): void {
    this.tell(user, 'close', [user, device, ref]);
  }

  append(requests: readonly AppendRequest[]): Promise<AppendResult[]> {
    const n = requests.length;
    if (n === 0) return Promise.resolve([]);
    // Every direct message comes this way (each copy alone, or with the SQLite store in the router's
    // batches of a turn): straight to the home when every copy has the same one, with one worker always.
    const w = this.homeOf(requests[0]!.inbox);
    for (let i = 1; i < n; i++) if (this.homeOf(requests[i]!.inbox) !== w) return this.appendSpread(requests);
    if (w === this.me) return this.local().append(requests);
    return this.bus.request(w, 'append', [requests]) as Promise<AppendResult[]>;
  }

  /** Requests grouped by home worker, one bus request each; results back in request order. */
  private async appendSpread(requests: readonly AppendRequest[]): Promise<AppendResult[]> {
    const byWorker = new Map<number, number[]>();
    requests.forEach((r, i) => {
      const w = this.homeOf(r.inbox);
      const list = byWorker.get(w);
      if (list) list.push(i);
      else byWorker.set(w, [i]);
    });
    const results: AppendResult[] = new Array(requests.length);
    await Promise.all(
      [...byWorker].map(async ([w, indexes]) => {
        const part = indexes.map((i) => requests[i]!);
        const got =
          w === this.me
            ? await this.local().append(part)
            : ((await this.bus.request(w, 'append', [part])) as AppendResult[]);
        indexes.forEach((i, j) => {
          results[i] = got[j]!;
        });
      }),
    );
    return results;
  }

  read(user: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    return this.call(user, 'read', [user, afterSeq, limit]);
  }

  ack(user: string, device: string, seq: number, previousSeq: number): Promise<void> {
    return this.call(user, 'ack', [user, device, seq, previousSeq]);
  }

  ephemeral(user: string, bytes: Uint8Array, except: SessionRef): void {
    // Twice per ephemeral SEND: straight to a local home, as append() does.
    const w = this.homeOf(user);
    if (w === this.me) this.local().ephemeral(user, bytes, except);
    else this.bus.request(w, 'eph', [user, bytes, except]).catch(() => {});
  }

  watch(user: string, worker: number): Promise<Presence> {
    return this.call(user, 'watch', [user, worker]);
  }

  unwatch(user: string, worker: number): void {
    this.tell(user, 'unwatch', [user, worker]);
  }

  join(group: string, user: string): Promise<void> {
    return this.call(group, 'join', [group, user]);
  }

  leave(group: string, user: string): Promise<void> {
    return this.call(group, 'leave', [group, user]);
  }

  sendGroup(group: string, message: GroupMessage): Promise<GroupOutcome> {
    return this.call(group, 'gsend', [group, message]);
  }

  ephemeralGroup(
    group: string,
    sender: string,
    bytes: Uint8Array,
    except: SessionRef,
  ): Promise<GroupOutcome | null> {
    return this.call(group, 'geph', [group, sender, bytes, except]);
  }

  // ------------------------------------------------------------ BusHandler (other workers' calls)

  request(_peer: number, op: string, a: unknown[]): Promise<unknown> | unknown {
    if (!OPS.has(op as Op)) throw new Error(`unknown bus request ${op}`);
    return apply(this.local(), op as Op, a);
  }

  notify(_peer: number, message: unknown): void {
    const n = message as Notice;
    if (n.k === 'stored') this.router.storedEncoded(n.inbox, n.seq, n.d);
    else if (n.k === 'eph') this.router.ephemeral(n.user, n.d, n.x);
    else if (n.k === 'pres') this.router.presence(n.user, n.p);
    else this.router.replace(n.sid);
  }

  /** A worker's connection to us closed: its sessions are gone from our directory. */
  peerLeft(peer: number): void {
    this.home?.forgetWorker(peer);
  }

  /**
   * Our connection to a home came (back) up: a restarted home has an empty directory, so this worker's
   * sessions homed there register again (and catch up on what was stored meanwhile).
   */
  peerJoined(peer: number): void {
    for (const s of this.router.sessions()) {
      if (this.homeOf(s.user) !== peer) continue;
      s.reattach();
    }
    this.router.watchAgain((user) => this.homeOf(user) === peer);
  }

  /**
   * Notices from other nodes may have been missed (the fleet's subscription was down): every session here
   * registers again and catches up from the inbox, and watched users' presence is asked for again.
   */
  catchUp(): void {
    for (const s of this.router.sessions()) s.reattach();
    this.router.watchAgain(() => true);
  }

  private local(): Home {
    if (!this.home) throw new Error('this worker is not home to any user yet');
    return this.home;
  }
}
