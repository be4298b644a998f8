/**
 * Handshake (PROTOCOL.md sections 2.2, 4.1, 4.2): HELLO → WELCOME, the first-frame rules, the
 * 4 096-byte HELLO limit, the handshake deadline (also against a trickled HELLO), token checks, and
 * frames pipelined behind HELLO being handled after WELCOME, in order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { encodeFrame } from '../../src/protocol/index.js';
import { startServer } from '../helpers/server-process.js';
import { closeAll, connect, portOf, session, sleep, text, type WireClient } from './harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

const HANDSHAKE_MS = 1000;
const SECRET = 'wire-test-secret-0123456789';

function token(sub: string, opts: { secret?: string; expiresInS?: number } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt(now - 120)
    .setExpirationTime(now + (opts.expiresInS ?? 600))
    .sign(new TextEncoder().encode(opts.secret ?? SECRET));
}

/** A HELLO's frame length for these fields (section 3): type · version · 3 str · u64. */
function helloLength(user: string, device: string, tokenLength: number): number {
  return 1 + 1 + 2 + user.length + 2 + device.length + 2 + tokenLength + 8;
}

describe('handshake (open mode)', () => {
  let server: Server;
  const clients: WireClient[] = [];
  const open = async (label: string): Promise<WireClient> => {
    const c = await connect(portOf(server), label);
    clients.push(c);
    return c;
  };

  before(async () => {
    server = await startServer({
      args: [
        '--handshake-timeout',
        '1s',
        '--heartbeat',
        '7s',
        '--window',
        '50',
        '--max-payload',
        '2KiB',
        '--node-name',
        'wire1',
      ],
    });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('HELLO → WELCOME with version, node, lastSeq, ackedSeq, heartbeatMs, maxPayload, window', async () => {
    const c = await open('hs-welcome');
    const welcome = await c.hello('hs-w-alice', 'phone');
    const { node, ...rest } = welcome;
    assert.deepEqual(rest, {
      type: 'WELCOME',
      version: 1,
      lastSeq: 0,
      ackedSeq: 0,
      heartbeatMs: 7000,
      maxPayload: 2048,
      window: 50,
    });
    // The process holding the session, named after --node-name (`wire1`, or `wire1.w2` with workers).
    assert.match(node, /^wire1(\.|$)/, `node ${JSON.stringify(node)} does not name this server`);
    // lastSeq reflects what is stored; ackedSeq is per device.
    c.sendText(1, 'hs-w-bob', 'one');
    await c.waitAccepted(1);
    c.sendText(2, 'hs-w-bob', 'two');
    await c.waitAccepted(2);
    const b = await open('hs-welcome-bob');
    const bw = await b.hello('hs-w-bob', 'tab');
    assert.equal(bw.lastSeq, 2);
    assert.equal(bw.ackedSeq, 0);
  });

  for (const [name, bytes] of [
    ['PING', { type: 'PING', nonce: 1 }],
    ['SEND', { type: 'SEND', clientMsgId: 1, flags: 0, to: 'bob', payload: new Uint8Array([1]) }],
    ['ACK', { type: 'ACK', seq: 0 }],
    ['BYE', { type: 'BYE', code: 0, reason: 'bye' }],
  ] as const) {
    it(`a first frame ${name} (not HELLO) → ERROR PROTOCOL_VIOLATION, then close`, async () => {
      const c = await open(`hs-first-${name}`);
      c.send(bytes);
      await c.expectError('PROTOCOL_VIOLATION', { ref: 0 });
      await c.expectClosed();
    });
  }

  it('a second HELLO → ERROR PROTOCOL_VIOLATION, then close', async () => {
    const c = await open('hs-second');
    await c.hello('hs-second', 'phone');
    c.sendHello('hs-second', 'phone');
    await c.expectError('PROTOCOL_VIOLATION', { ref: 0 });
    await c.expectClosed();
  });

  it('HELLO version 2 → ERROR UNSUPPORTED_VERSION, then close', async () => {
    const c = await open('hs-v2');
    c.sendHello('hs-v2', 'phone', { version: 2 });
    await c.expectError('UNSUPPORTED_VERSION', { ref: 0 });
    await c.expectClosed();
  });

  it('HELLO version 2 is rejected from its version byte, the rest of the body unread', async () => {
    const c = await open('hs-v2-garbage');
    // length 26, HELLO, version 2, then bytes that are no valid HELLO body.
    c.sendRaw(Buffer.from('0000001a010261206c61796f75742066726f6d2074686520667574757265', 'hex'));
    await c.expectError('UNSUPPORTED_VERSION', { ref: 0 });
    await c.expectClosed();
  });

  it('a HELLO frame of exactly 4 096 bytes is accepted', async () => {
    const c = await open('hs-4096');
    const tokenLength = 4096 - helloLength('hs-big', 'd1', 0);
    assert.equal(helloLength('hs-big', 'd1', tokenLength), 4096);
    const w = await c.hello('hs-big', 'd1', { token: 'x'.repeat(tokenLength) });
    assert.equal(w.version, 1);
  });

  it('a HELLO frame over 4 096 bytes → ERROR FRAME_TOO_LARGE, then close', async () => {
    const c = await open('hs-4097');
    const tokenLength = 4097 - helloLength('hs-big2', 'd1', 0);
    c.sendHello('hs-big2', 'd1', { token: 'x'.repeat(tokenLength) });
    await c.expectError('FRAME_TOO_LARGE', { ref: 0 });
    await c.expectClosed();
  });

  it('a first frame declaring 4 097 bytes is rejected from its 4 header bytes alone', async () => {
    const c = await open('hs-header-only');
    c.sendRaw(new Uint8Array([0, 0, 0x10, 0x01]));
    await c.expectError('FRAME_TOO_LARGE', { ref: 0 });
    await c.expectClosed();
  });

  it('a silent client gets ERROR HANDSHAKE_TIMEOUT at the deadline, then close', async () => {
    const c = await open('hs-silent');
    const err = await c.expectError('HANDSHAKE_TIMEOUT', { ref: 0, timeoutMs: HANDSHAKE_MS + 3000 });
    assert.ok(err);
    const elapsed = c.arrivals[0]! - c.connectedAt;
    assert.ok(
      elapsed >= HANDSHAKE_MS - 200,
      `closed after ${elapsed} ms, before the ${HANDSHAKE_MS} ms deadline`,
    );
    assert.ok(elapsed <= HANDSHAKE_MS + 2000, `closed after ${elapsed} ms, long after the deadline`);
    await c.expectClosed();
  });

  it('a HELLO trickled one byte every 100 ms is still cut at the deadline', async () => {
    const c = await open('hs-trickle');
    // Over WebSocket: the bytes of the one message that carries the HELLO, trickled on the TCP connection.
    const hello = c.onTheWire(
      encodeFrame({
        type: 'HELLO',
        version: 1,
        user: 'hs-trickle',
        device: 'phone',
        token: '',
        resumeAfter: 0,
      }),
    );
    // 31 bytes (37 over WebSocket) at 100 ms each: the last would come after ~3 s, well past the 1 s deadline.
    assert.ok(hello.length * 100 > HANDSHAKE_MS + 1500);
    let sent = 0;
    const trickle = (async () => {
      while (sent < hello.length && !c.ended) {
        c.writeSocket(hello.subarray(sent, sent + 1));
        sent++;
        await sleep(100);
      }
    })();
    const err = await c.expectError('HANDSHAKE_TIMEOUT', { ref: 0, timeoutMs: HANDSHAKE_MS + 3000 });
    assert.ok(err);
    const elapsed = c.arrivals[0]! - c.connectedAt;
    assert.ok(elapsed >= HANDSHAKE_MS - 200, `cut after ${elapsed} ms`);
    assert.ok(elapsed <= HANDSHAKE_MS + 1500, `cut after ${elapsed} ms: the trickle held the connection`);
    assert.ok(sent < hello.length, 'the whole HELLO went out before the cut');
    await c.expectClosed();
    await trickle;
  });

  it('frames sent right after HELLO (before WELCOME) are handled after WELCOME, in order', async () => {
    const c = await open('hs-pipe');
    const r = await open('hs-pipe-reader');
    await r.hello('hs-pipe-bob', 'phone');
    c.sendHello('hs-pipe-alice', 'phone');
    c.send({ type: 'PING', nonce: 11 });
    c.sendText(1, 'hs-pipe-bob', 'first');
    c.send({ type: 'PING', nonce: 12 });
    c.sendText(2, 'hs-pipe-bob', 'second');
    c.send({ type: 'PING', nonce: 13 });
    await c.expect('WELCOME');
    // PONGs in order; ACCEPTED and the own DELIVERs in between as they come.
    for (const nonce of [11, 12, 13]) {
      const pong = await c.waitFor('PONG');
      assert.equal(pong.nonce, nonce);
    }
    const a1 = await c.waitAccepted(1);
    const a2 = await c.waitAccepted(2);
    assert.equal(a1.flags, 0);
    assert.equal(a2.flags, 0);
    const d1 = await r.expectDeliver();
    const d2 = await r.expectDeliver();
    assert.deepEqual(
      [d1.seq, d1.clientMsgId, text(d1.payload), d2.seq, d2.clientMsgId, text(d2.payload)],
      [1, 1, 'first', 2, 2, 'second'],
    );
  });

  it('a second HELLO pipelined behind the first is handled after WELCOME → PROTOCOL_VIOLATION', async () => {
    const c = await open('hs-pipe-hello');
    c.sendHello('hs-pipe-hello', 'phone');
    c.send({ type: 'PING', nonce: 1 });
    c.sendHello('hs-pipe-hello', 'phone');
    c.send({ type: 'PING', nonce: 2 });
    await c.expect('WELCOME');
    assert.equal((await c.expect('PONG')).nonce, 1);
    await c.expectError('PROTOCOL_VIOLATION', { ref: 0 });
    await c.expectClosed();
  });

  it('an ACK above anything delivered, pipelined behind HELLO, is handled after WELCOME → PROTOCOL_VIOLATION', async () => {
    const c = await open('hs-pipe-ack');
    c.sendHello('hs-pipe-ack', 'phone');
    c.send({ type: 'PING', nonce: 1 });
    c.send({ type: 'ACK', seq: 999 });
    await c.expect('WELCOME');
    assert.equal((await c.expect('PONG')).nonce, 1);
    await c.expectError('PROTOCOL_VIOLATION', { ref: 0 });
    await c.expectClosed();
  });

  it('HELLO and a frame in one write, after a 1-byte write of the HELLO header', async () => {
    // Over WebSocket: one message holding both frames, its bytes split the same way over two TCP writes.
    const c = await open('hs-split');
    const hello = encodeFrame({
      type: 'HELLO',
      version: 1,
      user: 'hs-split',
      device: 'd',
      token: '',
      resumeAfter: 0,
    });
    const ping = encodeFrame({ type: 'PING', nonce: 99 });
    const wire = c.onTheWire(Buffer.concat([hello, ping]));
    c.writeSocket(wire.subarray(0, 1));
    await sleep(50);
    c.writeSocket(wire.subarray(1));
    await c.expect('WELCOME');
    const pong = await c.expect('PONG');
    assert.equal(pong.nonce, 99);
  });
});

describe('handshake with --auth-secret', () => {
  let server: Server;
  const clients: WireClient[] = [];
  const open = async (label: string): Promise<WireClient> => {
    const c = await connect(portOf(server), label);
    clients.push(c);
    return c;
  };

  before(async () => {
    server = await startServer({ args: ['--handshake-timeout', '2s', '--auth-secret', SECRET] });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('a good token (HS256, sub = user, not expired) → WELCOME', async () => {
    const c = await open('auth-good');
    const w = await c.hello('auth-alice', 'phone', { token: await token('auth-alice') });
    assert.equal(w.lastSeq, 0);
    await c.ping(5);
  });

  const bad: Array<[string, () => Promise<string>]> = [
    ['signed with another secret', () => token('auth-alice', { secret: 'not-the-secret-0123456789' })],
    ['expired', () => token('auth-alice', { expiresInS: -60 })],
    ["another user's", () => token('auth-mallory')],
    ['missing (empty)', async () => ''],
    ['not a JWT', async () => 'not-a-token'],
  ];
  for (const [what, make] of bad) {
    it(`a token ${what} → ERROR UNAUTHORIZED, then close`, async () => {
      const c = await open(`auth-bad-${what}`);
      c.sendHello('auth-alice', 'phone', { token: await make() });
      await c.expectError('UNAUTHORIZED', { ref: 0 });
      await c.expectClosed();
    });
  }

  it('frames pipelined behind a HELLO whose token is refused are not handled', async () => {
    const c = await open('auth-bad-pipe');
    c.sendHello('auth-alice', 'phone', { token: 'nope' });
    c.send({ type: 'PING', nonce: 1 });
    c.sendText(1, 'auth-bob', 'must not be stored');
    await c.expectError('UNAUTHORIZED', { ref: 0 });
    await c.expectClosed();
    const b = await open('auth-bob');
    const w = await b.hello('auth-bob', 'phone', { token: await token('auth-bob') });
    assert.equal(w.lastSeq, 0, 'a SEND behind a refused HELLO was stored');
  });

  it('frames pipelined behind a good HELLO are handled after WELCOME, in order', async () => {
    const c = await open('auth-pipe');
    c.sendHello('auth-carol', 'phone', { token: await token('auth-carol') });
    for (let n = 1; n <= 5; n++) c.send({ type: 'PING', nonce: n });
    await c.expect('WELCOME');
    for (let n = 1; n <= 5; n++) assert.equal((await c.expect('PONG')).nonce, n);
  });

  it('a session opened with a token works as usual', async () => {
    const { client: a } = await session(portOf(server), 'auth-dave', 'phone', {
      token: await token('auth-dave'),
    });
    const { client: b } = await session(portOf(server), 'auth-erin', 'phone', {
      token: await token('auth-erin'),
    });
    clients.push(a, b);
    a.sendText(3, 'auth-erin', 'hello erin');
    await a.waitAccepted(3);
    const d = await b.expectDeliver();
    assert.equal(text(d.payload), 'hello erin');
  });
});
