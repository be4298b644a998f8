/**
 * The SQLite store's inbox counters (highest seq, count and bytes of the waiting messages) are held in
 * memory and rebuilt from the rows on open (inbox-counters.ts). Random sequences of appends (duplicates,
 * caps, timestamps that step back, payloads below and above TOMBSTONE_MIN_BYTES), acks, device sightings, sweep steps and reopenings check that the
 * counters always agree with the rows, survive a reopen unchanged, and that no seq is handed out twice;
 * and that reads and receipt lookups (through the live index and the receipt cache) list exactly the
 * waiting rows, as a connection of its own reads them from the file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { shardOf } from '../../src/store/shard.js';
import { SqliteInboxStore, shardFileName, TOMBSTONE_MIN_BYTES } from '../../src/store/sqlite.js';
import {
  type AckOp,
  ackAndOpenOps,
  type OpenOp,
  offset,
  RANDOM_CAPS,
  T0,
} from '../helpers/random-store-ops.js';

const USERS = ['ann', 'ben', 'cat'];

type Op =
  | { k: 'append'; items: { user: number; id: number; t: number; size: number }[] }
  | AckOp
  | OpenOp
  | { k: 'purge'; t: number; budget: number }
  | { k: 'reopen' };

const user = fc.integer({ min: 0, max: USERS.length - 1 });
const time = offset;
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('append' as const),
      items: fc.array(
        fc.record({
          user,
          id: fc.integer({ min: 1, max: 15 }),
          t: time,
          // Small payloads, and large ones that an acknowledgement NULLs (TOMBSTONE_MIN_BYTES).
          size: fc.oneof(
            { weight: 3, arbitrary: fc.integer({ min: 1, max: 15 }) },
            { weight: 1, arbitrary: fc.integer({ min: 0, max: 15 }).map((n) => TOMBSTONE_MIN_BYTES + n) },
          ),
        }),
        { minLength: 1, maxLength: 4 },
      ),
    }),
  },
  ...ackAndOpenOps(user, fc.integer({ min: 0, max: 20 })),
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('purge' as const),
      t: time,
      budget: fc.integer({ min: 1, max: 20 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ k: 'reopen' as const }) },
);

const SHARDS = 2;
/** The byte cap holds a few large payloads, or the small ones' share of RANDOM_CAPS besides. */
const CAPS = { ...RANDOM_CAPS, maxBytes: 3 * TOMBSTONE_MIN_BYTES + RANDOM_CAPS.maxBytes };

function open(dir: string): Promise<SqliteInboxStore> {
  return SqliteInboxStore.open({ dir, shardCount: SHARDS, durability: 'normal', caps: CAPS });
}

/**
 * The waiting messages of `user` as (seq, clientMsgId), read from its shard file directly: rows with a
 * payload above the inbox's purged_through (below it, tombstones that kept a small payload).
 */
function waitingRows(dir: string, user: string): [number, number][] {
  const db = new Database(join(dir, shardFileName(shardOf(user, SHARDS))), { readonly: true });
  try {
    return db
      .prepare(
        `SELECT seq, client_msg_id FROM message WHERE user = ? AND payload IS NOT NULL
          AND seq > coalesce((SELECT purged_through FROM inbox WHERE user = ?), 0) ORDER BY seq`,
      )
      .raw(true)
      .all(user, user) as [number, number][];
  } finally {
    db.close();
  }
}

describe('SqliteInboxStore inbox counters and live index', () => {
  it('agree with the rows, as reads and receipt lookups do, after any sequence of appends, acks, sweeps and reopenings', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
        const dir = mkdtempSync(join(tmpdir(), 'switchboard-counters-'));
        let store = await open(dir);
        const highest = new Map<string, number>();
        try {
          for (const o of ops) {
            switch (o.k) {
              case 'append': {
                const results = await store.append(
                  o.items.map((i) => ({
                    inbox: USERS[i.user]!,
                    from: 'sam',
                    fromDevice: 'd',
                    clientMsgId: i.id,
                    to: USERS[i.user]!,
                    payload: new Uint8Array(i.size),
                    timestamp: T0 + i.t,
                  })),
                );
                results.forEach((r, n) => {
                  if (r.status !== 'stored') return;
                  const u = USERS[o.items[n]!.user]!;
                  assert.ok(r.seq > (highest.get(u) ?? 0), `seq ${r.seq} of ${u} handed out again`);
                  highest.set(u, r.seq);
                });
                break;
              }
              case 'ack':
                await store.ack(USERS[o.user]!, `d${o.device}`, o.seq);
                break;
              case 'open':
                await store.openDevice(USERS[o.user]!, `d${o.device}`, T0 + o.t);
                break;
              case 'purge':
                await store.purge(T0 + o.t, o.budget);
                break;
              case 'reopen': {
                const before = USERS.map((u) => store.inboxCounters(u).held);
                await store.close();
                store = await open(dir);
                assert.deepEqual(
                  USERS.map((u) => store.inboxCounters(u).held),
                  before,
                  'counters rebuilt on open differ from those held',
                );
                break;
              }
            }
            for (const u of USERS) {
              const { held, rows } = store.inboxCounters(u);
              assert.deepEqual(held, rows, `${u} after ${JSON.stringify(o)}`);
              assert.equal(await store.lastSeq(u), Math.max(held.lastSeq, highest.get(u) ?? 0));
              const rowsOnFile = waitingRows(dir, u);
              const read = await store.read(u, 0, 100);
              assert.deepEqual(
                read.map((m) => [m.seq, m.clientMsgId]),
                rowsOnFile,
                `${u}: read after ${JSON.stringify(o)}`,
              );
              const sources = await store.receiptSources(u, 0, Number.MAX_SAFE_INTEGER, 100);
              assert.deepEqual(
                sources.map((r) => [r.seq, r.clientMsgId]),
                rowsOnFile,
                `${u}: receipt sources after ${JSON.stringify(o)}`,
              );
            }
          }
        } finally {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 400 },
    );
  });
});
