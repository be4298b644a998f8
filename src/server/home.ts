/**
 * Homes: where a user's state lives. The *home* of a user owns its inbox (through an InboxStore) and
 * the directory of where its sessions are (which worker, which session). Every stored message and
 * every ephemeral one is announced by the home to the workers holding the user's sessions, so the
 * same code serves one worker and many: with one worker every call is local, with several the
 * cluster routes each call to the user's home worker over the bus (src/cluster/).
 */
import type {
  AppendRequest,
  AppendResult,
  DeviceState,
  InboxStore,
  StoredMessage,
} from '../store/inbox-store.js';

/** One session somewhere in the cluster: the worker holding it and its id there. */
export interface SessionRef {
  worker: number;
  sid: number;
}

/** What a worker asks of users' homes; implemented locally (LocalHomes) and over the bus. */
export interface Homes {
  /** Registers the session in its user's directory (replacing an older one of the device) and opens the device. */
  openSession(user: string, device: string, ref: SessionRef, now: number): Promise<DeviceState>;
  /** Removes the session from the directory, if it is still the registered one. */
  closeSession(user: string, device: string, ref: SessionRef): void;
  append(requests: readonly AppendRequest[]): Promise<AppendResult[]>;
  read(user: string, afterSeq: number, limit: number): Promise<StoredMessage[]>;
  ack(user: string, device: string, seq: number): Promise<void>;
  /** An ephemeral DELIVER for every connected session of `user` except `except`. */
  ephemeral(user: string, deliver: Uint8Array, except: SessionRef): void;
}

/** What a home tells the workers that hold sessions. */
export interface WorkerSink {
  stored(worker: number, inbox: string, message: StoredMessage): void;
  ephemeral(worker: number, user: string, deliver: Uint8Array, except: SessionRef): void;
  replace(worker: number, user: string, device: string, sid: number): void;
}

/**
 * The home of the users of the shards a worker owns: their InboxStore and their session directory.
 */
export class Home {
  /**
   * user → its registered sessions, one entry per device (usually one or two: an array, not a Map,
   * since a home holds an entry for every connected user).
   */
  private readonly directory = new Map<string, DirectoryEntry[]>();

  constructor(
    readonly store: InboxStore,
    private readonly sink: WorkerSink,
  ) {}

  async openSession(user: string, device: string, ref: SessionRef, now: number): Promise<DeviceState> {
    const entry: DirectoryEntry = { device, worker: ref.worker, sid: ref.sid };
    const entries = this.directory.get(user);
    if (!entries) this.directory.set(user, [entry]);
    else {
      const i = entries.findIndex((e) => e.device === device);
      if (i < 0) entries.push(entry);
      else {
        const previous = entries[i]!;
        entries[i] = entry;
        if (previous.worker !== ref.worker || previous.sid !== ref.sid) {
          this.sink.replace(previous.worker, user, device, previous.sid);
        }
      }
    }
    // Registered before the store answers, so no message stored meanwhile misses the session.
    return this.store.openDevice(user, device, now);
  }

  closeSession(user: string, device: string, ref: SessionRef): void {
    const entries = this.directory.get(user);
    if (!entries) return;
    const i = entries.findIndex((e) => e.device === device && e.worker === ref.worker && e.sid === ref.sid);
    if (i < 0) return;
    entries.splice(i, 1);
    if (entries.length === 0) this.directory.delete(user);
  }

  /** A worker is gone: its sessions are no longer anywhere. */
  forgetWorker(worker: number): void {
    for (const [user, entries] of this.directory) {
      const kept = entries.filter((e) => e.worker !== worker);
      if (kept.length === 0) this.directory.delete(user);
      else if (kept.length !== entries.length) this.directory.set(user, kept);
    }
  }

  async append(requests: readonly AppendRequest[]): Promise<AppendResult[]> {
    const results = await this.store.append(requests);
    for (let i = 0; i < results.length; i++) {
      const r = results[i]!;
      if (r.status !== 'stored') continue;
      const req = requests[i]!;
      const entries = this.directory.get(req.inbox);
      if (!entries) continue;
      const message: StoredMessage = {
        seq: r.seq,
        timestamp: r.timestamp,
        from: req.from,
        fromDevice: req.fromDevice,
        clientMsgId: req.clientMsgId,
        to: req.to,
        payload: req.payload,
      };
      for (const w of workersOf(entries)) this.sink.stored(w, req.inbox, message);
    }
    return results;
  }

  read(user: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    return this.store.read(user, afterSeq, limit);
  }

  ack(user: string, device: string, seq: number): Promise<void> {
    return this.store.ack(user, device, seq);
  }

  ephemeral(user: string, deliver: Uint8Array, except: SessionRef): void {
    const entries = this.directory.get(user);
    if (entries) for (const w of workersOf(entries)) this.sink.ephemeral(w, user, deliver, except);
  }

  /** Users with at least one registered session. */
  get onlineUsers(): number {
    return this.directory.size;
  }
}

interface DirectoryEntry {
  device: string;
  worker: number;
  sid: number;
}

/** The distinct workers holding these sessions. */
function workersOf(entries: readonly DirectoryEntry[]): number[] {
  if (entries.length === 1) return [entries[0]!.worker];
  return [...new Set(entries.map((e) => e.worker))];
}

/** One worker that is home to every user. */
export class LocalHomes implements Homes {
  constructor(readonly home: Home) {}

  openSession(user: string, device: string, ref: SessionRef, now: number): Promise<DeviceState> {
    return this.home.openSession(user, device, ref, now);
  }
  closeSession(user: string, device: string, ref: SessionRef): void {
    this.home.closeSession(user, device, ref);
  }
  append(requests: readonly AppendRequest[]): Promise<AppendResult[]> {
    return this.home.append(requests);
  }
  read(user: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    return this.home.read(user, afterSeq, limit);
  }
  ack(user: string, device: string, seq: number): Promise<void> {
    return this.home.ack(user, device, seq);
  }
  ephemeral(user: string, deliver: Uint8Array, except: SessionRef): void {
    this.home.ephemeral(user, deliver, except);
  }
}
