import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { type ReceiptSource, StoreUnavailableError } from '../../src/store/inbox-store.js';
import { DEFAULT_SHARD_COUNT, fnv1a32, shardOf } from '../../src/store/shard.js';
import {
  SCHEMA_VERSION,
  SqliteInboxStore,
  shardFileName,
  TOMBSTONE_MIN_BYTES,
} from '../../src/store/sqlite.js';
import { openFillableStore } from '../helpers/sqlite-store.js';
import { DEFAULT_CAPS, inboxStoreConformance } from './conformance.js';

/** Few shards keep the suite fast; the shard layout itself is tested below. */
const SHARDS = 4;

inboxStoreConformance('sqlite', (dir, caps) =>
  SqliteInboxStore.open({ dir, shardCount: SHARDS, durability: 'normal', caps }),
);

/** A user id (u0, u1, …) that lives in `shard` of `count`. */
function userIn(shard: number, count: number, prefix = 'u'): string {
  for (let i = 0; ; i++) if (shardOf(`${prefix}${i}`, count) === shard) return `${prefix}${i}`;
}

function message(inbox: string, clientMsgId: number, payload: Uint8Array = new Uint8Array([1, 2, 3])) {
  return { inbox, from: 'sender', fromDevice: 'dev', clientMsgId, to: inbox, payload, timestamp: Date.now() };
}

/** One shard in `dir`, durability normal, the default caps with `caps` over them. */
function openOneShard(dir: string, caps: Partial<typeof DEFAULT_CAPS> = {}) {
  return SqliteInboxStore.open({
    dir,
    shardCount: 1,
    durability: 'normal',
    caps: { ...DEFAULT_CAPS, ...caps },
  });
}

describe('shardOf', () => {
  it('is FNV-1a 32 over the UTF-8 bytes, modulo the shard count (pinned: part of the data format)', () => {
    assert.equal(DEFAULT_SHARD_COUNT, 16);
    assert.equal(fnv1a32(''), 0x811c9dc5);
    assert.equal(fnv1a32('a'), 0xe40c292c);
    assert.equal(fnv1a32('foobar'), 0xbf9cf968);
    assert.deepEqual(
      ['alice', 'bob', 'élodie', '😀', 'user-12345'].map((u) => shardOf(u, 64)),
      [39, 20, 22, 8, 48],
    );
  });

  it('matches a reference over TextEncoder bytes, lone surrogates included', () => {
    const reference = (s: string): number => {
      let h = 0x811c9dc5;
      for (const b of new TextEncoder().encode(s)) h = Math.imul(h ^ b, 0x01000193);
      return h >>> 0;
    };
    const codeUnits = fc.array(fc.integer({ min: 0, max: 0xffff })).map((a) => String.fromCharCode(...a));
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: 'binary' }), codeUnits),
        fc.integer({ min: 1, max: 1024 }),
        (s, n) => {
          assert.equal(fnv1a32(s), reference(s));
          const shard = shardOf(s, n);
          assert.ok(Number.isInteger(shard) && shard >= 0 && shard < n);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('SqliteInboxStore', () => {
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'switchboard-sqlite-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps an acknowledged small payload in its row and NULLs a large one, whose overflow pages go back to the free list; neither is read or counted, also after a reopen', async () => {
    const large = (n: number) => new Uint8Array(TOMBSTONE_MIN_BYTES + 2000).fill(n);
    const now = Date.now();
    let store = await openOneShard(dir);
    const file = join(dir, shardFileName(0));
    const onFile = () => {
      const db = new Database(file, { readonly: true });
      try {
        return {
          sizes: db
            .prepare("SELECT length(payload) FROM message WHERE user = 'ann' ORDER BY seq")
            .pluck()
            .all() as (number | null)[],
          free: db.pragma('freelist_count', { simple: true }) as number,
        };
      } finally {
        db.close();
      }
    };
    try {
      await store.openDevice('ann', 'phone', now);
      await store.append([message('ann', 1), message('ann', 2, large(2)), message('ann', 3)]);
      const freeBefore = onFile().free; // pages the schema's migrations left free
      await store.ack('ann', 'phone', 2);
      assert.ok((await store.purge(now, 100)) >= 2);
      const after = onFile();
      assert.deepEqual(after.sizes, [3, null, 3], 'the small tombstone keeps its payload, the large one not');
      assert.ok(after.free > freeBefore, 'the large payload’s overflow pages are free');
      assert.deepEqual(
        (await store.read('ann', 0, 10)).map((m) => m.seq),
        [3],
      );
      assert.deepEqual(store.inboxCounters('ann').held, { lastSeq: 3, count: 1, bytes: 3 });
      await store.close();

      store = await openOneShard(dir);
      assert.deepEqual(
        (await store.read('ann', 0, 10)).map((m) => m.seq),
        [3],
      );
      const { held, rows } = store.inboxCounters('ann');
      assert.deepEqual(held, { lastSeq: 3, count: 1, bytes: 3 });
      assert.deepEqual(rows, held);
      // The tombstones still deduplicate; a new large message takes the freed pages.
      const [dup] = await store.append([message('ann', 1)]);
      assert.equal(dup?.status, 'duplicate');
      await store.append([message('ann', 4, large(4))]);
      assert.ok(onFile().free < after.free, 'the next large payload reused free pages');
    } finally {
      await store.close();
    }
  });

  it('creates the directory and one WAL database per shard', async () => {
    const storeDir = join(dir, 'data', 'inbox');
    const store = await SqliteInboxStore.open({ dir: storeDir, durability: 'normal', caps: DEFAULT_CAPS });
    try {
      assert.equal(store.shardCount, 16);
      const files = readdirSync(storeDir).filter((f) => f.endsWith('.db'));
      assert.deepEqual(
        files.sort(),
        Array.from({ length: 16 }, (_, i) => `shard-${String(i).padStart(2, '0')}.db`),
      );
      assert.deepEqual(store.inspect(15), {
        journalMode: 'wal',
        synchronous: 1,
        userVersion: SCHEMA_VERSION,
      });
      // A user's data is in the file of its shard.
      const [r] = await store.append([message('alice', 1)]);
      assert.equal(r?.status, 'stored');
    } finally {
      await store.close();
    }
    const db = new Database(join(storeDir, shardFileName(shardOf('alice', 16))), { readonly: true });
    try {
      assert.deepEqual(db.prepare('SELECT user, seq FROM message').all(), [{ user: 'alice', seq: 1 }]);
    } finally {
      db.close();
    }
    // Reopened without a count, the store takes the one recorded in its files, not the default.
    const other = join(dir, 'four');
    await (
      await SqliteInboxStore.open({ dir: other, shardCount: 4, durability: 'normal', caps: DEFAULT_CAPS })
    ).close();
    const reopened = await SqliteInboxStore.open({ dir: other, durability: 'normal', caps: DEFAULT_CAPS });
    assert.equal(reopened.shardCount, 4);
    await reopened.close();
  });

  it('opens only the shards it owns', async () => {
    const store = await SqliteInboxStore.open({
      dir,
      shardCount: 8,
      shards: [5, 1],
      durability: 'normal',
      caps: DEFAULT_CAPS,
    });
    const mine = userIn(1, 8);
    const theirs = userIn(2, 8);
    try {
      assert.deepEqual(store.shardIndexes, [1, 5]);
      assert.deepEqual(
        readdirSync(dir)
          .filter((f) => f.endsWith('.db'))
          .sort(),
        ['shard-01.db', 'shard-05.db'],
      );
      assert.ok(store.owns(mine));
      assert.ok(!store.owns(theirs));
      const [r] = await store.append([message(mine, 1)]);
      assert.equal(r?.status === 'stored' && r.seq, 1);
      await assert.rejects(store.append([message(mine, 2), message(theirs, 1)]), /shard 2/);
      await assert.rejects(store.read(theirs, 0, 10), /shard 2/);
      await assert.rejects(store.openDevice(theirs, 'd', 0), /shard 2/);
      assert.equal(await store.lastSeq(mine), 1, 'a rejected call writes nothing');
    } finally {
      await store.close();
    }
    // The same files with another shard count are refused: users would be looked for in the wrong files.
    await assert.rejects(
      SqliteInboxStore.open({ dir, shardCount: 16, shards: [1], durability: 'normal', caps: DEFAULT_CAPS }),
      /shard 1 of 8/,
    );
  });

  it('runs synchronous=FULL for durability full', async () => {
    const store = await SqliteInboxStore.open({
      dir,
      shardCount: 2,
      durability: 'full',
      caps: DEFAULT_CAPS,
    });
    try {
      for (const i of store.shardIndexes) assert.equal(store.inspect(i).synchronous, 2);
      const [r] = await store.append([message('alice', 1)]);
      assert.equal(r?.status, 'stored');
    } finally {
      await store.close();
    }
  });

  it('counts an inbox right after the sweep removed acknowledged messages (its counters are held in memory)', async () => {
    const store = await openOneShard(dir, { maxMessages: 3 });
    try {
      const now = Date.now();
      await store.openDevice('alice', 'phone', now);
      const first = await store.append([1, 2, 3].map((id) => message('alice', id)));
      assert.deepEqual(
        first.map((r) => r.status),
        ['stored', 'stored', 'stored'],
      );
      await store.ack('alice', 'phone', 3);
      assert.ok((await store.purge(now, 100)) > 0, 'the sweep removed nothing');
      // The sweep lowered the inbox's count: three more fit under the cap of 3.
      const again = await store.append([4, 5, 6].map((id) => message('alice', id)));
      assert.deepEqual(
        again.map((r) => r.status),
        ['stored', 'stored', 'stored'],
      );
      const [over] = await store.append([message('alice', 7)]);
      assert.equal(over?.status, 'full');
    } finally {
      await store.close();
    }
  });

  it('migrates a version-1 shard file: its messages stay, dedupe holds, group membership works', async () => {
    const first = await openOneShard(dir);
    await first.append([message('alice', 1)]);
    await first.close();
    // What a version-1 build left behind: no member table, the dedupe index led by the user, the
    // inbox's counters in its row.
    const db = new Database(join(dir, shardFileName(0)));
    db.exec('DROP TABLE member');
    db.exec('ALTER TABLE inbox ADD COLUMN count INTEGER NOT NULL DEFAULT 0');
    db.exec('ALTER TABLE inbox ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0');
    db.exec('DROP INDEX message_dedupe');
    db.exec('CREATE UNIQUE INDEX message_dedupe ON message (user, sender, sender_device, client_msg_id)');
    db.pragma('user_version = 1');
    db.close();
    const store = await openOneShard(dir);
    try {
      assert.equal(store.inspect(0).userVersion, SCHEMA_VERSION);
      assert.equal(await store.lastSeq('alice'), 1);
      const [again] = await store.append([message('alice', 1)]);
      assert.deepEqual(again && { status: again.status, seq: 'seq' in again ? again.seq : 0 }, {
        status: 'duplicate',
        seq: 1,
      });
      const [next] = await store.append([message('alice', 2)]);
      assert.equal(next?.status, 'stored');
      await store.join('#team', 'alice');
      assert.deepEqual(await store.members('#team'), ['alice']);
    } finally {
      await store.close();
    }
  });

  it('migrates a version-3 shard file (messages keyed by user and seq): reads, dedupe, receipts and the sweep hold', async () => {
    // A version-3 file as that build wrote it, made by hand: two interleaved inboxes, alice's first two
    // messages acknowledged (seq 1 a tombstone, purged through 1) and bob's all live.
    mkdirSync(dir, { recursive: true });
    const db = new Database(join(dir, shardFileName(0)));
    db.pragma('journal_mode = WAL');
    db.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value ANY NOT NULL) WITHOUT ROWID;
      CREATE TABLE inbox (user TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, count INTEGER NOT NULL,
        bytes INTEGER NOT NULL, purged_through INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE message (user TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, sender TEXT NOT NULL,
        sender_device TEXT NOT NULL, client_msg_id INTEGER NOT NULL, addr TEXT NOT NULL, payload BLOB,
        PRIMARY KEY (user, seq));
      CREATE UNIQUE INDEX message_dedupe ON message (client_msg_id, sender, sender_device, user);
      CREATE INDEX message_ts ON message (ts);
      CREATE TABLE device (user TEXT NOT NULL, device TEXT NOT NULL, acked_seq INTEGER NOT NULL,
        last_seen INTEGER NOT NULL, ack_pending INTEGER NOT NULL, PRIMARY KEY (user, device)) WITHOUT ROWID;
      CREATE INDEX device_seen ON device (last_seen);
      CREATE INDEX device_ack_pending ON device (user) WHERE ack_pending = 1;
      CREATE TABLE member (grp TEXT NOT NULL, user TEXT NOT NULL, PRIMARY KEY (grp, user)) WITHOUT ROWID;
      INSERT INTO meta VALUES ('format', 'switchboard-inbox'), ('shard_index', 0), ('shard_count', 1);
    `);
    const now = Date.now();
    const insert = db.prepare('INSERT INTO message VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    const rows: [string, number, string, number][] = [
      ['alice', 1, 'bob', 11],
      ['bob', 1, 'carol', 21],
      ['alice', 2, 'carol', 12],
      ['bob', 2, 'alice', 22],
      ['alice', 3, 'bob', 13],
    ];
    for (const [user, seq, from, id] of rows) {
      const payload = user === 'alice' && seq === 1 ? null : Buffer.from(`${user}${seq}`);
      insert.run(user, seq, now, from, 'dev', id, user, payload);
    }
    db.exec(`INSERT INTO inbox VALUES ('alice', 3, 2, 12, 1), ('bob', 2, 2, 8, 0);
      INSERT INTO device VALUES ('alice', 'phone', 2, ${now}, 1)`);
    db.pragma('user_version = 3');
    db.close();

    const reopen = () => SqliteInboxStore.open({ dir, durability: 'normal', caps: DEFAULT_CAPS });
    let store = await reopen();
    try {
      assert.equal(store.inspect(0).userVersion, SCHEMA_VERSION);
      const text = (m: { payload: Uint8Array }) => Buffer.from(m.payload).toString();
      assert.deepEqual((await store.read('alice', 0, 10)).map(text), ['alice2', 'alice3']);
      assert.deepEqual((await store.read('bob', 1, 10)).map(text), ['bob2']);
      // The tombstone still deduplicates; the next seqs follow the old ones.
      const [dup, next] = await store.append([
        { ...message('alice', 11), from: 'bob' },
        { ...message('alice', 14), from: 'bob' },
      ]);
      assert.deepEqual(dup && { status: dup.status, seq: 'seq' in dup ? dup.seq : 0 }, {
        status: 'duplicate',
        seq: 1,
      });
      assert.deepEqual(next && { status: next.status, seq: 'seq' in next ? next.seq : 0 }, {
        status: 'stored',
        seq: 4,
      });
      assert.deepEqual(
        (await store.receiptSources('alice', 0, 4, 10)).map((r) => [r.seq, r.from]),
        [
          [2, 'carol'],
          [3, 'bob'],
          [4, 'bob'],
        ],
      );
      // The sweep removes what the phone acknowledged (through 2) from the migrated inbox.
      await store.purge(Date.now(), 100);
      assert.deepEqual(
        (await store.read('alice', 0, 10)).map((m) => m.seq),
        [3, 4],
      );
      await store.close();
      store = await reopen(); // the live index rebuilt from the file agrees
      assert.equal(store.liveMessages, 4);
      assert.deepEqual(
        (await store.read('alice', 0, 10)).map((m) => m.seq),
        [3, 4],
      );
      assert.deepEqual((await store.read('bob', 0, 10)).map(text), ['bob1', 'bob2']);
    } finally {
      await store.close();
    }
  });

  it('reads and lists receipt sources over thousands of messages (receipt lookups go through the index in chunks)', async () => {
    let store = await openOneShard(dir, { maxMessages: 20_000 });
    try {
      // More receipt sources than the shard holds in memory: the oldest are read from their rows.
      const n = 18_000;
      const batch = [];
      for (let i = 1; i <= n; i++) {
        const copy = message('alice', i);
        // Every other message is alice's own copy of one she sent: not a receipt source.
        batch.push(i % 2 === 0 ? { ...copy, from: 'alice', to: 'bob' } : copy);
      }
      await store.append(batch);
      const all = await store.read('alice', 0, n + 10);
      assert.equal(all.length, n);
      assert.ok(all.every((m, i) => m.seq === i + 1));
      assert.deepEqual(
        (await store.read('alice', 4000, 5000)).map((m) => m.seq),
        Array.from({ length: 5000 }, (_, i) => 4001 + i),
      );
      const sources = await store.receiptSources('alice', 0, n, n);
      assert.equal(sources.length, n / 2);
      assert.ok(sources.every((r, i) => r.seq === 2 * i + 1));
      const expected = (seq: number) => ({ seq, from: 'sender', fromDevice: 'dev', clientMsgId: seq });
      assert.deepEqual(
        sources.map(plainSource),
        sources.map((r) => expected(r.seq)),
      );
      assert.deepEqual(
        (await store.receiptSources('alice', 100, n, 3)).map((r) => r.seq),
        [101, 103, 105],
      );
      // Reopened, nothing is held in memory: every source is read from its row, the same.
      await store.close();
      store = await openOneShard(dir, { maxMessages: 20_000 });
      assert.deepEqual(
        (await store.receiptSources('alice', 0, n, n)).map(plainSource),
        sources.map(plainSource),
      );
    } finally {
      await store.close();
    }
  });

  it('reads an inbox whose messages are interleaved with other inboxes, densely (one scan) or sparsely (a lookup each)', async () => {
    const store = await openOneShard(dir);
    try {
      const text = (m: { payload: Uint8Array }) => Buffer.from(m.payload).toString();
      // alice's messages 1–40 interleaved with one other inbox (dense), then 41–80 with twenty (sparse).
      let id = 0;
      for (let seq = 1; seq <= 80; seq++) {
        const others = seq <= 40 ? 1 : 20;
        const batch = [message('alice', ++id, Buffer.from(`a${seq}`))];
        for (let k = 0; k < others; k++) batch.push(message(`other${k}`, ++id));
        await store.append(batch);
      }
      const expected = (from: number, to: number) =>
        Array.from({ length: to - from + 1 }, (_, i) => `a${from + i}`);
      assert.deepEqual((await store.read('alice', 0, 40)).map(text), expected(1, 40));
      assert.deepEqual((await store.read('alice', 40, 40)).map(text), expected(41, 80));
      assert.deepEqual((await store.read('alice', 10, 1000)).map(text), expected(11, 80));
      assert.deepEqual((await store.read('alice', 35, 10)).map(text), expected(36, 45));
      assert.deepEqual(
        (await store.read('other0', 0, 100)).map((m) => m.seq),
        Array.from({ length: 80 }, (_, i) => i + 1),
      );
    } finally {
      await store.close();
    }
  });

  it('settles append calls in the order they were made, whichever shards their copies are in', async () => {
    // Call A has a copy in shard 0 and one in shard 1; call B, made after it, one in shard 0. Shard 0
    // commits first (its op came first): settled per shard, B would be answered before A, and the home
    // would announce inbox x's seq 2 before its seq 1.
    const store = await SqliteInboxStore.open({
      dir,
      shardCount: 2,
      durability: 'normal',
      caps: DEFAULT_CAPS,
    });
    try {
      const x = userIn(0, 2);
      const y = userIn(1, 2);
      const settled: string[] = [];
      const a = store.append([message(x, 1), message(y, 2)]).then((r) => {
        settled.push('A');
        return r;
      });
      const b = store.append([message(x, 3)]).then((r) => {
        settled.push('B');
        return r;
      });
      const [ra, rb] = await Promise.all([a, b]);
      assert.deepEqual(settled, ['A', 'B']);
      assert.deepEqual(
        [ra[0], rb[0]].map((r) => r?.status === 'stored' && r.seq),
        [1, 2],
      );
    } finally {
      await store.close();
    }
  });

  it('refuses a shard file with a newer schema version', async () => {
    await (await openOneShard(dir)).close();
    const db = new Database(join(dir, shardFileName(0)));
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    await assert.rejects(openOneShard(dir), /newer/);
  });

  it('rejects a failed commit with StoreUnavailableError, writes nothing of it, and keeps working', async () => {
    // At most ~0.5 MiB: appends of 64 KiB fill it quickly (SQLITE_FULL).
    const store = await openFillableStore(dir);
    try {
      const big = new Uint8Array(64 * 1024).fill(7);
      let stored = 0;
      let failure: unknown = null;
      for (let id = 1; id <= 50 && failure === null; id++) {
        // Two calls in one tick: one batch, both rejected together.
        const [a, b] = await Promise.allSettled([
          store.append([message('alice', 2 * id - 1, big)]),
          store.ack('alice', 'phone', 1),
        ]);
        if (a.status === 'fulfilled') {
          stored++;
          assert.equal(b.status, 'fulfilled');
        } else {
          failure = a.reason;
          assert.equal(b.status, 'rejected');
        }
      }
      assert.ok(failure instanceof StoreUnavailableError, `expected StoreUnavailableError, got ${failure}`);
      assert.match(failure.message, /full/i);
      assert.ok(stored > 0);
      assert.equal(await store.lastSeq('alice'), stored);
      assert.equal((await store.read('alice', 0, 100)).length, stored);
      // Room again once acknowledged messages are removed; the failed batch used no seq.
      assert.deepEqual(await store.openDevice('alice', 'phone', Date.now()), {
        lastSeq: stored,
        ackedSeq: 1,
      });
      await store.ack('alice', 'phone', stored);
      while ((await store.purge(Date.now(), 100)) > 0);
      const [r] = await store.append([message('alice', 1000, big)]);
      assert.equal(r?.status === 'stored' && r.seq, stored + 1);
    } finally {
      await store.close();
    }
  });

  it('expires exactly the messages stamped before the cutoff when they were stored out of that order, after a reopen too', async () => {
    const caps = { ...DEFAULT_CAPS, retentionMs: 1_000 };
    const t0 = Date.now();
    // Stored in this order (seqs 1–8), stamped a little out of order (as own copies are), the last by a
    // clock stepped back by a minute.
    const stamps = [60_050, 60_010, 60_060, 60_010, 60_080, 60_070, 60_020, 5_000];
    let store = await SqliteInboxStore.open({ dir, shardCount: 1, durability: 'normal', caps });
    const reopen = async () => {
      await store.close();
      store = await SqliteInboxStore.open({ dir, shardCount: 1, durability: 'normal', caps });
    };
    const waiting = async () => (await store.read('alice', 0, 10)).map((m) => m.seq);
    const sweep = async (cutoff: number) => {
      for (let steps = 0; (await store.purge(t0 + cutoff + 1_000, 1)) > 0; steps++) {
        assert.ok(steps < 20, 'the sweep does not end');
      }
    };
    try {
      await store.append(stamps.map((dt, i) => ({ ...message('alice', i + 1), timestamp: t0 + dt })));
      await sweep(6_000); // only the one stamped a minute back, behind seven that are not due
      assert.deepEqual(await waiting(), [1, 2, 3, 4, 5, 6, 7]);
      await reopen();
      await sweep(60_015);
      assert.deepEqual(await waiting(), [1, 3, 5, 6, 7]);
      await sweep(60_065);
      assert.deepEqual(await waiting(), [5, 6]);
      await reopen();
      await sweep(60_075);
      assert.deepEqual(await waiting(), [5]);
      // Emptied, the log gives its ids out again from 1: those rows expire too.
      await sweep(60_100);
      await store.append([{ ...message('alice', 9), timestamp: t0 + 70_000 }]);
      assert.deepEqual(await waiting(), [9]);
      await sweep(70_001);
      assert.deepEqual(await waiting(), []);
    } finally {
      await store.close();
    }
  });

  it('forgets dedupe entries once they are older than the retention period, and keeps the counts right', async () => {
    const caps = { maxMessages: 2, maxBytes: 1_000_000, retentionMs: 1_000 };
    const store = await SqliteInboxStore.open({ dir, shardCount: 1, durability: 'normal', caps });
    const t0 = Date.now();
    const at = (clientMsgId: number, timestamp: number) => ({ ...message('alice', clientMsgId), timestamp });
    try {
      await store.openDevice('alice', 'phone', t0);
      const first = await store.append([at(1, t0), at(2, t0), at(3, t0)]);
      assert.deepEqual(
        first.map((r) => r.status),
        ['stored', 'stored', 'full'],
      );
      await store.ack('alice', 'phone', 1);
      while ((await store.purge(t0 + 1, 100)) > 0);
      // Message 1 is gone (room for one more) but its id is remembered.
      assert.deepEqual(await store.append([at(3, t0 + 1), at(1, t0 + 1)]), [
        { status: 'stored', seq: 3, timestamp: t0 + 1 },
        { status: 'duplicate', seq: 1, timestamp: t0 },
      ]);
      // Past the retention period everything expires, ids included.
      while ((await store.purge(t0 + 5_000, 100)) > 0);
      assert.deepEqual(await store.read('alice', 0, 10), []);
      assert.deepEqual(await store.append([at(1, t0 + 5_000)]), [
        { status: 'stored', seq: 4, timestamp: t0 + 5_000 },
      ]);
    } finally {
      await store.close();
    }
    const db = new Database(join(dir, shardFileName(0)), { readonly: true });
    try {
      assert.deepEqual(db.prepare('SELECT seq FROM message').all(), [{ seq: 4 }]);
      // The inbox row remembers the seqs whose rows are gone: 1 acknowledged, 3 (with 2) expired.
      assert.deepEqual(db.prepare('SELECT last_seq, purged_through FROM inbox').all(), [
        { last_seq: 3, purged_through: 1 },
      ]);
      assert.deepEqual(db.prepare('SELECT * FROM device').all(), [], 'the stale device was forgotten');
    } finally {
      db.close();
    }
    // Reopened, the counters are rebuilt from the rows: the highest seq 4, one message kept (cap 2).
    const again = await SqliteInboxStore.open({ dir, shardCount: 1, durability: 'normal', caps });
    try {
      assert.equal(await again.lastSeq('alice'), 4);
      assert.deepEqual(await again.append([at(5, t0 + 5_000), at(6, t0 + 5_000)]), [
        { status: 'stored', seq: 5, timestamp: t0 + 5_000 },
        { status: 'full' },
      ]);
    } finally {
      await again.close();
    }
  });

  it('loses no append whose promise resolved when the process is killed with SIGKILL', async () => {
    const child = spawn(
      process.execPath,
      [fileURLToPath(new URL('./fixtures/append-child.js', import.meta.url)), dir, '4'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    let killed = false;
    const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk;
    });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (!killed && out.split('\n').length > 1500) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), 20_000);
    try {
      await closed;
    } finally {
      clearTimeout(guard);
    }
    assert.ok(killed, `the child stopped by itself: ${err}`);
    assert.equal(child.signalCode, 'SIGKILL');

    const printed = out
      .split('\n')
      .slice(0, -1) // the last piece has no newline: maybe cut off
      .map((line) => {
        const [inbox, seq, id] = line.split(' ');
        return { inbox: inbox!, seq: Number(seq), clientMsgId: Number(id) };
      });
    assert.ok(printed.length >= 1500);
    const store = await SqliteInboxStore.open({
      dir,
      shardCount: 4,
      durability: 'normal',
      caps: DEFAULT_CAPS,
    });
    try {
      const byInbox = new Map<string, Map<number, number>>();
      for (const inbox of new Set(printed.map((p) => p.inbox))) {
        const messages = await store.read(inbox, 0, 1_000_000);
        // Gap-free from 1, every clientMsgId once.
        assert.deepEqual(
          messages.map((m) => m.seq),
          Array.from({ length: messages.length }, (_, i) => i + 1),
        );
        assert.equal(new Set(messages.map((m) => m.clientMsgId)).size, messages.length);
        assert.equal(await store.lastSeq(inbox), messages.length);
        byInbox.set(inbox, new Map(messages.map((m) => [m.seq, m.clientMsgId])));
      }
      for (const p of printed) {
        assert.equal(byInbox.get(p.inbox)?.get(p.seq), p.clientMsgId, `lost ${p.inbox} seq ${p.seq}`);
      }
      // And sending them again stores nothing.
      const again = await store.append(
        printed
          .slice(0, 200)
          .map((p) => ({ ...message(p.inbox, p.clientMsgId), from: 'writer', fromDevice: 'w1' })),
      );
      again.forEach((r, i) => {
        assert.equal(r.status, 'duplicate');
        assert.equal(r.status === 'duplicate' && r.seq, printed[i]!.seq);
      });
    } finally {
      await store.close();
    }
    assert.ok(!existsSync(join(dir, 'shard-04.db')));
  });
});

function plainSource(r: ReceiptSource): ReceiptSource {
  return { seq: r.seq, from: r.from, fromDevice: r.fromDevice, clientMsgId: r.clientMsgId };
}
