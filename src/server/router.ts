/**
 * The router turns SENDs into inbox appends and DELIVERs, and keeps the directory of where each
 * user's sessions are. Sessions never reach the store except through it.
 *
 * A direct message is stored in two inboxes: the recipient's first, then — with the recipient copy's
 * timestamp — the sender's own (PROTOCOL.md section 5). Recipient first means a crash between the two
 * leaves at most a missing own copy, which the client's re-send completes with the original timestamp
 * (the recipient copy comes back as a duplicate carrying it). Own copies of one session are appended
 * in the order its SENDs arrived, whatever order their recipient commits finish in.
 */
import type { Logger } from 'pino';
import { type AcceptedFrame, ErrorCode, encodeFrame, SbpError, type SendFrame } from '../protocol/index.js';
import type { AppendRequest, AppendResult, InboxStore, StoredMessage } from '../store/inbox-store.js';

/** What the router needs of a session. */
export interface RoutedSession {
  readonly user: string;
  readonly device: string;
  /** A message newly stored in this session's user inbox, with its DELIVER bytes encoded once. */
  offer(message: StoredMessage, deliverBytes: Uint8Array): void;
  /** An ephemeral DELIVER (seq 0) for this session. */
  offerEphemeral(deliverBytes: Uint8Array): void;
  /** Another session of the same (user, device) has taken over. */
  replaced(): void;
}

/** One SEND waiting for its turn to append the sender's own copy. */
interface OwnCopy {
  request: AppendRequest | null;
  ready: boolean;
  done: (result: AppendResult | null) => void;
  fail: (err: unknown) => void;
}

export class Router {
  private readonly sessionsByUser = new Map<string, RoutedSession[]>();
  /** Per sending session: own-copy appends in SEND order. */
  private readonly ownCopyQueues = new WeakMap<RoutedSession, OwnCopy[]>();

  constructor(
    readonly store: InboxStore,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Adds a session to the directory; an older one of the same device is replaced. */
  register(session: RoutedSession): void {
    const list = this.sessionsByUser.get(session.user);
    if (!list) {
      this.sessionsByUser.set(session.user, [session]);
      return;
    }
    const old = list.findIndex((s) => s.device === session.device);
    if (old >= 0) {
      const previous = list[old]!;
      list[old] = session;
      previous.replaced();
    } else {
      list.push(session);
    }
  }

  unregister(session: RoutedSession): void {
    const list = this.sessionsByUser.get(session.user);
    if (!list) return;
    const i = list.indexOf(session);
    if (i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.sessionsByUser.delete(session.user);
  }

  sessionsOf(user: string): readonly RoutedSession[] {
    return this.sessionsByUser.get(user) ?? [];
  }

  get userCount(): number {
    return this.sessionsByUser.size;
  }

  /** Stores a durable direct SEND in both inboxes; resolves with the ACCEPTED to answer, or throws SbpError. */
  async sendDirect(sender: RoutedSession, frame: SendFrame): Promise<AcceptedFrame> {
    const base = {
      from: sender.user,
      fromDevice: sender.device,
      clientMsgId: frame.clientMsgId,
      to: frame.to,
      payload: frame.payload,
    };
    const own = this.enqueueOwnCopy(sender);
    let primary: AppendResult;
    try {
      primary = (await this.append({ ...base, inbox: frame.to, timestamp: this.clock() }))!;
    } catch (err) {
      own.request = null;
      this.markReady(sender, own);
      throw err;
    }
    if (primary.status === 'full') {
      own.request = null;
      this.markReady(sender, own);
      throw new SbpError(ErrorCode.INBOX_FULL, `inbox of ${frame.to} is full`, frame.clientMsgId);
    }
    const ownDone = new Promise<AppendResult | null>((resolve, reject) => {
      own.done = resolve;
      own.fail = reject;
    });
    // A message to oneself has one copy: the primary one.
    own.request =
      frame.to === sender.user ? null : { ...base, inbox: sender.user, timestamp: primary.timestamp };
    this.markReady(sender, own);
    await ownDone;
    return {
      type: 'ACCEPTED',
      clientMsgId: frame.clientMsgId,
      flags: primary.status === 'duplicate' ? 1 : 0,
      timestamp: primary.timestamp,
    };
  }

  /** An ephemeral SEND: to the addressee's connected devices and the sender's other ones, seq 0. */
  sendEphemeral(sender: RoutedSession, frame: SendFrame): void {
    const bytes = encodeFrame({
      type: 'DELIVER',
      seq: 0,
      timestamp: this.clock(),
      from: sender.user,
      fromDevice: sender.device,
      clientMsgId: frame.clientMsgId,
      to: frame.to,
      payload: frame.payload,
    });
    for (const s of this.sessionsOf(frame.to)) if (s !== sender) s.offerEphemeral(bytes);
    if (frame.to !== sender.user) {
      for (const s of this.sessionsOf(sender.user)) if (s !== sender) s.offerEphemeral(bytes);
    }
  }

  /** Appends one copy, and on success offers it to the inbox owner's sessions. */
  private async append(request: AppendRequest): Promise<AppendResult> {
    const [result] = await this.store.append([request]);
    if (result!.status === 'stored') this.announce(request, result!.seq, result!.timestamp);
    return result!;
  }

  private announce(request: AppendRequest, seq: number, timestamp: number): void {
    const sessions = this.sessionsOf(request.inbox);
    if (sessions.length === 0) return;
    const message: StoredMessage = {
      seq,
      timestamp,
      from: request.from,
      fromDevice: request.fromDevice,
      clientMsgId: request.clientMsgId,
      to: request.to,
      payload: request.payload,
    };
    const bytes = encodeFrame({ type: 'DELIVER', ...message });
    for (const s of sessions) s.offer(message, bytes);
  }

  private enqueueOwnCopy(sender: RoutedSession): OwnCopy {
    let queue = this.ownCopyQueues.get(sender);
    if (!queue) {
      queue = [];
      this.ownCopyQueues.set(sender, queue);
    }
    const entry: OwnCopy = { request: null, ready: false, done: () => {}, fail: () => {} };
    queue.push(entry);
    return entry;
  }

  /** Issues own-copy appends from the head of the sender's queue while they are ready, in order. */
  private markReady(sender: RoutedSession, entry: OwnCopy): void {
    entry.ready = true;
    const queue = this.ownCopyQueues.get(sender)!;
    while (queue.length > 0 && queue[0]!.ready) {
      const head = queue.shift()!;
      if (!head.request) {
        head.done(null);
        continue;
      }
      // Issued now, in order; the store keeps call order. A full own inbox is skipped, never an error.
      this.append(head.request).then(head.done, (err) => {
        this.log.warn({ err, user: sender.user }, 'own copy not stored');
        head.fail(err);
      });
    }
  }
}

/** Turns a store failure into the request-level STORE_UNAVAILABLE. */
export function storeError(err: unknown, ref: number): SbpError {
  if (err instanceof SbpError) return err;
  return new SbpError(ErrorCode.STORE_UNAVAILABLE, 'the message store is unavailable, retry later', ref);
}
