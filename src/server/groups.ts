/**
 * The group side of a home (PROTOCOL.md sections 5 and 6): membership, kept durably by the store of the
 * group's shard and cached here, and the fan-out of a group SEND into every member's inbox.
 *
 * A group SEND is stored in two steps: the sender's own copy first, whose result (a duplicate carries the
 * original timestamp) gives the timestamp of every other copy; then the other members' copies, issued
 * FANOUT_BATCH at a time with a turn of the event loop between batches, so a 1 000-member group never
 * holds the loop for long. ACCEPTED waits for all of them. A crash between copies leaves some members
 * without one; the client's re-send stores the missing ones (per-inbox dedupe answers the rest).
 */
import { ErrorCode, type ErrorCodeValue } from '../protocol/index.js';
import type { AppendRequest, AppendResult, InboxStore } from '../store/inbox-store.js';

/** A durable group SEND as the group's home receives it. */
export interface GroupMessage {
  from: string;
  fromDevice: string;
  clientMsgId: number;
  payload: Uint8Array;
}

export type GroupOutcome =
  | { status: 'accepted'; duplicate: boolean; timestamp: number }
  /** INVALID_ADDRESS (no such group) or NOT_A_MEMBER: nothing stored. */
  | { status: 'refused'; code: ErrorCodeValue; message: string };

type Refused = Extract<GroupOutcome, { status: 'refused' }>;

/** Member copies issued per turn of the event loop. */
export const FANOUT_BATCH = 256;

/** Groups whose member lists a home keeps in memory (the least recently loaded ones are dropped). */
const MAX_CACHED_GROUPS = 10_000;

type AppendAnywhere = (requests: readonly AppendRequest[]) => Promise<AppendResult[]>;

export class GroupFanout {
  /** group → its members, ascending. */
  private readonly cache = new Map<string, string[]>();
  /** group → membership changes so far: a load that raced a change is not cached. */
  private readonly changes = new Map<string, number>();

  constructor(
    private readonly store: InboxStore,
    /** Appends to any user's inbox, wherever its home is. */
    private readonly appendAnywhere: AppendAnywhere,
  ) {}

  async members(group: string): Promise<string[]> {
    const cached = this.cache.get(group);
    if (cached) return cached;
    const version = this.changes.get(group) ?? 0;
    const members = await this.store.members(group);
    if ((this.changes.get(group) ?? 0) === version) {
      if (this.cache.size >= MAX_CACHED_GROUPS) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(group, members);
    }
    return members;
  }

  async join(group: string, user: string): Promise<void> {
    await this.store.join(group, user);
    this.changed(group, (members) => (members.includes(user) ? members : [...members, user].sort()));
  }

  async leave(group: string, user: string): Promise<void> {
    await this.store.leave(group, user);
    this.changed(group, (members) => members.filter((m) => m !== user));
  }

  /** The members of `group` when `sender` may send to it, else why not (nothing is sent then). */
  async audience(group: string, sender: string): Promise<string[] | Refused> {
    const members = await this.members(group);
    if (members.length === 0) {
      return { status: 'refused', code: ErrorCode.INVALID_ADDRESS, message: `group ${group} does not exist` };
    }
    if (!members.includes(sender)) {
      return { status: 'refused', code: ErrorCode.NOT_A_MEMBER, message: `not a member of ${group}` };
    }
    return members;
  }

  async send(group: string, m: GroupMessage, now: number): Promise<GroupOutcome> {
    const members = await this.audience(group, m.from);
    if (!Array.isArray(members)) return members;
    const copy = (inbox: string, timestamp: number): AppendRequest => ({
      inbox,
      from: m.from,
      fromDevice: m.fromDevice,
      clientMsgId: m.clientMsgId,
      to: group,
      payload: m.payload,
      timestamp,
    });
    const [own] = (await this.appendAnywhere([copy(m.from, now)])) as [AppendResult];
    // A full own inbox is skipped (never an error); then the time is now.
    const timestamp = own.status === 'full' ? now : own.timestamp;
    const batches: Promise<AppendResult[]>[] = [];
    let batch: AppendRequest[] = [];
    for (const member of members) {
      if (member === m.from) continue;
      batch.push(copy(member, timestamp));
      if (batch.length === FANOUT_BATCH) {
        batches.push(this.appendAnywhere(batch));
        batch = [];
        await nextTurn();
      }
    }
    if (batch.length > 0) batches.push(this.appendAnywhere(batch));
    const results = (await Promise.all(batches)).flat();
    const duplicate =
      own.status === 'duplicate' || (own.status === 'full' && results.some((r) => r.status === 'duplicate'));
    return { status: 'accepted', duplicate, timestamp };
  }

  /** The membership changed elsewhere (another node): the cached list is dropped. */
  forget(group: string): void {
    this.changes.set(group, (this.changes.get(group) ?? 0) + 1);
    this.cache.delete(group);
  }

  private changed(group: string, update: (members: string[]) => string[]): void {
    this.changes.set(group, (this.changes.get(group) ?? 0) + 1);
    const cached = this.cache.get(group);
    if (cached) this.cache.set(group, update(cached));
  }
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
