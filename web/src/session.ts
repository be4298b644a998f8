/**
 * A signed-in session: the SDK client over WebSocket to the page's own server, its state and the
 * message history in this (user, device)'s IndexedDB, and what the SDK's events mean for the chat:
 * messages into the history, ACCEPTED as ✓, RECEIPT as ✓✓, typing indicators, presence.
 *
 * The SDK client stops for good after a fatal error it must not retry (SESSION_REPLACED, UNAUTHORIZED);
 * a new one is made on the same storage when the user asks ("Use here"), or to reconnect at once
 * when the browser says the network is back (the SDK would otherwise wait out its back-off).
 */
import {
  type ConnectedInfo,
  type Message,
  type PresenceInfo,
  SwitchboardClient,
  type SwitchboardError,
  TypedEmitter,
  WebSocketTransport,
} from '../../src/client/core.js';
import type { Credentials } from './credentials.js';
import { displayBody, TYPING } from './payload.js';
import { openDatabase } from './store/db.js';
import {
  type Change,
  type ChatMessage,
  conversationOf,
  History,
  messageKey,
  type StatusPatch,
} from './store/history.js';
import { IdbStorage } from './store/idb-storage.js';
import { TypingBoard, TypingThrottle } from './typing.js';

/** What the banner shows: the SDK's states, and `replaced` when another window took this device. */
export type Link = 'connecting' | 'online' | 'reconnecting' | 'replaced' | 'stopped';

export interface SessionEvents {
  /** A message was recorded or changed (its conversation's summary with it). */
  change: Change;
  /** Who is typing in this conversation changed. */
  typing: string;
  presence: PresenceInfo;
  link: Link;
  /** The client stopped on an error it must not retry. */
  fatal: SwitchboardError;
}

/** Reconnect back-off: short enough that a phone back on the network is back within seconds. */
const BACKOFF = { initialMs: 500, maxMs: 5_000 };

/** The WebSocket endpoint of the server that served this page. */
export function pageEndpoint(location: Location): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/sbp`;
}

export class Session extends TypedEmitter<SessionEvents> {
  readonly history: History;
  readonly typing = new TypingBoard((conv) => this.emit('typing', conv));
  private readonly throttle = new TypingThrottle();
  private readonly presence = new Map<string, PresenceInfo>();
  private client: SwitchboardClient;
  private watched: string | null = null;
  private linkState: Link = 'connecting';
  private closed = false;
  /** Set while reconnectNow() swaps the client. */
  private replacing: Promise<void> | null = null;
  /** The conversation the user is looking at, null when the page is hidden (its new messages are read). */
  viewing: string | null = null;

  private constructor(
    readonly credentials: Credentials,
    private readonly db: IDBDatabase,
    private readonly endpoint: string,
  ) {
    super();
    this.history = new History(db);
    this.client = this.newClient();
  }

  static async open(credentials: Credentials, endpoint: string): Promise<Session> {
    const db = await openDatabase(credentials.user, credentials.device);
    return new Session(credentials, db, endpoint);
  }

  get user(): string {
    return this.credentials.user;
  }

  get device(): string {
    return this.credentials.device;
  }

  get link(): Link {
    return this.linkState;
  }

  /** Connects; resolves at the first WELCOME, rejects when the client stops first (e.g. UNAUTHORIZED). */
  start(): Promise<ConnectedInfo> {
    return this.client.start();
  }

  /**
   * Replaces the client by a fresh one on the same storage, which connects at once. The old one is
   * closed first (it saves its state), so the new one loads everything the old one knew.
   */
  reconnectNow(): Promise<void> {
    this.replacing ??= (async () => {
      await this.client.close();
      if (this.closed) return;
      this.client = this.newClient();
      this.setLink('connecting');
      this.client.start().catch(() => {}); // a fatal error arrives as 'fatal'
    })().finally(() => {
      this.replacing = null;
    });
    return this.replacing;
  }

  /** The browser came back online or to the foreground: skip the rest of a back-off. */
  wake(): void {
    if (this.linkState === 'reconnecting') this.reconnectNow().catch(() => {});
  }

  /**
   * Sends a chat message. It is in the history (pending) before the SDK saves and writes it, so a
   * reload at any point shows it, and the SDK re-sends it until it is ACCEPTED.
   */
  async send(conv: string, text: string): Promise<void> {
    await this.replacing;
    this.throttle.reset(conv);
    let key = '';
    const sending = this.client.send(conv, text, {
      onId: (clientMsgId) => {
        key = messageKey(this.user, this.device, clientMsgId);
        const message: ChatMessage = {
          key,
          conv,
          from: this.user,
          fromDevice: this.device,
          clientMsgId,
          mine: true,
          body: text,
          binary: false,
          seq: 0,
          timestamp: 0,
          createdAt: Date.now(),
          status: 'pending',
        };
        this.apply(this.history.record(message, false));
      },
    });
    try {
      await sending;
    } catch (err) {
      // Refused before it was recorded (a local check, e.g. too long): the caller says why.
      if (!key) throw err;
      const error = err as SwitchboardError;
      // CLOSED: this client stopped; the message stays saved and the next client on this storage sends it.
      if (error.codeName === 'CLOSED') return;
      this.apply(this.history.update(key, { status: 'failed', error: error.codeName }));
    }
  }

  /** The user typed in `conv`: an ephemeral "typing", at most every couple of seconds. */
  typed(conv: string): void {
    if (!this.client.connected || !this.throttle.take(conv)) return;
    this.client.send(conv, TYPING, { ephemeral: true }).catch(() => {});
  }

  /** Joins a group (re-sent after reconnects until the server answers). */
  join(group: string): Promise<void> {
    return this.client.join(group);
  }

  /** Watches the presence of the open conversation's peer (nothing for a group or oneself). */
  watchPeer(conv: string | null): void {
    const peer = conv && !conv.startsWith('#') && conv !== this.user ? conv : null;
    if (peer === this.watched) return;
    if (this.watched) this.client.unwatch([this.watched]);
    this.watched = peer;
    if (peer) this.client.watch([peer]);
  }

  /** The last presence the server told for `user`, or undefined (not told yet). */
  presenceOf(user: string): PresenceInfo | undefined {
    return this.presence.get(user);
  }

  /** Stops the client (saving its state) and closes the database. */
  async close(): Promise<void> {
    this.closed = true;
    this.typing.clear();
    await this.replacing;
    await this.client.close();
    this.db.close();
  }

  private newClient(): SwitchboardClient {
    const client = new SwitchboardClient({
      endpoint: this.endpoint,
      user: this.credentials.user,
      device: this.credentials.device,
      token: this.credentials.token,
      transport: new WebSocketTransport(),
      storage: new IdbStorage(this.db),
      backoff: BACKOFF,
    });
    // Events of a client that was replaced are old news.
    client.on('message', (m) => client === this.client && this.onMessage(m));
    client.on('accepted', (a) => {
      if (client !== this.client) return;
      const key = messageKey(this.user, this.device, a.clientMsgId);
      this.applyPatch(key, { status: 'accepted', timestamp: a.timestamp });
    });
    client.on('receipt', (r) => {
      if (client !== this.client) return;
      // The receipt names the sending device: this one, or another device of this user.
      this.applyPatch(messageKey(this.user, r.fromDevice, r.clientMsgId), { status: 'received' });
    });
    client.on('requestError', ({ ref, error }) => {
      if (client !== this.client) return;
      this.applyPatch(messageKey(this.user, this.device, ref), { status: 'failed', error: error.codeName });
    });
    client.on('presence', (p) => {
      if (client !== this.client) return;
      this.presence.set(p.user, p);
      this.emit('presence', p);
    });
    client.on('state', (state) => {
      if (client !== this.client) return;
      if (state === 'connected') this.setLink('online');
      else if (state === 'connecting' && this.linkState !== 'reconnecting') this.setLink('connecting');
      else if (state === 'reconnecting') this.setLink('reconnecting');
    });
    client.on('error', (error) => {
      if (client !== this.client) return;
      this.setLink(error.codeName === 'SESSION_REPLACED' ? 'replaced' : 'stopped');
      this.emit('fatal', error);
    });
    client.on('warning', (err) => console.warn('switchboard:', err));
    if (this.watched) client.watch([this.watched]);
    return client;
  }

  private onMessage(m: Message): void {
    const conv = conversationOf(this.user, m.from, m.to);
    if (m.ephemeral) {
      // Only typing indicators are ephemeral in this app; one's own (from another device) is not shown.
      if (m.text === TYPING && m.from !== this.user) this.typing.typing(conv, m.from);
      return;
    }
    this.typing.stopped(conv, m.from);
    const message: ChatMessage = {
      key: messageKey(m.from, m.fromDevice, m.clientMsgId),
      conv,
      from: m.from,
      fromDevice: m.fromDevice,
      clientMsgId: m.clientMsgId,
      mine: m.from === this.user,
      ...displayBody(m.payload, m.text),
      seq: m.seq,
      timestamp: m.timestamp,
      createdAt: Date.now(),
      // Delivered means stored: for one's own message that is the first tick.
      status: 'accepted',
    };
    this.apply(this.history.record(message, conv !== this.viewing));
  }

  private applyPatch(key: string, patch: StatusPatch): void {
    this.apply(this.history.update(key, patch));
  }

  private apply(change: Promise<Change | null>): void {
    change.then(
      (c) => c && !this.closed && this.emit('change', c),
      (err) => console.error('switchboard: could not write the history', err),
    );
  }

  private setLink(link: Link): void {
    if (this.linkState === link) return;
    // Presence is only known while connected (the SDK watches again after a reconnect, and the server
    // answers a WATCH at once).
    if (link !== 'online') this.presence.clear();
    this.linkState = link;
    this.emit('link', link);
  }
}
