/**
 * Limits and keep-alive (PROTOCOL.md sections 2.2, 4.5, 4.6, 5 "Payload size", 7): PAYLOAD_TOO_LARGE
 * keeps the session, FRAME_TOO_LARGE closes it, SERVER_FULL, IDLE_TIMEOUT, PING/PONG, BYE, and a SEND
 * to a group that does not exist → INVALID_ADDRESS.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type AcceptedFrame, type DeliverFrame, encodeFrame, errorName } from '../../src/protocol/index.js';
import { startServer } from '../helpers/server-process.js';
import {
  bytes,
  closeAll,
  connect,
  portOf,
  session,
  sleep,
  TRANSPORT,
  text,
  type WireClient,
} from './harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

const MAX_PAYLOAD = 1024;
/** maxFrame = maxPayload + 1 KiB (section 2.2). */
const MAX_FRAME = MAX_PAYLOAD + 1024;

describe('limits (--max-payload 1KiB)', () => {
  let server: Server;
  const clients: WireClient[] = [];
  const open = async (user: string, device: string) => {
    const s = await session(portOf(server), user, device);
    clients.push(s.client);
    return s;
  };

  before(async () => {
    server = await startServer({ args: ['--handshake-timeout', '2s', '--max-payload', '1KiB'] });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('WELCOME announces maxPayload', async () => {
    const { welcome } = await open('l0-amy', 'phone');
    assert.equal(welcome.maxPayload, MAX_PAYLOAD);
  });

  it('a payload of exactly maxPayload is ACCEPTED', async () => {
    const { client: a } = await open('l1-amy', 'phone');
    const { client: b } = await open('l1-ben', 'phone');
    a.send({
      type: 'SEND',
      clientMsgId: 1,
      flags: 0,
      to: 'l1-ben',
      payload: new Uint8Array(MAX_PAYLOAD).fill(65),
    });
    assert.equal((await a.waitAccepted(1)).flags, 0);
    assert.equal((await b.expectDeliver()).payload.length, MAX_PAYLOAD);
  });

  it('a payload over maxPayload → ERROR PAYLOAD_TOO_LARGE with ref = clientMsgId; the session stays open', async () => {
    const { client: a } = await open('l2-amy', 'phone');
    const { client: b } = await open('l2-ben', 'phone');
    a.send({
      type: 'SEND',
      clientMsgId: 4242,
      flags: 0,
      to: 'l2-ben',
      payload: new Uint8Array(MAX_PAYLOAD + 1),
    });
    await a.expectError('PAYLOAD_TOO_LARGE', { ref: 4242 });
    await a.ping(77);
    // Also for an ephemeral SEND, and for a frame of exactly maxFrame.
    a.send({
      type: 'SEND',
      clientMsgId: 4243,
      flags: 1,
      to: 'l2-ben',
      payload: new Uint8Array(MAX_PAYLOAD + 5),
    });
    await a.expectError('PAYLOAD_TOO_LARGE', { ref: 4243 });
    const overhead = 1 + 8 + 1 + 2 + 'l2-ben'.length + 4;
    a.send({
      type: 'SEND',
      clientMsgId: 4244,
      flags: 0,
      to: 'l2-ben',
      payload: new Uint8Array(MAX_FRAME - overhead),
    });
    await a.expectError('PAYLOAD_TOO_LARGE', { ref: 4244 });
    await a.ping(78);
    await b.expectNothing(200);
    // Nothing stored: the next message is seq 1.
    a.sendText(4245, 'l2-ben', 'ok');
    await a.waitAccepted(4245);
    assert.equal((await b.expectDeliver()).seq, 1);
  });

  it('a frame over maxFrame → ERROR FRAME_TOO_LARGE, then close (from the header alone)', async () => {
    const { client: a } = await open('l3-amy', 'phone');
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MAX_FRAME + 1);
    a.sendRaw(header);
    await a.expectError('FRAME_TOO_LARGE', { ref: 0 });
    await a.expectClosed();
  });

  it('a whole SEND frame over maxFrame → ERROR FRAME_TOO_LARGE, then close', async () => {
    const { client: a } = await open('l4-amy', 'phone');
    a.send({ type: 'SEND', clientMsgId: 9, flags: 0, to: 'l4-ben', payload: new Uint8Array(MAX_FRAME) });
    await a.expectError('FRAME_TOO_LARGE', { ref: 0 });
    await a.expectClosed();
  });

  // Over WebSocket the same is a client that never answers the close frame: 10-websocket.test.ts.
  it('a peer that keeps its side open after a fatal ERROR is cut off 1 s later', {
    skip: TRANSPORT === 'ws' && 'TCP only (the WebSocket counterpart is in 10-websocket)',
  }, async () => {
    const c = await connect(portOf(server), 'l-halfopen', { halfOpen: true });
    clients.push(c);
    c.send({ type: 'PING', nonce: 1 });
    await c.expectError('PROTOCOL_VIOLATION', { ref: 0 });
    await c.expectClosed();
    assert.equal(c.closed, false, 'our side should still be open');
    // Past the 1 s close grace (plus a margin) the server has destroyed its socket: what we write now
    // is answered with a reset instead of being read and ignored.
    await sleep(2500);
    for (let i = 0; i < 20 && !c.closed; i++) {
      c.sendRaw(new Uint8Array([0]));
      await sleep(50);
    }
    assert.ok(
      c.closed && c.socketError !== null,
      `the server still holds the connection ${Date.now() - c.endedAt} ms after its FIN`,
    );
  });

  it('PING → PONG with the same nonce', async () => {
    const { client: a } = await open('l5-amy', 'phone');
    for (const nonce of [0, 1, 0xffff_ffff, 2 ** 53 - 1]) await a.ping(nonce);
  });

  it('BYE → the server closes the connection without an ERROR', async () => {
    const { client: a } = await open('l6-amy', 'phone');
    a.send({ type: 'BYE', code: 0, reason: 'bye' });
    await a.expectClosed();
    assert.equal(a.frames.filter((f) => f.type === 'ERROR').length, 0);
  });

  it('a SEND to a group that does not exist → ERROR INVALID_ADDRESS with ref; the session stays open', async () => {
    const { client: a } = await open('l7-amy', 'phone');
    a.sendText(31, '#team', 'hello team');
    await a.expectError('INVALID_ADDRESS', { ref: 31 });
    a.send({ type: 'SEND', clientMsgId: 32, flags: 1, to: '#team', payload: new Uint8Array([1]) });
    await a.expectError('INVALID_ADDRESS', { ref: 32 });
    await a.ping(5);
    a.sendText(33, 'l7-amy', 'still here');
    const acc = await a.waitAccepted(33);
    assert.equal(acc.flags, 0);
    const d = await a.waitFor('DELIVER');
    assert.equal(text(d.payload), 'still here');
  });
});

describe('keep-alive (--heartbeat 1s)', () => {
  let server: Server;
  const clients: WireClient[] = [];
  const HEARTBEAT = 1000;

  before(async () => {
    server = await startServer({ args: ['--handshake-timeout', '2s', '--heartbeat', '1s'] });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('an idle connection is closed with IDLE_TIMEOUT after about 2 × heartbeat; one that PINGs stays', async () => {
    const idle = await session(portOf(server), 'k1-idle', 'phone');
    const busy = await session(portOf(server), 'k1-busy', 'phone');
    clients.push(idle.client, busy.client);
    assert.equal(idle.welcome.heartbeatMs, HEARTBEAT);
    const welcomedAt = idle.client.arrivals[0]!;
    let pinging = true;
    let nonce = 0;
    const pinger = (async () => {
      while (pinging) {
        await busy.client.ping(++nonce);
        await sleep(HEARTBEAT / 2);
      }
    })();
    try {
      await idle.client.expectError('IDLE_TIMEOUT', { ref: 0, timeoutMs: 2 * HEARTBEAT + 3000 });
      const elapsed = idle.client.arrivals.at(-1)! - welcomedAt;
      assert.ok(elapsed >= 2 * HEARTBEAT - 250, `closed after ${elapsed} ms, before 2 × heartbeat`);
      assert.ok(elapsed <= 2 * HEARTBEAT + 2000, `closed after ${elapsed} ms, long after 2 × heartbeat`);
      await idle.client.expectClosed();
      // Keep going past another 2 × heartbeat for the busy one.
      await sleep(HEARTBEAT);
    } finally {
      pinging = false;
      await pinger;
    }
    assert.equal(busy.client.ended, false, 'a client that PINGs was closed');
    await busy.client.ping(1234);
  });

  it('bytes of an unfinished frame do not count: a trickled PING cannot hold the connection', async () => {
    const { client: c } = await session(portOf(server), 'k2-trickle', 'phone');
    clients.push(c);
    const welcomedAt = c.arrivals[0]!;
    // 13 bytes (19 over WebSocket, the message that carries it) at 250 ms each: complete only after
    // ~3.2 s, past the 2 s idle deadline.
    const ping = c.onTheWire(encodeFrame({ type: 'PING', nonce: 1 }));
    let sent = 0;
    const trickle = (async () => {
      while (sent < ping.length && !c.ended) {
        c.writeSocket(ping.subarray(sent, sent + 1));
        sent++;
        await sleep(250);
      }
    })();
    await c.expectError('IDLE_TIMEOUT', { ref: 0, timeoutMs: 2 * HEARTBEAT + 3000 });
    const elapsed = c.arrivals.at(-1)! - welcomedAt;
    assert.ok(elapsed <= 2 * HEARTBEAT + 1500, `closed after ${elapsed} ms: the trickle held the connection`);
    assert.ok(sent < ping.length);
    await c.expectClosed();
    await trickle;
  });
});

describe('connection cap (--max-connections 3)', () => {
  let server: Server;
  const clients: WireClient[] = [];

  // An exact count needs every connection to be this test's: an address of its own keeps out a client of
  // another test file that retries a port this server was later given.
  const host = '127.0.0.77';

  before(async () => {
    // An exact count needs one process: with several workers each refuses beyond its share of the cap.
    server = await startServer({
      args: ['--handshake-timeout', '2s', '--max-connections', '3'],
      workers: 1,
      host,
    });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('the 4th connection gets ERROR SERVER_FULL (ref = a reconnect delay) and is closed; a freed slot is usable', async () => {
    const held: WireClient[] = [];
    for (let i = 0; i < 3; i++) {
      const { client } = await session(portOf(server), `cap-u${i}`, 'phone', { host });
      held.push(client);
      clients.push(client);
    }
    const extra = await connect(portOf(server), 'cap-extra', { host });
    clients.push(extra);
    const err = await extra.expectError('SERVER_FULL');
    assert.ok(err.ref >= 0 && err.ref <= 10_000, `reconnect delay ${err.ref} ms is outside 0–10 s`);
    await extra.expectClosed();
    // The held sessions are unaffected.
    for (const c of held) await c.ping(1);
    // Free a slot; a new client gets in (the server may take a moment to see the close).
    await held[0]!.close();
    const deadline = Date.now() + 3000;
    for (;;) {
      const c = await connect(portOf(server), 'cap-retry', { host });
      clients.push(c);
      c.sendHello('cap-u9', 'phone');
      const first = await c.expect(() => true);
      if (first.type === 'WELCOME') break;
      assert.equal(first.type, 'ERROR');
      assert.ok(Date.now() < deadline, 'no slot freed 3 s after a client left');
      await sleep(100);
    }
  });
});

describe('inbox cap (--inbox-max-messages 5)', () => {
  let server: Server;
  const clients: WireClient[] = [];
  const open = async (user: string, device: string) => {
    const s = await session(portOf(server), user, device);
    clients.push(s.client);
    return s;
  };

  before(async () => {
    server = await startServer({ args: ['--handshake-timeout', '2s', '--inbox-max-messages', '5'] });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('a SEND past the cap → ERROR INBOX_FULL with ref; the session stays open', async () => {
    const { client: a } = await open('cap1-amy', 'phone');
    for (let id = 1; id <= 5; id++) a.sendText(id, 'cap1-ben', `m${id}`);
    for (let id = 1; id <= 5; id++) assert.equal((await a.waitAccepted(id)).flags, 0);
    a.sendText(6, 'cap1-ben', 'one too many');
    const err = await a.waitFor('ERROR');
    assert.deepEqual([errorName(err.code), err.ref], ['INBOX_FULL', 6]);
    a.send({ type: 'PING', nonce: 8 });
    assert.equal((await a.waitFor('PONG')).nonce, 8);
    const { welcome } = await open('cap1-ben', 'phone');
    assert.equal(welcome.lastSeq, 5, 'the refused SEND was stored');
  });

  it('SENDs arriving together, one to a full inbox: that one gets INBOX_FULL, the others ACCEPTED', async () => {
    const { client: f } = await open('cap3-fay', 'phone');
    for (let id = 1; id <= 5; id++) f.sendText(id, 'cap3-full', `fill ${id}`);
    for (let id = 1; id <= 5; id++) await f.waitAccepted(id);
    // One write, so the server reads them together and appends their recipient copies in one call.
    const { client: a } = await open('cap3-amy', 'phone');
    const frames = [
      encodeFrame({ type: 'SEND', flags: 0, clientMsgId: 1, to: 'cap3-ben', payload: bytes('first') }),
      encodeFrame({ type: 'SEND', flags: 0, clientMsgId: 2, to: 'cap3-full', payload: bytes('refused') }),
      encodeFrame({ type: 'SEND', flags: 0, clientMsgId: 3, to: 'cap3-ben', payload: bytes('third') }),
    ];
    a.sendRaw(Buffer.concat(frames));
    const answers = await a.collect((fr) => fr.type === 'ACCEPTED' || fr.type === 'ERROR', 3);
    assert.deepEqual(
      answers.map((fr) =>
        fr.type === 'ERROR'
          ? `${errorName(fr.code)} ${fr.ref}`
          : `ACCEPTED ${(fr as AcceptedFrame).clientMsgId}`,
      ),
      ['ACCEPTED 1', 'INBOX_FULL 2', 'ACCEPTED 3'],
      'answers in SEND order, each its own',
    );
    const { client: b } = await open('cap3-ben', 'phone');
    const got = (await b.collect('DELIVER', 2)) as DeliverFrame[];
    assert.deepEqual(
      got.map((m) => [m.seq, m.clientMsgId]),
      [
        [1, 1],
        [2, 3],
      ],
    );
    const own = (await a.collect('DELIVER', 2)) as DeliverFrame[];
    assert.deepEqual(
      own.map((m) => m.clientMsgId),
      [1, 3],
      'own copies of the accepted two only, in SEND order',
    );
  });

  it("a full own inbox skips the sender's own copy and never fails the SEND", async () => {
    const { client: c } = await open('cap2-cat', 'phone');
    for (let id = 1; id <= 5; id++) c.sendText(id, 'cap2-amy', `fill ${id}`);
    for (let id = 1; id <= 5; id++) await c.waitAccepted(id);
    const { client: a } = await open('cap2-amy', 'phone');
    a.sendText(100, 'cap2-dan', 'amy is full but dan is not');
    const acc = await a.waitAccepted(100);
    assert.equal(acc.flags, 0);
    const { client: d } = await open('cap2-dan', 'phone');
    const got = await d.expectDeliver();
    assert.deepEqual([got.seq, got.clientMsgId], [1, 100]);
  });
});

describe('rate limit (--rate-limit 5)', () => {
  let server: Server;
  const clients: WireClient[] = [];

  before(async () => {
    server = await startServer({ args: ['--handshake-timeout', '2s', '--rate-limit', '5'] });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('SENDs over the rate → ERROR RATE_LIMITED with their ref; every SEND gets one answer; the session stays open', async () => {
    const { client: a } = await session(portOf(server), 'rl-amy', 'phone');
    clients.push(a);
    const N = 30;
    for (let id = 1; id <= N; id++) a.sendText(id, 'rl-ben', `m${id}`);
    const answers = new Map<number, string>();
    while (answers.size < N) {
      const f = await a.waitFor((x) => x.type === 'ACCEPTED' || x.type === 'ERROR', 5000);
      const ref = f.type === 'ACCEPTED' ? f.clientMsgId : f.type === 'ERROR' ? f.ref : -1;
      const what = f.type === 'ACCEPTED' ? 'ACCEPTED' : f.type === 'ERROR' ? errorName(f.code) : '?';
      assert.ok(!answers.has(ref), `two answers for clientMsgId ${ref}`);
      answers.set(ref, what);
    }
    const values = [...answers.values()];
    assert.ok(
      values.every((v) => v === 'ACCEPTED' || v === 'RATE_LIMITED'),
      `unexpected answers: ${values.join(',')}`,
    );
    assert.ok(values.includes('RATE_LIMITED'), '30 SENDs at once were not rate limited');
    assert.ok(values.includes('ACCEPTED'), 'no SEND was accepted');
    a.send({ type: 'PING', nonce: 9 });
    assert.equal((await a.waitFor('PONG')).nonce, 9);
  });
});
