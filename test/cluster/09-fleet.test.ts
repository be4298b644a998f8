/**
 * Many machines (issue 9): three Switchboard nodes — separate `serve` processes with their own ports and
 * two workers each — on one real Redis, finding each other through it only. Users on different nodes
 * chat in order; store-and-forward and multi-device across nodes; presence across nodes; a device that
 * connects to another node replaces its session there; groups across nodes; and kill -9 of a whole node
 * in the middle of 10 000 messages between users on every node: its clients move to the other nodes,
 * every ACCEPTED message is stored exactly once, in order, and the users it held go offline for their
 * watchers once a live node has reaped it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DeliverFrame, PresenceFrame } from '../../src/protocol/index.js';
import {
  assertNoProblems,
  type ExpectedMessage,
  inboxProblems,
  readInbox,
  splitOrderProblems,
} from '../helpers/audit.js';
import { auditSenders, eventually, ResendingSender } from '../helpers/cluster.js';
import { type RedisProcess, startRedis } from '../helpers/redis.js';
import { type ServerProcess, startServer, TEST_WORKERS } from '../helpers/server-process.js';
import { closeAll, session, text, type WireClient } from '../wire/harness.js';

const NODES = ['n1', 'n2', 'n3'];

// The fleet brings its own worker count (two per node): it runs in the one-worker pass of the suite only.
describe('a fleet of three nodes on one Redis', { skip: TEST_WORKERS !== 1 }, () => {
  let redis: RedisProcess;
  const nodes: ServerProcess[] = [];
  const clients: WireClient[] = [];
  const senders: ResendingSender[] = [];
  const open = async (node: number, user: string, device = 'phone') => {
    const s = await session(nodes[node]!.port, user, device);
    clients.push(s.client);
    return s;
  };

  before(async () => {
    redis = await startRedis({ appendonly: true, appendfsync: 'always' });
    for (const name of NODES) {
      nodes.push(
        await startServer({
          workers: 2,
          args: ['--store', redis.url, '--node-name', name, '--durability', 'full', '--purge-interval', '1h'],
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

  it('names each session by node and worker, and users on different nodes chat in order', async () => {
    const { client: alice, welcome: wa } = await open(0, 'fl-alice');
    const { client: bob, welcome: wb } = await open(1, 'fl-bob');
    assert.match(wa.node, /^n1\.w[12]$/);
    assert.match(wb.node, /^n2\.w[12]$/);
    for (let i = 1; i <= 100; i++) alice.sendText(i, 'fl-bob', `a${i}`);
    const got = (await bob.collect('DELIVER', 100, 10_000)) as DeliverFrame[];
    assert.deepEqual(
      got.map((d) => text(d.payload)),
      Array.from({ length: 100 }, (_, i) => `a${i + 1}`),
    );
    bob.sendText(1, 'fl-alice', 'got them');
    const back = (await alice.waitFor((f) => f.type === 'DELIVER' && f.from === 'fl-bob')) as DeliverFrame;
    assert.equal(text(back.payload), 'got them');
  });

  it('stores for an offline user and forwards to all its devices, wherever they connect', async () => {
    const { client: dave } = await open(2, 'fl-dave');
    dave.sendText(1, 'fl-carol', 'while you were out');
    await dave.waitAccepted(1);
    const { client: phone, welcome } = await open(0, 'fl-carol', 'phone');
    const { client: laptop } = await open(1, 'fl-carol', 'laptop');
    assert.equal(welcome.lastSeq, 1);
    for (const c of [phone, laptop])
      assert.equal(text((await c.expectDeliver()).payload), 'while you were out');
    // Live, and the sender's own copy on its other device on another node.
    const { client: daveLaptop } = await open(0, 'fl-dave', 'laptop');
    await daveLaptop.collect('DELIVER', 1); // the own copy of the first message
    dave.sendText(2, 'fl-carol', 'now live');
    for (const c of [phone, laptop, daveLaptop]) {
      const d = (await c.waitFor((f) => f.type === 'DELIVER' && f.clientMsgId === 2)) as DeliverFrame;
      assert.equal(text(d.payload), 'now live');
    }
  });

  it('tells presence across nodes', async () => {
    const { client: watcher } = await open(2, 'fl-watcher');
    watcher.send({ type: 'WATCH', users: ['fl-erin'] });
    assert.equal(((await watcher.waitFor('PRESENCE')) as PresenceFrame).online, 0);
    const { client: erinPhone } = await open(1, 'fl-erin', 'phone');
    assert.equal(((await watcher.waitFor('PRESENCE', 2000)) as PresenceFrame).online, 1);
    const { client: erinLaptop } = await open(0, 'fl-erin', 'laptop');
    erinPhone.send({ type: 'BYE', code: 0, reason: 'done' });
    await erinPhone.expectClosed(3000, { allowUnread: true });
    await watcher.expectNothing(500, (f) => f.type === 'PRESENCE');
    erinLaptop.send({ type: 'BYE', code: 0, reason: 'done' });
    assert.equal(((await watcher.waitFor('PRESENCE', 2000)) as PresenceFrame).online, 0);
  });

  it('replaces the session of a device that connects to another node', async () => {
    const { client: first } = await open(0, 'fl-frank');
    await open(2, 'fl-frank');
    await first.expectError('SESSION_REPLACED', { timeoutMs: 3000 });
  });

  it('fans a group out to members on every node', async () => {
    const members = NODES.map((_, i) => `fl-g${i}`);
    const conns: WireClient[] = [];
    for (const [i, user] of members.entries()) {
      const { client } = await open(i, user);
      client.send({ type: 'JOIN', ref: 1, group: '#fl-team' });
      await client.waitFor('DONE');
      conns.push(client);
    }
    conns[2]!.sendText(7, '#fl-team', 'all hands');
    await conns[2]!.waitAccepted(7);
    for (const c of conns) {
      const d = (await c.waitFor((f) => f.type === 'DELIVER' && f.to === '#fl-team')) as DeliverFrame;
      assert.equal(text(d.payload), 'all hands');
    }
  });

  it('survives kill -9 of a node in the middle of 10 000 messages: nothing lost, nothing twice, in order', async () => {
    const total = 10_000;
    const senderUsers = NODES.flatMap((_, n) => [`fl-s${n}a`, `fl-s${n}b`]);
    const recipients = NODES.map((_, n) => `fl-r${n}`);
    const perSender = Math.floor(total / senderUsers.length);
    const recipientOf = (j: number, id: number) => recipients[(id + j) % recipients.length]!;
    const ports = nodes.map((n) => n.port);
    senderUsers.forEach((user, j) => {
      const home = Math.floor(j / 2);
      senders.push(
        new ResendingSender({
          port: ports[home]!,
          ports: [...ports.slice(home), ...ports.slice(0, home)],
          user,
          total: perSender,
          recipientOf: (id) => recipientOf(j, id),
          inFlight: 100,
          chunk: 25,
        }),
      );
    });
    // A group sender on the victim too: a node dying half-way through a group send must leave every
    // member with each ACCEPTED message once, none missing, once the re-send (on another node) completes it.
    const groupMembers = NODES.map((_, n) => `fl-gm${n}`);
    for (const [n, user] of groupMembers.entries()) {
      const { client } = await open(n, user);
      client.send({ type: 'JOIN', ref: 1, group: '#fl-kill' });
      await client.waitFor('DONE');
      await client.close();
    }
    const groupSender = new ResendingSender({
      port: ports[1]!,
      ports: [ports[1]!, ports[2]!, ports[0]!],
      user: groupMembers[1]!,
      total: 1000,
      recipientOf: () => '#fl-kill',
      inFlight: 20,
      chunk: 10,
    });
    senders.push(groupSender);
    for (const s of senders) await s.start();
    // A user connected to the victim only, watched from another node: offline once the node is reaped.
    await open(1, 'fl-ghost');
    const { client: watcher } = await open(0, 'fl-ghost-watcher');
    watcher.send({ type: 'WATCH', users: ['fl-ghost'] });
    assert.equal(((await watcher.waitFor('PRESENCE')) as PresenceFrame).online, 1);
    const acceptedNow = () => senders.reduce((n, s) => n + s.accepted.size, 0);
    let failure: unknown = null;
    const runs = Promise.all(senders.map((s) => s.run(120_000))).catch((err) => {
      failure = err;
    });
    await eventually(
      'a third of the messages ACCEPTED',
      () => acceptedNow() >= total / 3 || !!failure,
      60_000,
      5,
    );
    const victim = nodes[1]!;
    const groupAcceptedAtKill = groupSender.accepted.size;
    await victim.kill9();
    const killedAt = Date.now();
    await runs;
    if (failure) throw failure;
    // Its heartbeat stops: after NODE_TTL (10 s) a live node removes its devices and tells the watchers.
    const gone = (await watcher.waitFor('PRESENCE', 25_000)) as PresenceFrame;
    assert.equal(gone.online, 0);
    console.log(
      `a user of the killed node went offline for its watchers ${Date.now() - killedAt} ms after the kill`,
    );
    for (const s of senders.slice(2, 4)) {
      assert.ok(s.sessions >= 2, `${s.user} was on the killed node and did not move (${s.nodes})`);
      assert.ok(!s.node.startsWith('n2.'), `${s.user} is still on n2`);
    }
    assertNoProblems(
      senders.flatMap((s) => s.problems),
      'protocol problems seen by the senders',
    );
    const direct = senders.filter((s) => s !== groupSender);
    const problems = await auditSenders(ports[0]!, recipients, direct, () => perSender, recipientOf, clients);
    assert.ok(
      groupSender.sessions >= 2,
      `the group sender did not move off the killed node (${groupSender.nodes})`,
    );
    assert.ok(groupAcceptedAtKill < groupSender.total, 'the group sends were over before the kill');
    const groupExpected: ExpectedMessage[] = Array.from({ length: groupSender.total }, (_, i) => ({
      from: groupSender.user,
      fromDevice: 'd1',
      clientMsgId: i + 1,
      to: '#fl-kill',
      timestamp: groupSender.accepted.get(i + 1)!.timestamp,
    }));
    for (const member of groupMembers) {
      problems.push(...inboxProblems(member, await readInbox(ports[0]!, member, clients), groupExpected));
    }
    const { order, other } = splitOrderProblems(problems);
    assertNoProblems(other, 'messages lost, stored twice or altered');
    assertNoProblems(order, 'messages out of send order');
    victim.removeData();
  });
});
