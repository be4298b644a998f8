/**
 * Homes across the workers of one machine: each user's home is the worker that owns the user's shard
 * (shard s belongs to worker s mod N); calls for users homed here go to the local Home, the others over
 * the bus to their home worker, and what homes announce comes back over the bus to this worker's router.
 */
import { encodeFrame } from '../protocol/index.js';
import type { Home, Homes, SessionRef, WorkerSink } from '../server/home.js';
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
  | { k: 'replace'; sid: number };

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
    return ownerOfShard(shardOf(user, this.shardCount), this.workers);
  }

  /** What the local Home announces, delivered here or sent to the worker holding the sessions. */
  readonly sink: WorkerSink = {
    stored: (worker, inbox, m) => {
      if (worker === this.me) this.router.stored(inbox, m);
      else {
        const d = encodeFrame({ type: 'DELIVER', ...m });
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
  };

  // ------------------------------------------------------------ Homes (this worker's calls)

  openSession(user: string, device: string, ref: SessionRef, now: number): Promise<DeviceState> {
    const w = this.homeOf(user);
    if (w === this.me) return this.local().openSession(user, device, ref, now);
    return this.bus.request(w, 'open', [user, device, ref, now]) as Promise<DeviceState>;
  }

  closeSession(user: string, device: string, ref: SessionRef): void {
    const w = this.homeOf(user);
    if (w === this.me) this.local().closeSession(user, device, ref);
    else this.bus.request(w, 'close', [user, device, ref]).catch(() => {});
  }

  /** Requests grouped by home worker, one bus request each; results back in request order. */
  async append(requests: readonly AppendRequest[]): Promise<AppendResult[]> {
    if (requests.length === 1) {
      const w = this.homeOf(requests[0]!.inbox);
      if (w === this.me) return this.local().append(requests);
      return (await this.bus.request(w, 'append', [requests])) as AppendResult[];
    }
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
    const w = this.homeOf(user);
    if (w === this.me) return this.local().read(user, afterSeq, limit);
    return this.bus.request(w, 'read', [user, afterSeq, limit]) as Promise<StoredMessage[]>;
  }

  ack(user: string, device: string, seq: number): Promise<void> {
    const w = this.homeOf(user);
    if (w === this.me) return this.local().ack(user, device, seq);
    return this.bus.request(w, 'ack', [user, device, seq]) as Promise<void>;
  }

  ephemeral(user: string, deliver: Uint8Array, except: SessionRef): void {
    const w = this.homeOf(user);
    if (w === this.me) this.local().ephemeral(user, deliver, except);
    else this.bus.request(w, 'eph', [user, deliver, except]).catch(() => {});
  }

  // ------------------------------------------------------------ BusHandler (other workers' calls)

  request(_peer: number, op: string, a: unknown[]): Promise<unknown> | unknown {
    const home = this.local();
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
        return home.ack(a[0] as string, a[1] as string, a[2] as number);
      case 'eph':
        return home.ephemeral(a[0] as string, a[1] as Uint8Array, a[2] as SessionRef);
      default:
        throw new Error(`unknown bus request ${op}`);
    }
  }

  notify(_peer: number, message: unknown): void {
    const n = message as Notice;
    if (n.k === 'stored') this.router.storedEncoded(n.inbox, n.seq, n.d);
    else if (n.k === 'eph') this.router.ephemeral(n.user, n.d, n.x);
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
  }

  private local(): Home {
    if (!this.home) throw new Error('this worker is not home to any user yet');
    return this.home;
  }
}
