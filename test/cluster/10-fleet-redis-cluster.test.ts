/**
 * A fleet on a Redis Cluster (3 masters + 3 replicas, made by redis-cli --cluster create): two nodes on
 * `redis-cluster://…` chat across nodes (keys hash-tagged by user, sharded pub/sub); then the master
 * that serves a recipient's slot is killed (kill -9) in the middle of a run of re-sending senders: its
 * replica takes over, SENDs meanwhile get STORE_UNAVAILABLE (sessions stay connected, no worker dies),
 * service resumes by itself, and every ACCEPTED message is there exactly once, in order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DeliverFrame } from '../../src/protocol/index.js';
import { inboxKey } from '../../src/store/redis/keys.js';
import { assertNoProblems } from '../helpers/audit.js';
import { auditSenders, eventually, ResendingSender } from '../helpers/cluster.js';
import { type RedisCluster, startRedisCluster } from '../helpers/redis.js';
import { type ServerProcess, startServer, TEST_WORKERS } from '../helpers/server-process.js';
import { closeAll, session, text, type WireClient } from '../wire/harness.js';

describe('a fleet on a Redis Cluster', { skip: TEST_WORKERS !== 1 }, () => {
  let redis: RedisCluster;
  const nodes: ServerProcess[] = [];
  const clients: WireClient[] = [];
  const senders: ResendingSender[] = [];

  before(async () => {
    redis = await startRedisCluster();
    for (const name of ['c1', 'c2']) {
      nodes.push(
        await startServer({
          workers: 2,
          args: ['--store', redis.url, '--node-name', name, '--purge-interval', '1h'],
        }),
      );
    }
  });
  after(async () => {
    await Promise.all(senders.map((s) => s.close()));
    await closeAll(clients);
    for (const n of nodes) await n.stop();
    await redis?.stop();
  });

  it('users on different nodes chat', async () => {
    const a = await session(nodes[0]!.port, 'rc-alice', 'phone');
    const b = await session(nodes[1]!.port, 'rc-bob', 'phone');
    clients.push(a.client, b.client);
    for (let i = 1; i <= 20; i++) a.client.sendText(i, 'rc-bob', `m${i}`);
    const got = (await b.client.collect('DELIVER', 20, 10_000)) as DeliverFrame[];
    assert.deepEqual(
      got.map((d) => text(d.payload)),
      Array.from({ length: 20 }, (_, i) => `m${i + 1}`),
    );
  });

  it('survives a master failover: service resumes by itself, nothing lost', async () => {
    const recipients = ['rc-r1', 'rc-r2'];
    const total = 1500;
    const recipientOf = (j: number, id: number) => recipients[(id + j) % recipients.length]!;
    const ports = nodes.map((n) => n.port);
    for (let j = 0; j < 4; j++) {
      senders.push(
        new ResendingSender({
          port: ports[j % 2]!,
          user: `rc-s${j}`,
          total,
          recipientOf: (id) => recipientOf(j, id),
          inFlight: 20,
          chunk: 10,
          // At most 500 SENDs/s per sender: the run lasts seconds, so the kill below lands in its middle
          // even on a busy machine (at 5 ms a fast run could end before the master was killed).
          paceMs: 20,
        }),
      );
    }
    for (const s of senders) await s.start();
    const workersBefore = nodes.map((n) => n.workerPids().sort());
    const runs = Promise.all(senders.map((s) => s.run(120_000)));
    const acceptedNow = () => senders.reduce((n, s) => n + s.accepted.size, 0);
    await eventually('a quarter of the SENDs ACCEPTED', () => acceptedNow() >= total, 30_000, 5);
    const master = await redis.masterOf(inboxKey('rc-r1'));
    await master.kill9();
    await eventually(
      'STORE_UNAVAILABLE while the slot has no master',
      () => senders.some((s) => (s.errors.get('STORE_UNAVAILABLE') ?? 0) > 0),
      20_000,
      10,
    );
    await runs;
    assert.notEqual((await redis.masterOf(inboxKey('rc-r1'))).port, master.port, 'no replica took over');
    assert.deepEqual(
      nodes.map((n) => n.workerPids().sort()),
      workersBefore,
      'a worker died',
    );
    for (const s of senders) {
      assert.equal(s.sessions, 1, `${s.user} lost its connection (${s.nodes})`);
      assert.equal(s.accepted.size, total);
    }
    assertNoProblems(
      senders.flatMap((s) => s.problems),
      'protocol problems seen by the senders',
    );
    const problems = await auditSenders(ports[0]!, recipients, senders, () => total, recipientOf, clients);
    assertNoProblems(problems, 'messages lost, stored twice or out of order');
  });
});
