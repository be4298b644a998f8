/**
 * Malformed input (PROTOCOL.md sections 2.3 and 7, test/fixtures/vectors.json): every invalid vector,
 * sent after a good HELLO (or as the first frame, for those about HELLO itself), gets ERROR with the
 * vector's code and the connection is closed, while a connected pair keeps chatting undisturbed.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type DeliverFrame, type ErrorName, encodeFrame } from '../../src/protocol/index.js';
import { startServer } from '../helpers/server-process.js';
import { closeAll, connect, fromHex, portOf, session, sleep, text, type WireClient } from './harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

interface InvalidVector {
  name: string;
  error: ErrorName;
  hex: string;
  note?: string;
}

// Compiled to dist/test/wire/: the fixture stays in the source tree.
const vectors = JSON.parse(
  readFileSync(new URL('../../../test/fixtures/vectors.json', import.meta.url), 'utf8'),
) as {
  invalid: InvalidVector[];
};

/** A vector about HELLO itself: its first frame's type byte is HELLO (0x01). */
const isHelloVector = (v: InvalidVector): boolean => v.hex.length >= 10 && v.hex.slice(8, 10) === '01';

describe('malformed input (test vectors)', () => {
  let server: Server;
  const clients: WireClient[] = [];
  let pair: { a: WireClient; b: WireClient } | null = null;
  let chatting = true;
  let sent = 0;
  let chatter: Promise<void> | null = null;
  /** One more message of the pair, from a to b. */
  const chat = (): void => {
    if (!pair || sent >= 2000) return;
    sent++;
    pair.a.sendText(sent, 'err-pair-b', `chat ${sent}`);
  };

  before(async () => {
    // Default limits: the vectors assume maxPayload 65 536 and maxFrame 66 560.
    server = await startServer({ args: ['--handshake-timeout', '2s'] });
    const a = (await session(portOf(server), 'err-pair-a', 'phone')).client;
    const b = (await session(portOf(server), 'err-pair-b', 'phone')).client;
    clients.push(a, b);
    pair = { a, b };
    // The pair chats for as long as the malformed clients run: in the background, and once while each
    // malformed connection is open and once after it is closed.
    chatter = (async () => {
      while (chatting) {
        chat();
        await sleep(5);
      }
    })();
  });
  after(async () => {
    chatting = false;
    await chatter;
    await closeAll(clients);
    await server?.stop();
  });

  it('the fixture has invalid vectors', () => {
    assert.ok(vectors.invalid.length >= 10);
  });

  for (const v of vectors.invalid) {
    if (isHelloVector(v)) {
      it(`${v.name} as the first frame → ERROR ${v.error}, then close`, async () => {
        const c = await connect(portOf(server), v.name);
        clients.push(c);
        c.sendRaw(fromHex(v.hex));
        chat();
        await c.expectError(v.error, { ref: 0 });
        await c.expectClosed();
        chat();
      });
      continue;
    }
    it(`${v.name} after a good HELLO → ERROR ${v.error}, then close`, async () => {
      const { client: c } = await session(portOf(server), `err-${clients.length}`, 'phone');
      clients.push(c);
      c.sendRaw(fromHex(v.hex));
      chat();
      await c.expectError(v.error, { ref: 0 });
      await c.expectClosed();
      chat();
    });
    // Checks 1–5 come before the session check (6): the same code as a first frame.
    it(`${v.name} as the first frame → ERROR ${v.error}, then close`, async () => {
      const c = await connect(portOf(server), `${v.name}-first`);
      clients.push(c);
      c.sendRaw(fromHex(v.hex));
      chat();
      await c.expectError(v.error, { ref: 0 });
      await c.expectClosed();
      chat();
    });
  }

  it('a HELLO over 4 096 bytes with version 2 → FRAME_TOO_LARGE (check 2 before check 4)', async () => {
    const c = await connect(portOf(server), 'order-2-4');
    clients.push(c);
    c.send({ type: 'HELLO', version: 2, user: 'x', device: 'y', token: 'z'.repeat(5000), resumeAfter: 0 });
    await c.expectError('FRAME_TOO_LARGE', { ref: 0 });
    await c.expectClosed();
  });

  it('an extension type (0x80) → PROTOCOL_VIOLATION', async () => {
    const { client: c } = await session(portOf(server), 'err-ext', 'phone');
    clients.push(c);
    c.sendRaw(fromHex('00000009800000000000000001'));
    await c.expectError('PROTOCOL_VIOLATION', { ref: 0 });
    await c.expectClosed();
  });

  // Over WebSocket: the message that carries the frame, split into 1-byte writes on the TCP connection.
  it('a frame split into 1-byte writes decodes as a whole', async () => {
    const { client: c } = await session(portOf(server), 'err-split', 'phone');
    clients.push(c);
    const frame = encodeFrame({
      type: 'SEND',
      clientMsgId: 5,
      flags: 0,
      to: 'err-split',
      payload: new Uint8Array(40),
    });
    const wire = c.onTheWire(frame);
    for (let i = 0; i < wire.length; i++) {
      c.writeSocket(wire.subarray(i, i + 1));
      if (i % 8 === 0) await sleep(2);
    }
    assert.equal((await c.waitAccepted(5)).flags, 0);
  });

  it('frames after a fatal ERROR are not handled', async () => {
    const { client: c } = await session(portOf(server), 'err-after', 'phone');
    clients.push(c);
    // A malformed PING, then a SEND that must not be stored.
    c.sendRaw(fromHex('000000050700000000'));
    c.sendText(1, 'err-after-r', 'must not be stored');
    await c.expectError('MALFORMED', { ref: 0 });
    await c.expectClosed();
    const { welcome } = await session(portOf(server), 'err-after-r', 'phone');
    assert.equal(welcome.lastSeq, 0);
  });

  it('the pair kept chatting undisturbed throughout', async () => {
    chatting = false;
    await chatter;
    const { a, b } = pair!;
    assert.ok(sent >= 2 * vectors.invalid.length, `only ${sent} messages were exchanged`);
    for (let id = 1; id <= sent; id++) {
      const acc = await a.waitAccepted(id, 5000);
      assert.equal(acc.flags, 0);
    }
    const got: DeliverFrame[] = [];
    while (got.length < sent) {
      const d = await b.expectDeliver(5000);
      got.push(d);
      if (got.length % 100 === 0) b.send({ type: 'ACK', seq: d.seq });
    }
    assert.deepEqual(
      got.map((d) => [d.seq, d.clientMsgId, text(d.payload)]),
      Array.from({ length: sent }, (_, i) => [i + 1, i + 1, `chat ${i + 1}`]),
    );
    assert.equal(a.ended || b.ended, false);
  });
});
