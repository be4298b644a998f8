/**
 * Homes: where a user's (and a group's) state lives. The *home* of a user owns its inbox (through an
 * InboxStore), the directory of where its sessions are (which worker, which session), its presence and
 * who watches it; the home of a group owns its membership and fans its messages out. Every stored
 * message, ephemeral one, receipt and presence change is announced by the home to the workers holding
 * the sessions concerned, so the same code serves one worker and many: with one worker the Home itself
 * is the Homes every call goes to; with several, the cluster routes each call to the home worker of its
 * user or group over the bus (src/cluster/).
 */

import type { Fleet, FleetNotice } from '../cluster/fleet.js';
import { encodeReceipts } from '../protocol/index.js';
import {
  type AppendRequest,
  type AppendResult,
  type DeviceState,
  type InboxStore,
  type ReceiptSource,
  type StoredMessage,
  StoreUnavailableError,
} from '../store/inbox-store.js';
import { GroupFanout, type GroupMessage, type GroupOutcome } from './groups.js';

/** One session somewhere in the cluster: the worker holding it and its id there. */
export interface SessionRef {
  worker: number;
  sid: number;
}

/** No session: receipts go to every session of their user. */
export const NO_SESSION: SessionRef = { worker: -1, sid: 0 };

/** A user's presence (PROTOCOL.md section 6): `since` is the time of the last change, 0 if never seen. */
export interface Presence {
  online: boolean;
  since: number;
}

/** What a worker asks of users' and groups' homes; the Home answers for its own, the cluster routes. */
export interface Homes {
  /** Registers the session in its user's directory (replacing an older one of the device) and opens the device. */
  openSession(user: string, device: string, ref: SessionRef, now: number): Promise<DeviceState>;
  /** Removes the session from the directory, if it is still the registered one. */
  closeSession(user: string, device: string, ref: SessionRef): void;
  append(requests: readonly AppendRequest[]): Promise<AppendResult[]>;
  read(user: string, afterSeq: number, limit: number): Promise<StoredMessage[]>;
  /**
   * Moves the device's cursor from `previousSeq` to `seq`; the senders of the direct messages this newly
   * covers get a RECEIPT on their connected devices.
   */
  ack(user: string, device: string, seq: number, previousSeq: number): Promise<void>;
  /** Frame bytes (an ephemeral DELIVER, RECEIPTs) for every connected session of `user` except `except`. */
  ephemeral(user: string, bytes: Uint8Array, except: SessionRef): void;
  /** Worker `worker` watches `user` from now on; resolves with its presence now. */
  watch(user: string, worker: number): Promise<Presence>;
  /** Worker `worker` no longer watches `user`. */
  unwatch(user: string, worker: number): void;
  join(group: string, user: string): Promise<void>;
  leave(group: string, user: string): Promise<void>;
  /** Stores a durable group SEND in every member's inbox (PROTOCOL.md section 5). */
  sendGroup(group: string, message: GroupMessage): Promise<GroupOutcome>;
  /** An ephemeral group SEND: to every member's connected sessions but `except`; null when sent. */
  ephemeralGroup(
    group: string,
    sender: string,
    bytes: Uint8Array,
    except: SessionRef,
  ): Promise<GroupOutcome | null>;
}

/** What a home tells the workers that hold sessions. */
export interface WorkerSink {
  stored(worker: number, inbox: string, message: StoredMessage): void;
  ephemeral(worker: number, user: string, bytes: Uint8Array, except: SessionRef): void;
  replace(worker: number, user: string, device: string, sid: number): void;
  presence(worker: number, user: string, presence: Presence): void;
}

/** How many receipts one lookup in the store returns at most. */
const RECEIPT_PAGE = 512;

/**
 * After an append from a device to an inbox fails, how long this home refuses that device's later
 * appends to that inbox (those with a greater clientMsgId) unless the failed one comes again first.
 * The sender's session stops later SENDs itself once it hears of the failure (its send barrier), but
 * appends it issued meanwhile may reach this home after the failure — from another worker, over the
 * bus — and must not be stored ahead of the failed one's re-send. A few seconds covers that transit
 * many times over and then lets go, so a message that is never re-sent blocks nothing for long.
 */
const FAILED_APPEND_GUARD_MS = 5_000;

/**
 * The home of the users (and groups) of the shards a worker owns: their InboxStore, session directory,
 * presence and watchers, and the group fan-out.
 */
export class Home implements Homes {
  /**
   * user → its registered sessions, one entry per device (usually one or two: an array, not a Map,
   * since a home holds an entry for every connected user).
   */
  private readonly directory = new Map<string, DirectoryEntry[]>();
  /** user → the time its presence last changed (users seen since this home started). */
  private readonly presenceSince = new Map<string, number>();
  /** user → the workers watching it. */
  private readonly watchers = new Map<string, Set<number>>();
  private readonly groups: GroupFanout;
  /** Where calls for users and groups homed elsewhere go (this Home itself with one worker). */
  private routes: Homes = this;
  /** The other nodes of a fleet on Redis (null on one machine). */
  private fleet: Fleet | null = null;
  /** inbox, sender and device → the lowest clientMsgId that failed, and until when (FAILED_APPEND_GUARD_MS). */
  private readonly failedAppends = new Map<string, { clientMsgId: number; until: number }>();
  /** The latest `until` in failedAppends: past it every entry has expired and the map is emptied. */
  private failedUntil = 0;

  constructor(
    readonly store: InboxStore,
    private readonly sink: WorkerSink,
    private readonly clock: () => number = Date.now,
  ) {
    this.groups = new GroupFanout(store, (requests) => this.routes.append(requests));
  }

  /** With several workers: the cluster's routing, for the appends, receipts and ephemerals that leave this home. */
  routeVia(routes: Homes): void {
    this.routes = routes;
  }

  /**
   * In a fleet: the session directory and presence are also kept in Redis for every node, and what this
   * home announces to its node's workers goes to the same user's home on the other nodes too.
   */
  joinFleet(fleet: Fleet): void {
    this.fleet = fleet;
  }

  // ------------------------------------------------------------ sessions and presence

  async openSession(user: string, device: string, ref: SessionRef, now: number): Promise<DeviceState> {
    const entry: DirectoryEntry = { device, worker: ref.worker, sid: ref.sid };
    const entries = this.directory.get(user);
    if (!entries) {
      this.directory.set(user, [entry]);
      if (!this.fleet) this.presenceChanged(user, true, this.clock());
    } else {
      const i = entries.findIndex((e) => e.device === device);
      if (i < 0) entries.push(entry);
      else {
        // A replaced session is no presence change.
        const previous = entries[i]!;
        entries[i] = entry;
        if (previous.worker !== ref.worker || previous.sid !== ref.sid) {
          this.sink.replace(previous.worker, user, device, previous.sid);
        }
      }
    }
    // Registered before the store answers, so no message stored meanwhile misses the session.
    if (!this.fleet) return this.store.openDevice(user, device, now);
    const [state, fleetState] = await Promise.all([
      this.store.openDevice(user, device, now),
      this.fleet.openDevice(user, device, now),
    ]);
    if (fleetState.previous !== '' && fleetState.previous !== this.fleet.node) {
      this.fleet.sendTo(fleetState.previous, { k: 'replace', key: user, device });
    }
    if (fleetState.online) this.presenceChanged(user, true, now);
    return state;
  }

  closeSession(user: string, device: string, ref: SessionRef): void {
    const entries = this.directory.get(user);
    if (!entries) return;
    const i = entries.findIndex((e) => e.device === device && e.worker === ref.worker && e.sid === ref.sid);
    if (i < 0) return;
    entries.splice(i, 1);
    if (entries.length === 0) this.directory.delete(user);
    if (!this.fleet) {
      if (entries.length === 0) this.presenceChanged(user, false, this.clock());
      return;
    }
    const now = this.clock();
    this.fleet.closeDevice(user, device, now, entries.length === 0).then(
      (offline) => {
        if (offline) this.presenceChanged(user, false, now);
      },
      () => {
        // Redis away: the device stays listed until this node's entries are reaped or it opens again.
      },
    );
  }

  /** A worker is gone: its sessions are no longer anywhere, and it watches no one. */
  forgetWorker(worker: number): void {
    for (const [user, entries] of this.directory) {
      for (const e of [...entries]) if (e.worker === worker) this.closeSession(user, e.device, e);
    }
    for (const [user, workers] of this.watchers) {
      workers.delete(worker);
      if (workers.size === 0) this.watchers.delete(user);
    }
  }

  async watch(user: string, worker: number): Promise<Presence> {
    const workers = this.watchers.get(user);
    if (workers) workers.add(worker);
    else this.watchers.set(user, new Set([worker]));
    if (this.fleet) return this.fleet.presence(user);
    return { online: this.directory.has(user), since: this.presenceSince.get(user) ?? 0 };
  }

  unwatch(user: string, worker: number): void {
    const workers = this.watchers.get(user);
    if (!workers?.delete(worker)) return;
    if (workers.size === 0) this.watchers.delete(user);
  }

  /** A presence change decided here: this node's watchers, and in a fleet the other nodes' homes. */
  private presenceChanged(user: string, online: boolean, since: number): void {
    this.tellWatchers(user, { online, since });
    this.fleet?.broadcast({ k: 'pres', key: user, p: { online, since } });
  }

  private tellWatchers(user: string, presence: Presence): void {
    this.presenceSince.set(user, presence.since);
    const workers = this.watchers.get(user);
    if (workers) for (const w of workers) this.sink.presence(w, user, presence);
  }

  /** Users with at least one registered session. */
  get onlineUsers(): number {
    return this.directory.size;
  }

  // ------------------------------------------------------------ inboxes

  append(requests: readonly AppendRequest[]): Promise<AppendResult[]> {
    if (this.failedAppends.size > 0) {
      const refused = this.refusedAfterFailure(requests);
      if (refused !== null) return Promise.reject(refused);
    }
    // A continuation, not async/await: on the path of every direct message (see Router.sendDirect).
    return this.store.append(requests).then(
      (results) => this.announceStored(requests, results),
      (err: unknown) => {
        this.rememberFailure(requests);
        throw err;
      },
    );
  }

  private rememberFailure(requests: readonly AppendRequest[]): void {
    const until = this.clock() + FAILED_APPEND_GUARD_MS;
    this.failedUntil = until;
    for (const r of requests) {
      const key = failureKey(r);
      const known = this.failedAppends.get(key);
      if (known === undefined || r.clientMsgId < known.clientMsgId) {
        this.failedAppends.set(key, { clientMsgId: r.clientMsgId, until });
      } else known.until = until;
    }
  }

  /** Why these appends may not be stored now (see FAILED_APPEND_GUARD_MS), or null. */
  private refusedAfterFailure(requests: readonly AppendRequest[]): StoreUnavailableError | null {
    const now = this.clock();
    if (now > this.failedUntil) {
      // All expired: an empty map again, so appends stop paying for the lookup (and nothing is kept).
      this.failedAppends.clear();
      return null;
    }
    for (const r of requests) {
      const key = failureKey(r);
      const failed = this.failedAppends.get(key);
      if (failed === undefined) continue;
      if (now > failed.until || r.clientMsgId <= failed.clientMsgId) {
        this.failedAppends.delete(key); // expired, or the failed one (or an earlier one) comes again
        continue;
      }
      return new StoreUnavailableError(
        `message ${failed.clientMsgId} from ${r.from}/${r.fromDevice} to ${r.inbox} failed; it must be stored first`,
      );
    }
    return null;
  }

  /** Tells the sessions' workers (and the fleet) about each copy that was newly stored. */
  private announceStored(requests: readonly AppendRequest[], results: AppendResult[]): AppendResult[] {
    for (let i = 0; i < results.length; i++) {
      const r = results[i]!;
      if (r.status !== 'stored') continue;
      const req = requests[i]!;
      if (!this.fleet && !this.directory.has(req.inbox)) continue;
      const message: StoredMessage = {
        seq: r.seq,
        timestamp: r.timestamp,
        from: req.from,
        fromDevice: req.fromDevice,
        clientMsgId: req.clientMsgId,
        to: req.to,
        payload: req.payload,
      };
      this.storedHere(req.inbox, message);
      this.fleet?.broadcast({ k: 'stored', key: req.inbox, m: message });
    }
    return results;
  }

  /** Tells the workers holding `inbox`'s sessions on this node that `message` was stored. */
  private storedHere(inbox: string, message: StoredMessage): void {
    const entries = this.directory.get(inbox);
    if (entries === undefined) return;
    if (entries.length === 1) this.sink.stored(entries[0]!.worker, inbox, message);
    else for (const w of workersOf(entries)) this.sink.stored(w, inbox, message);
  }

  read(user: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    return this.store.read(user, afterSeq, limit);
  }

  async ack(user: string, device: string, seq: number, previousSeq: number): Promise<void> {
    await this.store.ack(user, device, seq);
    this.sendReceipts(user, device, previousSeq, seq).catch(() => {
      // Receipts are not stored: one the store could not look up is not sent.
    });
  }

  /**
   * One RECEIPT per direct message addressed to `user` (not its own copies, group messages or messages
   * to itself) in (fromSeq, toSeq], to the sender's connected devices; one write per sender and page.
   */
  private async sendReceipts(user: string, device: string, fromSeq: number, toSeq: number): Promise<void> {
    let after = fromSeq;
    for (;;) {
      const page = await this.store.receiptSources(user, after, toSeq, RECEIPT_PAGE);
      if (page.length === 0) return;
      const now = this.clock();
      const bySender = new Map<string, ReceiptSource[]>();
      for (const m of page) {
        const list = bySender.get(m.from);
        if (list) list.push(m);
        else bySender.set(m.from, [m]);
      }
      for (const [sender, sources] of bySender) {
        this.routes.ephemeral(sender, encodeReceipts(user, device, now, sources), NO_SESSION);
      }
      if (page.length < RECEIPT_PAGE) return;
      after = page[page.length - 1]!.seq;
    }
  }

  ephemeral(user: string, bytes: Uint8Array, except: SessionRef): void {
    this.ephemeralHere(user, bytes, except);
    this.fleet?.broadcast({ k: 'eph', key: user, d: bytes });
  }

  private ephemeralHere(user: string, bytes: Uint8Array, except: SessionRef): void {
    const entries = this.directory.get(user);
    if (entries === undefined) return;
    if (entries.length === 1) {
      const only = entries[0]!;
      // The sender's own user with no other device (every ephemeral SEND asks): nobody to tell.
      if (only.sid === except.sid && only.worker === except.worker) return;
      this.sink.ephemeral(only.worker, user, bytes, except);
    } else for (const w of workersOf(entries)) this.sink.ephemeral(w, user, bytes, except);
  }

  /** What the same user's (or group's) home on another node announced. */
  fleetNotice(n: FleetNotice): void {
    switch (n.k) {
      case 'stored':
        this.storedHere(n.key, n.m);
        return;
      case 'eph':
        this.ephemeralHere(n.key, n.d, NO_SESSION);
        return;
      case 'pres':
        this.tellWatchers(n.key, n.p);
        return;
      case 'replace': {
        // The device opened a session on another node: the one here is replaced, and leaves the directory
        // at once (its close must not remove the device's new entry in the fleet's directory).
        const entries = this.directory.get(n.key);
        const i = entries?.findIndex((e) => e.device === n.device) ?? -1;
        if (i < 0) return;
        const [e] = entries!.splice(i, 1);
        if (entries!.length === 0) this.directory.delete(n.key);
        this.sink.replace(e!.worker, n.key, n.device, e!.sid);
        return;
      }
      case 'group':
        this.groups.forget(n.key);
        return;
    }
  }

  // ------------------------------------------------------------ groups

  async join(group: string, user: string): Promise<void> {
    await this.groups.join(group, user);
    this.fleet?.broadcast({ k: 'group', key: group });
  }

  async leave(group: string, user: string): Promise<void> {
    await this.groups.leave(group, user);
    this.fleet?.broadcast({ k: 'group', key: group });
  }

  sendGroup(group: string, message: GroupMessage): Promise<GroupOutcome> {
    return this.groups.send(group, message, this.clock());
  }

  async ephemeralGroup(
    group: string,
    sender: string,
    bytes: Uint8Array,
    except: SessionRef,
  ): Promise<GroupOutcome | null> {
    const members = await this.groups.audience(group, sender);
    if (!Array.isArray(members)) return members;
    for (const member of members) this.routes.ephemeral(member, bytes, except);
    return null;
  }
}

export type { GroupMessage, GroupOutcome };

interface DirectoryEntry {
  device: string;
  worker: number;
  sid: number;
}

/** The workers holding a user's sessions, each once (the callers take the one-session case first). */
function workersOf(entries: readonly DirectoryEntry[]): number[] {
  return [...new Set(entries.map((e) => e.worker))];
}

/** The failedAppends key of an append: its inbox, sender and sender's device. */
function failureKey(r: AppendRequest): string {
  return JSON.stringify([r.inbox, r.from, r.fromDevice]);
}
