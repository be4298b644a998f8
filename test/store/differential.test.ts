/**
 * The two InboxStore backends side by side: random sequences of appends (duplicates, caps, clocks that
 * step back, a sender's own copies and notes to self), acks, device sightings, retention sweeps run to
 * the end, reads and receipt lookups go to a SQLite store and to a Redis store (a real redis-server, then
 * a Redis Cluster of 3 masters), and every answer must be the same. The conformance suite checks chosen
 * cases; this looks for the cases nobody chose.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { AppendRequest, InboxStore } from '../../src/store/inbox-store.js';
import { RedisInboxStore } from '../../src/store/redis.js';
import { SqliteInboxStore } from '../../src/store/sqlite.js';
import {
  type AckOp,
  ackAndOpenOps,
  type OpenOp,
  offset,
  RANDOM_CAPS,
  T0,
} from '../helpers/random-store-ops.js';
import { startRedis, startRedisCluster } from '../helpers/redis.js';

const USERS = 3;

type Op =
  | { k: 'append'; items: { to: number; from: number; id: number; t: number; size: number }[] }
  | { k: 'group'; from: number; members: number[]; id: number; t: number }
  | AckOp
  | OpenOp
  | { k: 'purge'; t: number }
  | { k: 'read'; user: number; after: number; limit: number }
  | { k: 'receipts'; user: number; after: number; upTo: number; limit: number };

const user = fc.integer({ min: 0, max: USERS - 1 });
const time = offset;
const small = fc.integer({ min: 0, max: 12 });
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('append' as const),
      items: fc.array(
        fc.record({
          to: user,
          from: user,
          id: fc.integer({ min: 1, max: 12 }),
          t: time,
          size: fc.integer({ min: 1, max: 15 }),
        }),
        { minLength: 1, maxLength: 4 },
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('group' as const),
      from: user,
      members: fc.uniqueArray(user, { minLength: 1, maxLength: USERS }),
      id: fc.integer({ min: 1, max: 12 }),
      t: time,
    }),
  },
  ...ackAndOpenOps(user, small),
  { weight: 1, arbitrary: fc.record({ k: fc.constant('purge' as const), t: time }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('read' as const),
      user,
      after: small,
      limit: fc.integer({ min: 1, max: 8 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('receipts' as const),
      user,
      after: small,
      upTo: small,
      limit: fc.integer({ min: 1, max: 8 }),
    }),
  },
);

/** Runs the retention sweep at `now` until it reports nothing left. */
async function purgeAll(store: InboxStore, now: number): Promise<void> {
  for (let i = 0; i < 1_000; i++) if ((await store.purge(now, 50)) === 0) return;
  assert.fail('purge never reported that nothing was left');
}

/** What one op answers, in a form both backends must match exactly. */
async function apply(store: InboxStore, o: Op, names: string[]): Promise<unknown> {
  switch (o.k) {
    case 'append': {
      // A copy in the recipient's inbox, and one in the sender's (its own copy) unless it is a note to self.
      const requests: AppendRequest[] = [];
      for (const i of o.items) {
        const copy = {
          from: names[i.from]!,
          fromDevice: 'd',
          clientMsgId: i.id,
          to: names[i.to]!,
          payload: new Uint8Array(i.size).fill(i.id),
          timestamp: T0 + i.t,
        };
        requests.push({ ...copy, inbox: names[i.to]! });
        if (i.from !== i.to) requests.push({ ...copy, inbox: names[i.from]! });
      }
      return store.append(requests);
    }
    case 'group':
      // One copy per member (the sender's own among them), addressed to the group: no receipt source.
      return store.append(
        o.members.map((m) => ({
          inbox: names[m]!,
          from: names[o.from]!,
          fromDevice: 'd',
          clientMsgId: o.id,
          to: '#team',
          payload: new Uint8Array(3).fill(o.id),
          timestamp: T0 + o.t,
        })),
      );
    case 'ack': {
      // No higher than the inbox's last seq: a session refuses an ACK above what it delivered
      // (PROTOCOL_VIOLATION), so no store is ever asked to take one. (Asked anyway, the two differ: the
      // cap path of SQLite settles acks against the last committed seq, Redis's script against its own.)
      const name = names[o.user]!;
      return store.ack(name, `d${o.device}`, Math.min(o.seq, await store.lastSeq(name)));
    }
    case 'open':
      return store.openDevice(names[o.user]!, `d${o.device}`, T0 + o.t);
    case 'purge':
      return purgeAll(store, T0 + o.t);
    case 'read':
      return (await store.read(names[o.user]!, o.after, o.limit)).map((m) => ({
        ...m,
        from: names.indexOf(m.from),
        to: m.to.startsWith('#') ? m.to : names.indexOf(m.to),
        payload: Array.from(m.payload),
      }));
    case 'receipts':
      return (await store.receiptSources(names[o.user]!, o.after, o.upTo, o.limit)).map((r) => ({
        ...r,
        from: names.indexOf(r.from),
      }));
  }
}

/** The property against a SQLite store and a Redis store on the server(s) `start` brings up. */
function sideBySide(label: string, start: () => Promise<{ url: string; stop(): Promise<void> }>): void {
  describe(`InboxStore backends side by side: SQLite and ${label}`, () => {
    let redis: { url: string; stop(): Promise<void> } | undefined;
    let dir = '';
    let sqlite: SqliteInboxStore;
    let redisStore: RedisInboxStore;
    const run = randomBytes(4).toString('hex');
    let counter = 0;

    before(async () => {
      redis = await start();
      dir = mkdtempSync(join(tmpdir(), 'switchboard-differential-'));
      sqlite = await SqliteInboxStore.open({ dir, shardCount: 2, durability: 'normal', caps: RANDOM_CAPS });
      redisStore = await RedisInboxStore.open({ url: redis.url, caps: RANDOM_CAPS, durability: 'normal' });
    });
    after(async () => {
      await sqlite?.close();
      await redisStore?.close();
      await redis?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('answer every sequence of calls the same', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), async (ops) => {
          // Users of their own: both stores keep what earlier runs wrote.
          const names = Array.from({ length: USERS }, (_, i) => `u${i}-${run}-${++counter}`);
          for (const [n, o] of ops.entries()) {
            const [a, b] = await Promise.all([apply(sqlite, o, names), apply(redisStore, o, names)]);
            assert.deepEqual(
              a,
              b,
              `step ${n} ${JSON.stringify(o)}: SQLite (actual) and ${label} (expected) differ`,
            );
          }
          for (const name of names) assert.equal(await sqlite.lastSeq(name), await redisStore.lastSeq(name));
        }),
        { numRuns: 150 },
      );
    });
  });
}

sideBySide('Redis', () => startRedis({ appendonly: false }));
// A cluster's inboxes lie in different slots and masters: one call's copies go to several.
sideBySide('a Redis Cluster', () => startRedisCluster());
