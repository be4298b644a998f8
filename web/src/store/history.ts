/**
 * The message history per conversation, kept in IndexedDB. The server replays to this device only
 * what it has not processed, so after a reload the app shows what it kept here. A message is keyed by
 * its identity (sender user, sender device, clientMsgId: PROTOCOL.md section 5), so the copy of one's
 * own message that the server delivers back, a re-delivery after a reconnect, and the pending entry
 * written when it was sent all land on one record.
 */
import { BY_CONVERSATION, CONVERSATIONS_STORE, MESSAGES_STORE, request, transaction } from './db.js';

/** pending: saved, not yet ACCEPTED; accepted: stored by the server (✓); received: a RECEIPT came (✓✓). */
export type Status = 'pending' | 'accepted' | 'received' | 'failed';

export interface ChatMessage {
  key: string;
  /** The conversation: the peer user, or the `#group`. */
  conv: string;
  from: string;
  fromDevice: string;
  clientMsgId: number;
  /** Sent by the signed-in user (from this device or another one). */
  mine: boolean;
  /** The text, or the payload in hex when it is not valid UTF-8 (then `binary`). */
  body: string;
  binary: boolean;
  /** Inbox seq on this device; 0 until the server delivered it here. */
  seq: number;
  /** Server time it was stored; 0 until known. */
  timestamp: number;
  /** Local time this device first recorded it. */
  createdAt: number;
  status: Status;
  /** The error name when the server refused it (status failed). */
  error?: string;
}

export interface Conversation {
  id: string;
  unread: number;
  last: ChatMessage | null;
}

export interface Change {
  message: ChatMessage;
  conversation: Conversation;
}

export function messageKey(from: string, fromDevice: string, clientMsgId: number): string {
  return `${from}/${fromDevice}/${clientMsgId}`;
}

/**
 * Where a message belongs as seen by `me`: a group message to its group; a direct one to the other
 * user — so one's own message from another device (from = me) goes to its `to`.
 */
export function conversationOf(me: string, from: string, to: string): string {
  if (to.startsWith('#')) return to;
  return from === me ? to : from;
}

/** Server time when known; a message still pending sorts after everything the server has stored. */
function sortTime(m: ChatMessage): number {
  return m.timestamp || Number.MAX_SAFE_INTEGER;
}

/** Display order: server time, then inbox seq, then the sender's own order. */
export function compareMessages(a: ChatMessage, b: ChatMessage): number {
  return (
    sortTime(a) - sortTime(b) ||
    (a.seq || Number.MAX_SAFE_INTEGER) - (b.seq || Number.MAX_SAFE_INTEGER) ||
    a.clientMsgId - b.clientMsgId ||
    (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
  );
}

/** The most recent activity of a conversation (pending messages count as now). */
export function conversationTime(c: Conversation): number {
  return c.last ? c.last.timestamp || c.last.createdAt : 0;
}

const RANK: Record<Status, number> = { pending: 0, failed: 0, accepted: 1, received: 2 };

/** Statuses only move forward; a refusal only ends a message that was still pending. */
export function advance(current: Status, next: Status): Status {
  if (next === 'failed') return current === 'pending' ? 'failed' : current;
  return RANK[next] > RANK[current] ? next : current;
}

function merge(old: ChatMessage, incoming: ChatMessage): ChatMessage {
  return {
    ...old,
    seq: incoming.seq || old.seq,
    timestamp: old.timestamp || incoming.timestamp,
    status: advance(old.status, incoming.status),
    error: incoming.status === 'failed' ? incoming.error : old.error,
  };
}

export interface StatusPatch {
  status: Status;
  timestamp?: number;
  error?: string;
}

export class History {
  constructor(private readonly db: IDBDatabase) {}

  async conversations(): Promise<Conversation[]> {
    return transaction(this.db, [CONVERSATIONS_STORE], 'readonly', (tx) =>
      request(tx.objectStore(CONVERSATIONS_STORE).getAll() as IDBRequest<Conversation[]>),
    );
  }

  /** A conversation's messages in display order. */
  async messages(conv: string): Promise<ChatMessage[]> {
    const all = await transaction(this.db, [MESSAGES_STORE], 'readonly', (tx) =>
      request(
        tx.objectStore(MESSAGES_STORE).index(BY_CONVERSATION).getAll(conv) as IDBRequest<ChatMessage[]>,
      ),
    );
    return all.sort(compareMessages);
  }

  /**
   * Records a message (new, or news about one already kept) and its conversation's summary. The
   * transaction is created before this returns, so its order among the app's writes is the call order.
   * `countUnread`: a new message from someone else raises the conversation's unread count.
   */
  record(incoming: ChatMessage, countUnread: boolean): Promise<Change> {
    return transaction(this.db, [MESSAGES_STORE, CONVERSATIONS_STORE], 'readwrite', async (tx) => {
      const messages = tx.objectStore(MESSAGES_STORE);
      const old = await request(messages.get(incoming.key) as IDBRequest<ChatMessage | undefined>);
      const message = old ? merge(old, incoming) : incoming;
      messages.put(message);
      const conversation = await this.summarize(tx, message, !old && countUnread && !message.mine);
      return { message, conversation };
    });
  }

  /** Moves a kept message's status (ACCEPTED, RECEIPT, a refusal); null when it is not kept here. */
  update(key: string, patch: StatusPatch): Promise<Change | null> {
    return transaction(this.db, [MESSAGES_STORE, CONVERSATIONS_STORE], 'readwrite', async (tx) => {
      const messages = tx.objectStore(MESSAGES_STORE);
      const old = await request(messages.get(key) as IDBRequest<ChatMessage | undefined>);
      if (!old) return null;
      const message: ChatMessage = {
        ...old,
        status: advance(old.status, patch.status),
        timestamp: old.timestamp || (patch.timestamp ?? 0),
        error: patch.status === 'failed' && old.status === 'pending' ? patch.error : old.error,
      };
      messages.put(message);
      const conversation = await this.summarize(tx, message, false);
      return { message, conversation };
    });
  }

  /** Opens (creating it if new) a conversation and marks it read. */
  open(id: string): Promise<Conversation> {
    return transaction(this.db, [CONVERSATIONS_STORE], 'readwrite', async (tx) => {
      const store = tx.objectStore(CONVERSATIONS_STORE);
      const old = await request(store.get(id) as IDBRequest<Conversation | undefined>);
      const conversation: Conversation = { id, last: old?.last ?? null, unread: 0 };
      store.put(conversation);
      return conversation;
    });
  }

  private async summarize(tx: IDBTransaction, message: ChatMessage, unread: boolean): Promise<Conversation> {
    const store = tx.objectStore(CONVERSATIONS_STORE);
    const old = await request(store.get(message.conv) as IDBRequest<Conversation | undefined>);
    const last = old?.last ?? null;
    const conversation: Conversation = {
      id: message.conv,
      unread: (old?.unread ?? 0) + (unread ? 1 : 0),
      last: !last || last.key === message.key || compareMessages(message, last) >= 0 ? message : last,
    };
    store.put(conversation);
    return conversation;
  }
}
