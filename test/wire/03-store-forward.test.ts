/**
 * Store-and-forward (PROTOCOL.md sections 4.3, 4.4 and 5 "DELIVER → ACK"): replay in order right after
 * WELCOME, resumeAfter, ACK moving the device cursor, ACK validity, and session replacement.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DeliverFrame } from '../../src/protocol/index.js';
import { startServer } from '../helpers/server-process.js';
import { closeAll, portOf, session, text, type WireClient } from './harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

describe('store and forward', () => {
  let server: Server;
  const clients: WireClient[] = [];
  const open = async (user: string, device: string, resumeAfter = 0) => {
    const s = await session(portOf(server), user, device, { resumeAfter });
    clients.push(s.client);
    return s;
  };
  let senderSeq = 0;
  /** Stores `n` messages from a fresh sender into `to`'s inbox; returns their clientMsgIds in order. */
  const fill = async (to: string, n: number): Promise<number[]> => {
    const { client } = await open(`sender-${++senderSeq}`, 'phone');
    const ids = Array.from({ length: n }, (_, i) => 100 + i);
    for (const id of ids) client.sendText(id, to, `${to} #${id}`);
    for (const id of ids) await client.waitAccepted(id);
    await client.close();
    return ids;
  };
  /** A BYE, then the server closes: the session is gone before the next HELLO of the device. */
  const leave = async (c: WireClient): Promise<void> => {
    c.send({ type: 'BYE', code: 0, reason: 'done' });
    await c.expectClosed(3000, { allowUnread: true });
  };

  before(async () => {
    server = await startServer({ args: ['--handshake-timeout', '2s', '--purge-interval', '1h'] });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('messages to an offline user are replayed in order right after WELCOME, then live ones follow', async () => {
    const ids = await fill('sf1-carol', 5);
    const { client: c, welcome } = await open('sf1-carol', 'phone');
    assert.deepEqual([welcome.lastSeq, welcome.ackedSeq], [5, 0]);
    const replay: DeliverFrame[] = [];
    for (let i = 0; i < 5; i++) replay.push(await c.expect('DELIVER'));
    assert.deepEqual(
      replay.map((d) => [d.seq, d.clientMsgId, text(d.payload)]),
      ids.map((id, i) => [i + 1, id, `sf1-carol #${id}`]),
    );
    await c.expectNothing(200);
    await fill('sf1-carol', 1);
    const live = await c.expectDeliver();
    assert.equal(live.seq, 6);
  });

  it('resumeAfter chooses where replay starts; above lastSeq it counts as lastSeq', async () => {
    await fill('sf2-dave', 6);
    const { client: t1, welcome: w1 } = await open('sf2-dave', 'tab', 3);
    assert.deepEqual([w1.lastSeq, w1.ackedSeq], [6, 0]);
    const got = (await t1.collect('DELIVER', 3)) as DeliverFrame[];
    assert.deepEqual(
      got.map((d) => d.seq),
      [4, 5, 6],
    );
    await t1.expectNothing(300);

    const { client: t2, welcome: w2 } = await open('sf2-dave', 'tab2', 1000);
    assert.equal(w2.lastSeq, 6);
    await t2.expectNothing(300);
    // An ACK up to min(resumeAfter, lastSeq) is allowed although nothing was delivered.
    t2.send({ type: 'ACK', seq: 6 });
    await t2.ping(1);
    // resumeAfter counted as lastSeq = 6, so the next message (seq 7) is delivered.
    await fill('sf2-dave', 1);
    assert.equal((await t2.expectDeliver()).seq, 7);
    assert.equal((await t1.expectDeliver()).seq, 7);
  });

  it('resumeAfter does not move the device cursor', async () => {
    await fill('sf3-erin', 4);
    const { client: c1, welcome: w1 } = await open('sf3-erin', 'phone', 4);
    assert.equal(w1.ackedSeq, 0);
    await c1.expectNothing(200);
    await leave(c1);
    const { client: c2, welcome: w2 } = await open('sf3-erin', 'phone', 0);
    assert.deepEqual([w2.lastSeq, w2.ackedSeq], [4, 0], 'resumeAfter moved the cursor');
    const got = (await c2.collect('DELIVER', 4)) as DeliverFrame[];
    assert.deepEqual(
      got.map((d) => d.seq),
      [1, 2, 3, 4],
    );
  });

  it('ACK moves ackedSeq (shown in the next WELCOME) and replay starts after it', async () => {
    await fill('sf4-fay', 5);
    const { client: c1 } = await open('sf4-fay', 'phone');
    await c1.collect('DELIVER', 5);
    c1.send({ type: 'ACK', seq: 3 });
    await leave(c1);
    const { client: c2, welcome: w2 } = await open('sf4-fay', 'phone');
    assert.deepEqual([w2.lastSeq, w2.ackedSeq], [5, 3]);
    const got = (await c2.collect('DELIVER', 2)) as DeliverFrame[];
    assert.deepEqual(
      got.map((d) => d.seq),
      [4, 5],
    );
    await c2.expectNothing(200);
    c2.send({ type: 'ACK', seq: 5 });
    await leave(c2);
    const { client: c3, welcome: w3 } = await open('sf4-fay', 'phone');
    assert.deepEqual([w3.lastSeq, w3.ackedSeq], [5, 5]);
    await c3.expectNothing(300);
    // The cursor is per device: another device of fay starts from 0.
    const { welcome: w4 } = await open('sf4-fay', 'laptop');
    assert.deepEqual([w4.lastSeq, w4.ackedSeq], [5, 0]);
  });

  it('an ACK above what was delivered → ERROR PROTOCOL_VIOLATION, then close', async () => {
    await fill('sf5-gus', 3);
    const { client: c1 } = await open('sf5-gus', 'phone');
    await c1.collect('DELIVER', 3);
    c1.send({ type: 'ACK', seq: 4 });
    await c1.expectError('PROTOCOL_VIOLATION', { ref: 0 });
    await c1.expectClosed();
    // Nothing delivered at all (empty inbox).
    const { client: c2 } = await open('sf5-hal', 'phone');
    c2.send({ type: 'ACK', seq: 1 });
    await c2.expectError('PROTOCOL_VIOLATION', { ref: 0 });
    await c2.expectClosed();
    // The refused ACK did not move the cursor.
    const { welcome } = await open('sf5-gus', 'phone');
    assert.equal(welcome.ackedSeq, 0);
  });

  it('an ACK at or below the cursor changes nothing', async () => {
    await fill('sf6-ida', 4);
    const { client: c1 } = await open('sf6-ida', 'phone');
    await c1.collect('DELIVER', 4);
    c1.send({ type: 'ACK', seq: 3 });
    await leave(c1);
    const { client: c2, welcome: w2 } = await open('sf6-ida', 'phone');
    assert.equal(w2.ackedSeq, 3);
    assert.equal((await c2.expectDeliver()).seq, 4);
    c2.send({ type: 'ACK', seq: 1 });
    c2.send({ type: 'ACK', seq: 3 });
    c2.send({ type: 'ACK', seq: 0 });
    await c2.ping(42);
    await leave(c2);
    const { welcome: w3 } = await open('sf6-ida', 'phone');
    assert.equal(w3.ackedSeq, 3);
  });

  it('a second session of the same (user, device) → the first gets ERROR SESSION_REPLACED and is closed', async () => {
    const { client: first } = await open('sf7-jo', 'phone');
    const { client: other } = await open('sf7-jo', 'laptop');
    const { client: second } = await open('sf7-jo', 'phone');
    await first.expectError('SESSION_REPLACED', { ref: 0 });
    await first.expectClosed();
    await second.ping(3);
    await other.ping(4);
    await fill('sf7-jo', 1);
    assert.equal((await second.expectDeliver()).seq, 1);
    assert.equal((await other.expectDeliver()).seq, 1);
  });
});
