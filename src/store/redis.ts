/**
 * The networked InboxStore: Redis (one server) or Redis Cluster, through ioredis. Any number of server
 * processes on any number of machines may share it: every rule that needs atomicity (dedupe, next seq,
 * caps, reclaim at the cap, cursors) runs inside a Lua script on the user's own slot.
 *
 * Keys (keys.ts): each user's seven keys share the hash tag `{u:<user>}` (inbox state, messages, kept
 * seqs, dedupe entries, their retention order, device cursors, device last-seen), a group's members are
 * the set `{g:<#group>}:members`, and the retention sweep's index is 64 buckets `{p:k}` spread over the
 * masters. Scripts (scripts.ts): `batch` (every write of one tick for one user), `purge` (one bounded sweep
 * step for one user), `read`, and `index` (one user's entry in its bucket, newest generation wins).
 *
 * Batching and cost. Writes (append, ack, openDevice, join, leave) are queued and sent once per event-loop
 * tick (on setImmediate): the writes of one tick for one user — however many appends, acks and HELLOs —
 * are ONE `batch` EVALSHA (split only past 256 ops or 1 MiB), and ioredis auto-pipelining writes every
 * command of the tick bound for one server in one pipeline. So a message costs 1/k of a script call, k
 * being the messages to its inbox in that tick, and the commands of a tick share one round trip per server.
 * A write's promise resolves when Redis has answered its script (the write is applied; with appendfsync
 * always it is fsynced first). A script whose user's sweep due time changed (the first message into an empty
 * inbox, the first ack since the last sweep, a HELLO, a sweep step) also returns an index generation; its `index` EVALSHA to the
 * user's bucket follows in the background (no caller waits for it; the sweep and close() do). Reads are
 * one command each (`read` EVALSHA, HGET, SMEMBERS), pipelined with the rest of their tick.
 *
 * Dedupe by (from, fromDevice, clientMsgId) per inbox; a message removed because every recent device
 * acknowledged it keeps its dedupe entry (a tombstone) until it is older than the retention period, when
 * the sweep drops the entry. Caps count the kept messages and their payload bytes.
 *
 * Sweep (purge): reads every bucket for users due before `now - retention` (pending acks are due at once),
 * spreads the step's budget over them and runs `purge` for each; each step returns the units of work
 * done, as the SQLite store counts them (0 = nothing left to do now).
 *
 * Durability full on Redis Cluster (redis/replica-ack.ts): the writes of a tick to one master go in one
 * pipeline with WAIT behind them, and count once a replica has them, so that a failover cannot take back
 * an ACCEPTED.
 *
 * Faults (connection.ts): while Redis is unreachable every call rejects promptly with
 * StoreUnavailableError; ioredis reconnects by itself and calls succeed again. A write whose reply was lost
 * may have been applied: the caller's re-send gets 'duplicate' with the original seq.
 */
import type { Logger } from 'pino';
import { OncePerTurn } from '../util/once-per-turn.js';
import {
  type AppendRequest,
  type AppendResult,
  badAppend,
  badCall,
  type CommitObserver,
  closedError,
  type DeviceState,
  type Durability,
  type InboxCaps,
  type InboxStore,
  type ReceiptSource,
  type StoredMessage,
  type StoreUnavailableError,
  unavailableError,
} from './inbox-store.js';
import { decodeMessage, encodeMessage } from './redis/codec.js';
import {
  checkDurability,
  createClient,
  parseStoreUrl,
  RedisConfigError,
  type StoreClient,
} from './redis/connection.js';
import {
  bucketKeys,
  bucketOf,
  dedupeKey,
  groupMembersKey,
  inboxKey,
  PURGE_BUCKETS,
  userKeys,
} from './redis/keys.js';
import { ReplicaAck, type WritePipeline } from './redis/replica-ack.js';
import { BATCH_LUA, INDEX_LUA, PURGE_LUA, READ_LUA } from './redis/scripts.js';

/** What the store logs through (a pino logger). */
export type StoreLog = Pick<Logger, 'warn' | 'info' | 'debug'>;

export interface RedisInboxStoreOptions {
  /** `redis://host:port[/db]` or `redis-cluster://host:port,host:port,…` (optionally `user:password@`). */
  url: string;
  caps: InboxCaps;
  /** 'full' refuses to open unless every master runs appendonly yes + appendfsync always. */
  durability: Durability;
  log?: StoreLog;
  /** How long a command may wait for its reply before it is rejected, ms (default 1000). */
  commandTimeoutMs?: number;
}

/** A batch script call carries at most this many ops or message bytes; more go into further calls. */
const MAX_BATCH_OPS = 256;
const MAX_BATCH_BYTES = 1024 * 1024;

/** The scripts, as ioredis defines them on the client (…Buffer: bulk replies as Buffers). */
interface Scripts {
  sbBatchBuffer(...args: (string | Buffer)[]): Promise<unknown[]>;
  sbPurgeBuffer(...args: string[]): Promise<unknown[]>;
  sbReadBuffer(...args: string[]): Promise<unknown[]>;
  sbIndex(...args: string[]): Promise<number>;
}

interface Settle<T> {
  resolve(value: T): void;
  reject(err: Error): void;
}

interface AppendCall extends Settle<AppendResult[]> {
  results: AppendResult[];
  left: number;
  failed: boolean;
}

type UserOp =
  | { kind: 'append'; req: AppendRequest; message: Buffer; call: AppendCall; index: number }
  | { kind: 'ack'; device: string; seq: number; done: Settle<void> }
  | { kind: 'open'; device: string; now: number; done: Settle<DeviceState> };

interface UserBatch {
  kind: 'user';
  user: string;
  ops: UserOp[];
  bytes: number;
  /** Once handed to sendUserBatchInOrder: settles when its ops are settled. */
  settled?: Promise<void>;
}

interface GroupBatch {
  kind: 'group';
  group: string;
  ops: { join: boolean; user: string; done: Settle<void> }[];
}

export class RedisInboxStore implements InboxStore {
  /** This tick's batches in call order, and the open (still growing) batch of each user and group. */
  private queue: (UserBatch | GroupBatch)[] = [];
  private readonly growingUsers = new Map<string, UserBatch>();
  private readonly growingGroups = new Map<string, GroupBatch>();
  private readonly turn = new OncePerTurn(() => this.flush());
  private closed = false;
  private closing: Promise<void> | null = null;
  /** Every command sent and not answered yet (copies that never reject), for close(). */
  private readonly inflight = new Set<Promise<void>>();
  /**
   * Writes sent whose callers' promises are not settled yet, and index writes not answered yet: what a
   * sweep step waits for, so that it sees what its caller has already seen acknowledged.
   */
  private readonly writes = new Set<Promise<void>>();
  /**
   * Per user, the outcome of its last write batch sent (null: applied; else why it failed), while that
   * batch is not answered: the user's next batch waits for it (see sendUserBatchInOrder).
   */
  private readonly userTail = new Map<string, Promise<Error | null>>();
  /** Per user, the batch waiting for that answer (not sent yet): later ticks' writes join it. */
  private readonly userWaiting = new Map<string, UserBatch>();
  /** Index writes that failed, newest generation per user: sent again before the next sweep step. */
  private readonly unsynced = new Map<string, { gen: number; due: string }>();
  private readonly scripts: Scripts;
  /**
   * Told about every per-tick flush once all its write scripts have answered (its pipeline's round
   * trip): the time from the flush, and the operations it carried. The metrics set it.
   */
  onCommit: CommitObserver | null = null;

  private constructor(
    private readonly client: StoreClient,
    private readonly caps: InboxCaps,
    /** With durability full on Redis Cluster: writes count once a replica has them. */
    private readonly replicaAck: ReplicaAck | null,
  ) {
    client.defineCommand('sbBatch', { numberOfKeys: 7, lua: BATCH_LUA });
    client.defineCommand('sbPurge', { numberOfKeys: 7, lua: PURGE_LUA });
    client.defineCommand('sbRead', { numberOfKeys: 2, lua: READ_LUA });
    client.defineCommand('sbIndex', { numberOfKeys: 2, lua: INDEX_LUA });
    this.scripts = client as unknown as Scripts;
  }

  /**
   * Connects and checks the servers' AOF settings against `durability`; rejects (and lets go of the
   * connection) when Redis cannot be reached or does not fit.
   */
  static async open(opts: RedisInboxStoreOptions): Promise<RedisInboxStore> {
    const { maxMessages, maxBytes, retentionMs } = opts.caps;
    if (!(maxMessages >= 0 && maxBytes >= 0 && retentionMs >= 0)) throw new RangeError('bad inbox caps');
    const caps: InboxCaps = {
      maxMessages: Math.min(maxMessages, Number.MAX_SAFE_INTEGER),
      maxBytes: Math.min(maxBytes, Number.MAX_SAFE_INTEGER),
      retentionMs: Math.min(retentionMs, Number.MAX_SAFE_INTEGER),
    };
    const commandTimeoutMs = opts.commandTimeoutMs ?? 1_000;
    const client = createClient(parseStoreUrl(opts.url), commandTimeoutMs);
    watchConnection(client, opts.log);
    let replicaAck: ReplicaAck | null;
    try {
      await client.connect();
      await checkDurability(client, opts.durability, opts.log);
      replicaAck = await ReplicaAck.forStore(client, opts.durability, commandTimeoutMs);
    } catch (err) {
      client.disconnect();
      throw err instanceof RedisConfigError ? err : unavailable(err);
    }
    return new RedisInboxStore(client, caps, replicaAck);
  }

  /** Queued for this tick's batch. The caller must not change the payload bytes until the promise settles. */
  append(requests: readonly AppendRequest[]): Promise<AppendResult[]> {
    if (this.closed) return Promise.reject(closedError());
    const n = requests.length;
    if (n === 0) return Promise.resolve([]);
    const messages = new Array<Buffer>(n);
    for (let i = 0; i < n; i++) {
      const bad = badAppend(requests[i]);
      if (bad !== null) return Promise.reject(new TypeError(bad));
      try {
        messages[i] = encodeMessage(requests[i]!);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return new Promise<AppendResult[]>((resolve, reject) => {
      const call: AppendCall = { results: new Array(n), left: n, failed: false, resolve, reject };
      for (let i = 0; i < n; i++) {
        const req = requests[i]!;
        this.enqueueUser(req.inbox, { kind: 'append', req, message: messages[i]!, call, index: i });
      }
    });
  }

  openDevice(user: string, device: string, now: number): Promise<DeviceState> {
    if (this.closed) return Promise.reject(closedError());
    const bad = badCall.openDevice(user, device, now);
    if (bad !== null) return Promise.reject(new TypeError(bad));
    return new Promise<DeviceState>((resolve, reject) => {
      this.enqueueUser(user, { kind: 'open', device, now, done: { resolve, reject } });
    });
  }

  ack(user: string, device: string, seq: number): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    const bad = badCall.ack(user, device, seq);
    if (bad !== null) return Promise.reject(new TypeError(bad));
    return new Promise<void>((resolve, reject) => {
      this.enqueueUser(user, { kind: 'ack', device, seq, done: { resolve, reject } });
    });
  }

  async read(user: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    if (this.closed) throw closedError();
    const bad = badCall.read(user, afterSeq, limit);
    if (bad !== null) throw new TypeError(bad);
    const max = Math.floor(Math.min(limit, Number.MAX_SAFE_INTEGER));
    if (max === 0) return [];
    const [, m, s] = userKeys(user);
    const reply = await this.command(() => this.scripts.sbReadBuffer(s, m, String(afterSeq), String(max)));
    const out: StoredMessage[] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) {
      out.push(decodeMessage(Number(reply[i]), reply[i + 1] as Buffer));
    }
    return out;
  }

  /** A read of the range, filtered here: receipts are rare next to reads, and need no script of their own. */
  async receiptSources(
    user: string,
    afterSeq: number,
    upToSeq: number,
    limit: number,
  ): Promise<ReceiptSource[]> {
    const out: ReceiptSource[] = [];
    let after = afterSeq;
    while (out.length < limit && after < upToSeq) {
      const page = await this.read(user, after, Math.min(512, upToSeq - after));
      if (page.length === 0) break;
      for (const m of page) {
        after = m.seq;
        if (m.seq > upToSeq || out.length >= limit) break;
        if (m.to === user && m.from !== user) {
          out.push({ seq: m.seq, from: m.from, fromDevice: m.fromDevice, clientMsgId: m.clientMsgId });
        }
      }
    }
    return out;
  }

  async lastSeq(user: string): Promise<number> {
    if (this.closed) throw closedError();
    const bad = badCall.lastSeq(user);
    if (bad !== null) throw new TypeError(bad);
    return Number(await this.command(() => this.client.hget(inboxKey(user), 'last')));
  }

  join(group: string, user: string): Promise<void> {
    return this.membership(true, group, user);
  }

  leave(group: string, user: string): Promise<void> {
    return this.membership(false, group, user);
  }

  /** Sorted by UTF-8 bytes, as the SQLite store sorts them. */
  async members(group: string): Promise<string[]> {
    if (this.closed) throw closedError();
    const bad = badCall.members(group);
    if (bad !== null) throw new TypeError(bad);
    const members = await this.command(() => this.client.smembersBuffer(groupMembersKey(group)));
    return members.sort(Buffer.compare).map((b) => b.toString('utf8'));
  }

  /**
   * Sends what is queued and waits for it, then one bounded sweep step: the users due in every bucket
   * (pending acks first, then the longest due), at most `maxMessages` of them, share the budget; each
   * gets one `purge` script. Returns the units of work done (≤ maxMessages; 0 = nothing left now).
   */
  async purge(now: number, maxMessages: number): Promise<number> {
    if (this.closed) throw closedError();
    const bad = badCall.purge(now);
    if (bad !== null) throw new TypeError(bad);
    const budget = Math.floor(Math.min(Math.max(maxMessages, 0), Number.MAX_SAFE_INTEGER));
    this.flush();
    // Twice: the batches answered in the first wait send index writes, which the second waits for.
    await Promise.all(this.writes);
    await Promise.all(this.writes);
    await Promise.all([...this.unsynced].map(([user, { gen, due }]) => this.writeIndex(user, gen, due)));
    if (budget === 0) return 0;
    const cutoff = String(now - this.caps.retentionMs);
    const due = await this.command(() =>
      Promise.all(
        Array.from({ length: PURGE_BUCKETS }, (_, k) =>
          this.client.zrangebyscore(bucketKeys(k)[0], '-inf', `(${cutoff}`, 'LIMIT', 0, budget),
        ),
      ),
    );
    const users = roundRobin(due, budget);
    if (users.length === 0) return 0;
    const share = Math.floor(budget / users.length);
    const extra = budget % users.length;
    const steps = await Promise.allSettled(
      users.map((user, i) =>
        this.command(() =>
          this.scripts.sbPurgeBuffer(...userKeys(user), cutoff, String(share + (i < extra ? 1 : 0))),
        ),
      ),
    );
    let work = 0;
    let failure: unknown = null;
    const indexed: Promise<void>[] = [];
    steps.forEach((step, i) => {
      if (step.status === 'rejected') {
        failure ??= step.reason;
        return;
      }
      const [done, gen, dueAt] = step.value;
      work += Number(done);
      indexed.push(this.writeIndex(users[i]!, Number(gen), String(dueAt)));
    });
    await Promise.all(indexed);
    if (failure !== null) throw failure;
    return work;
  }

  /** One PING round trip (readiness); rejects like any command when Redis does not answer in time. */
  async ping(): Promise<void> {
    if (this.closed) throw closedError();
    await this.command(() => this.client.ping());
  }

  /** Sends what is queued, waits for every answer, then quits the connection(s). Idempotent. */
  close(): Promise<void> {
    if (this.closing === null) {
      this.closed = true;
      this.flush();
      this.closing = (async () => {
        while (this.inflight.size > 0 || this.writes.size > 0) {
          await Promise.all([...this.inflight, ...this.writes]);
        }
        this.replicaAck?.stop();
        await this.client.quit().catch(() => undefined);
        this.client.disconnect();
      })();
    }
    return this.closing;
  }

  private membership(join: boolean, group: string, user: string): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    const bad = badCall.membership(join ? 'join' : 'leave', group, user);
    if (bad !== null) return Promise.reject(new TypeError(bad));
    return new Promise<void>((resolve, reject) => {
      let batch = this.growingGroups.get(group);
      if (batch === undefined) {
        batch = { kind: 'group', group, ops: [] };
        this.growingGroups.set(group, batch);
        this.queue.push(batch);
      }
      batch.ops.push({ join, user, done: { resolve, reject } });
      this.turn.request();
    });
  }

  private enqueueUser(user: string, op: UserOp): void {
    let batch = this.growingUsers.get(user);
    if (batch === undefined) {
      batch = { kind: 'user', user, ops: [], bytes: 0 };
      this.growingUsers.set(user, batch);
      this.queue.push(batch);
    }
    batch.ops.push(op);
    if (op.kind === 'append') batch.bytes += op.message.length;
    // A full batch stays in the queue; the user's next op starts another, sent after it.
    if (batch.ops.length >= MAX_BATCH_OPS || batch.bytes >= MAX_BATCH_BYTES) this.growingUsers.delete(user);
    this.turn.request();
  }

  /** Sends every queued batch, in call order. */
  private flush(): void {
    const batches = this.queue;
    if (batches.length === 0) return;
    this.queue = [];
    this.growingUsers.clear();
    this.growingGroups.clear();
    const observer = this.onCommit;
    const started = observer === null ? 0 : performance.now();
    const applied: Promise<void>[] = [];
    let ops = 0;
    for (const batch of batches) {
      applied.push(
        batch.kind === 'user'
          ? this.sendUserBatchInOrder(batch)
          : this.sendGroupBatch(batch.group, batch.ops),
      );
      ops += batch.ops.length;
    }
    if (observer !== null) {
      void Promise.all(applied).then(() => observer((performance.now() - started) / 1000, ops));
    }
  }

  /**
   * Sends a user's batch once its previous one has been answered, and only if that one was applied.
   * Callers rely on call order per inbox: a SEND whose append failed is re-sent by its client after the
   * SENDs that followed it, and the router fails the appends queued behind a failed one (the sender's own
   * copies) so that none overtakes the re-send. Pipelined batches would break that: during a failover
   * or a reconnect an earlier script call can fail (its server went away) while a later one, sent after
   * the client found the new master, succeeds. So a user has one call out at a time: what later ticks
   * write meanwhile joins the one waiting call (still one script call per round trip), and a call behind
   * a failed one fails with the same error without being sent.
   */
  private sendUserBatchInOrder(batch: UserBatch): Promise<void> {
    const { user, ops } = batch;
    const waiting = this.userWaiting.get(user);
    if (
      waiting?.settled !== undefined &&
      waiting.ops.length + ops.length <= MAX_BATCH_OPS &&
      waiting.bytes + batch.bytes <= MAX_BATCH_BYTES
    ) {
      // Not sent yet: this tick's writes go in the same call, after the ones already there.
      for (const op of ops) waiting.ops.push(op);
      waiting.bytes += batch.bytes;
      return waiting.settled;
    }
    const before = this.userTail.get(user);
    let outcome: Promise<Error | null>;
    if (before === undefined) outcome = this.sendUserBatch(user, ops);
    else {
      this.userWaiting.set(user, batch);
      outcome = before.then((failure) => {
        if (this.userWaiting.get(user) === batch) this.userWaiting.delete(user);
        return failure === null ? this.sendUserBatch(user, batch.ops) : failOps(batch.ops, failure);
      });
    }
    this.userTail.set(user, outcome);
    const settled = outcome.then(() => {
      if (this.userTail.get(user) === outcome) this.userTail.delete(user);
    });
    batch.settled = settled;
    track(this.writes, settled);
    return settled;
  }

  /**
   * Sends one user's writes of this tick as one script call; the promise settles them, never rejects,
   * and resolves with the failure (null when the script was applied).
   */
  private sendUserBatch(user: string, ops: UserOp[]): Promise<Error | null> {
    const { maxMessages, maxBytes, retentionMs } = this.caps;
    const args: (string | Buffer)[] = [
      ...userKeys(user),
      String(maxMessages),
      String(maxBytes),
      String(retentionMs),
    ];
    for (const op of ops) {
      if (op.kind === 'append') {
        const r = op.req;
        args.push(
          'a',
          dedupeKey(r.from, r.fromDevice, r.clientMsgId),
          String(r.timestamp),
          String(r.payload.byteLength),
          op.message,
        );
      } else if (op.kind === 'ack') args.push('k', op.device, String(op.seq));
      else args.push('o', op.device, String(op.now));
    }
    const run = this.replicated(
      args[0] as string,
      () => this.scripts.sbBatchBuffer(...args),
      (p) => (p as unknown as Scripts).sbBatchBuffer(...args),
    );
    const applied = this.command(run).then(
      (reply) => {
        const gen = Number(reply[0]);
        if (gen > 0) this.writeIndex(user, gen, String(reply[1]));
        let at = 2;
        for (const op of ops) {
          if (op.kind === 'append') {
            const [code, seq, timestamp] = [Number(reply[at]), Number(reply[at + 1]), Number(reply[at + 2])];
            at += 3;
            const { call } = op;
            call.results[op.index] =
              code === 3
                ? { status: 'full' }
                : { status: code === 1 ? 'stored' : 'duplicate', seq, timestamp };
            if (--call.left === 0 && !call.failed) call.resolve(call.results);
          } else if (op.kind === 'open') {
            op.done.resolve({ ackedSeq: Number(reply[at]), lastSeq: Number(reply[at + 1]) });
            at += 2;
          } else op.done.resolve();
        }
        return null;
      },
      (err: Error) => failOps(ops, err),
    );
    track(this.writes, applied);
    return applied;
  }

  /** One command per join or leave; the promise settles them and never rejects. */
  private sendGroupBatch(
    group: string,
    ops: { join: boolean; user: string; done: Settle<void> }[],
  ): Promise<void> {
    const key = groupMembersKey(group);
    const all: Promise<void>[] = [];
    for (const { join, user, done } of ops) {
      const run = this.replicated<unknown>(
        key,
        () => (join ? this.client.sadd(key, user) : this.client.srem(key, user)),
        (p) => (join ? p.sadd(key, user) : p.srem(key, user)),
      );
      const applied = this.command(run).then(() => done.resolve(), done.reject);
      track(this.writes, applied);
      all.push(applied);
    }
    return Promise.all(all).then(() => undefined);
  }

  /**
   * Writes a user's sweep-index entry in the background; a failure is kept and retried by the next sweep.
   * The promise never rejects.
   */
  private writeIndex(user: string, gen: number, due: string): Promise<void> {
    const [dueKey, genKey] = bucketKeys(bucketOf(user));
    const write = this.command(() => this.scripts.sbIndex(dueKey, genKey, user, String(gen), due)).then(
      () => {
        if (this.unsynced.get(user)?.gen === gen) this.unsynced.delete(user);
      },
      () => {
        const known = this.unsynced.get(user);
        if (known === undefined || known.gen < gen) this.unsynced.set(user, { gen, due });
      },
    );
    track(this.writes, write);
    return write;
  }

  /**
   * How one write on `key` is sent: `direct` on the client; with durability full on Redis Cluster, `queue`
   * puts it on the turn's pipeline to `key`'s master with WAIT behind it (replica-ack.ts), and its reply
   * comes once a replica has it.
   */
  private replicated<T>(
    key: string,
    direct: () => Promise<T>,
    queue: (p: WritePipeline) => void,
  ): () => Promise<T> {
    const ack = this.replicaAck;
    if (ack === null) return direct;
    return () => ack.write(key, queue).then(([reply]) => reply as T);
  }

  /** Runs one command (or a few), tracked for close(); any failure becomes a StoreUnavailableError. */
  private command<T>(run: () => Promise<T>): Promise<T> {
    let promise: Promise<T>;
    try {
      promise = run().catch((err: unknown) => {
        throw unavailable(err);
      });
    } catch (err) {
      promise = Promise.reject(unavailable(err));
    }
    track(this.inflight, promise);
    return promise;
  }
}

/** Rejects every op of a batch with `err` (an append's call once); returns `err`. */
function failOps(ops: UserOp[], err: Error): Error {
  for (const op of ops) {
    if (op.kind !== 'append') op.done.reject(err);
    else if (!op.call.failed) {
      op.call.failed = true;
      op.call.reject(err);
    }
  }
  return err;
}

/** Keeps a copy of `promise` that never rejects in `set` until it settles. */
function track(set: Set<Promise<void>>, promise: Promise<unknown>): void {
  const copy = promise.then(
    () => undefined,
    () => undefined,
  );
  set.add(copy);
  void copy.then(() => set.delete(copy));
}

/** Logs connection loss and recovery once each (not every failed reconnect attempt). */
function watchConnection(client: StoreClient, log: StoreLog | undefined): void {
  let lost = false;
  client.on('error', (err: Error) => {
    if (!lost) log?.warn({ err: err.message }, 'redis store: connection error');
    lost = true;
  });
  client.on('node error', (err: Error, node: string) => {
    log?.debug({ err: err.message, node }, 'redis store: cluster node error');
  });
  client.on('ready', () => {
    if (lost) log?.info('redis store: connected again');
    lost = false;
  });
}

/** Users from the buckets' lists taken in turn (no bucket starves the others), at most `max`. */
function roundRobin(lists: readonly string[][], max: number): string[] {
  const out: string[] = [];
  for (let round = 0; out.length < max; round++) {
    let any = false;
    for (const list of lists) {
      const user = list[round];
      if (user === undefined) continue;
      any = true;
      out.push(user);
      if (out.length === max) break;
    }
    if (!any) break;
  }
  return out;
}

function unavailable(err: unknown): StoreUnavailableError {
  return unavailableError('redis store', err);
}
