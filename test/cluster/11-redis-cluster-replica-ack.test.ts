/**
 * `--durability full` on a Redis Cluster (3 masters + 3 replicas): ACCEPTED waits until a replica has the
 * message (WAIT), so a failover cannot take back a message already ACCEPTED. The test cuts the replica off
 * its master (stopped, its replication link closed by the master), sends, then kills the master (kill -9)
 * and lets the replica take over: the SEND made meanwhile must not have been ACCEPTED (it gets
 * STORE_UNAVAILABLE), and once it is sent again after the failover, the recipient gets every message
 * that was ever ACCEPTED, each once. Without WAIT the SEND is ACCEPTED and lost with the master.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ErrorCode, type ErrorFrame } from '../../src/protocol/index.js';
import { inboxKey } from '../../src/store/redis/keys.js';
import { eventually } from '../helpers/cluster.js';
import { admin, type RedisCluster, type RedisProcess, startRedisCluster } from '../helpers/redis.js';
import { type ServerProcess, startServer, TEST_WORKERS } from '../helpers/server-process.js';
import { closeAll, session, sleep, text, type WireClient } from '../wire/harness.js';

/** The replica of `master` (from its INFO replication). */
async function replicaOf(redis: RedisCluster, master: RedisProcess): Promise<RedisProcess> {
  const [info] = (await admin(master.port, [['info', 'replication']])) as [string];
  const port = Number(/^slave0:ip=[^,]*,port=(\d+)/m.exec(info)?.[1]);
  const replica = redis.nodes.find((n) => n.port === port);
  if (!replica) throw new Error(`master ${master.port} has no replica:\n${info}`);
  return replica;
}

/** Sends SEND `id` until it is ACCEPTED (STORE_UNAVAILABLE while the slot has no master). */
async function sendUntilAccepted(client: WireClient, id: number, to: string, body: string): Promise<void> {
  await eventually(
    `SEND ${id} ACCEPTED`,
    async () => {
      client.sendText(id, to, body);
      const answer = await client.waitFor(
        (f) => (f.type === 'ACCEPTED' && f.clientMsgId === id) || (f.type === 'ERROR' && f.ref === id),
        10_000,
      );
      if (answer.type === 'ACCEPTED') return true;
      assert.equal((answer as ErrorFrame).code, ErrorCode.STORE_UNAVAILABLE);
      await sleep(300);
      return false;
    },
    60_000,
    0,
  );
}

describe('durability full on a Redis Cluster', { skip: TEST_WORKERS !== 1 }, () => {
  let redis: RedisCluster;
  let server: ServerProcess;
  const clients: WireClient[] = [];
  let stopped: RedisProcess | null = null;

  before(async () => {
    redis = await startRedisCluster();
    server = await startServer({
      workers: 1,
      args: ['--store', redis.url, '--durability', 'full', '--purge-interval', '1h'],
    });
  });
  after(async () => {
    if (stopped?.running()) process.kill(stopped.pid, 'SIGCONT');
    await closeAll(clients);
    await server?.stop();
    await redis?.stop();
  });

  it('ACCEPTED waits for a replica: a failover loses no ACCEPTED message', async () => {
    const { client: alice } = await session(server.port, 'ra-alice', 'phone');
    clients.push(alice);
    alice.sendText(1, 'ra-bob', 'before');
    await alice.waitAccepted(1);

    const master = await redis.masterOf(inboxKey('ra-bob'));
    const replica = await replicaOf(redis, master);
    // The replica stops, and the master closes its link to it: what the master writes now reaches no
    // replica (a stopped process would still find it in its socket's buffer once continued).
    process.kill(replica.pid, 'SIGSTOP');
    stopped = replica;
    await admin(master.port, [['client', 'kill', 'type', 'replica']]);
    alice.sendText(2, 'ra-bob', 'while no replica listens');
    const answer = await alice.waitFor(
      (f) => (f.type === 'ACCEPTED' && f.clientMsgId === 2) || (f.type === 'ERROR' && f.ref === 2),
      10_000,
    );

    await master.kill9();
    process.kill(replica.pid, 'SIGCONT');
    stopped = null;
    await eventually(
      'the replica takes over',
      async () => (await redis.masterOf(inboxKey('ra-bob'))).port === replica.port,
      60_000,
      200,
    );
    if (answer.type !== 'ACCEPTED') await sendUntilAccepted(alice, 2, 'ra-bob', 'while no replica listens');

    // A HELLO is refused (STORE_UNAVAILABLE, then a close) until the server has found the new master.
    const bob = await eventually(
      'ra-bob connects',
      () =>
        session(server.port, 'ra-bob', 'phone').then(
          ({ client }) => client,
          () => false as const,
        ),
      60_000,
      300,
    );
    clients.push(bob);
    const got = await bob.collect('DELIVER', 2, 15_000);
    assert.deepEqual(
      got.map((d) => (d.type === 'DELIVER' ? text(d.payload) : d.type)),
      ['before', 'while no replica listens'],
      'every ACCEPTED message, once each, in order',
    );
    assert.equal(answer.type, 'ERROR', 'the SEND no replica had was answered ACCEPTED');
    assert.equal((answer as ErrorFrame).code, ErrorCode.STORE_UNAVAILABLE);
  });
});
