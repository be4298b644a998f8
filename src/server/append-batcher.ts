/**
 * Append requests made during one turn of the microtask queue, sent to the homes in one call.
 *
 * A durable direct message makes two appends (its recipient copy, then the sender's own), and a call
 * costs more than its copy: a promise and its reactions in the homes and in the store, a queue entry,
 * a result array. SENDs read from one socket, and own copies made ready by one store commit, arrive in
 * bursts within one turn; batching them gives the burst one call. The call goes out in a microtask, so
 * it still joins the store commit of the turn its requests were made in.
 *
 * Requests keep the order they were added in, within the call and across calls (homes keep call order).
 * A call succeeds or fails as a whole: when it fails, every item of it fails with the same error.
 */
import type { AppendRequest, AppendResult } from '../store/inbox-store.js';

export class AppendBatcher<T> {
  private requests: AppendRequest[] = [];
  private items: T[] = [];
  private scheduled = false;

  constructor(
    private readonly append: (requests: readonly AppendRequest[]) => Promise<AppendResult[]>,
    /** The call answered: `results[i]` is `items[i]`'s. */
    private readonly settled: (items: T[], results: AppendResult[]) => void,
    /** The call failed (or could not be made): every item's outcome is unknown. */
    private readonly failed: (items: T[], err: unknown) => void,
    /**
     * False: one call per request, made at once — for a store that answers each call as its own writes
     * return (InboxStore.settlesPerTick), where a call gathering many inboxes would wait for the slowest.
     */
    private readonly gather = true,
  ) {}

  add(request: AppendRequest, item: T): void {
    if (!this.gather) {
      this.send([request], [item]);
      return;
    }
    this.requests.push(request);
    this.items.push(item);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(this.issue);
  }

  private readonly issue = (): void => {
    const { requests, items } = this;
    this.requests = [];
    this.items = [];
    this.scheduled = false;
    this.send(requests, items);
  };

  private send(requests: AppendRequest[], items: T[]): void {
    let call: Promise<AppendResult[]>;
    try {
      call = this.append(requests);
    } catch (err) {
      this.failed(items, err);
      return;
    }
    call.then(
      (results) => this.settled(items, results),
      (err: unknown) => this.failed(items, err),
    );
  }
}
