/**
 * The conversations, most recent first: each a button with the peer (or group), its last message with
 * its time, and the unread count.
 */
import { type Conversation, conversationTime } from '../store/history.js';
import { el } from './dom.js';
import { paintAvatar, shortWhen } from './format.js';

export class ConversationList {
  private readonly all = new Map<string, Conversation>();
  private openId: string | null = null;

  constructor(
    private readonly list: HTMLElement,
    private readonly empty: HTMLElement,
    private readonly onOpen: (id: string) => void,
  ) {}

  /** Replaces every conversation (after sign-in). */
  reset(conversations: Conversation[]): void {
    this.all.clear();
    for (const c of conversations) this.all.set(c.id, c);
    this.render();
  }

  upsert(conversation: Conversation): void {
    this.all.set(conversation.id, conversation);
    this.render();
  }

  setOpen(id: string | null): void {
    this.openId = id;
    this.render();
  }

  /** Unread messages over every conversation (for the page title). */
  get unread(): number {
    let n = 0;
    for (const c of this.all.values()) n += c.unread;
    return n;
  }

  private render(): void {
    const sorted = [...this.all.values()].sort(
      (a, b) => conversationTime(b) - conversationTime(a) || (a.id < b.id ? -1 : 1),
    );
    this.list.replaceChildren(...sorted.map((c) => this.item(c)));
    this.empty.hidden = sorted.length > 0;
  }

  private item(c: Conversation): HTMLElement {
    const button = el('button', 'conv');
    button.type = 'button';
    if (c.id === this.openId) button.setAttribute('aria-current', 'true');
    button.addEventListener('click', () => this.onOpen(c.id));

    const avatar = el('span');
    paintAvatar(avatar, c.id);
    avatar.setAttribute('aria-hidden', 'true');

    const top = el('span', 'conv-top');
    top.append(el('span', 'conv-name', c.id));
    if (c.last) top.append(el('span', 'conv-time', shortWhen(conversationTime(c))));

    const bottom = el('span', 'conv-bottom');
    bottom.append(el('span', 'conv-preview', preview(c)));
    if (c.unread > 0) {
      const badge = el('span', 'badge', String(c.unread));
      badge.append(el('span', 'visually-hidden', ' unread'));
      bottom.append(badge);
    }

    const main = el('span', 'conv-main');
    main.append(top, bottom);
    button.append(avatar, main);
    const item = el('li');
    item.append(button);
    return item;
  }
}

function preview(c: Conversation): string {
  const last = c.last;
  if (!last) return 'No messages yet';
  const who = last.mine ? 'You: ' : c.id.startsWith('#') ? `${last.from}: ` : '';
  const tick = last.mine ? (last.status === 'received' ? '✓✓ ' : last.status === 'accepted' ? '✓ ' : '') : '';
  return `${tick}${who}${last.binary ? `[${last.body}]` : last.body}`;
}
