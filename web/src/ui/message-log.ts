/**
 * The open conversation's messages (the element with role "log"): one row per message, kept in display
 * order with a separator per day. Rows are keyed by message, so a status change (✓, ✓✓) updates its
 * row in place and a new message at the end is appended without touching the others.
 */
import { type ChatMessage, compareMessages } from '../store/history.js';
import { el } from './dom.js';
import { dayLabel, dayOf, timeOfDay } from './format.js';

/** How close to the bottom counts as "reading the latest" (then new messages keep it in view), px. */
const STICKY_PX = 80;

export class MessageLog {
  private conv: string | null = null;
  private messages: ChatMessage[] = [];
  private readonly rows = new Map<string, HTMLElement>();

  constructor(private readonly root: HTMLElement) {}

  /**
   * Shows a conversation's messages, scrolled to the latest. Shown again for the same conversation
   * (once its history has loaded), the rows upserted in between are kept: they are newer news.
   */
  show(conv: string, messages: ChatMessage[]): void {
    const byKey = new Map(messages.map((m) => [m.key, m]));
    if (this.conv === conv) for (const m of this.messages) byKey.set(m.key, m);
    this.conv = conv;
    this.messages = [...byKey.values()].sort(compareMessages);
    this.rows.clear();
    this.rebuild();
    this.root.scrollTop = this.root.scrollHeight;
  }

  clear(): void {
    this.conv = null;
    this.messages = [];
    this.rows.clear();
    this.root.replaceChildren();
  }

  /** A message was recorded or changed; messages of other conversations are ignored. */
  upsert(message: ChatMessage): void {
    if (message.conv !== this.conv) return;
    const before = this.messages.findLastIndex((m) => m.key === message.key);
    const stick = this.nearBottom() || (before < 0 && message.mine);
    if (before >= 0) this.messages.splice(before, 1);
    const at = this.insertionIndex(message);
    this.messages.splice(at, 0, message);
    const row = this.render(message);
    if (before === at) {
      // Same place: the row was updated in place.
    } else if (before < 0 && at === this.messages.length - 1) {
      const previous = this.messages[at - 1];
      if (!previous || dayOf(when(previous)) !== dayOf(when(message))) this.root.append(separator(message));
      this.root.append(row);
    } else {
      this.rebuild();
    }
    if (stick) this.root.scrollTop = this.root.scrollHeight;
  }

  private nearBottom(): boolean {
    const r = this.root;
    return r.scrollHeight - r.scrollTop - r.clientHeight < STICKY_PX;
  }

  private insertionIndex(message: ChatMessage): number {
    let i = this.messages.length;
    while (i > 0 && compareMessages(this.messages[i - 1]!, message) > 0) i--;
    return i;
  }

  private rebuild(): void {
    const nodes: HTMLElement[] = [];
    let day = Number.NaN;
    for (const m of this.messages) {
      const d = dayOf(when(m));
      if (d !== day) {
        nodes.push(separator(m));
        day = d;
      }
      nodes.push(this.rows.get(m.key) ?? this.render(m));
    }
    this.root.replaceChildren(...nodes);
  }

  private render(m: ChatMessage): HTMLElement {
    let row = this.rows.get(m.key);
    if (!row) {
      row = el('article');
      this.rows.set(m.key, row);
    }
    row.className = `msg ${m.mine ? 'mine' : 'theirs'} ${m.status}`;
    const bubble = el('div', 'bubble');
    if (!m.mine && m.conv.startsWith('#')) bubble.append(el('span', 'sender', m.from));
    const body = el('p', m.binary ? 'text binary' : 'text', m.body);
    if (m.binary) body.title = 'Not UTF-8 text: the bytes in hex';
    bubble.append(body, meta(m));
    row.replaceChildren(bubble);
    return row;
  }
}

/** The time a message is shown at: the server's, or when this device wrote it (still pending). */
function when(m: ChatMessage): number {
  return m.timestamp || m.createdAt;
}

function separator(m: ChatMessage): HTMLElement {
  return el('div', 'day', dayLabel(when(m)));
}

function meta(m: ChatMessage): HTMLElement {
  const line = el('span', 'meta');
  if (m.status === 'pending' && m.mine) {
    line.append(el('span', 'sending', 'sending…'));
    return line;
  }
  if (m.status === 'failed') {
    line.append(el('span', 'failed', `not sent${m.error ? ` (${m.error})` : ''}`));
    return line;
  }
  const time = el('time', '', timeOfDay(when(m)));
  time.dateTime = new Date(when(m)).toISOString();
  line.append(time);
  if (m.mine) {
    const received = m.status === 'received';
    const tick = el('span', received ? 'tick received' : 'tick', received ? '✓✓' : '✓');
    tick.setAttribute('role', 'img');
    tick.setAttribute('aria-label', received ? 'delivered' : 'sent');
    line.append(tick);
  }
  return line;
}
