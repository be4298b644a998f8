/**
 * Typing indicators (PROTOCOL.md section 8): how often this device says it is typing, and who is shown
 * as typing where. Indicators are ephemeral — never stored — so each one only lasts a few seconds.
 */

/** At most one indicator per conversation this often, ms. */
export const TYPING_EVERY_MS = 2_000;
/** How long an indicator is shown without a new one, ms. */
export const TYPING_SHOWN_MS = 4_000;

/** Decides when to send the next indicator for a conversation. */
export class TypingThrottle {
  private readonly lastSent = new Map<string, number>();

  /** True (and counts it as sent) when no indicator went to `conv` in the last TYPING_EVERY_MS. */
  take(conv: string, now = Date.now()): boolean {
    if (now - (this.lastSent.get(conv) ?? 0) < TYPING_EVERY_MS) return false;
    this.lastSent.set(conv, now);
    return true;
  }

  /** After a message is sent the next keystroke may say "typing" again at once. */
  reset(conv: string): void {
    this.lastSent.delete(conv);
  }
}

/** Who is typing in each conversation; `onChange(conv)` runs when that changes. */
export class TypingBoard {
  private readonly timers = new Map<string, Map<string, ReturnType<typeof setTimeout>>>();

  constructor(private readonly onChange: (conv: string) => void) {}

  typing(conv: string, user: string): void {
    let users = this.timers.get(conv);
    if (!users) {
      users = new Map();
      this.timers.set(conv, users);
    }
    const known = users.has(user);
    clearTimeout(users.get(user));
    users.set(
      user,
      setTimeout(() => this.stopped(conv, user), TYPING_SHOWN_MS),
    );
    if (!known) this.onChange(conv);
  }

  /** `user`'s message arrived (or the indicator ran out). */
  stopped(conv: string, user: string): void {
    const users = this.timers.get(conv);
    if (!users?.has(user)) return;
    clearTimeout(users.get(user));
    users.delete(user);
    if (users.size === 0) this.timers.delete(conv);
    this.onChange(conv);
  }

  who(conv: string): string[] {
    return [...(this.timers.get(conv)?.keys() ?? [])];
  }

  clear(): void {
    for (const users of this.timers.values()) for (const t of users.values()) clearTimeout(t);
    this.timers.clear();
  }
}
