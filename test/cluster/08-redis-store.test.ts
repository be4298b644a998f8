/**
 * The server on a Redis store (`serve --store redis://…`, issue 9): the same guarantees on the workers
 * of one machine. A real redis-server (AOF, appendfsync always) started by the test:
 * - messages, store-and-forward, groups and presence work as on SQLite;
 * - Redis killed (kill -9) in the middle of a run of re-sending senders, then restarted: SENDs get
 *   STORE_UNAVAILABLE while it is away (not fatal: sessions stay connected), no worker crashes, service
 *   comes back by itself, and with --durability full every ACCEPTED message is there exactly once, in
 *   order;
 * - --durability full against a Redis without appendfsync always refuses to start, saying why.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type { DeliverFrame, PresenceFrame } from '../../src/protocol/index.js';
import { assertNoProblems } from '../helpers/audit.js';
import { auditSenders, eventually, ResendingSender } from '../helpers/cluster.js';
import { type RedisProcess, startRedis } from '../helpers/redis.js';
import {
  BIN,
  freePort,
  type ServerProcess,
  semiSpaceOf,
  startServer,
  TEST_WORKERS,
} from '../helpers/server-process.js';
import { closeAll, session, text, type WireClient } from '../wire/harness.js';

describe('serve --store redis://', () => {
  let redis: RedisProcess;
  let server: ServerProcess;
  const clients: WireClient[] = [];
  const senders: ResendingSender[] = [];
  const open = async (user: string, device = 'phone') => {
    const s = await session(server.port, user, device);
    clients.push(s.client);
    return s;
  };

  before(async () => {
    redis = await startRedis({ appendonly: true, appendfsync: 'always' });
    server = await startServer({
      workers: Math.max(2, TEST_WORKERS),
      args: ['--store', redis.url, '--durability', 'full', '--purge-interval', '1h'],
    });
  });
  after(async () => {
    await Promise.all(senders.map((s) => s.close()));
    await closeAll(clients);
    await server?.stop();
    await redis?.stop();
  });

  it('runs its workers with the Redis default young generation (8 MiB)', () => {
    const workers = server.workerPids();
    assert.ok(workers.length > 0);
    for (const pid of workers) assert.equal(semiSpaceOf(pid), 8);
  });

  it('stores, forwards, fans out to a group and tells presence', async () => {
    const { client: watcher } = await open('rs-watcher');
    watcher.send({ type: 'WATCH', users: ['rs-bob'] });
    const offline = (await watcher.waitFor('PRESENCE')) as PresenceFrame;
    assert.equal(offline.online, 0);
    const { client: alice } = await open('rs-alice');
    alice.sendText(1, 'rs-bob', 'while you were away');
    await alice.waitAccepted(1);
    const { client: bob, welcome } = await open('rs-bob');
    assert.equal(welcome.lastSeq, 1);
    assert.equal(text(((await bob.expectDeliver()) as DeliverFrame).payload), 'while you were away');
    assert.equal(((await watcher.waitFor('PRESENCE')) as PresenceFrame).online, 1);
    for (const [i, c] of [alice, bob].entries()) {
      c.send({ type: 'JOIN', ref: 10 + i, group: '#rs-team' });
      await c.waitFor((f) => f.type === 'DONE' && f.ref === 10 + i);
    }
    alice.sendText(2, '#rs-team', 'hello team');
    await alice.waitAccepted(2);
    const d = (await bob.waitFor((f) => f.type === 'DELIVER' && f.to === '#rs-team')) as DeliverFrame;
    assert.equal(text(d.payload), 'hello team');
  });

  it('survives Redis going away mid-run: STORE_UNAVAILABLE, then service back by itself, nothing lost', async () => {
    const recipients = ['rs-r1', 'rs-r2', 'rs-r3'];
    const total = 600;
    const recipientOf = (j: number, id: number) => recipients[(id + j) % recipients.length]!;
    for (let j = 0; j < 4; j++) {
      senders.push(
        new ResendingSender({
          port: server.port,
          user: `rs-s${j}`,
          total,
          recipientOf: (id) => recipientOf(j, id),
          inFlight: 20,
          chunk: 10,
          paceMs: 5,
        }),
      );
    }
    for (const s of senders) await s.start();
    // A recipient connected all along: what it missed while Redis was away (stored messages announced
    // by pub/sub, or not at all) it gets once Redis is back, in order, each once.
    const { client: live } = await open('rs-r1');
    const workersBefore = server.workerPids().sort();
    const runs = Promise.all(senders.map((s) => s.run(90_000)));
    const acceptedNow = () => senders.reduce((n, s) => n + s.accepted.size, 0);
    await eventually('a third of the SENDs ACCEPTED', () => acceptedNow() >= total, 30_000, 5);
    await redis.kill9();
    await eventually(
      'STORE_UNAVAILABLE while Redis is away',
      () => senders.some((s) => (s.errors.get('STORE_UNAVAILABLE') ?? 0) > 0),
      15_000,
      10,
    );
    await new Promise((r) => setTimeout(r, 1000));
    await redis.restart();
    await runs;
    assert.deepEqual(server.workerPids().sort(), workersBefore, 'a worker crashed');
    for (const s of senders) {
      assert.equal(s.sessions, 1, `${s.user} lost its connection (sessions ${s.nodes})`);
      assert.equal(s.accepted.size, total, `${s.user}: ${s.accepted.size} of ${total} ACCEPTED`);
    }
    assertNoProblems(
      senders.flatMap((s) => s.problems),
      'protocol problems seen by the senders',
    );
    const problems = await auditSenders(server.port, recipients, senders, () => total, recipientOf, clients);
    assertNoProblems(problems, 'messages lost, stored twice or out of order');
    const expected = senders.reduce(
      (n, _sender, j) =>
        n +
        Array.from({ length: total }, (_, i) => recipientOf(j, i + 1)).filter((r) => r === 'rs-r1').length,
      0,
    );
    const seen = (await live.collect('DELIVER', expected, 20_000)) as DeliverFrame[];
    assert.deepEqual(
      seen.map((d) => d.seq),
      Array.from({ length: expected }, (_, i) => i + 1),
      'the live recipient did not get seqs 1…n once each, in order',
    );
  });

  it('refuses --durability full on a Redis without appendfsync always', async () => {
    const lax = await startRedis({ appendonly: true, appendfsync: 'everysec' });
    try {
      const run = spawnSync(
        process.execPath,
        [
          BIN,
          'serve',
          '--store',
          lax.url,
          '--durability',
          'full',
          '--port',
          String(await freePort()),
          '--http-port',
          String(await freePort()),
          '--workers',
          '1',
        ],
        { encoding: 'utf8', timeout: 20_000 },
      );
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stderr, /appendfsync/);
    } finally {
      await lax.stop();
    }
  });
});
