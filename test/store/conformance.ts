/**
 * The InboxStore conformance suite: what every backend (SQLite, Redis, …) must do, checked only through
 * the interface. A backend's test file calls `inboxStoreConformance(name, open)`.
 *
 * `open(dir, caps)` opens the backend with those caps. `dir` is a fresh temporary directory per test, and
 * the suite may open the same `dir` again after closing to check that data survives; a backend without
 * files (Redis) ignores it and keeps its keyspace — so every test uses user names of its own, and no test
 * depends on what else the store holds (purge removes at most what the rules allow, for anyone).
 *
 * Time is the test's: message timestamps and the `now` of openDevice and purge come from one base time
 * per test plus offsets; nothing sleeps.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type {
  AppendRequest,
  AppendResult,
  InboxCaps,
  InboxStore,
  StoredMessage,
} from '../../src/store/inbox-store.js';

export type OpenInboxStore = (dir: string, caps: InboxCaps) => Promise<InboxStore>;

/** The protocol's defaults: 10 000 messages or 64 MiB per inbox, 7 days' retention. */
export const DEFAULT_CAPS: InboxCaps = {
  maxMessages: 10_000,
  maxBytes: 64 * 1024 * 1024,
  retentionMs: 7 * 86_400_000,
};

/** Retention used by the purge tests, so their offsets read easily. */
const RETENTION = 10_000;

export function inboxStoreConformance(name: string, open: OpenInboxStore): void {
  describe(`InboxStore conformance: ${name}`, () => {
    const run = randomBytes(4).toString('hex');
    let counter = 0;
    let dir = '';
    const opened: InboxStore[] = [];

    /** A user id no other test (or earlier run against a shared keyspace) has used. */
    const fresh = (label: string): string => `${label}-${run}-${++counter}`;

    const openStore = async (caps: Partial<InboxCaps> = {}): Promise<InboxStore> => {
      const store = await open(dir, { ...DEFAULT_CAPS, ...caps });
      opened.push(store);
      return store;
    };

    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'switchboard-store-'));
    });

    afterEach(async () => {
      for (const store of opened.splice(0)) await store.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    });

    it('assigns seqs 1, 2, 3, … per inbox, without gaps', async () => {
      const store = await openStore();
      const a = fresh('alice');
      const b = fresh('bob');
      const t0 = Date.now();
      const order: [string, number][] = [
        [a, 1],
        [b, 1],
        [a, 2],
        [a, 3],
        [b, 2],
      ];
      for (const [i, [inbox, seq]] of order.entries()) {
        const [r] = await store.append([req(inbox, 'carol', 'phone', i + 1, t0 + i)]);
        assert.deepEqual(r, { status: 'stored', seq, timestamp: t0 + i });
      }
      assert.equal(await store.lastSeq(a), 3);
      assert.equal(await store.lastSeq(b), 2);
      const got = await store.read(a, 0, 100);
      assert.deepEqual(
        got.map(plain),
        [1, 3, 4].map((id, k) => plain({ ...req(a, 'carol', 'phone', id, t0 + id - 1), seq: k + 1 })),
      );
      assert.deepEqual(
        (await store.read(b, 0, 100)).map((m) => m.seq),
        [1, 2],
      );
    });

    it('keeps call order within one batch and across ticks', async () => {
      const store = await openStore();
      const a = fresh('alice');
      const b = fresh('bob');
      const t0 = Date.now();
      let id = 0;
      // One call, several copies for one inbox: ascending seqs in array order.
      const first = await store.append([1, 2, 3, 4, 5].map(() => req(a, 'carol', 'phone', ++id, t0)));
      assert.deepEqual(first.map(seqOf), [1, 2, 3, 4, 5]);
      // Many calls in one tick, none awaited before the next: stored in call order.
      const pending: Promise<AppendResult[]>[] = [];
      for (let k = 0; k < 20; k++) pending.push(store.append([req(a, 'carol', 'phone', ++id, t0)]));
      assert.deepEqual(
        (await Promise.all(pending)).map(([r]) => seqOf(r)),
        range(6, 25),
      );
      // Across ticks.
      for (let k = 0; k < 5; k++) {
        const [r] = await store.append([req(a, 'carol', 'phone', ++id, t0)]);
        assert.equal(seqOf(r), 26 + k);
      }
      const messages = await store.read(a, 0, 1000);
      assert.deepEqual(
        messages.map((m) => [m.seq, m.clientMsgId]),
        range(1, 30).map((n) => [n, n]),
      );
      // Copies for two inboxes interleaved in one call: one result per request, in request order.
      const mixed = await store.append([
        req(a, 'dave', 'd', 1, t0),
        req(b, 'dave', 'd', 1, t0),
        req(a, 'dave', 'd', 2, t0),
        req(b, 'dave', 'd', 2, t0),
      ]);
      assert.deepEqual(mixed.map(seqOf), [31, 1, 32, 2]);
    });

    it('answers a duplicate with the original seq and timestamp, and stores nothing', async () => {
      const store = await openStore();
      const a = fresh('alice');
      const b = fresh('bob');
      const t0 = Date.now();
      assert.deepEqual(await store.append([req(a, 'carol', 'phone', 7, t0, 'first')]), [
        { status: 'stored', seq: 1, timestamp: t0 },
      ]);
      assert.deepEqual(await store.append([req(a, 'carol', 'phone', 7, t0 + 500, 'again')]), [
        { status: 'duplicate', seq: 1, timestamp: t0 },
      ]);
      assert.equal(await store.lastSeq(a), 1);
      const kept = await store.read(a, 0, 100);
      assert.equal(kept.length, 1);
      assert.equal(text(kept[0]!.payload), 'first');

      // Another device, another sender or another inbox is another message.
      const others = await store.append([
        req(a, 'carol', 'laptop', 7, t0 + 1),
        req(a, 'dave', 'phone', 7, t0 + 2),
        req(b, 'carol', 'phone', 7, t0 + 3),
      ]);
      assert.deepEqual(others, [
        { status: 'stored', seq: 2, timestamp: t0 + 1 },
        { status: 'stored', seq: 3, timestamp: t0 + 2 },
        { status: 'stored', seq: 1, timestamp: t0 + 3 },
      ]);

      // The same key twice in one call, and in two calls of one tick.
      const twice = await store.append([
        req(a, 'carol', 'phone', 8, t0 + 10),
        req(a, 'carol', 'phone', 8, t0 + 11),
      ]);
      assert.deepEqual(twice, [
        { status: 'stored', seq: 4, timestamp: t0 + 10 },
        { status: 'duplicate', seq: 4, timestamp: t0 + 10 },
      ]);
      const [x, y] = await Promise.all([
        store.append([req(a, 'carol', 'phone', 9, t0 + 20)]),
        store.append([req(a, 'carol', 'phone', 9, t0 + 21)]),
      ]);
      assert.deepEqual(x, [{ status: 'stored', seq: 5, timestamp: t0 + 20 }]);
      assert.deepEqual(y, [{ status: 'duplicate', seq: 5, timestamp: t0 + 20 }]);
      assert.equal(await store.lastSeq(a), 5);
      assert.deepEqual(
        (await store.read(a, 0, 100)).map((m) => [m.from, m.fromDevice, m.clientMsgId]),
        [
          ['carol', 'phone', 7],
          ['carol', 'laptop', 7],
          ['dave', 'phone', 7],
          ['carol', 'phone', 8],
          ['carol', 'phone', 9],
        ],
      );
    });

    it('refuses an append past the message cap, writing nothing', async () => {
      const store = await openStore({ maxMessages: 3 });
      const a = fresh('alice');
      const b = fresh('bob');
      const t0 = Date.now();
      const first = await store.append([req(a, 's', 'd', 1, t0), req(a, 's', 'd', 2, t0)]);
      assert.deepEqual(first.map(seqOf), [1, 2]);
      // One place left: the first copy of the call takes it, the second finds the inbox full.
      const second = await store.append([req(a, 's', 'd', 3, t0), req(a, 's', 'd', 4, t0)]);
      assert.deepEqual(second, [{ status: 'stored', seq: 3, timestamp: t0 }, { status: 'full' }]);
      assert.deepEqual(await store.append([req(a, 's', 'd', 5, t0)]), [{ status: 'full' }]);
      // A duplicate is still a duplicate when the inbox is full.
      assert.deepEqual(await store.append([req(a, 's', 'd', 2, t0 + 1)]), [
        { status: 'duplicate', seq: 2, timestamp: t0 },
      ]);
      assert.equal(await store.lastSeq(a), 3);
      assert.deepEqual(
        (await store.read(a, 0, 100)).map((m) => m.clientMsgId),
        [1, 2, 3],
      );
      // Other inboxes are not affected.
      assert.deepEqual((await store.append([req(b, 's', 'd', 4, t0)])).map(seqOf), [1]);
      // A refused id was not remembered: once there is room, it is stored.
      await store.openDevice(a, 'only', t0);
      await store.ack(a, 'only', 3);
      await purgeAll(store, t0 + 1);
      assert.deepEqual(await store.append([req(a, 's', 'd', 4, t0 + 2)]), [
        { status: 'stored', seq: 4, timestamp: t0 + 2 },
      ]);
    });

    it('takes new messages into a full inbox once every recent device has acknowledged, before any sweep', async () => {
      const store = await openStore({ maxMessages: 3 });
      const a = fresh('alice');
      const t0 = Date.now();
      await store.openDevice(a, 'phone', t0);
      await store.append(range(1, 3).map((n) => req(a, 's', 'd', n, t0)));
      assert.deepEqual(await store.append([req(a, 's', 'd', 4, t0)]), [{ status: 'full' }]);
      await store.ack(a, 'phone', 2);
      // No purge call in between: the cap counts only what a recent device still has to read.
      assert.deepEqual((await store.append([req(a, 's', 'd', 4, t0 + 1)])).map(seqOf), [4]);
      assert.deepEqual((await store.append([req(a, 's', 'd', 5, t0 + 1)])).map(seqOf), [5]);
      assert.deepEqual(await store.append([req(a, 's', 'd', 6, t0 + 1)]), [{ status: 'full' }]);
      assert.deepEqual(await seqsOf(store, a), [3, 4, 5]);
    });

    it('answers a duplicate at a full inbox without reclaiming anything', async () => {
      const store = await openStore({ maxMessages: 3 });
      const a = fresh('alice');
      const t0 = Date.now();
      await store.openDevice(a, 'phone', t0);
      await store.append(range(1, 3).map((n) => req(a, 's', 'd', n, t0)));
      await store.ack(a, 'phone', 2);
      // Messages 1 and 2 could make room, but a duplicate needs none: it changes nothing.
      assert.deepEqual(await store.append([req(a, 's', 'd', 3, t0 + 1)]), [
        { status: 'duplicate', seq: 3, timestamp: t0 },
      ]);
      assert.deepEqual(await seqsOf(store, a), [1, 2, 3]);
      assert.deepEqual((await store.append([req(a, 's', 'd', 4, t0 + 1)])).map(seqOf), [4]);
      assert.deepEqual(await seqsOf(store, a), [3, 4]);
    });

    it('refuses an append past the byte cap, writing nothing', async () => {
      const store = await openStore({ maxBytes: 100 });
      const a = fresh('alice');
      const b = fresh('bob');
      const t0 = Date.now();
      const results = await store.append([
        req(a, 's', 'd', 1, t0, bytes(60)),
        req(a, 's', 'd', 2, t0, bytes(50)),
        req(a, 's', 'd', 3, t0, bytes(40)),
        req(a, 's', 'd', 4, t0, bytes(1)),
      ]);
      assert.deepEqual(results, [
        { status: 'stored', seq: 1, timestamp: t0 },
        { status: 'full' },
        { status: 'stored', seq: 2, timestamp: t0 },
        { status: 'full' },
      ]);
      assert.equal(await store.lastSeq(a), 2);
      assert.deepEqual(
        (await store.read(a, 0, 100)).map((m) => m.payload.byteLength),
        [60, 40],
      );
      assert.deepEqual(await store.append([req(b, 's', 'd', 1, t0, bytes(100))]), [
        { status: 'stored', seq: 1, timestamp: t0 },
      ]);
      assert.deepEqual(await store.append([req(b, 's', 'd', 2, t0, bytes(101))]), [{ status: 'full' }]);
    });

    it('reads after a cursor, with a limit', async () => {
      const store = await openStore();
      const a = fresh('alice');
      const t0 = Date.now();
      await store.append(range(1, 10).map((n) => req(a, 's', 'd', n, t0 + n, `m${n}`)));
      const seqs = async (after: number, limit: number): Promise<number[]> =>
        (await store.read(a, after, limit)).map((m) => m.seq);
      assert.deepEqual(await seqs(0, 3), [1, 2, 3]);
      assert.deepEqual(await seqs(3, 100), range(4, 10));
      assert.deepEqual(await seqs(8, 1), [9]);
      assert.deepEqual(await seqs(10, 5), []);
      assert.deepEqual(await seqs(50, 5), []);
      const [m] = await store.read(a, 6, 1);
      assert.deepEqual(plain(m!), plain({ ...req(a, 's', 'd', 7, t0 + 7, 'm7'), seq: 7 }));
      assert.deepEqual(await store.read(fresh('nobody'), 0, 10), []);
    });

    it('openDevice registers new and known devices', async () => {
      const store = await openStore();
      const a = fresh('alice');
      const t0 = Date.now();
      assert.deepEqual(await store.openDevice(a, 'phone', t0), { lastSeq: 0, ackedSeq: 0 });
      await store.append(range(1, 3).map((n) => req(a, 's', 'd', n, t0)));
      assert.deepEqual(await store.openDevice(a, 'phone', t0 + 1), { lastSeq: 3, ackedSeq: 0 });
      await store.ack(a, 'phone', 2);
      assert.deepEqual(await store.openDevice(a, 'phone', t0 + 2), { lastSeq: 3, ackedSeq: 2 });
      assert.deepEqual(await store.openDevice(a, 'laptop', t0 + 3), { lastSeq: 3, ackedSeq: 0 });
      // Calls of one tick apply in order: the ack before the HELLO is reflected in it.
      const [, state] = await Promise.all([store.ack(a, 'laptop', 3), store.openDevice(a, 'laptop', t0 + 4)]);
      assert.deepEqual(state, { lastSeq: 3, ackedSeq: 3 });
    });

    it('moves an ack cursor forward only', async () => {
      const store = await openStore();
      const a = fresh('alice');
      const t0 = Date.now();
      await store.append(range(1, 10).map((n) => req(a, 's', 'd', n, t0)));
      await store.openDevice(a, 'phone', t0);
      await store.openDevice(a, 'laptop', t0);
      await store.ack(a, 'phone', 5);
      await store.ack(a, 'phone', 3);
      assert.equal((await store.openDevice(a, 'phone', t0)).ackedSeq, 5);
      await store.ack(a, 'phone', 7);
      assert.equal((await store.openDevice(a, 'phone', t0)).ackedSeq, 7);
      await Promise.all([store.ack(a, 'phone', 9), store.ack(a, 'phone', 8)]);
      assert.equal((await store.openDevice(a, 'phone', t0)).ackedSeq, 9);
      assert.equal((await store.openDevice(a, 'laptop', t0)).ackedSeq, 0);
    });

    it('lastSeq is 0 for a new inbox and counts only stored copies', async () => {
      const store = await openStore({ maxMessages: 2 });
      const a = fresh('alice');
      const t0 = Date.now();
      assert.equal(await store.lastSeq(a), 0);
      await store.append([req(a, 's', 'd', 1, t0), req(a, 's', 'd', 1, t0)]);
      assert.equal(await store.lastSeq(a), 1);
      await store.append([req(a, 's', 'd', 2, t0), req(a, 's', 'd', 3, t0)]); // the second is refused: full
      assert.equal(await store.lastSeq(a), 2);
    });

    it('purges messages older than the retention period', async () => {
      const store = await openStore({ retentionMs: RETENTION });
      const a = fresh('alice');
      const t0 = Date.now();
      await store.openDevice(a, 'phone', t0); // never acks
      await store.append(range(1, 3).map((n) => req(a, 's', 'd', n, t0)));
      await store.append(range(4, 5).map((n) => req(a, 's', 'd', n, t0 + 5_000)));
      await purgeAll(store, t0 + 9_000);
      assert.deepEqual(await seqsOf(store, a), [1, 2, 3, 4, 5]);
      await purgeAll(store, t0 + 12_000);
      assert.deepEqual(await seqsOf(store, a), [4, 5]);
      assert.deepEqual(
        (await store.read(a, 0, 1)).map((m) => m.seq),
        [4],
      );
      await purgeAll(store, t0 + 20_000);
      assert.deepEqual(await seqsOf(store, a), []);
      // Seqs are never reused.
      assert.equal(await store.lastSeq(a), 5);
      assert.deepEqual(await store.openDevice(a, 'phone', t0 + 20_000), { lastSeq: 5, ackedSeq: 0 });
      assert.deepEqual((await store.append([req(a, 's', 'd', 6, t0 + 20_000)])).map(seqOf), [6]);
    });

    it('purges what every device seen within the retention period has acknowledged', async () => {
      const store = await openStore({ retentionMs: RETENTION });
      const a = fresh('alice');
      const t0 = Date.now();
      await store.openDevice(a, 'phone', t0);
      await store.openDevice(a, 'laptop', t0);
      await store.append(range(1, 5).map((n) => req(a, 's', 'd', n, t0)));
      await store.ack(a, 'phone', 5);
      await store.ack(a, 'laptop', 3);
      await purgeAll(store, t0 + 1);
      assert.deepEqual(await seqsOf(store, a), [4, 5]);
      await store.ack(a, 'laptop', 5);
      await purgeAll(store, t0 + 2);
      assert.deepEqual(await seqsOf(store, a), []);
      // Seqs are never reused; a device seen for the first time gets what the inbox still holds.
      assert.equal(await store.lastSeq(a), 5);
      assert.deepEqual(await store.openDevice(a, 'tablet', t0 + 3), { lastSeq: 5, ackedSeq: 0 });
      assert.deepEqual((await store.append([req(a, 's', 'd', 6, t0 + 3)])).map(seqOf), [6]);
      assert.deepEqual(await seqsOf(store, a), [6]);
      // The new device holds the new message back until it acks it too.
      await store.ack(a, 'phone', 6);
      await store.ack(a, 'laptop', 6);
      await purgeAll(store, t0 + 4);
      assert.deepEqual(await seqsOf(store, a), [6]);
      await store.ack(a, 'tablet', 6);
      await purgeAll(store, t0 + 5);
      assert.deepEqual(await seqsOf(store, a), []);
    });

    it('ignores the cursors of devices not seen within the retention period', async () => {
      const store = await openStore({ retentionMs: RETENTION });
      const a = fresh('alice');
      const t0 = Date.now();
      await store.openDevice(a, 'old-phone', t0); // acks nothing, then is gone
      await store.openDevice(a, 'laptop', t0 + 8_000);
      await store.append(range(1, 3).map((n) => req(a, 's', 'd', n, t0 + 8_000)));
      await store.ack(a, 'laptop', 3);
      await purgeAll(store, t0 + 9_000); // old-phone was seen 9 s ago: it still counts
      assert.deepEqual(await seqsOf(store, a), [1, 2, 3]);
      await purgeAll(store, t0 + 11_000); // now it does not; the messages are only 3 s old
      assert.deepEqual(await seqsOf(store, a), []);
      assert.equal(await store.lastSeq(a), 3);
    });

    it('keeps everything of a user with no device seen within the retention period, until it expires', async () => {
      const store = await openStore({ retentionMs: RETENTION });
      const nobody = fresh('no-devices');
      const a = fresh('alice');
      const t0 = Date.now();
      await store.openDevice(a, 'phone', t0);
      await store.append(range(1, 3).map((n) => req(a, 's', 'd', n, t0 + 6_000)));
      await store.append(range(1, 3).map((n) => req(nobody, 's', 'd', n, t0 + 6_000)));
      await store.ack(a, 'phone', 3);
      // phone was seen 11 s ago: a's messages (5 s old) stay although phone acknowledged them.
      await purgeAll(store, t0 + 11_000);
      assert.deepEqual(await seqsOf(store, a), [1, 2, 3]);
      assert.deepEqual(await seqsOf(store, nobody), [1, 2, 3]);
      // phone comes back (its old cursor may have been forgotten with it) and acknowledges: they can go.
      assert.equal((await store.openDevice(a, 'phone', t0 + 12_000)).lastSeq, 3);
      await store.ack(a, 'phone', 3);
      await purgeAll(store, t0 + 12_000);
      assert.deepEqual(await seqsOf(store, a), []);
      assert.deepEqual(await seqsOf(store, nobody), [1, 2, 3]);
      // Until they expire.
      await purgeAll(store, t0 + 6_000 + RETENTION + 1);
      assert.deepEqual(await seqsOf(store, nobody), []);
      assert.equal(await store.lastSeq(nobody), 3);
    });

    it('purges messages that are both expired and acknowledged in one step, and counts the inbox right', async () => {
      const store = await openStore({ retentionMs: RETENTION, maxMessages: 5 });
      const a = fresh('alice');
      const t0 = Date.now();
      await store.openDevice(a, 'phone', t0);
      await store.append(range(1, 5).map((n) => req(a, 's', 'd', n, t0)));
      await store.ack(a, 'phone', 3);
      await store.openDevice(a, 'phone', t0 + 12_000); // still a recent device
      // Every message has expired, and 1–3 are also acknowledged: each is removed once.
      await purgeAll(store, t0 + 12_000);
      assert.deepEqual(await seqsOf(store, a), []);
      // An empty inbox: five fit under the cap of 5, the sixth does not.
      const later = range(6, 11).map((n) => req(a, 's', 'd', n, t0 + 12_000));
      assert.deepEqual(
        (await store.append(later)).map((r) => r.status),
        ['stored', 'stored', 'stored', 'stored', 'stored', 'full'],
      );
    });

    it('still detects a duplicate after its message was purged as acknowledged', async () => {
      const store = await openStore({ retentionMs: RETENTION });
      const a = fresh('alice');
      const t0 = Date.now();
      await store.openDevice(a, 'phone', t0);
      await store.append([req(a, 'bob', 'b1', 41, t0), req(a, 'bob', 'b1', 42, t0 + 1)]);
      await store.ack(a, 'phone', 2);
      await purgeAll(store, t0 + 5_000);
      assert.deepEqual(await seqsOf(store, a), []);
      assert.deepEqual(
        await store.append([req(a, 'bob', 'b1', 42, t0 + 5_000), req(a, 'bob', 'b1', 43, t0 + 5_000)]),
        [
          { status: 'duplicate', seq: 2, timestamp: t0 + 1 },
          { status: 'stored', seq: 3, timestamp: t0 + 5_000 },
        ],
      );
      assert.deepEqual(await seqsOf(store, a), [3]);
    });

    it('keeps messages, cursors, seqs and dedupe across close and reopen', async () => {
      const a = fresh('alice');
      const t0 = Date.now();
      const first = await openStore();
      await first.openDevice(a, 'phone', t0);
      await first.append(range(1, 3).map((n) => req(a, 's', 'd', n, t0 + n, `m${n}`)));
      await first.ack(a, 'phone', 2);
      await first.close();

      const second = await openStore();
      assert.equal(await second.lastSeq(a), 3);
      assert.deepEqual(
        (await second.read(a, 0, 100)).map(plain),
        range(1, 3).map((n) => plain({ ...req(a, 's', 'd', n, t0 + n, `m${n}`), seq: n })),
      );
      assert.deepEqual(await second.openDevice(a, 'phone', t0 + 10), { lastSeq: 3, ackedSeq: 2 });
      assert.deepEqual(await second.append([req(a, 's', 'd', 3, t0 + 10), req(a, 's', 'd', 4, t0 + 10)]), [
        { status: 'duplicate', seq: 3, timestamp: t0 + 3 },
        { status: 'stored', seq: 4, timestamp: t0 + 10 },
      ]);
    });

    it('never reuses a seq, and keeps the caps, across close and reopen once messages are gone', async () => {
      const acked = fresh('alice'); // every message acknowledged
      const expired = fresh('bob'); // every message expired
      const capped = fresh('carol'); // at the message cap, some acknowledged
      const stepped = fresh('dave'); // the clock stepped back: the later message expires first
      const t0 = Date.now();
      const first = await openStore({ retentionMs: RETENTION, maxMessages: 3 });
      for (const u of [acked, expired, capped]) await first.openDevice(u, 'phone', t0);
      await first.append(range(1, 3).map((n) => req(acked, 's', 'd', n, t0 + 5_000)));
      await first.append(range(1, 2).map((n) => req(expired, 's', 'd', n, t0)));
      await first.append(range(1, 3).map((n) => req(capped, 's', 'd', n, t0 + 5_000)));
      await first.append([req(stepped, 's', 'd', 1, t0 + 5_000), req(stepped, 's', 'd', 2, t0)]);
      await first.ack(acked, 'phone', 3);
      await first.ack(capped, 'phone', 1);
      await first.openDevice(acked, 'phone', t0 + 12_000);
      await first.openDevice(capped, 'phone', t0 + 12_000);
      await purgeAll(first, t0 + 12_000); // bob's messages expire, alice's and carol's 1 are acknowledged
      assert.deepEqual(await seqsOf(first, acked), []);
      assert.deepEqual(await seqsOf(first, expired), []);
      assert.deepEqual(await seqsOf(first, capped), [2, 3]);
      assert.deepEqual(await seqsOf(first, stepped), [1]);
      await first.close();

      const second = await openStore({ retentionMs: RETENTION, maxMessages: 3 });
      assert.equal(await second.lastSeq(acked), 3);
      assert.equal(await second.lastSeq(expired), 2);
      assert.equal(await second.lastSeq(capped), 3);
      assert.equal(await second.lastSeq(stepped), 2);
      assert.deepEqual((await second.append([req(acked, 's', 'd', 4, t0 + 12_000)])).map(seqOf), [4]);
      assert.deepEqual((await second.append([req(expired, 's', 'd', 3, t0 + 12_000)])).map(seqOf), [3]);
      // carol keeps two of three: one more fits, the next is refused.
      assert.deepEqual(
        await second.append([req(capped, 's', 'd', 4, t0 + 12_000), req(capped, 's', 'd', 5, t0 + 12_000)]),
        [{ status: 'stored', seq: 4, timestamp: t0 + 12_000 }, { status: 'full' }],
      );
    });

    it('commits pending writes on close; calls after close reject', async () => {
      const a = fresh('alice');
      const t0 = Date.now();
      const store = await openStore();
      const appended = store.append([req(a, 's', 'd', 1, t0)]);
      const acked = store.ack(a, 'phone', 1);
      await store.close();
      assert.deepEqual(await appended, [{ status: 'stored', seq: 1, timestamp: t0 }]);
      await acked;
      await assert.rejects(store.append([req(a, 's', 'd', 2, t0)]));
      await assert.rejects(store.read(a, 0, 10));
      await assert.rejects(store.lastSeq(a));

      const again = await openStore();
      assert.equal(await again.lastSeq(a), 1);
      assert.equal((await again.openDevice(a, 'phone', t0)).ackedSeq, 1);
    });

    it('lists receipt sources: direct messages from others, not own copies, group messages or notes to self', async () => {
      const a = fresh('alice');
      const t0 = Date.now();
      const store = await openStore();
      await store.append([
        req(a, 'bob', 'phone', 1, t0),
        { ...req(a, a, 'laptop', 2, t0), to: 'bob' },
        { ...req(a, 'bob', 'phone', 3, t0), to: '#team' },
        req(a, a, 'phone', 4, t0),
        req(a, 'carol', 'tablet', 5, t0),
        req(a, 'bob', 'phone', 6, t0),
      ]);
      assert.deepEqual(await store.receiptSources(a, 0, 6, 100), [
        { seq: 1, from: 'bob', fromDevice: 'phone', clientMsgId: 1 },
        { seq: 5, from: 'carol', fromDevice: 'tablet', clientMsgId: 5 },
        { seq: 6, from: 'bob', fromDevice: 'phone', clientMsgId: 6 },
      ]);
      assert.deepEqual(
        (await store.receiptSources(a, 1, 5, 100)).map((r) => r.seq),
        [5],
      );
      assert.deepEqual(
        (await store.receiptSources(a, 0, 6, 2)).map((r) => r.seq),
        [1, 5],
      );
      assert.deepEqual(await store.receiptSources(a, 6, 6, 100), []);
    });

    it('keeps group membership: join creates and is idempotent, leave by anyone is fine, empty means gone', async () => {
      const g = `#${fresh('team')}`;
      const [a, b] = [fresh('alice'), fresh('bob')];
      const store = await openStore();
      assert.deepEqual(await store.members(g), []);
      await store.leave(g, a);
      await Promise.all([store.join(g, b), store.join(g, a), store.join(g, a)]);
      assert.deepEqual(await store.members(g), [a, b].sort());
      await store.leave(g, b);
      assert.deepEqual(await store.members(g), [a]);
      await store.leave(g, a);
      assert.deepEqual(await store.members(g), []);
    });

    it('keeps membership across close and reopen, and applies joins and leaves in call order', async () => {
      const g = `#${fresh('team')}`;
      const users = range(1, 40).map((n) => fresh(`u${n}`));
      const first = await openStore();
      // One tick: each user joins, then every third leaves again; the last call for a user wins.
      await Promise.all(
        users.flatMap((u, i) => (i % 3 === 0 ? [first.join(g, u), first.leave(g, u)] : [first.join(g, u)])),
      );
      const expected = users.filter((_, i) => i % 3 !== 0).sort();
      assert.deepEqual(await first.members(g), expected);
      const pending = first.join(g, users[0]!);
      await first.close();
      await pending;
      await assert.rejects(first.members(g));
      const second = await openStore();
      assert.deepEqual(await second.members(g), [...expected, users[0]!].sort());
    });

    it('stores 2 000 appends made in one tick to 50 inboxes exactly once, in call order', async () => {
      const store = await openStore();
      const t0 = Date.now();
      const inboxes = range(1, 50).map((n) => fresh(`crowd${n}`));
      const requests = range(0, 1999).map((i) =>
        req(inboxes[i % 50]!, 'sender', `dev${i % 3}`, i + 1, t0 + i),
      );
      const results = await Promise.all(requests.map((r) => store.append([r])));
      results.forEach(([r], i) => {
        assert.deepEqual(r, { status: 'stored', seq: Math.floor(i / 50) + 1, timestamp: t0 + i });
      });
      // One call with a copy for every inbox (a group message).
      const group = await store.append(inboxes.map((inbox) => req(inbox, 'sender', 'group', 1, t0 + 5_000)));
      assert.deepEqual(
        group.map(seqOf),
        inboxes.map(() => 41),
      );
      for (const [k, inbox] of inboxes.entries()) {
        const messages = await store.read(inbox, 0, 1000);
        assert.deepEqual(
          messages.map((m) => m.seq),
          range(1, 41),
        );
        assert.deepEqual(
          messages.slice(0, 40).map((m) => m.clientMsgId),
          range(0, 39).map((j) => j * 50 + k + 1),
        );
        assert.equal(await store.lastSeq(inbox), 41);
      }
      // All of them again, in one tick: all duplicates, nothing stored.
      const again = await Promise.all(requests.map((r) => store.append([{ ...r, timestamp: t0 + 9_999 }])));
      again.forEach(([r], i) => {
        assert.deepEqual(r, { status: 'duplicate', seq: Math.floor(i / 50) + 1, timestamp: t0 + i });
      });
      for (const inbox of inboxes) assert.equal(await store.lastSeq(inbox), 41);
    });

    it('purges in bounded steps', async () => {
      const store = await openStore({ retentionMs: RETENTION });
      const a = fresh('alice');
      const t0 = Date.now();
      await store.append(range(1, 30).map((n) => req(a, 's', 'd', n, t0)));
      const removed = await store.purge(t0 + RETENTION + 1, 7);
      assert.ok(removed > 0 && removed <= 7, `purge(now, 7) returned ${removed}`);
      await purgeAll(store, t0 + RETENTION + 1, 7);
      assert.deepEqual(await seqsOf(store, a), []);
      assert.equal(await store.purge(t0 + RETENTION + 1, 7), 0);
    });
  });
}

function req(
  inbox: string,
  from: string,
  fromDevice: string,
  clientMsgId: number,
  timestamp: number,
  payload: string | Uint8Array = `${from}/${fromDevice}/${clientMsgId}`,
): AppendRequest {
  return {
    inbox,
    from,
    fromDevice,
    clientMsgId,
    to: inbox,
    payload: typeof payload === 'string' ? new TextEncoder().encode(payload) : payload,
    timestamp,
  };
}

/** A message with its payload as a plain array, for deepEqual across Buffer and Uint8Array. */
function plain(m: StoredMessage | (AppendRequest & { seq: number })): Record<string, unknown> {
  return {
    seq: m.seq,
    timestamp: m.timestamp,
    from: m.from,
    fromDevice: m.fromDevice,
    clientMsgId: m.clientMsgId,
    to: m.to,
    payload: Array.from(m.payload),
  };
}

function seqOf(r: AppendResult | undefined): number | string {
  return r?.status === 'full' || r === undefined ? 'full' : r.seq;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function bytes(n: number): Uint8Array {
  return new Uint8Array(n).fill(0x61);
}

function text(payload: Uint8Array): string {
  return new TextDecoder().decode(payload);
}

async function seqsOf(store: InboxStore, user: string): Promise<number[]> {
  return (await store.read(user, 0, 100_000)).map((m) => m.seq);
}

/** Runs the retention sweep at `now` until it reports nothing left, checking each step's bound. */
async function purgeAll(store: InboxStore, now: number, step = 100): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    const removed = await store.purge(now, step);
    assert.ok(removed >= 0 && removed <= step, `purge(now, ${step}) returned ${removed}`);
    if (removed === 0) return;
  }
  assert.fail('purge never reported that nothing was left');
}
