/**
 * Flow control (PROTOCOL.md section 5 "DELIVER → ACK"): never more than `window` unacknowledged
 * DELIVERs (seq > 0) outstanding on a session; an ACK opens exactly as much room as it covers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DeliverFrame } from '../../src/protocol/index.js';
import { startServer } from '../helpers/server-process.js';
import { bytes, closeAll, portOf, session, type WireClient } from './harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

const WINDOW = 10;
const QUIET_MS = 500;

describe('window (--window 10)', () => {
  let server: Server;
  const clients: WireClient[] = [];
  const open = async (user: string, device: string, resumeAfter = 0) => {
    const s = await session(portOf(server), user, device, { resumeAfter });
    clients.push(s.client);
    return s;
  };
  let senderSeq = 0;
  const fill = async (to: string, n: number): Promise<void> => {
    const { client } = await open(`wsender-${++senderSeq}`, 'phone');
    for (let i = 1; i <= n; i++) client.sendText(i, to, `m${i}`);
    for (let i = 1; i <= n; i++) await client.waitAccepted(i, 5000);
    await client.close();
  };
  const seqs = (frames: unknown[]) => (frames as DeliverFrame[]).map((d) => d.seq);
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  before(async () => {
    server = await startServer({ args: ['--handshake-timeout', '2s', '--window', String(WINDOW)] });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('replay: exactly 10 DELIVERs and no more; an ACK of 5 lets exactly 5 more through', async () => {
    await fill('w1-ivan', 30);
    const { client: c, welcome } = await open('w1-ivan', 'phone');
    assert.equal(welcome.window, WINDOW);
    assert.equal(welcome.lastSeq, 30);
    assert.deepEqual(seqs(await c.collect('DELIVER', WINDOW)), range(1, 10));
    await c.expectNothing(QUIET_MS);
    c.send({ type: 'ACK', seq: 5 });
    assert.deepEqual(seqs(await c.collect('DELIVER', 5)), range(11, 15));
    await c.expectNothing(QUIET_MS);
    c.send({ type: 'ACK', seq: 15 });
    assert.deepEqual(seqs(await c.collect('DELIVER', 10)), range(16, 25));
    await c.expectNothing(QUIET_MS);
    c.send({ type: 'ACK', seq: 25 });
    assert.deepEqual(seqs(await c.collect('DELIVER', 5)), range(26, 30));
    await c.expectNothing(200);
  });

  it('live: a reader that never ACKs gets exactly 10; an ACK of 5 lets exactly 5 more through', async () => {
    const { client: r } = await open('w2-jill', 'phone');
    await fill('w2-jill', 30);
    assert.deepEqual(seqs(await r.collect('DELIVER', WINDOW)), range(1, 10));
    await r.expectNothing(QUIET_MS);
    r.send({ type: 'ACK', seq: 5 });
    assert.deepEqual(seqs(await r.collect('DELIVER', 5)), range(11, 15));
    await r.expectNothing(QUIET_MS);
    // The window is per session: another device of the user gets its own 10.
    const { client: r2 } = await open('w2-jill', 'laptop');
    assert.deepEqual(seqs(await r2.collect('DELIVER', WINDOW)), range(1, 10));
    await r2.expectNothing(QUIET_MS);
  });

  it('an ACK above the highest DELIVERed seq (though stored) → PROTOCOL_VIOLATION', async () => {
    await fill('w3-kim', 20);
    const { client: c } = await open('w3-kim', 'phone');
    await c.collect('DELIVER', WINDOW);
    c.send({ type: 'ACK', seq: 15 });
    await c.expectError('PROTOCOL_VIOLATION', { ref: 0 });
    await c.expectClosed();
  });

  it('ephemeral DELIVERs are outside the window', async () => {
    const { client: r } = await open('w4-lou', 'phone');
    await fill('w4-lou', 12);
    assert.deepEqual(seqs(await r.collect('DELIVER', WINDOW)), range(1, 10));
    await r.expectNothing(300);
    const { client: s } = await open('w4-max', 'phone');
    s.send({ type: 'SEND', clientMsgId: 1, flags: 1, to: 'w4-lou', payload: bytes('typing') });
    const d = await r.expectDeliver();
    assert.equal(d.seq, 0, 'the ephemeral DELIVER was held back by the full window');
    r.send({ type: 'ACK', seq: 10 });
    assert.deepEqual(seqs(await r.collect('DELIVER', 2)), [11, 12]);
  });
});
