/**
 * Receipts and typing (PROTOCOL.md section 5): an ACK by a device of the addressed user sends one RECEIPT
 * per (device, message) newly covered to each connected device of the sender — none for the sender's own
 * copies, group messages or messages to oneself; an ephemeral "typing" SEND reaches the peer's connected
 * devices and the sender's other ones, with seq 0, never stored.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DeliverFrame, ReceiptFrame } from '../../src/protocol/index.js';
import { startServer } from '../helpers/server-process.js';
import { closeAll, portOf, session, text, type WireClient } from './harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

describe('receipts and typing', () => {
  let server: Server;
  const clients: WireClient[] = [];
  const open = async (user: string, device = 'phone') => {
    const s = await session(portOf(server), user, device);
    clients.push(s.client);
    return s.client;
  };
  const receipts = (c: WireClient, n: number) => c.collect('RECEIPT', n) as Promise<ReceiptFrame[]>;

  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('sends each connected device of the sender one RECEIPT per message newly covered by an ACK', async () => {
    const alicePhone = await open('rc1-alice', 'phone');
    const aliceLaptop = await open('rc1-alice', 'laptop');
    const bobPhone = await open('rc1-bob', 'phone');
    const bobTablet = await open('rc1-bob', 'tablet');
    for (const id of [1, 2, 3]) alicePhone.sendText(id, 'rc1-bob', `m${id}`);
    for (const id of [1, 2, 3]) await alicePhone.waitAccepted(id);
    const got = (await bobPhone.collect('DELIVER', 3)) as DeliverFrame[];
    await bobTablet.collect('DELIVER', 3);

    const before = Date.now();
    bobPhone.send({ type: 'ACK', seq: got[1]!.seq });
    for (const c of [alicePhone, aliceLaptop]) {
      const r = await receipts(c, 2);
      assert.deepEqual(
        r.map((x) => [x.by, x.byDevice, x.fromDevice, x.clientMsgId]),
        [
          ['rc1-bob', 'phone', 'phone', 1],
          ['rc1-bob', 'phone', 'phone', 2],
        ],
      );
      assert.ok(r[0]!.timestamp >= before - 50);
    }
    // The same ACK again covers nothing new; another device's ACK has receipts of its own.
    bobPhone.send({ type: 'ACK', seq: got[1]!.seq });
    bobTablet.send({ type: 'ACK', seq: got[2]!.seq });
    const r = await receipts(alicePhone, 3);
    assert.deepEqual(
      r.map((x) => [x.byDevice, x.clientMsgId]),
      [
        ['tablet', 1],
        ['tablet', 2],
        ['tablet', 3],
      ],
    );
    await alicePhone.expectNothing(300, (f) => f.type === 'RECEIPT');
  });

  it('sends none for the own copies, group messages and messages to oneself', async () => {
    const alice = await open('rc2-alice');
    const aliceLaptop = await open('rc2-alice', 'laptop');
    const bob = await open('rc2-bob');
    alice.send({ type: 'JOIN', ref: 1, group: '#rc2' });
    bob.send({ type: 'JOIN', ref: 2, group: '#rc2' });
    await alice.waitFor('DONE');
    await bob.waitFor('DONE');
    alice.sendText(10, '#rc2', 'to the group');
    alice.sendText(11, 'rc2-alice', 'note to self');
    alice.sendText(12, 'rc2-bob', 'direct');
    for (const id of [10, 11, 12]) await alice.waitAccepted(id);
    // The laptop holds alice's inbox: the group copy, the note, and the own copy of the direct message.
    const own = (await aliceLaptop.collect('DELIVER', 3)) as DeliverFrame[];
    aliceLaptop.send({ type: 'ACK', seq: own[2]!.seq });
    const bobs = (await bob.collect('DELIVER', 2)) as DeliverFrame[];
    bob.send({ type: 'ACK', seq: bobs[1]!.seq });
    const [r] = await receipts(alice, 1);
    assert.deepEqual([r!.by, r!.clientMsgId], ['rc2-bob', 12]);
    await alice.expectNothing(300, (f) => f.type === 'RECEIPT');
  });

  it('carries typing to the peer and to the sender other devices, with seq 0 and nothing stored', async () => {
    const alice = await open('ty1-alice');
    const aliceLaptop = await open('ty1-alice', 'laptop');
    const bob = await open('ty1-bob');
    alice.sendText(50, 'ty1-bob', 'typing', 1);
    for (const c of [bob, aliceLaptop]) {
      const d = (await c.waitFor('DELIVER')) as DeliverFrame;
      assert.deepEqual([d.seq, d.from, d.to, text(d.payload)], [0, 'ty1-alice', 'ty1-bob', 'typing']);
    }
    await alice.expectNothing(300, (f) => f.type !== 'PONG');
    await bob.close();
    const { welcome } = await session(portOf(server), 'ty1-bob', 'phone');
    assert.equal(welcome.lastSeq, 0);
  });
});
