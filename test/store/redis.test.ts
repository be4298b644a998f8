/**
 * The Redis InboxStore against real redis-server processes (test/helpers/redis.ts): the conformance suite
 * on one server and on a 3-master cluster, then what only Redis has — one script call per inbox per
 * tick, the AOF check of durability 'full', Redis killed and restarted under a live store, a cluster
 * failover, and durability 'full' on a cluster waiting for a replica (WAIT) so that a failover loses
 * nothing stored.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { type AppendRequest, type InboxStore, StoreUnavailableError } from '../../src/store/inbox-store.js';
import { parseStoreUrl } from '../../src/store/redis/connection.js';
import { inboxKey } from '../../src/store/redis/keys.js';
import { RedisInboxStore } from '../../src/store/redis.js';
import {
  admin,
  type RedisCluster,
  type RedisProcess,
  startRedis,
  startRedisCluster,
} from '../helpers/redis.js';
import { freePort } from '../helpers/server-process.js';
import { DEFAULT_CAPS, inboxStoreConformance } from './conformance.js';

const run = randomBytes(4).toString('hex');
let counter = 0;
/** A user id no other test has used (the keyspace is shared within a describe). */
const fresh = (label: string): string => `${label}-${run}-${++counter}`;

function req(
  inbox: string,
  clientMsgId: number,
  payload: Uint8Array = Buffer.from(`m${clientMsgId}`),
): AppendRequest {
  return { inbox, from: 'sender', fromDevice: 'dev', clientMsgId, to: inbox, payload, timestamp: Date.now() };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `call`, which must reject with StoreUnavailableError within `withinMs`. */
async function rejectsPromptly(what: string, call: () => Promise<unknown>, withinMs = 3_000): Promise<void> {
  const started = Date.now();
  await assert.rejects(call(), StoreUnavailableError, `${what} should reject with StoreUnavailableError`);
  const took = Date.now() - started;
  assert.ok(took < withinMs, `${what} took ${took} ms to reject`);
}

/** Appends message `id` to `inbox` alone: the [status, seq] of its answer. */
async function appendOne(store: InboxStore, inbox: string, id: number): Promise<[string, number | false][]> {
  return (await store.append([req(inbox, id)])).map((r) => [r.status, r.status !== 'full' && r.seq]);
}

/** Counts the script calls (EVAL and EVALSHA) a server has run. */
async function scriptCalls(port: number): Promise<number> {
  const [stats] = (await admin(port, [['info', 'commandstats']])) as [string];
  let calls = 0;
  for (const m of stats.matchAll(/^cmdstat_(?:eval|evalsha):calls=(\d+)/gm)) calls += Number(m[1]);
  return calls;
}

/**
 * The script calls Redis has run, once they stop changing: after an inbox's first message the store
 * writes its sweep-index entry in a call of its own, sent after the append is answered, which must not
 * land inside a count that starts right after that append.
 */
async function settledScriptCalls(port: number): Promise<number> {
  let last = await scriptCalls(port);
  for (let i = 0; i < 50; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const now = await scriptCalls(port);
    if (now === last) return now;
    last = now;
  }
  return last;
}

/** Every unhandled rejection while a fault test runs. */
function watchUnhandled(): { seen: unknown[]; stop(): void } {
  const seen: unknown[] = [];
  const onRejection = (reason: unknown): void => {
    seen.push(reason);
  };
  process.on('unhandledRejection', onRejection);
  return { seen, stop: () => process.off('unhandledRejection', onRejection) };
}

/** A pino logger whose lines are kept, to check what the store warns about. */
function capturedLogger(): { log: ReturnType<typeof pino>; lines: string[] } {
  const lines: string[] = [];
  return { log: pino({ level: 'info' }, { write: (line: string) => lines.push(line) }), lines };
}

describe('parseStoreUrl', () => {
  it('reads one server, or a cluster with its seed nodes and optional credentials', () => {
    assert.deepEqual(parseStoreUrl('redis://127.0.0.1:6379/2'), {
      kind: 'single',
      url: 'redis://127.0.0.1:6379/2',
    });
    assert.deepEqual(parseStoreUrl('redis-cluster://10.0.0.1:7000,redis.example:7001'), {
      kind: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: 'redis.example', port: 7001 },
      ],
    });
    assert.deepEqual(parseStoreUrl('redis-cluster://app:p%40ss@h:7000'), {
      kind: 'cluster',
      nodes: [{ host: 'h', port: 7000 }],
      username: 'app',
      password: 'p@ss',
    });
    assert.throws(() => parseStoreUrl('http://h:1'), /redis:\/\/… or redis-cluster:\/\/…/);
    assert.throws(() => parseStoreUrl('redis-cluster://h1:7000,h2'), /bad node "h2"/);
  });
});

describe('RedisInboxStore on one Redis', () => {
  let redis: RedisProcess;
  const opened: InboxStore[] = [];
  const open = async (caps = DEFAULT_CAPS): Promise<InboxStore> => {
    const store = await RedisInboxStore.open({ url: redis.url, caps, durability: 'full' });
    opened.push(store);
    return store;
  };
  before(async () => {
    redis = await startRedis({ appendonly: true, appendfsync: 'always' });
  });
  after(async () => {
    for (const store of opened) await store.close();
    await redis?.stop();
  });

  inboxStoreConformance('redis', (_dir, caps) =>
    RedisInboxStore.open({ url: redis.url, caps, durability: 'full' }),
  );

  it('sends the writes of one tick for one inbox as one script call', async () => {
    const store = await open();
    const inboxes = [fresh('batch'), fresh('batch'), fresh('batch'), fresh('batch')];
    // The first message of an inbox also writes its sweep-index entry: not part of what is counted.
    await Promise.all(inboxes.map((inbox) => store.append([req(inbox, 1)])));
    const before = await settledScriptCalls(redis.port);
    const pending = [];
    for (let id = 2; id <= 101; id++) pending.push(store.append([req(inboxes[id % 4]!, id)]));
    const results = await Promise.all(pending);
    assert.equal((await scriptCalls(redis.port)) - before, 4, '100 appends to 4 inboxes in one tick');
    // In call order within each inbox.
    results.forEach(([r], k) => {
      assert.equal(r?.status, 'stored');
      assert.equal(r?.status === 'stored' && r.seq, 2 + Math.floor(k / 4));
    });
  });

  it('has one script call out per inbox: what later ticks write meanwhile goes in the next call, in order', async () => {
    const store = await open();
    const inbox = fresh('wait');
    await store.append([req(inbox, 1)]);
    const before = await settledScriptCalls(redis.port);
    const pending = [];
    process.kill(redis.pid, 'SIGSTOP');
    try {
      pending.push(store.append([req(inbox, 2)])); // sent; answered once Redis resumes
      for (let id = 3; id <= 5; id++) {
        await new Promise((resolve) => setImmediate(resolve));
        pending.push(store.append([req(inbox, id)])); // three more ticks: wait for that answer
      }
      // The last tick's writes are queued while Redis is still stopped: resumed sooner, it could answer
      // the first call before they were, and they would go in a third call.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.kill(redis.pid, 'SIGCONT');
    }
    const results = await Promise.all(pending);
    assert.equal(
      (await scriptCalls(redis.port)) - before,
      2,
      'the first call, then the other three together',
    );
    assert.deepEqual(
      results.map(([r]) => r?.status === 'stored' && r.seq),
      [2, 3, 4, 5],
    );
  });

  it('keeps binary payloads and ids of any characters, braces included', async () => {
    const store = await open();
    const payload = Uint8Array.from({ length: 256 }, (_, i) => i);
    const users = [fresh('}{u:x}'), fresh('ünï{cödé}'), `${'é'.repeat(31)}-${run}`];
    for (const user of users) {
      const message = { ...req(user, 7, payload), from: '😀}{', fromDevice: 'täblet', to: '#grüppe}' };
      assert.deepEqual(
        (await store.append([message])).map((r) => r.status),
        ['stored'],
      );
      assert.deepEqual(
        (await store.append([message])).map((r) => r.status),
        ['duplicate'],
      );
      const [got] = await store.read(user, 0, 10);
      const { inbox: _, ...fields } = message;
      assert.deepEqual(
        { ...got, payload: Array.from(got!.payload) },
        { ...fields, seq: 1, payload: Array.from(payload) },
      );
      await store.join('#grüppe}', user);
    }
    assert.deepEqual(
      await store.members('#grüppe}'),
      [...users].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
    );
  });

  it('refuses durability full without appendonly yes and appendfsync always; normal only warns', async () => {
    const open = (durability: 'normal' | 'full', log?: ReturnType<typeof pino>) =>
      RedisInboxStore.open({ url: redis.url, caps: DEFAULT_CAPS, durability, ...(log ? { log } : {}) });
    try {
      await admin(redis.port, [['config', 'set', 'appendfsync', 'everysec']]);
      await assert.rejects(open('full'), /appendfsync everysec.*appendfsync always/);
      await admin(redis.port, [['config', 'set', 'appendonly', 'no']]);
      await assert.rejects(open('full'), /appendonly no.*needs appendonly yes/);
      const { log, lines } = capturedLogger();
      const store = await open('normal', log);
      await store.close();
      assert.ok(
        lines.some((l) => /"level":40/.test(l) && /appendonly no/.test(l)),
        `expected a warning: ${lines}`,
      );
    } finally {
      await admin(redis.port, [
        ['config', 'set', 'appendonly', 'yes'],
        ['config', 'set', 'appendfsync', 'always'],
      ]);
    }
    await (await open('full')).close();
  });

  it('says so when it may not read the AOF settings', async () => {
    const user = `limited-${run}`;
    await admin(redis.port, [['acl', 'setuser', user, 'on', '>secret', '~*', '&*', '+@all', '-config']]);
    try {
      const url = `redis://${user}:secret@127.0.0.1:${redis.port}`;
      await assert.rejects(
        RedisInboxStore.open({ url, caps: DEFAULT_CAPS, durability: 'full' }),
        /CONFIG GET is not permitted.*durability full needs appendonly yes and appendfsync always/,
      );
      const { log, lines } = capturedLogger();
      const store = await RedisInboxStore.open({ url, caps: DEFAULT_CAPS, durability: 'normal', log });
      assert.ok(
        lines.some((l) => /CONFIG GET is not permitted/.test(l)),
        `expected a warning: ${lines}`,
      );
      const inbox = fresh('limited');
      assert.deepEqual(
        (await store.append([req(inbox, 1)])).map((r) => r.status),
        ['stored'],
      );
      await store.close();
    } finally {
      await admin(redis.port, [['acl', 'deluser', user]]);
    }
  });

  it('rejects open promptly with StoreUnavailableError when nothing listens', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    await rejectsPromptly('open', () =>
      RedisInboxStore.open({ url, caps: DEFAULT_CAPS, durability: 'normal' }),
    );
  });
});

describe('RedisInboxStore while Redis is killed and restarted', () => {
  let redis: RedisProcess;
  before(async () => {
    redis = await startRedis({ appendonly: true, appendfsync: 'always' });
  });
  after(() => redis?.stop());

  it('rejects calls promptly while Redis is down, then works again by itself with every acknowledged write kept', async () => {
    const unhandled = watchUnhandled();
    const store = await RedisInboxStore.open({ url: redis.url, caps: DEFAULT_CAPS, durability: 'full' });
    try {
      // Senders like the SDK: one SEND at a time, the same clientMsgId again after a failure.
      const inboxes = [fresh('crash'), fresh('crash'), fresh('crash'), fresh('crash')];
      const acknowledged = new Map(inboxes.map((inbox) => [inbox, new Map<number, number>()]));
      const failures: { error: unknown; ms: number }[] = [];
      let running = true;
      const sender = async (inbox: string): Promise<void> => {
        const stored = acknowledged.get(inbox)!;
        for (let id = 1; running; ) {
          const started = Date.now();
          try {
            const [r] = await store.append([req(inbox, id)]);
            assert.ok(
              r?.status === 'stored' || r?.status === 'duplicate',
              `append ${id}: ${JSON.stringify(r)}`,
            );
            stored.set(id, r.seq);
            id++;
          } catch (error) {
            failures.push({ error, ms: Date.now() - started });
            await sleep(50);
          }
        }
      };
      const senders = inboxes.map(sender);
      const total = () => [...acknowledged.values()].reduce((n, m) => n + m.size, 0);
      while (total() < 200) await sleep(5);
      await redis.kill9();
      const atKill = total();

      await rejectsPromptly('append', () => store.append([req(inboxes[0]!, 1_000_000)]));
      await rejectsPromptly('read', () => store.read(inboxes[0]!, 0, 10));
      await rejectsPromptly('lastSeq', () => store.lastSeq(inboxes[0]!));
      await rejectsPromptly('openDevice', () => store.openDevice(inboxes[0]!, 'phone', Date.now()));
      await rejectsPromptly('ack', () => store.ack(inboxes[0]!, 'phone', 1));
      await rejectsPromptly('join', () => store.join(`#${fresh('g')}`, inboxes[0]!));
      await rejectsPromptly('members', () => store.members(`#${fresh('g')}`));
      await rejectsPromptly('purge', () => store.purge(Date.now(), 100));
      await sleep(500);
      assert.ok(total() - atKill <= inboxes.length, 'nothing is acknowledged while Redis is down');

      await redis.restart();
      const restarted = total();
      const deadline = Date.now() + 15_000;
      while (total() < restarted + 100) {
        assert.ok(Date.now() < deadline, 'the store did not recover within 15 s of the restart');
        await sleep(20);
      }
      running = false;
      await Promise.all(senders);

      assert.ok(failures.length > 0);
      for (const { error, ms } of failures) {
        assert.ok(error instanceof StoreUnavailableError, `unexpected failure: ${error}`);
        assert.ok(ms < 3_000, `a failed append took ${ms} ms`);
      }
      // Every id once, in order: seq = clientMsgId, and every acknowledged seq is there.
      for (const [inbox, stored] of acknowledged) {
        const messages = await store.read(inbox, 0, 100_000);
        assert.deepEqual(
          messages.map((m) => [m.seq, m.clientMsgId]),
          messages.map((_, k) => [k + 1, k + 1]),
        );
        for (const [id, seq] of stored) assert.equal(seq, id, `${inbox} ${id}`);
        assert.ok(messages.length >= stored.size);
      }
      assert.deepEqual(unhandled.seen, []);
    } finally {
      unhandled.stop();
      await store.close();
    }
  });
});

describe('RedisInboxStore while Redis hangs', () => {
  let redis: RedisProcess;
  before(async () => {
    redis = await startRedis({ appendonly: true, appendfsync: 'always' });
  });
  after(() => redis?.stop());

  it('rejects calls after the command timeout; a write whose reply was lost is answered as a duplicate', async () => {
    const unhandled = watchUnhandled();
    const store = await RedisInboxStore.open({ url: redis.url, caps: DEFAULT_CAPS, durability: 'full' });
    const inbox = fresh('hang');
    try {
      await store.append([req(inbox, 1)]);
      process.kill(redis.pid, 'SIGSTOP');
      try {
        // Sent, but Redis runs it only once it resumes: the caller cannot know, and gets an error.
        await rejectsPromptly('append', () => store.append([req(inbox, 2)]));
        await rejectsPromptly('read', () => store.read(inbox, 0, 10));
      } finally {
        process.kill(redis.pid, 'SIGCONT');
      }
      // The same message again, as a client re-sends it: it was stored after all, so only once.
      assert.deepEqual(await appendOne(store, inbox, 2), [['duplicate', 2]]);
      assert.deepEqual(
        (await store.read(inbox, 0, 10)).map((m) => m.clientMsgId),
        [1, 2],
      );
      assert.deepEqual(unhandled.seen, []);
    } finally {
      unhandled.stop();
      await store.close();
    }
  });

  it('sends the next batch of an inbox only once its previous one is answered, and fails it unsent when that one failed', async () => {
    const unhandled = watchUnhandled();
    const store = await RedisInboxStore.open({ url: redis.url, caps: DEFAULT_CAPS, durability: 'full' });
    const inbox = fresh('order');
    try {
      await store.append([req(inbox, 1)]);
      process.kill(redis.pid, 'SIGSTOP');
      let second: Promise<unknown>;
      let third: Promise<unknown>;
      try {
        second = store.append([req(inbox, 2)]); // sent; Redis runs it once it resumes
        await new Promise((resolve) => setImmediate(resolve));
        third = store.append([req(inbox, 3)]); // another tick: waits for the second's answer
        await rejectsPromptly('the second append', () => second);
        await rejectsPromptly('the third append', () => third);
      } finally {
        process.kill(redis.pid, 'SIGCONT');
      }
      // The second ran after all (its reply was late); the third was never sent, so a re-send of the
      // second and then the third keeps their order.
      assert.deepEqual(await appendOne(store, inbox, 2), [['duplicate', 2]]);
      assert.deepEqual(await appendOne(store, inbox, 3), [['stored', 3]]);
      assert.deepEqual(unhandled.seen, []);
    } finally {
      unhandled.stop();
      await store.close();
    }
  });
});

describe('RedisInboxStore on a Redis Cluster', () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(() => cluster?.stop());

  inboxStoreConformance('redis cluster', (_dir, caps) =>
    RedisInboxStore.open({ url: cluster.url, caps, durability: 'full' }),
  );

  it('sweeps users on every master', async () => {
    const retentionMs = 10_000;
    const store = await RedisInboxStore.open({
      url: cluster.url,
      caps: { ...DEFAULT_CAPS, retentionMs },
      durability: 'full',
    });
    try {
      const byMaster = new Map<number, string[]>();
      for (let i = 0; byMaster.size < 3 || [...byMaster.values()].some((u) => u.length < 3); i++) {
        assert.ok(i < 1_000, 'users on every master');
        const user = fresh('sweep');
        const master = await cluster.masterOf(inboxKey(user));
        byMaster.set(master.port, [...(byMaster.get(master.port) ?? []), user]);
      }
      const users = [...byMaster.values()].flat();
      const t0 = Date.now();
      await store.append(users.flatMap((user) => [1, 2].map((id) => ({ ...req(user, id), timestamp: t0 }))));
      for (;;) {
        const done = await store.purge(t0 + retentionMs + 1, 5);
        assert.ok(done >= 0 && done <= 5);
        if (done === 0) break;
      }
      for (const user of users) {
        assert.deepEqual(await store.read(user, 0, 10), [], user);
        assert.equal(await store.lastSeq(user), 2);
      }
    } finally {
      await store.close();
    }
  });
});

describe('RedisInboxStore across a cluster failover', () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(() => cluster?.stop());

  it('rejects calls for the dead master’s slots, then serves them from the promoted replica without reopening', async () => {
    const unhandled = watchUnhandled();
    const store = await RedisInboxStore.open({ url: cluster.url, caps: DEFAULT_CAPS, durability: 'full' });
    try {
      const user = fresh('failover');
      for (let id = 1; id <= 20; id++) await store.append([req(user, id)]);
      await store.openDevice(user, 'phone', Date.now());
      await store.ack(user, 'phone', 5);
      await cluster.settled(); // the replicas have every write
      const master = await cluster.masterOf(inboxKey(user));
      await master.kill9();
      const killed = Date.now();
      const id = 21;
      let attempts = 0;
      for (;;) {
        attempts++;
        const started = Date.now();
        try {
          // 'duplicate' if an earlier attempt was applied and only its reply was lost.
          const [r] = await store.append([req(user, id)]);
          assert.ok(r?.status === 'stored' || r?.status === 'duplicate', JSON.stringify(r));
          assert.equal(r.seq, id);
          break;
        } catch (err) {
          assert.ok(err instanceof StoreUnavailableError, `unexpected failure: ${err}`);
          assert.ok(Date.now() - started < 3_000, 'a call during the failover took more than 3 s');
          assert.ok(Date.now() - killed < 15_000, 'no promoted replica serves the user within 15 s');
          await sleep(200);
        }
      }
      assert.ok(attempts > 1, 'the first call after the kill should have failed');
      assert.notEqual((await cluster.masterOf(inboxKey(user))).port, master.port);
      assert.deepEqual(
        (await store.read(user, 0, 100)).map((m) => m.clientMsgId),
        Array.from({ length: 21 }, (_, k) => k + 1),
      );
      assert.deepEqual(await store.openDevice(user, 'phone', Date.now()), { lastSeq: 21, ackedSeq: 5 });
      assert.deepEqual(unhandled.seen, []);
    } finally {
      unhandled.stop();
      await store.close();
    }
  });
});

/**
 * Durability full on a Redis Cluster: an append counts once a replica has it (WAIT), so a failover cannot
 * take it back. The replica of the user's master is cut off (stopped, its link closed by the master: a
 * stopped process would still find what was sent in its socket's buffer once continued), an append is
 * tried, the master is killed and the replica takes over.
 */
describe('RedisInboxStore, durability full: a write counts once a replica has it', () => {
  let cluster: RedisCluster;
  let stopped: number | null = null;
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    if (stopped !== null) process.kill(stopped, 'SIGCONT');
    await cluster?.stop();
  });

  it('refuses an append no replica has; after the failover nothing that was stored is missing', async () => {
    const store = await RedisInboxStore.open({ url: cluster.url, caps: DEFAULT_CAPS, durability: 'full' });
    try {
      const user = fresh('replica-ack');
      assert.deepEqual(await appendOne(store, user, 1), [['stored', 1]]);
      const master = await cluster.masterOf(inboxKey(user));
      const [info] = (await admin(master.port, [['info', 'replication']])) as [string];
      const replica = cluster.nodes.find(
        (n) => n.port === Number(/^slave0:ip=[^,]*,port=(\d+)/m.exec(info)?.[1]),
      );
      assert.ok(replica, `master ${master.port} has no replica:\n${info}`);
      process.kill(replica.pid, 'SIGSTOP');
      stopped = replica.pid;
      await admin(master.port, [['client', 'kill', 'type', 'replica']]);
      const cutOff = await store.append([req(user, 2)]).then(
        (results) => results.map((r) => r.status).join(),
        (err: Error) => err,
      );

      await master.kill9();
      process.kill(replica.pid, 'SIGCONT');
      stopped = null;
      // As a client does: what was refused is sent again, until the promoted replica takes it; what was
      // answered stored is not (then the user's inbox is read once the new master serves it).
      const deadline = Date.now() + 60_000;
      for (;;) {
        try {
          if (cutOff instanceof Error) {
            const [r] = await store.append([req(user, 2)]);
            assert.equal(r?.status, 'stored', 'message 2 is new to the new master');
          } else await store.read(user, 0, 1);
          break;
        } catch (err) {
          assert.ok(err instanceof StoreUnavailableError, `unexpected failure: ${err}`);
          assert.ok(Date.now() < deadline, 'no promoted replica serves the user within 60 s');
          await sleep(200);
        }
      }
      assert.equal((await cluster.masterOf(inboxKey(user))).port, replica.port, 'the replica took over');
      assert.deepEqual(
        (await store.read(user, 0, 10)).map((m) => m.clientMsgId),
        [1, 2],
        `every append that was answered stored is there (message 2 was answered ${String(cutOff)})`,
      );
      assert.ok(
        cutOff instanceof StoreUnavailableError,
        `the append no replica had was answered ${String(cutOff)}`,
      );
    } finally {
      await store.close();
    }
  });
});
