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
  /** user → device → the session registered for it. */
  private readonly directory = new Map<string, Map<string, SessionRef>>();

  constructor(
    readonly store: InboxStore,
    private readonly sink: WorkerSink,
  ) {}

  async openSession(user: string, device: string, ref: SessionRef, now: number): Promise<DeviceState> {
    let devices = this.directory.get(user);
    if (!devices) {
      devices = new Map();
      this.directory.set(user, devices);
    }
    const previous = devices.get(device);
    devices.set(device, ref);
    // Registered before the store answers, so no message stored meanwhile misses the session.
    if (previous && (previous.worker !== ref.worker || previous.sid !== ref.sid)) {
      this.sink.replace(previous.worker, user, device, previous.sid);
    }
    return this.store.openDevice(user, device, now);
  }

  closeSession(user: string, device: string, ref: SessionRef): void {
    const devices = this.directory.get(user);
    const current = devices?.get(device);
    if (!devices || !current || current.worker !== ref.worker || current.sid !== ref.sid) return;
    devices.delete(device);
    if (devices.size === 0) this.directory.delete(user);
  }

  /** A worker is gone: its sessions are no longer anywhere. */
  forgetWorker(worker: number): void {
    for (const [user, devices] of this.directory) {
      for (const [device, ref] of devices) if (ref.worker === worker) devices.delete(device);
      if (devices.size === 0) this.directory.delete(user);
    }
  }

  async append(requests: readonly AppendRequest[]): Promise<AppendResult[]> {
    const results = await this.store.append(requests);
    for (let i = 0; i < results.length; i++) {
      const r = results[i]!;
      if (r.status !== 'stored') continue;
      const req = requests[i]!;
      const workers = this.workersOf(req.inbox);
      if (workers.length === 0) continue;
      const message: StoredMessage = {
        seq: r.seq,
        timestamp: r.timestamp,
        from: req.from,
        fromDevice: req.fromDevice,
        clientMsgId: req.clientMsgId,
        to: req.to,
        payload: req.payload,
      };
      for (const w of workers) this.sink.stored(w, req.inbox, message);
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
    for (const w of this.workersOf(user)) this.sink.ephemeral(w, user, deliver, except);
  }

  /** Users with at least one registered session. */
  get onlineUsers(): number {
    return this.directory.size;
  }

  private workersOf(user: string): number[] {
    const devices = this.directory.get(user);
    if (!devices) return [];
    if (devices.size === 1) return [devices.values().next().value!.worker];
    return [...new Set([...devices.values()].map((r) => r.worker))];
  }
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
