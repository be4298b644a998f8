/**
 * Messaging (PROTOCOL.md section 5): SEND → ACCEPTED and DELIVER to every device of the recipient and
 * of the sender (the sending session included), one copy for a message to oneself, gap-free seqs in
 * send order, duplicates, and ephemeral SENDs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DeliverFrame } from '../../src/protocol/index.js';
import { startServer } from '../helpers/server-process.js';
import { bytes, closeAll, connect, portOf, session, sleep, text, type WireClient } from './harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

describe('SEND and DELIVER', () => {
  let server: Server;
  const clients: WireClient[] = [];
  const open = async (user: string, device: string, resumeAfter = 0) => {
    const s = await session(portOf(server), user, device, { resumeAfter });
    clients.push(s.client);
    return s;
  };

  before(async () => {
    server = await startServer({ args: ['--handshake-timeout', '2s'] });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  function assertDeliver(
    d: DeliverFrame,
    want: {
      seq: number;
      timestamp: number;
      from: string;
      fromDevice: string;
      clientMsgId: number;
      to: string;
      text: string;
    },
  ): void {
    assert.deepEqual(
      {
        seq: d.seq,
        timestamp: d.timestamp,
        from: d.from,
        fromDevice: d.fromDevice,
        clientMsgId: d.clientMsgId,
        to: d.to,
        text: text(d.payload),
      },
      want,
    );
  }

  it('SEND → ACCEPTED, and DELIVER to every device of the recipient and of the sender, the sending one included', async () => {
    const { client: a1 } = await open('m1-alice', 'phone');
    const { client: a2 } = await open('m1-alice', 'laptop');
    const { client: b1 } = await open('m1-bob', 'phone');
    const { client: b2 } = await open('m1-bob', 'laptop');
    const before = Date.now();
    a1.sendText(1001, 'm1-bob', 'hi bob');
    const acc = await a1.waitAccepted(1001);
    const afterMs = Date.now();
    assert.equal(acc.flags, 0, 'a first SEND is not a duplicate');
    assert.ok(
      acc.timestamp >= before - 1000 && acc.timestamp <= afterMs + 1000,
      `timestamp ${acc.timestamp} is not the server's time in ms since the epoch (${before}..${afterMs})`,
    );
    const want = {
      seq: 1,
      timestamp: acc.timestamp,
      from: 'm1-alice',
      fromDevice: 'phone',
      clientMsgId: 1001,
      to: 'm1-bob',
      text: 'hi bob',
    };
    assertDeliver(await b1.expectDeliver(), want);
    assertDeliver(await b2.expectDeliver(), want);
    // The sender's own copy, in the sender's inbox (its own seq 1), `to` naming the peer.
    assertDeliver(await a2.expectDeliver(), want);
    assertDeliver(await a1.waitFor('DELIVER'), want);
    // Exactly one copy each.
    await Promise.all([b1, b2, a1, a2].map((c) => c.expectNothing(300)));
  });

  it('a frame over 4 096 bytes right behind HELLO is allowed (the HELLO limit is for the first frame only)', async () => {
    const c = await connect(portOf(server), 'm0-big');
    clients.push(c);
    c.sendHello('m0-alice', 'phone');
    c.send({
      type: 'SEND',
      clientMsgId: 1,
      flags: 0,
      to: 'm0-alice',
      payload: new Uint8Array(10_000).fill(7),
    });
    await c.expect('WELCOME');
    assert.equal((await c.waitAccepted(1)).flags, 0);
    assert.equal((await c.waitFor('DELIVER')).payload.length, 10_000);
  });

  it('the own copy counts in the sender inbox: seqs there follow its own sequence', async () => {
    const { client: a1 } = await open('m2-alice', 'phone');
    const { client: c1 } = await open('m2-carol', 'phone');
    // carol sends to alice first: alice's inbox seq 1 is carol's message.
    c1.sendText(1, 'm2-alice', 'from carol');
    await c1.waitAccepted(1);
    const first = await a1.expectDeliver();
    assert.equal(first.seq, 1);
    a1.sendText(1, 'm2-dan', 'to dan');
    await a1.waitAccepted(1);
    const own = await a1.waitFor('DELIVER');
    assert.deepEqual([own.seq, own.from, own.to, text(own.payload)], [2, 'm2-alice', 'm2-dan', 'to dan']);
    const { client: d1, welcome } = await open('m2-dan', 'phone');
    assert.equal(welcome.lastSeq, 1);
    const d = await d1.expectDeliver();
    assert.deepEqual([d.seq, d.from, d.to], [1, 'm2-alice', 'm2-dan']);
  });

  it('a message to oneself is stored once', async () => {
    const { client: a1 } = await open('m3-alice', 'phone');
    const { client: a2 } = await open('m3-alice', 'laptop');
    a1.sendText(5, 'm3-alice', 'note to self');
    const acc = await a1.waitAccepted(5);
    assert.equal(acc.flags, 0);
    const want = {
      seq: 1,
      timestamp: acc.timestamp,
      from: 'm3-alice',
      fromDevice: 'phone',
      clientMsgId: 5,
      to: 'm3-alice',
      text: 'note to self',
    };
    assertDeliver(await a1.waitFor('DELIVER'), want);
    assertDeliver(await a2.expectDeliver(), want);
    await Promise.all([a1.expectNothing(300), a2.expectNothing(300)]);
    // The next message takes seq 2: no second copy was stored.
    a1.sendText(6, 'm3-bob', 'to bob');
    await a1.waitAccepted(6);
    assert.equal((await a2.expectDeliver()).seq, 2);
    const { welcome } = await open('m3-alice', 'tablet');
    assert.equal(welcome.lastSeq, 2);
  });

  it('seqs are gap-free and follow the order of pipelined SENDs', async () => {
    const N = 60;
    const { client: a1 } = await open('m4-alice', 'phone');
    const { client: b1 } = await open('m4-bob', 'phone');
    const { client: c1 } = await open('m4-carol', 'phone');
    // Two senders interleaved into bob's inbox.
    for (let i = 1; i <= N; i++) {
      a1.sendText(i, 'm4-bob', `a${i}`);
      c1.sendText(i, 'm4-bob', `c${i}`);
    }
    const received = (await b1.collect('DELIVER', 2 * N, 10_000)) as DeliverFrame[];
    assert.deepEqual(
      received.map((d) => d.seq),
      Array.from({ length: 2 * N }, (_, i) => i + 1),
      'bob’s seqs are not 1..2N in order',
    );
    for (const [from, prefix] of [
      ['m4-alice', 'a'],
      ['m4-carol', 'c'],
    ] as const) {
      const mine = received.filter((d) => d.from === from);
      assert.deepEqual(
        mine.map((d) => d.clientMsgId),
        Array.from({ length: N }, (_, i) => i + 1),
        `${from}'s messages are not in send order`,
      );
      assert.deepEqual(
        mine.map((d) => text(d.payload)),
        mine.map((d) => `${prefix}${d.clientMsgId}`),
      );
    }
    const accepted = await a1.collect('ACCEPTED', N, 10_000);
    assert.equal(new Set(accepted.map((f) => (f.type === 'ACCEPTED' ? f.clientMsgId : 0))).size, N);
    const own = (await a1.collect('DELIVER', N, 10_000)) as DeliverFrame[];
    assert.deepEqual(
      own.map((d) => [d.seq, d.clientMsgId]),
      Array.from({ length: N }, (_, i) => [i + 1, i + 1]),
    );
  });

  it('a re-sent SEND → ACCEPTED with the duplicate flag and the original timestamp, stored and delivered once', async () => {
    const { client: a1 } = await open('m5-alice', 'phone');
    const { client: b1 } = await open('m5-bob', 'phone');
    a1.sendText(77, 'm5-bob', 'once');
    const first = await a1.waitAccepted(77);
    assert.equal(first.flags, 0);
    assert.equal((await b1.expectDeliver()).seq, 1);
    await a1.waitFor('DELIVER');
    await sleep(20);
    a1.sendText(77, 'm5-bob', 'once');
    const again = await a1.waitAccepted(77);
    assert.equal(again.flags, 1, 'a re-sent SEND is not flagged duplicate');
    assert.equal(again.timestamp, first.timestamp, 'a duplicate must carry the original timestamp');
    await Promise.all([b1.expectNothing(300), a1.expectNothing(300)]);

    // Re-sent after a reconnect of the same device, as the SDK does.
    await a1.close();
    const { client: a1b } = await open('m5-alice', 'phone', 1);
    a1b.sendText(77, 'm5-bob', 'once');
    const third = await a1b.waitAccepted(77);
    assert.deepEqual([third.flags, third.timestamp], [1, first.timestamp]);
    // The next new message takes seq 2 in bob's inbox: nothing was stored twice.
    a1b.sendText(78, 'm5-bob', 'next');
    await a1b.waitAccepted(78);
    const next = await b1.expectDeliver();
    assert.deepEqual([next.seq, next.clientMsgId], [2, 78]);
    const { client: b2, welcome } = await open('m5-bob', 'tablet');
    assert.equal(welcome.lastSeq, 2);
    const replay = (await b2.collect('DELIVER', 2)) as DeliverFrame[];
    assert.deepEqual(
      replay.map((d) => d.clientMsgId),
      [77, 78],
    );
    await b2.expectNothing(200);
  });

  it('the same clientMsgId from another device of the sender is another message', async () => {
    const { client: a1 } = await open('m6-alice', 'phone');
    const { client: a2 } = await open('m6-alice', 'laptop');
    const { client: b1 } = await open('m6-bob', 'phone');
    a1.sendText(9, 'm6-bob', 'from phone');
    assert.equal((await a1.waitAccepted(9)).flags, 0);
    a2.sendText(9, 'm6-bob', 'from laptop');
    assert.equal((await a2.waitAccepted(9)).flags, 0);
    const ds = (await b1.collect('DELIVER', 2)) as DeliverFrame[];
    assert.deepEqual(
      ds.map((d) => [d.seq, d.fromDevice, d.clientMsgId]),
      [
        [1, 'phone', 9],
        [2, 'laptop', 9],
      ],
    );
  });

  it('an ephemeral SEND → no ACCEPTED, DELIVER seq 0 to connected devices only, nothing stored', async () => {
    const { client: a1 } = await open('m7-alice', 'phone');
    const { client: a2 } = await open('m7-alice', 'laptop');
    const { client: b1 } = await open('m7-bob', 'phone');
    const { client: b2 } = await open('m7-bob', 'laptop');
    a1.send({ type: 'SEND', clientMsgId: 500, flags: 1, to: 'm7-bob', payload: bytes('typing') });
    for (const c of [b1, b2, a2]) {
      const d = await c.expectDeliver();
      assert.deepEqual(
        [d.seq, d.from, d.fromDevice, d.clientMsgId, d.to, text(d.payload)],
        [0, 'm7-alice', 'phone', 500, 'm7-bob', 'typing'],
      );
      assert.ok(
        Math.abs(d.timestamp - Date.now()) < 5000,
        'ephemeral DELIVER timestamp is not the server time',
      );
    }
    // Not ACCEPTED, and not echoed to the sending session.
    await a1.expectNothing(400);
    await Promise.all([b1, b2, a2].map((c) => c.expectNothing(100)));

    // An ephemeral SEND to a user with no connected device goes nowhere.
    a1.send({ type: 'SEND', clientMsgId: 501, flags: 1, to: 'm7-carol', payload: bytes('typing') });
    await a1.expectNothing(200);
    const { client: c1, welcome: cw } = await open('m7-carol', 'phone');
    assert.equal(cw.lastSeq, 0, 'an ephemeral SEND was stored');
    await c1.expectNothing(300);

    // Outside the seq sequence: the next durable message is seq 1 everywhere.
    a1.sendText(502, 'm7-bob', 'real');
    await a1.waitAccepted(502);
    assert.equal((await b1.expectDeliver()).seq, 1);
    const { client: b3, welcome } = await open('m7-bob', 'tablet');
    assert.equal(welcome.lastSeq, 1);
    const replay = await b3.expectDeliver();
    assert.equal(replay.clientMsgId, 502);
    await b3.expectNothing(300);
  });

  it('an ephemeral SEND to oneself goes to the other connected devices only', async () => {
    const { client: a1 } = await open('m8-alice', 'phone');
    const { client: a2 } = await open('m8-alice', 'laptop');
    a1.send({ type: 'SEND', clientMsgId: 1, flags: 1, to: 'm8-alice', payload: bytes('typing') });
    const d = await a2.expectDeliver();
    assert.deepEqual([d.seq, d.from, d.fromDevice, d.to], [0, 'm8-alice', 'phone', 'm8-alice']);
    await a1.expectNothing(300);
    await a2.expectNothing(100);
  });
});
