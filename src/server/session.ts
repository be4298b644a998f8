/**
 * One client connection: the session state machine of PROTOCOL.md section 4
 * (awaitHello → opening → live → closed), one handler per frame type, and the delivery pump that
 * replays the inbox "in a row" and then streams live messages within the flow-control window.
 */
import type { Logger } from 'pino';
import {
  type AcceptedFrame,
  type AckFrame,
  type ClientFrame,
  type DecoderLimits,
  ErrorCode,
  type ErrorCodeValue,
  encodeDeliver,
  encodeFrame,
  errorName,
  type Frame,
  FrameDecoder,
  FrameType,
  type HelloFrame,
  PROTOCOL_VERSION,
  SbpError,
  SEND_FLAG_EPHEMERAL,
  type SendFrame,
} from '../protocol/index.js';
import type { Connection, ConnectionHandler } from '../transport/connection.js';
import type { Authenticator } from './auth.js';
import type { Presence, SessionRef } from './home.js';
import type { Limits } from './limits.js';
import type { ServerCounters } from './metrics/counters.js';
import { type RoutedSession, type Router, storeError } from './router.js';
import type { TimerEntry, TimerWheel } from './timer-wheel.js';

/** What every session of a worker shares. */
export interface SessionContext {
  readonly limits: Limits;
  /** One object for every session's decoder: HELLO's limit, then maxFrame. */
  readonly decoderLimits: DecoderLimits;
  readonly router: Router;
  readonly wheel: TimerWheel;
  readonly auth: Authenticator;
  readonly log: Logger;
  /** WELCOME's `node`: the name of this server process. */
  readonly nodeName: string;
  /** Called once when the session's connection is gone. */
  onSessionClosed(session: Session): void;
  /** The worker's metrics counts (frames, errors, handshakes, close reasons, deliveries). */
  readonly counters: ServerCounters;
}

interface AnswerSlot {
  /** The ACCEPTED or ERROR frame, once known. */
  bytes: Uint8Array | null;
}

function errorFrame(code: ErrorCodeValue, ref: number, message: string): Uint8Array {
  return encodeFrame({ type: 'ERROR', code, ref, message });
}

enum State {
  AwaitHello,
  Opening,
  Live,
  Closing,
  Closed,
}

/** Why a connection ended, for the one log line and the counters. */
export type CloseReason = string;

export class Session implements ConnectionHandler, RoutedSession, TimerEntry {
  user = '';
  device = '';
  ref: SessionRef = { worker: -1, sid: 0 };
  timerDeadline = 0;
  timerSlot = -1;

  private state = State.AwaitHello;
  private readonly decoder: FrameDecoder;
  /** Frames that arrived after HELLO, handled in order after WELCOME. */
  private queued: Frame[] | null = null;
  /** A bad frame that followed HELLO before WELCOME: answered once the frames before it are. */
  private deferredError: SbpError | null = null;
  private lastFrameAt: number;

  // Delivery: one ascending sequence per session.
  /** Highest seq known stored in the user's inbox. */
  private lastKnownSeq = 0;
  /** Highest seq written (or skipped as purged) on this session. */
  private sentSeq = 0;
  /** The device's cursor. */
  private ackedSeq = 0;
  /** Answers to this session's SENDs in SEND order, written as the first ones become ready. */
  private answers: AnswerSlot[] = [];
  /**
   * Durable SENDs held back, in order: a group SEND starts once every earlier SEND is stored, and later
   * ones wait for it, so every inbox gets this session's messages in SEND order (direct messages alone
   * are pipelined; a group's copies are written by the group's home, on other paths).
   */
  private held: { frame: SendFrame; slot: AnswerSlot }[] = [];
  /** Durable SENDs started and not yet answered. */
  private sending = 0;
  private groupSending = false;
  /** The users this session watches (PROTOCOL.md section 6). */
  private watching: Set<string> | null = null;
  /** Seqs DELIVERed and not yet covered by an ACK, ascending. */
  private inflight: number[] = [];
  private reading = false;
  private writeBlocked = false;

  /**
   * The lowest clientMsgId whose SEND failed with STORE_UNAVAILABLE (0 = none): per-inbox order must
   * survive a home worker's crash, so later SENDs wait for its re-send (PROTOCOL.md appendix).
   */
  private sendBarrier = 0;

  // Backpressure toward a client that floods.
  private pendingSends = 0;
  private readPaused = false;

  // Rate limit (token bucket), only when configured.
  private tokens = 0;
  private tokensAt = 0;

  /** `acceptedAt` (ms, wheel clock): when the transport connection was accepted, if before now (WebSocket). */
  constructor(
    private readonly conn: Connection,
    private readonly ctx: SessionContext,
    acceptedAt?: number,
  ) {
    this.decoder = new FrameDecoder('clientToServer', ctx.decoderLimits);
    this.lastFrameAt = ctx.wheel.now;
    ctx.counters.connectionOpened(conn.kind);
    ctx.wheel.schedule(this, (acceptedAt ?? ctx.wheel.now) + ctx.limits.handshakeTimeoutMs);
    conn.attach(this);
  }

  get remote(): string {
    return this.conn.remote;
  }

  get live(): boolean {
    return this.state === State.Live;
  }

  // ------------------------------------------------------------ connection events

  onData(chunk: Uint8Array, wholeMessage = false): void {
    if (this.state >= State.Closing || this.deferredError) return;
    try {
      this.decoder.push(chunk, this);
      // A WebSocket message carries one or more complete frames (section 1).
      if (wholeMessage && (chunk.length === 0 || this.decoder.midFrame))
        throw new SbpError(ErrorCode.MALFORMED, 'a WebSocket message must hold whole frames');
    } catch (err) {
      this.streamError(err);
    }
  }

  onTransportError(code: ErrorCodeValue, message: string): void {
    if (this.state >= State.Closing || this.deferredError) return;
    this.streamError(new SbpError(code, message));
  }

  private streamError(err: unknown): void {
    if (!(err instanceof SbpError)) this.internalError(err);
    else if (this.state === State.Opening) {
      // Frames after HELLO are answered after WELCOME, in order (section 2.2): so is a bad one.
      this.deferredError = err;
      this.conn.pause();
    } else this.fail(err.code, err.message);
  }

  onDrain(): void {
    if (this.writeBlocked) {
      this.writeBlocked = false;
      this.pump();
    }
    this.maybeResumeReading();
  }

  onClose(): void {
    const counters = this.ctx.counters;
    if (this.state !== State.Closing) {
      counters.closed('peer closed');
      counters.leaving(this.conn.kind, this.state === State.Live);
    }
    counters.connectionClosed(this.conn.kind);
    this.state = State.Closed;
    this.ctx.wheel.cancel(this);
    if (this.user) this.ctx.router.close(this);
    if (this.watching) this.ctx.router.unwatch(this, this.watching);
    this.watching = null;
    this.held = [];
    this.inflight = [];
    this.queued = null;
    this.ctx.onSessionClosed(this);
  }

  /** Timer wheel: the handshake deadline, the idle timeout, or the close grace. */
  onTimer(now: number): void {
    switch (this.state) {
      case State.AwaitHello:
      case State.Opening:
        this.fail(
          ErrorCode.HANDSHAKE_TIMEOUT,
          `no complete HELLO within ${this.ctx.limits.handshakeTimeoutMs} ms`,
        );
        return;
      case State.Live: {
        const deadline = this.lastFrameAt + 2 * this.ctx.limits.heartbeatMs;
        if (now >= deadline)
          this.fail(ErrorCode.IDLE_TIMEOUT, `no frame for ${2 * this.ctx.limits.heartbeatMs} ms`);
        else this.ctx.wheel.schedule(this, deadline);
        return;
      }
      case State.Closing:
        this.conn.destroy();
        return;
      case State.Closed:
        return;
    }
  }

  // ------------------------------------------------------------ frames

  /** FrameSink: the decoder hands every complete frame here. */
  onFrame(frame: Frame): void {
    if (this.state >= State.Closing) return;
    this.ctx.counters.received(frame.type);
    this.lastFrameAt = this.ctx.wheel.now;
    if (this.state === State.Live) {
      this.dispatch(frame as ClientFrame);
    } else if (this.state === State.AwaitHello) {
      if (frame.type !== 'HELLO') {
        this.fail(ErrorCode.PROTOCOL_VIOLATION, `the first frame must be HELLO, not ${frame.type}`);
        return;
      }
      this.state = State.Opening;
      this.queued = [];
      this.hello(frame).catch((err) => this.internalError(err));
    } else {
      this.queued!.push(frame);
    }
  }

  /** One handler per frame type. */
  private dispatch(frame: ClientFrame): void {
    switch (frame.type) {
      case 'SEND':
        this.onSend(frame);
        return;
      case 'ACK':
        this.onAck(frame);
        return;
      case 'PING':
        this.write(encodeFrame({ type: 'PONG', nonce: frame.nonce }));
        return;
      case 'PONG':
        return;
      case 'BYE':
        this.close('client said BYE');
        return;
      case 'HELLO':
        this.fail(ErrorCode.PROTOCOL_VIOLATION, 'HELLO after WELCOME');
        return;
      case 'WATCH':
        this.onWatch(frame.users);
        return;
      case 'UNWATCH':
        if (this.watching) {
          const gone = frame.users.filter((u) => this.watching!.delete(u));
          this.ctx.router.unwatch(this, gone);
        }
        return;
      case 'JOIN':
      case 'LEAVE':
        this.onMembership(frame.type, frame.ref, frame.group);
        return;
    }
  }

  /** Watches up to maxWatchedUsers users; a WATCH beyond that is ignored for the users over it. */
  private onWatch(users: readonly string[]): void {
    this.watching ??= new Set();
    const room = this.ctx.limits.maxWatchedUsers - this.watching.size;
    const added = users.filter((u) => !this.watching!.has(u)).slice(0, Math.max(0, room));
    for (const u of added) this.watching.add(u);
    // Users already watched get their PRESENCE again too (a WATCH always answers at once).
    this.ctx.router.watch(
      this,
      users.filter((u) => this.watching!.has(u)),
    );
  }

  presence(user: string, presence: Presence): void {
    if (this.state !== State.Live || !this.watching?.has(user)) return;
    this.write(
      encodeFrame({ type: 'PRESENCE', user, online: presence.online ? 1 : 0, since: presence.since }),
    );
  }

  private onMembership(kind: 'JOIN' | 'LEAVE', ref: number, group: string): void {
    const homes = this.ctx.router.homes;
    (kind === 'JOIN' ? homes.join(group, this.user) : homes.leave(group, this.user)).then(
      () => {
        if (this.state === State.Live) this.write(encodeFrame({ type: 'DONE', ref }));
      },
      (err) => {
        this.ctx.log.warn({ err: (err as Error)?.message, user: this.user, group }, `${kind} failed`);
        const e = storeError(err, ref);
        if (this.state === State.Live) this.requestError(e.code, ref, e.message);
      },
    );
  }

  private async hello(frame: HelloFrame): Promise<void> {
    const { auth, router, limits } = this.ctx;
    if (!(await auth.verify(frame.user, frame.token))) {
      this.fail(ErrorCode.UNAUTHORIZED, 'the token is missing, invalid, expired or not for this user');
      return;
    }
    if (this.state !== State.Opening) return;
    this.user = frame.user;
    this.device = frame.device;
    this.ref = router.newRef();
    let device: { lastSeq: number; ackedSeq: number };
    try {
      // Registered before the store is read, so no message stored meanwhile is missed (offer() records it).
      device = await router.open(this, Date.now());
    } catch (err) {
      this.ctx.log.warn({ err, user: frame.user }, 'store unavailable during HELLO');
      const retry = 1000 + Math.floor(Math.random() * 4000);
      this.fail(ErrorCode.STORE_UNAVAILABLE, 'the message store is unavailable, retry later', retry);
      return;
    }
    if (this.state !== State.Opening) return;
    this.lastKnownSeq = Math.max(this.lastKnownSeq, device.lastSeq);
    this.ackedSeq = device.ackedSeq;
    // Replay starts after max(resumeAfter, ackedSeq); a resumeAfter above lastSeq counts as lastSeq.
    this.sentSeq = Math.max(Math.min(frame.resumeAfter, device.lastSeq), device.ackedSeq);
    this.write(
      encodeFrame({
        type: 'WELCOME',
        version: PROTOCOL_VERSION,
        node: this.ctx.nodeName,
        lastSeq: device.lastSeq,
        ackedSeq: device.ackedSeq,
        heartbeatMs: limits.heartbeatMs,
        maxPayload: limits.maxPayload,
        window: limits.window,
      }),
    );
    this.state = State.Live;
    this.ctx.counters.welcomed(this.conn.kind);
    this.ctx.wheel.schedule(this, this.lastFrameAt + 2 * limits.heartbeatMs);
    const queued = this.queued!;
    this.queued = null;
    for (const f of queued) {
      if (this.state !== State.Live) return;
      this.dispatch(f as ClientFrame);
    }
    if (this.deferredError) {
      this.fail(this.deferredError.code, this.deferredError.message);
      return;
    }
    this.pump();
  }

  private onSend(frame: SendFrame): void {
    const { limits, router } = this.ctx;
    const ref = frame.clientMsgId;
    if (frame.payload.length > limits.maxPayload) {
      this.answerSend(
        errorFrame(
          ErrorCode.PAYLOAD_TOO_LARGE,
          ref,
          `payload of ${frame.payload.length} bytes is over the limit of ${limits.maxPayload}`,
        ),
      );
      return;
    }
    if (limits.rateLimitPerSecond > 0 && !this.takeToken()) {
      this.answerSend(
        errorFrame(ErrorCode.RATE_LIMITED, ref, `over ${limits.rateLimitPerSecond} messages/s`),
      );
      return;
    }
    if (frame.flags & SEND_FLAG_EPHEMERAL) {
      try {
        router.sendEphemeral(this, frame)?.catch((err) => this.ephemeralRefused(err, ref));
      } catch (err) {
        this.ephemeralRefused(err, ref);
      }
      return;
    }
    if (this.sendBarrier > 0) {
      // An earlier SEND of this session failed with an unknown outcome: nothing later may be stored
      // before it, so later ones are refused until the client sends that one (or an earlier one) again.
      if (ref > this.sendBarrier) {
        this.answerSend(
          errorFrame(
            ErrorCode.STORE_UNAVAILABLE,
            ref,
            `message ${this.sendBarrier} failed; send it again before later ones`,
          ),
        );
        return;
      }
      this.sendBarrier = 0;
    }
    this.pendingSends++;
    if (this.pendingSends >= limits.maxPendingSends) this.pauseReading();
    const slot: AnswerSlot = { bytes: null };
    this.answers.push(slot);
    if (frame.to.startsWith('#') || this.held.length > 0 || this.groupSending) {
      this.held.push({ frame, slot });
      this.startHeld();
    } else this.startSend(frame, slot);
  }

  private ephemeralRefused(err: unknown, ref: number): void {
    const e = storeError(err, ref);
    if (this.state === State.Live) this.requestError(e.code, ref, e.message);
  }

  /** Starts held SENDs in order, as far as the group rule allows (see `held`). */
  private startHeld(): void {
    while (this.held.length > 0 && !this.groupSending) {
      const next = this.held[0]!;
      const group = next.frame.to.startsWith('#');
      if (group && this.sending > 0) return;
      this.held.shift();
      if (group) this.groupSending = true;
      this.startSend(next.frame, next.slot);
    }
  }

  private startSend(frame: SendFrame, slot: AnswerSlot): void {
    const ref = frame.clientMsgId;
    const group = frame.to.startsWith('#');
    const router = this.ctx.router;
    this.sending++;
    if (!group) {
      // Answered through directAccepted / directRefused: no promise per SEND on the busiest path.
      router.sendDirect(this, frame, slot);
      return;
    }
    router.sendGroup(this, frame).then(
      (accepted) => this.sendAccepted(slot, true, accepted),
      (err) => this.sendRefused(slot, true, ref, err),
    );
  }

  directAccepted(token: unknown, accepted: AcceptedFrame): void {
    this.sendAccepted(token as AnswerSlot, false, accepted);
  }

  directRefused(token: unknown, ref: number, err: unknown): void {
    this.sendRefused(token as AnswerSlot, false, ref, err);
  }

  private sendAccepted(slot: AnswerSlot, group: boolean, accepted: AcceptedFrame): void {
    this.ctx.counters.messagesAccepted++;
    this.sendSettled(slot, group, encodeFrame(accepted));
  }

  private sendRefused(slot: AnswerSlot, group: boolean, ref: number, err: unknown): void {
    const e = storeError(err, ref);
    if (e.code === ErrorCode.STORE_UNAVAILABLE) {
      this.ctx.log.warn({ err: (err as Error)?.message, user: this.user }, 'append failed');
      if (this.sendBarrier === 0 || ref < this.sendBarrier) this.sendBarrier = ref;
    }
    this.sendSettled(slot, group, errorFrame(e.code, ref, e.message));
  }

  private sendSettled(slot: AnswerSlot, group: boolean, answer: Uint8Array): void {
    this.sending--;
    this.pendingSends--;
    if (group) this.groupSending = false;
    this.fillAnswer(slot, answer);
    if (this.held.length > 0 && this.state === State.Live) this.startHeld();
    this.maybeResumeReading();
  }

  /**
   * Answers to SENDs go out in SEND order (ACCEPTED needs both copies, an INBOX_FULL only the first, so
   * they would otherwise overtake each other): an answer ready early waits for those before it.
   */
  private answerSend(bytes: Uint8Array): void {
    if (this.answers.length === 0) this.write(bytes);
    else this.answers.push({ bytes });
  }

  private fillAnswer(slot: AnswerSlot, bytes: Uint8Array): void {
    slot.bytes = bytes;
    const answers = this.answers;
    while (answers.length > 0 && answers[0]!.bytes !== null) {
      const ready = answers.shift()!.bytes!;
      if (this.state === State.Live) this.write(ready);
    }
  }

  private onAck(frame: AckFrame): void {
    // Above what this session could have seen: PROTOCOL.md section 5, DELIVER → ACK.
    if (frame.seq > Math.max(this.sentSeq, this.ackedSeq)) {
      this.fail(
        ErrorCode.PROTOCOL_VIOLATION,
        `ACK ${frame.seq} is above the highest seq delivered (${this.sentSeq})`,
      );
      return;
    }
    if (frame.seq <= this.ackedSeq) return;
    const previous = this.ackedSeq;
    this.ackedSeq = frame.seq;
    let i = 0;
    while (i < this.inflight.length && this.inflight[i]! <= frame.seq) i++;
    if (i > 0) this.inflight.splice(0, i);
    this.ctx.router.homes.ack(this.user, this.device, frame.seq, previous).catch((err) => {
      // Kept in memory (ackedSeq); at worst the messages are delivered again (at-least-once).
      this.ctx.log.warn({ err, user: this.user }, 'ack not written');
    });
    this.pump();
  }

  private takeToken(): boolean {
    const rate = this.ctx.limits.rateLimitPerSecond;
    const now = this.ctx.wheel.now;
    this.tokens = Math.min(rate, this.tokens + ((now - this.tokensAt) * rate) / 1000);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  // ------------------------------------------------------------ delivery

  /** Router: a message was stored in this user's inbox. Written at once when this session is caught up. */
  offer(seq: number, deliverBytes: Uint8Array): void {
    if (
      this.state === State.Live &&
      !this.reading &&
      !this.writeBlocked &&
      this.sentSeq === this.lastKnownSeq &&
      seq === this.sentSeq + 1 &&
      this.inflight.length < this.ctx.limits.window
    ) {
      this.lastKnownSeq = seq;
      this.ctx.counters.deliveredLive++;
      this.deliver(seq, deliverBytes);
      return;
    }
    if (seq > this.lastKnownSeq) this.lastKnownSeq = seq;
    this.pump();
  }

  offerEphemeral(deliverBytes: Uint8Array): void {
    // Outside the window and the seq sequence; dropped for a socket that is not draining.
    if (this.state === State.Live && !this.writeBlocked) {
      // RECEIPTs come this way too (several in one write); only a DELIVER is a message.
      if (deliverBytes[4] === FrameType.DELIVER) this.ctx.counters.deliveredEphemeral++;
      this.write(deliverBytes);
    }
  }

  reattach(): void {
    if (this.state !== State.Live) return;
    const { router, log } = this.ctx;
    router.homes.openSession(this.user, this.device, this.ref, Date.now()).then(
      (device) => {
        if (this.state !== State.Live) return;
        // An ACK the old home may not have written is written again (the cursor only moves forward).
        if (this.ackedSeq > device.ackedSeq)
          router.homes.ack(this.user, this.device, this.ackedSeq, this.ackedSeq).catch(() => {});
        if (device.lastSeq > this.lastKnownSeq) this.lastKnownSeq = device.lastSeq;
        this.pump();
      },
      (err) => {
        log.warn({ err, user: this.user }, 'could not register again at the home; retrying');
        setTimeout(() => this.reattach(), 1000).unref();
      },
    );
  }

  replaced(): void {
    this.fail(ErrorCode.SESSION_REPLACED, 'another session of this device connected');
  }

  private deliver(seq: number, bytes: Uint8Array): void {
    this.sentSeq = seq;
    this.inflight.push(seq);
    this.write(bytes);
  }

  /** Fills the window from the inbox: the replay "in a row", and catching up after backpressure. */
  private pump(): void {
    if (this.state !== State.Live || this.reading || this.writeBlocked) return;
    const room = this.ctx.limits.window - this.inflight.length;
    if (room <= 0 || this.sentSeq >= this.lastKnownSeq) return;
    this.reading = true;
    const after = this.sentSeq;
    this.ctx.router.homes.read(this.user, after, Math.min(room, this.ctx.limits.replayPageSize)).then(
      (messages) => {
        this.reading = false;
        if (this.state !== State.Live || this.sentSeq !== after) return;
        if (messages.length === 0) {
          // Everything up to lastKnownSeq was purged (expired or acknowledged by every device).
          this.sentSeq = this.lastKnownSeq;
          return;
        }
        this.ctx.counters.deliveredReplay += messages.length;
        for (const m of messages) {
          this.deliver(m.seq, encodeDeliver(m));
          if (m.seq > this.lastKnownSeq) this.lastKnownSeq = m.seq;
        }
        this.pump();
      },
      (err) => {
        this.reading = false;
        this.ctx.log.warn({ err, user: this.user }, 'replay read failed; retrying');
        setTimeout(() => this.pump(), 1000).unref();
      },
    );
  }

  // ------------------------------------------------------------ writing and closing

  /**
   * Over the socket's high-water mark the session stops delivering and stops reading the client
   * (whose requests would only add answers to a buffer it is not draining) until 'drain'.
   */
  private write(bytes: Uint8Array): void {
    this.ctx.counters.sent(bytes);
    if (!this.conn.send(bytes) && this.state === State.Live) {
      this.writeBlocked = true;
      this.pauseReading();
    }
  }

  private requestError(code: ErrorCodeValue, ref: number, message: string): void {
    this.write(errorFrame(code, ref, message));
  }

  /** A fatal ERROR: written, then FIN; destroyed if still open after the close grace. Logged once. */
  fail(code: ErrorCodeValue, message: string, ref = 0): void {
    if (this.state >= State.Closing) return;
    const reason = errorName(code);
    this.ctx.log.info(
      { remote: this.conn.remote, user: this.user || undefined, code: reason, message },
      'closing',
    );
    this.ctx.counters.closed(reason);
    const error = errorFrame(code, ref, message);
    this.ctx.counters.sent(error);
    this.conn.send(error);
    this.beginClose(code);
  }

  /** Closes without an ERROR (BYE from the client, or the server's own shutdown after SHUTTING_DOWN). */
  close(reason: CloseReason): void {
    if (this.state >= State.Closing) return;
    this.ctx.log.debug({ remote: this.conn.remote, user: this.user || undefined, reason }, 'closing');
    this.ctx.counters.closed(reason);
    this.beginClose();
  }

  /** `code`: the fatal ERROR just sent, if any (a WebSocket closes with 4000 + it). */
  private beginClose(code?: ErrorCodeValue): void {
    this.ctx.counters.leaving(this.conn.kind, this.state === State.Live);
    this.state = State.Closing;
    this.conn.end(code);
    this.ctx.wheel.schedule(this, this.ctx.wheel.now + this.ctx.limits.closeGraceMs);
  }

  private internalError(err: unknown): void {
    this.ctx.log.error({ err, remote: this.conn.remote }, 'internal error in session');
    this.fail(ErrorCode.INTERNAL, 'internal server error');
  }

  private pauseReading(): void {
    if (!this.readPaused) {
      this.readPaused = true;
      this.conn.pause();
    }
  }

  private maybeResumeReading(): void {
    if (this.readPaused && !this.writeBlocked && this.pendingSends < this.ctx.limits.maxPendingSends / 2) {
      this.readPaused = false;
      this.conn.resume();
    }
  }
}
