/**
 * Groups (PROTOCOL.md sections 5 and 6): JOIN / LEAVE answered with DONE and kept across a restart; a
 * group SEND stored in every member's inbox (the sender's own included) before ACCEPTED, offline members
 * included; INVALID_ADDRESS and NOT_A_MEMBER; a re-sent group SEND stored once; one session's SENDs to a
 * group and to users land in each inbox in SEND order; ephemeral group SENDs reach connected members only.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DeliverFrame } from '../../src/protocol/index.js';
import { startServer } from '../helpers/server-process.js';
import { closeAll, portOf, session, text, type WireClient } from './harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

describe('groups', () => {
  let server: Server;
  const clients: WireClient[] = [];
  const open = async (user: string, device = 'phone', resumeAfter = 0) => {
    const s = await session(portOf(server), user, device, { resumeAfter });
    clients.push(s.client);
    return s;
  };
  const join = async (c: WireClient, ref: number, group: string) => {
    c.send({ type: 'JOIN', ref, group });
    const done = await c.waitFor((f) => f.type === 'DONE' && f.ref === ref);
    assert.equal(done.type, 'DONE');
  };
  const leave = async (c: WireClient, ref: number, group: string) => {
    c.send({ type: 'LEAVE', ref, group });
    await c.waitFor((f) => f.type === 'DONE' && f.ref === ref);
  };
  const delivers = (c: WireClient, n: number, timeoutMs?: number) =>
    c.collect('DELIVER', n, timeoutMs) as Promise<DeliverFrame[]>;

  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('stores a group message in every member inbox, the sender own and offline members included', async () => {
    const members = ['g1-ann', 'g1-ben', 'g1-cat', 'g1-dan', 'g1-eve'];
    for (const [i, user] of members.entries()) {
      const { client } = await open(user);
      await join(client, 1 + i, '#g1');
      if (user !== 'g1-ann' && user !== 'g1-ben') await client.close();
    }
    const ann = clients[0]!;
    const ben = clients[1]!;
    ann.sendText(10, '#g1', 'hello team');
    const acc = await ann.waitAccepted(10);
    assert.equal(acc.flags, 0);
    for (const c of [ann, ben]) {
      const d = (await c.waitFor('DELIVER')) as DeliverFrame;
      assert.deepEqual(
        [d.from, d.fromDevice, d.clientMsgId, d.to, text(d.payload), d.timestamp],
        ['g1-ann', 'phone', 10, '#g1', 'hello team', acc.timestamp],
      );
    }
    // Offline members find it in their inbox, with the same timestamp.
    for (const user of ['g1-cat', 'g1-dan', 'g1-eve']) {
      const { client, welcome } = await open(user);
      assert.equal(welcome.lastSeq, 1);
      const [d] = await delivers(client, 1);
      assert.deepEqual([d!.seq, d!.to, d!.timestamp], [1, '#g1', acc.timestamp]);
    }
  });

  it('answers INVALID_ADDRESS for a group that does not exist and NOT_A_MEMBER for a non-member', async () => {
    const { client: owner } = await open('g2-owner');
    await join(owner, 1, '#g2');
    const { client: stranger } = await open('g2-stranger');
    stranger.sendText(5, '#g2-none', 'anyone?');
    await stranger.expectError('INVALID_ADDRESS', { ref: 5 });
    stranger.sendText(6, '#g2', 'let me in');
    await stranger.expectError('NOT_A_MEMBER', { ref: 6 });
    // Ephemeral ones too, with their ref; the session stays open.
    stranger.sendText(7, '#g2', 'typing', 1);
    await stranger.expectError('NOT_A_MEMBER', { ref: 7 });
    stranger.send({ type: 'PING', nonce: 3 });
    await stranger.expect('PONG');
    await owner.expectNothing(200, (f) => f.type === 'DELIVER');
  });

  it('JOIN is idempotent, LEAVE by a non-member is DONE, and a group whose last member leaves is gone', async () => {
    const { client: a } = await open('g3-a');
    const { client: b } = await open('g3-b');
    await leave(a, 1, '#g3');
    await join(a, 2, '#g3');
    await join(a, 3, '#g3');
    await join(b, 4, '#g3');
    a.sendText(10, '#g3', 'one');
    await a.waitAccepted(10);
    assert.equal((await delivers(b, 1))[0]!.seq, 1, 'one copy per member, however often it joined');
    assert.equal((await delivers(a, 1))[0]!.clientMsgId, 10);
    await leave(b, 5, '#g3');
    a.sendText(11, '#g3', 'two');
    await a.waitAccepted(11);
    assert.equal((await delivers(a, 1))[0]!.clientMsgId, 11);
    await b.expectNothing(300, (f) => f.type === 'DELIVER');
    b.sendText(12, '#g3', 'me again');
    await b.expectError('NOT_A_MEMBER', { ref: 12 });
    await leave(a, 6, '#g3');
    a.sendText(13, '#g3', 'anyone?');
    await a.expectError('INVALID_ADDRESS', { ref: 13 });
  });

  it('stores a re-sent group SEND once, answering ACCEPTED with the duplicate flag', async () => {
    const { client: a } = await open('g4-a');
    const { client: b } = await open('g4-b');
    await join(a, 1, '#g4');
    await join(b, 2, '#g4');
    a.sendText(20, '#g4', 'once');
    const first = await a.waitAccepted(20);
    a.sendText(20, '#g4', 'once');
    const again = await a.waitAccepted(20);
    assert.deepEqual([again.flags, again.timestamp], [1, first.timestamp]);
    await delivers(b, 1);
    await b.expectNothing(300, (f) => f.type === 'DELIVER');
  });

  it('keeps one session SEND order in every inbox across group and direct messages', async () => {
    const { client: a } = await open('g5-a');
    const { client: b } = await open('g5-b');
    await join(a, 1, '#g5');
    await join(b, 2, '#g5');
    // Pipelined: direct, group, direct, group, … all answered, and b's inbox holds them in SEND order.
    const ids = Array.from({ length: 20 }, (_, i) => 100 + i);
    for (const id of ids) a.sendText(id, id % 2 === 0 ? 'g5-b' : '#g5', `m${id}`);
    const answers = await a.collect((f) => f.type === 'ACCEPTED', ids.length, 10_000);
    assert.deepEqual(
      answers.map((f) => (f.type === 'ACCEPTED' ? f.clientMsgId : 0)),
      ids,
      'answers in SEND order',
    );
    const got = await delivers(b, ids.length, 10_000);
    assert.deepEqual(
      got.map((d) => d.clientMsgId),
      ids,
    );
    const own = await delivers(a, ids.length, 10_000);
    assert.deepEqual(
      own.map((d) => d.clientMsgId),
      ids,
    );
  });

  it('keeps membership across a restart of the server', async () => {
    const dataDir = mkdtempSync(joinPath(tmpdir(), 'switchboard-groups-'));
    const at = async (srv: Server, user: string) => {
      const s = await session(portOf(srv), user, 'phone');
      clients.push(s.client);
      return s.client;
    };
    let srv = await startServer({ dataDir });
    try {
      const a = await at(srv, 'g6-a');
      const b = await at(srv, 'g6-b');
      await join(a, 1, '#g6');
      await join(b, 2, '#g6');
      await srv.stop();
      srv = await startServer({ dataDir });
      const a2 = await at(srv, 'g6-a');
      const b2 = await at(srv, 'g6-b');
      a2.sendText(30, '#g6', 'still here?');
      await a2.waitAccepted(30);
      assert.equal(text((await delivers(b2, 1))[0]!.payload), 'still here?');
    } finally {
      await srv.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('sends an ephemeral group SEND to connected members only, never stored', async () => {
    const { client: a } = await open('g7-a');
    const { client: aLaptop } = await open('g7-a', 'laptop');
    const { client: b } = await open('g7-b');
    const { client: c } = await open('g7-c');
    for (const [i, x] of [a, b, c].entries()) await join(x, 1 + i, '#g7');
    await c.close();
    a.sendText(40, '#g7', 'typing', 1);
    for (const x of [b, aLaptop]) {
      const d = (await x.waitFor('DELIVER')) as DeliverFrame;
      assert.deepEqual([d.seq, d.to, text(d.payload)], [0, '#g7', 'typing']);
    }
    await a.expectNothing(300, (f) => f.type === 'DELIVER' || f.type === 'ACCEPTED');
    const { welcome } = await open('g7-c');
    assert.equal(welcome.lastSeq, 0);
  });
});
