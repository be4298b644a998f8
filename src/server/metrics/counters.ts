/**
 * The counts taken on the hot paths (every frame, every DELIVER): plain numbers and typed arrays indexed
 * by frame type byte, error code or transport, read by the metrics only at scrape time (../metrics.ts).
 * Nothing here allocates, hashes labels or calls into prom-client per frame.
 */
import { FrameType, type FrameTypeName } from '../../protocol/index.js';
import type { TransportKind } from '../../transport/connection.js';

/** Where each transport's count is in the per-transport arrays. */
export const TRANSPORT_INDEX: Readonly<Record<TransportKind, number>> = { tcp: 0, tls: 1, ws: 2 };

/** ERROR codes counted one by one: every code of SBP/1 is below this (PROTOCOL.md section 7). */
export const ERROR_CODE_SLOTS = 64;

const perTransport = (): Float64Array => new Float64Array(Object.keys(TRANSPORT_INDEX).length);

/** Float64 counters: exact up to 2^53, where 32-bit ones would wrap after 4 billion frames. */
export class ServerCounters {
  /** Frames decoded from clients, by type byte. */
  readonly framesReceived = new Float64Array(256);
  /** Frames written to clients, by type byte (admission refusals included). */
  readonly framesSent = new Float64Array(256);
  /** ERROR frames written, by code. */
  readonly errorsSent = new Float64Array(ERROR_CODE_SLOTS);
  readonly connectionsOpened = perTransport();
  /** Connections with a session now (accepted and admitted, not yet closed). */
  readonly connectionsOpen = perTransport();
  /** Sessions past WELCOME now. */
  readonly sessionsLive = perTransport();
  readonly handshakesCompleted = perTransport();
  /** Connections that ended before WELCOME (timeout, bad token, bad first frame, peer gone). */
  readonly handshakesFailed = perTransport();
  /** SENDs answered ACCEPTED (new or already stored). */
  messagesAccepted = 0;
  /** Stored messages written as DELIVER as soon as they were stored. */
  deliveredLive = 0;
  /** Stored messages written as DELIVER from the inbox (the replay after HELLO, catching up). */
  deliveredReplay = 0;
  /** Ephemeral messages written as DELIVER. */
  deliveredEphemeral = 0;
  /** Why connections ended (the session's close reasons), counted once per connection. */
  readonly closes = new Map<string, number>();

  received(type: FrameTypeName): void {
    this.framesReceived[FrameType[type]]!++;
  }

  /** Counts the frames in `bytes` (one or several whole frames, as written to a connection). */
  sent(bytes: Uint8Array): void {
    const n = bytes.length;
    let at = 0;
    while (at + 5 <= n) {
      const type = bytes[at + 4]!;
      this.framesSent[type]!++;
      if (type === FrameType.ERROR && at + 7 <= n) {
        const code = (bytes[at + 5]! << 8) | bytes[at + 6]!;
        if (code < ERROR_CODE_SLOTS) this.errorsSent[code]!++;
      }
      const length =
        ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
      at += 4 + length;
    }
  }

  connectionOpened(kind: TransportKind): void {
    const t = TRANSPORT_INDEX[kind];
    this.connectionsOpened[t]!++;
    this.connectionsOpen[t]!++;
  }

  connectionClosed(kind: TransportKind): void {
    this.connectionsOpen[TRANSPORT_INDEX[kind]]!--;
  }

  welcomed(kind: TransportKind): void {
    const t = TRANSPORT_INDEX[kind];
    this.handshakesCompleted[t]!++;
    this.sessionsLive[t]!++;
  }

  /** A connection starts closing (or is gone): it leaves the live sessions, or its handshake failed. */
  leaving(kind: TransportKind, live: boolean): void {
    const t = TRANSPORT_INDEX[kind];
    if (live) this.sessionsLive[t]!--;
    else this.handshakesFailed[t]!++;
  }

  closed(reason: string): void {
    this.closes.set(reason, (this.closes.get(reason) ?? 0) + 1);
  }
}
