/**
 * The router of one worker: turns SENDs into inbox appends at the users' homes, and hands what the
 * homes announce (stored messages, ephemeral ones, replaced sessions) to this worker's sessions.
 * Sessions never reach a store except through it.
 *
 * A direct message is stored in two inboxes: the recipient's first, then — with the recipient copy's
 * timestamp — the sender's own (PROTOCOL.md section 5). Recipient first means a crash between the two
 * leaves at most a missing own copy, which the client's re-send completes with the original timestamp
 * (the recipient copy comes back as a duplicate carrying it). Own copies of one session are appended
 * in the order its SENDs arrived, whatever order their recipient commits finish in.
 */
import type { Logger } from 'pino';
import { type AcceptedFrame, ErrorCode, encodeDeliver, SbpError, type SendFrame } from '../protocol/index.js';
import type { AppendRequest, AppendResult, DeviceState, StoredMessage } from '../store/inbox-store.js';
import { AppendBatcher } from './append-batcher.js';
import type { Homes, Presence, SessionRef } from './home.js';

/** What the router needs of a session. */
export interface RoutedSession {
  readonly user: string;
  readonly device: string;
  readonly ref: SessionRef;
  /** Message `seq` was newly stored in this session's user inbox; its DELIVER bytes are encoded once. */
  offer(seq: number, deliverBytes: Uint8Array): void;
  /** An ephemeral DELIVER (seq 0) for this session. */
  offerEphemeral(deliverBytes: Uint8Array): void;
  /** The ACCEPTED answering the direct SEND that Router.sendDirect was given `token` with. */
  directAccepted(token: unknown, accepted: AcceptedFrame): void;
  /** That SEND failed: an SbpError (INBOX_FULL, STORE_UNAVAILABLE) or a store failure. */
  directRefused(token: unknown, ref: number, err: unknown): void;
  /** Another session of the same (user, device) has taken over. */
  replaced(): void;
  /** The user's home restarted: register there again and catch up on what was stored meanwhile. */
  reattach(): void;
  /** A user this session watches is (still, or now) online or offline. */
  presence(user: string, presence: Presence): void;
}

/** The sessions of this worker watching one user, and that user's presence as last heard from its home. */
interface Watched {
  sessions: Set<RoutedSession>;
  presence: Presence | null;
}

/**
 * One durable direct SEND in flight: its recipient copy is appended first, then — in the sender's SEND
 * order — its own copy; the ACCEPTED answers it after both.
 */
interface DirectSend {
  readonly sender: RoutedSession;
  readonly frame: SendFrame;
  /** The recipient copy's timestamp once stored (or found a duplicate); -1 while not, or never (failed, full). */
  timestamp: number;
  /** The recipient copy was a duplicate (ACCEPTED flag 1). */
  duplicate: boolean;
  /** The own copy to append when this SEND's turn comes (null: none yet, or a note to self). */
  request: AppendRequest | null;
  ready: boolean;
  /** Queued behind a failed one: fails instead of storing its own copy. */
  doomed: boolean;
  /** The sender's handle for its answer (RoutedSession.directAccepted / directRefused). */
  readonly token: unknown;
}

/** The append request of one copy of a direct SEND (a literal, not a spread: two per message). */
function copyOf(sender: RoutedSession, frame: SendFrame, inbox: string, timestamp: number): AppendRequest {
  return {
    inbox,
    from: sender.user,
    fromDevice: sender.device,
    clientMsgId: frame.clientMsgId,
    to: frame.to,
    payload: frame.payload,
    timestamp,
  };
}

export class Router {
  private readonly sessionsByUser = new Map<string, RoutedSession[]>();
  private readonly sessionsBySid = new Map<number, RoutedSession>();
  /** Per sending session: its direct SENDs in flight, in SEND order (own copies are appended in it). */
  private readonly ownCopyQueues = new WeakMap<RoutedSession, DirectSend[]>();
  /**
   * Recipient copies of the SENDs of a turn (usually those read from one socket), in one call; own
   * copies whose turn has come in a turn (usually those of one store commit), in another. Gathered only
   * for a store that answers a tick's appends together (InboxStore.settlesPerTick).
   */
  private readonly recipientCopies: AppendBatcher<DirectSend>;
  private readonly ownCopies: AppendBatcher<DirectSend>;
  /** Watched user → this worker's watchers; the home knows only that this worker watches. */
  private readonly watched = new Map<string, Watched>();
  private nextSid = 1;

  /** How users' homes are reached; set once, right after construction (homes announce back to the router). */
  homes!: Homes;

  constructor(
    /** This worker's index in the cluster (SessionRef.worker). */
    readonly worker: number,
    private readonly log: Logger,
    /** The homes' store answers a tick's appends together: gather them into fewer calls. */
    gatherAppends: boolean,
    private readonly clock: () => number = Date.now,
  ) {
    const append = (requests: readonly AppendRequest[]) => this.homes.append(requests);
    this.recipientCopies = new AppendBatcher<DirectSend>(
      append,
      (sends, results) => this.recipientCopiesSettled(sends, results),
      (sends, err) => this.recipientCopiesFailed(sends, err),
      gatherAppends,
    );
    this.ownCopies = new AppendBatcher<DirectSend>(
      append,
      (sends) => {
        for (const send of sends) this.accept(send);
      },
      (sends, err) => this.ownCopiesFailed(sends, err),
      gatherAppends,
    );
  }

  newRef(): SessionRef {
    return { worker: this.worker, sid: this.nextSid++ };
  }

  /** Adds a session to this worker's sessions and registers it at its user's home. */
  open(session: RoutedSession, now: number): Promise<DeviceState> {
    const list = this.sessionsByUser.get(session.user);
    if (list) list.push(session);
    else this.sessionsByUser.set(session.user, [session]);
    this.sessionsBySid.set(session.ref.sid, session);
    return this.homes.openSession(session.user, session.device, session.ref, now);
  }

  close(session: RoutedSession): void {
    if (this.sessionsBySid.get(session.ref.sid) !== session) return;
    this.sessionsBySid.delete(session.ref.sid);
    const list = this.sessionsByUser.get(session.user);
    if (list) {
      const i = list.indexOf(session);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.sessionsByUser.delete(session.user);
    }
    this.homes.closeSession(session.user, session.device, session.ref);
  }

  get userCount(): number {
    return this.sessionsByUser.size;
  }

  /** Every open session of this worker, for re-registering them at a home that restarted. */
  sessions(): IterableIterator<RoutedSession> {
    return this.sessionsBySid.values();
  }

  // ------------------------------------------------------------ what homes announce to this worker

  stored(inbox: string, message: StoredMessage): void {
    const sessions = this.sessionsByUser.get(inbox);
    if (!sessions) return;
    const bytes = encodeDeliver(message);
    for (const s of sessions) s.offer(message.seq, bytes);
  }

  /** The same, from another worker that encoded the DELIVER already. */
  storedEncoded(inbox: string, seq: number, deliver: Uint8Array): void {
    const sessions = this.sessionsByUser.get(inbox);
    if (sessions) for (const s of sessions) s.offer(seq, deliver);
  }

  ephemeral(user: string, deliver: Uint8Array, except: SessionRef): void {
    const sessions = this.sessionsByUser.get(user);
    if (!sessions) return;
    for (const s of sessions) {
      if (s.ref.sid === except.sid && except.worker === this.worker) continue;
      s.offerEphemeral(deliver);
    }
  }

  replace(sid: number): void {
    this.sessionsBySid.get(sid)?.replaced();
  }

  /** A watched user's presence changed (or was first heard of): every watcher here gets it. */
  presence(user: string, presence: Presence): void {
    const w = this.watched.get(user);
    if (!w) return;
    w.presence = presence;
    for (const s of w.sessions) s.presence(user, presence);
  }

  // ------------------------------------------------------------ presence

  /** `session` watches `users`: each gets PRESENCE at once (as soon as the home answers) and on every change. */
  watch(session: RoutedSession, users: readonly string[]): void {
    for (const user of users) {
      let w = this.watched.get(user);
      if (!w) {
        w = { sessions: new Set(), presence: null };
        this.watched.set(user, w);
        this.askHome(user, w);
      }
      w.sessions.add(session);
      if (w.presence) session.presence(user, w.presence);
    }
  }

  unwatch(session: RoutedSession, users: Iterable<string>): void {
    for (const user of users) {
      const w = this.watched.get(user);
      if (!w?.sessions.delete(session) || w.sessions.size > 0) continue;
      this.watched.delete(user);
      this.homes.unwatch(user, this.worker);
    }
  }

  /** A home restarted (its watchers are gone): the users this worker watches there are registered again. */
  watchAgain(homedThere: (user: string) => boolean): void {
    for (const [user, w] of this.watched) if (homedThere(user)) this.askHome(user, w);
  }

  private askHome(user: string, w: Watched): void {
    this.homes.watch(user, this.worker).then(
      (presence) => {
        if (this.watched.get(user) !== w) return;
        const known = w.presence;
        if (known && known.online === presence.online && known.since === presence.since) return;
        this.presence(user, presence);
      },
      (err) => {
        this.log.warn({ err: (err as Error)?.message, user }, 'could not watch; retrying');
        setTimeout(() => {
          if (this.watched.get(user) === w) this.askHome(user, w);
        }, 1000).unref();
      },
    );
  }

  // ------------------------------------------------------------ sending

  /**
   * Stores a durable direct SEND in both inboxes, then answers the sender with `token`: directAccepted
   * with the ACCEPTED, or directRefused (INBOX_FULL, STORE_UNAVAILABLE). No promise per SEND: its two
   * appends go out batched (AppendBatcher) and come back to the router's methods, not to closures.
   */
  sendDirect(sender: RoutedSession, frame: SendFrame, token: unknown): void {
    const send: DirectSend = {
      sender,
      frame,
      timestamp: -1,
      duplicate: false,
      request: null,
      ready: false,
      doomed: false,
      token,
    };
    this.enqueueOwnCopy(send);
    this.recipientCopies.add(copyOf(sender, frame, frame.to, this.clock()), send);
  }

  private recipientCopiesSettled(sends: DirectSend[], results: AppendResult[]): void {
    for (let i = 0; i < sends.length; i++) {
      const send = sends[i]!;
      const result = results[i]!;
      if (result.status === 'full') {
        this.markReady(send);
        const ref = send.frame.clientMsgId;
        this.refuse(send, new SbpError(ErrorCode.INBOX_FULL, `inbox of ${send.frame.to} is full`, ref));
        continue;
      }
      const { sender, frame } = send;
      send.timestamp = result.timestamp;
      send.duplicate = result.status === 'duplicate';
      // A message to oneself has one copy: the recipient one.
      send.request = frame.to === sender.user ? null : copyOf(sender, frame, sender.user, result.timestamp);
      this.markReady(send);
    }
  }

  private recipientCopiesFailed(sends: DirectSend[], err: unknown): void {
    for (const send of sends) {
      this.doomBehind(send.sender, send);
      this.markReady(send);
      this.refuse(send, err);
    }
  }

  private ownCopiesFailed(sends: DirectSend[], err: unknown): void {
    this.log.warn(
      { err: (err as Error)?.message, copies: sends.length, user: sends[0]!.sender.user },
      'own copies not stored',
    );
    for (const send of sends) {
      this.doomBehind(send.sender, null);
      this.refuse(send, err);
    }
  }

  private accept(send: DirectSend): void {
    send.sender.directAccepted(send.token, {
      type: 'ACCEPTED',
      clientMsgId: send.frame.clientMsgId,
      flags: send.duplicate ? 1 : 0,
      timestamp: send.timestamp,
    });
  }

  private refuse(send: DirectSend, err: unknown): void {
    send.sender.directRefused(send.token, send.frame.clientMsgId, err);
  }

  /**
   * Stores a durable group SEND in every member's inbox (at the group's home); resolves with the
   * ACCEPTED to answer, or throws SbpError (INVALID_ADDRESS, NOT_A_MEMBER, STORE_UNAVAILABLE).
   */
  async sendGroup(sender: RoutedSession, frame: SendFrame): Promise<AcceptedFrame> {
    const outcome = await this.homes.sendGroup(frame.to, {
      from: sender.user,
      fromDevice: sender.device,
      clientMsgId: frame.clientMsgId,
      payload: frame.payload,
    });
    if (outcome.status === 'refused') throw new SbpError(outcome.code, outcome.message, frame.clientMsgId);
    return {
      type: 'ACCEPTED',
      clientMsgId: frame.clientMsgId,
      flags: outcome.duplicate ? 1 : 0,
      timestamp: outcome.timestamp,
    };
  }

  /**
   * An ephemeral SEND: to the addressee's connected devices (a group's: every member's) and the sender's
   * other ones, seq 0. A group's goes through its home and returns a promise that rejects with SbpError
   * when the group refuses it; a direct one is handed on at once (no promise: there is one per SEND).
   */
  sendEphemeral(sender: RoutedSession, frame: SendFrame): Promise<void> | undefined {
    const bytes = encodeDeliver({
      seq: 0,
      timestamp: this.clock(),
      from: sender.user,
      fromDevice: sender.device,
      clientMsgId: frame.clientMsgId,
      to: frame.to,
      payload: frame.payload,
    });
    if (frame.to.startsWith('#')) return this.sendEphemeralToGroup(sender, frame, bytes);
    this.homes.ephemeral(frame.to, bytes, sender.ref);
    if (frame.to !== sender.user) this.homes.ephemeral(sender.user, bytes, sender.ref);
    return undefined;
  }

  private async sendEphemeralToGroup(
    sender: RoutedSession,
    frame: SendFrame,
    bytes: Uint8Array,
  ): Promise<void> {
    const refused = await this.homes.ephemeralGroup(frame.to, sender.user, bytes, sender.ref);
    if (refused?.status === 'refused') throw new SbpError(refused.code, refused.message, frame.clientMsgId);
  }

  private enqueueOwnCopy(send: DirectSend): void {
    const queue = this.ownCopyQueues.get(send.sender);
    if (queue) queue.push(send);
    else this.ownCopyQueues.set(send.sender, [send]);
  }

  /**
   * A SEND failed with an unknown outcome: every own copy queued behind it (from SENDs that arrived
   * before the failure was known) fails instead of being stored, so none can overtake the failed one's
   * re-send. SENDs arriving later wait at the session (its send barrier), so the queue is not doomed
   * for them. `entry` null: the failed one already left the queue, everything queued is behind it.
   */
  private doomBehind(sender: RoutedSession, entry: DirectSend | null): void {
    const queue = this.ownCopyQueues.get(sender);
    if (!queue) return;
    const from = entry ? queue.indexOf(entry) + 1 : 0;
    for (let i = from; i < queue.length; i++) queue[i]!.doomed = true;
  }

  /**
   * Issues own-copy appends from the head of the sender's queue while they are ready, in order. Behind a
   * SEND that failed with an unknown outcome, the own copies queued at that moment fail too (their SENDs
   * get STORE_UNAVAILABLE and are re-sent after it), so the sender's inbox keeps the SEND order. A SEND
   * whose recipient copy failed or found the inbox full has been answered already and just leaves.
   */
  private markReady(entry: DirectSend): void {
    entry.ready = true;
    const queue = this.ownCopyQueues.get(entry.sender)!;
    while (queue.length > 0 && queue[0]!.ready) {
      const head = queue.shift()!;
      if (head.timestamp < 0) continue;
      if (head.request === null) this.accept(head);
      else if (head.doomed) {
        this.refuse(
          head,
          new SbpError(ErrorCode.STORE_UNAVAILABLE, 'an earlier message failed; send again', 0),
        );
      } else {
        // Issued in order (batched); homes keep call order. A full own inbox is skipped, never an error.
        this.ownCopies.add(head.request, head);
      }
    }
  }
}

/** Turns a store failure into the request-level STORE_UNAVAILABLE. */
export function storeError(err: unknown, ref: number): SbpError {
  if (err instanceof SbpError) return err;
  return new SbpError(ErrorCode.STORE_UNAVAILABLE, 'the message store is unavailable, retry later', ref);
}
