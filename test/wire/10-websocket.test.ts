/**
 * The WebSocket transport's own contract (PROTOCOL.md section 1), whatever SWITCHBOARD_TEST_TRANSPORT
 * says: /sbp with the subprotocol sbp.v1 on the HTTP port; binary messages of whole frames, at most
 * 256 KiB; a fatal ERROR followed by the close code 4000 + its code; a text message → PROTOCOL_VIOLATION
 * and 1003; a message over 256 KiB → FRAME_TOO_LARGE and 4002; a message ending inside a frame →
 * MALFORMED; the handshake deadline counted from the TCP accept (a slow upgrade counts); SERVER_FULL and
 * SHUTTING_DOWN as over TCP. The rest of the wire suite runs over WebSocket with
 * SWITCHBOARD_TEST_TRANSPORT=ws.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type DeliverFrame, encodeFrame, type Frame, FrameDecoder } from '../../src/protocol/index.js';
import { expectShutdownOfAll } from '../helpers/audit.js';
import { startServer } from '../helpers/server-process.js';
import {
  closeAll,
  connect,
  connectWebSocket,
  HOST,
  MAX_WS_MESSAGE,
  session,
  sleep,
  text,
  type WireClient,
  WS_CLOSE_ERROR_BASE,
  wsClientFrame,
} from './harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

const HANDSHAKE_MS = 2000;

/** A WebSocket client of the server (the `ws` package). */
const wsClient = (server: Server, label: string): Promise<WireClient> =>
  connect(server.httpPort, label, { transport: 'ws' });
const wsSession = (server: Server, user: string, device: string) =>
  session(server.httpPort, user, device, { transport: 'ws' });

/** The upgrade request a browser sends, with the headers given (null drops one). */
function upgradeRequest(path: string, headers: Record<string, string | null> = {}): string {
  const all: Record<string, string | null> = {
    Host: HOST,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Protocol': 'sbp.v1',
    ...headers,
  };
  const lines = Object.entries(all).flatMap(([k, v]) => (v === null ? [] : [`${k}: ${v}`]));
  return `GET ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
}

/**
 * A WebSocket peer written by hand on a raw TCP connection, for what a `ws` client would not do: send
 * its upgrade slowly or never, never answer the server's close frame. It parses the HTTP response and
 * the server's (unmasked) WebSocket frames, and decodes the SBP frames of binary messages.
 */
class RawPeer {
  readonly socket: net.Socket;
  connectedAt = 0;
  /** The HTTP status of the response, once its head arrived. */
  status: number | null = null;
  head = '';
  /** The server's WebSocket frames after the 101. */
  readonly wsFrames: { opcode: number; payload: Buffer; at: number }[] = [];
  readonly sbp: Frame[] = [];
  closeCode: number | null = null;
  closeFrameAt = 0;
  closedAt = 0;
  private buf = Buffer.alloc(0);
  private readonly decoder = new FrameDecoder('serverToClient', { firstFrame: 66_560, frame: 66_560 });

  private constructor(port: number) {
    this.socket = net.createConnection({ host: HOST, port });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closedAt = Date.now();
    });
  }

  static async open(port: number): Promise<RawPeer> {
    const peer = new RawPeer(port);
    await new Promise<void>((resolve, reject) => {
      peer.socket.once('connect', resolve);
      peer.socket.once('error', reject);
    });
    peer.connectedAt = Date.now();
    return peer;
  }

  /** Connected and upgraded to /sbp at once. */
  static async upgraded(port: number): Promise<RawPeer> {
    const peer = await RawPeer.open(port);
    peer.write(upgradeRequest('/sbp'));
    await peer.until(() => peer.status !== null, 3000, 'the upgrade response');
    assert.equal(peer.status, 101, peer.head);
    return peer;
  }

  write(data: string | Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  get closed(): boolean {
    return this.closedAt > 0;
  }

  private onData(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    if (this.status === null) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.head = this.buf.subarray(0, end).toString('latin1');
      this.status = Number(this.head.split(' ')[1]);
      this.buf = this.buf.subarray(end + 4);
    }
    if (this.status !== 101) return;
    for (;;) {
      if (this.buf.length < 2) return;
      let length = this.buf[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (this.buf.length < 4) return;
        length = this.buf.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (this.buf.length < 10) return;
        length = Number(this.buf.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.buf.length < offset + length) return;
      const opcode = this.buf[0]! & 0x0f;
      const payload = this.buf.subarray(offset, offset + length);
      this.buf = this.buf.subarray(offset + length);
      this.wsFrames.push({ opcode, payload, at: Date.now() });
      if (opcode === 0x2) this.decoder.push(payload, (f) => this.sbp.push(f));
      if (opcode === 0x8) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.closeFrameAt = Date.now();
      }
    }
  }

  async until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) assert.fail(`no ${what} within ${timeoutMs} ms (response: ${this.head})`);
      await sleep(10);
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Frames totalling exactly `total` bytes: ephemeral SENDs to a user with no device, then 10 PINGs. */
function framesOfSize(total: number): { bytes: Buffer; pings: number } {
  const send = (payload: number): Uint8Array =>
    encodeFrame({
      type: 'SEND',
      clientMsgId: 7,
      flags: 1,
      to: 'ws-nobody',
      payload: new Uint8Array(payload),
    });
  const overhead = send(0).length;
  const parts: Uint8Array[] = [];
  let size = 0;
  const pings = 10;
  const pingBytes = pings * encodeFrame({ type: 'PING', nonce: 1 }).length;
  while (total - size > 60_000 + overhead + pingBytes) {
    parts.push(send(60_000));
    size += 60_000 + overhead;
  }
  const rest = total - size - pingBytes - overhead;
  assert.ok(rest >= 0 && rest <= 60_000);
  parts.push(send(rest));
  for (let n = 1; n <= pings; n++) parts.push(encodeFrame({ type: 'PING', nonce: n }));
  const bytes = Buffer.concat(parts);
  assert.equal(bytes.length, total);
  return { bytes, pings };
}

describe('WebSocket transport', () => {
  let server: Server;
  const clients: WireClient[] = [];
  const peers: RawPeer[] = [];
  const open = async (label: string): Promise<WireClient> => {
    const c = await wsClient(server, label);
    clients.push(c);
    return c;
  };
  const openSession = async (user: string, device: string) => {
    const s = await wsSession(server, user, device);
    clients.push(s.client);
    return s;
  };
  const raw = async (make: Promise<RawPeer>): Promise<RawPeer> => {
    const p = await make;
    peers.push(p);
    return p;
  };
  /** The HTTP status a raw request gets. */
  const statusOf = async (request: string): Promise<{ status: number; head: string }> => {
    const p = await raw(RawPeer.open(server.httpPort));
    p.write(request);
    await p.until(() => p.status !== null, 3000, 'HTTP response');
    return { status: p.status!, head: p.head };
  };

  before(async () => {
    server = await startServer({ args: ['--handshake-timeout', `${HANDSHAKE_MS / 1000}s`] });
  });
  after(async () => {
    for (const p of peers) p.destroy();
    await closeAll(clients);
    await server?.stop();
  });

  it('/sbp on the HTTP port with the subprotocol sbp.v1: HELLO → WELCOME, PING → PONG', async () => {
    const { client: c, welcome } = await openSession('ws-hello', 'browser');
    assert.equal(c.ws!.protocol, 'sbp.v1');
    assert.equal(welcome.version, 1);
    await c.ping(7);
    // sbp.v1 among other offers is chosen.
    const other = await connectWebSocket(server.httpPort, 'ws-offers', { protocols: ['chat', 'sbp.v1'] });
    clients.push(other);
    assert.equal(other.ws!.protocol, 'sbp.v1');
    await other.hello('ws-hello', 'tab');
  });

  it('an upgrade without the subprotocol sbp.v1 → 400', async () => {
    const none = await statusOf(upgradeRequest('/sbp', { 'Sec-WebSocket-Protocol': null }));
    assert.equal(none.status, 400, none.head);
    const other = await statusOf(upgradeRequest('/sbp', { 'Sec-WebSocket-Protocol': 'sbp.v2, chat' }));
    assert.equal(other.status, 400, other.head);
    await assert.rejects(
      connectWebSocket(server.httpPort, 'ws-no-proto', { protocols: ['mqtt'] }),
      /Unexpected server response: 400/,
    );
  });

  it('an upgrade on another path → 404; a plain GET /sbp → 426', async () => {
    for (const path of ['/', '/ws', '/sbp/v1', '/healthz']) {
      const { status, head } = await statusOf(upgradeRequest(path));
      assert.equal(status, 404, `${path}: ${head}`);
    }
    const plain = await statusOf(`GET /sbp HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    assert.equal(plain.status, 426, plain.head);
    // A query string is allowed on the endpoint.
    const withQuery = await statusOf(upgradeRequest('/sbp?client=web'));
    assert.equal(withQuery.status, 101, withQuery.head);
  });

  it('a text message → ERROR PROTOCOL_VIOLATION, then close 1003 (before HELLO and after WELCOME)', async () => {
    const c = await open('ws-text-first');
    c.sendTextMessage('hello?');
    await c.expectError('PROTOCOL_VIOLATION', { ref: 0 });
    assert.equal(await c.expectClosed(3000, { code: 1003 }), 1003);

    const { client: d } = await openSession('ws-text', 'browser');
    d.sendTextMessage(JSON.stringify({ type: 'PING' }));
    d.sendText(1, 'ws-text', 'must not be stored');
    await d.expectError('PROTOCOL_VIOLATION', { ref: 0 });
    assert.equal(await d.expectClosed(3000, { code: 1003 }), 1003);
    const { welcome } = await openSession('ws-text', 'tab');
    assert.equal(welcome.lastSeq, 0, 'a SEND after the refused text message was stored');
  });

  it('a message of exactly 256 KiB of whole frames is handled; over 256 KiB → ERROR FRAME_TOO_LARGE, close 4002', async () => {
    const { client: c } = await openSession('ws-big', 'browser');
    const exact = framesOfSize(MAX_WS_MESSAGE);
    c.sendRaw(exact.bytes);
    for (let n = 1; n <= exact.pings; n++) assert.equal((await c.expect('PONG')).nonce, n);

    for (const [label, size] of [
      ['ws-big-1', MAX_WS_MESSAGE + 1],
      ['ws-big-300', 300 * 1024],
    ] as const) {
      const { client: d } = await openSession(label, 'browser');
      d.sendRaw(new Uint8Array(size));
      await d.expectError('FRAME_TOO_LARGE', { ref: 0 });
      assert.equal(await d.expectClosed(), WS_CLOSE_ERROR_BASE + 2);
    }
    // Also as the first message.
    const e = await open('ws-big-first');
    e.sendRaw(framesOfSize(300 * 1024).bytes);
    await e.expectError('FRAME_TOO_LARGE', { ref: 0 });
    assert.equal(await e.expectClosed(), 4002);
  });

  it('a fatal ERROR closes with 4000 + its code; BYE closes with 1000', async () => {
    const first = await open('ws-4006');
    first.send({ type: 'PING', nonce: 1 });
    await first.expectError('PROTOCOL_VIOLATION');
    assert.equal(await first.expectClosed(), 4006);

    const v2 = await open('ws-4003');
    v2.sendHello('ws-v2', 'browser', { version: 2 });
    await v2.expectError('UNSUPPORTED_VERSION');
    assert.equal(await v2.expectClosed(), 4003);

    const { client: old } = await openSession('ws-replaced', 'browser');
    await openSession('ws-replaced', 'browser');
    await old.expectError('SESSION_REPLACED');
    assert.equal(await old.expectClosed(), 4008);

    const { client: bye } = await openSession('ws-bye', 'browser');
    bye.send({ type: 'BYE', code: 0, reason: 'leaving' });
    assert.equal(await bye.expectClosed(), 1000);
    assert.equal(bye.frames.filter((f) => f.type === 'ERROR').length, 0);
  });

  it('a message that ends inside a frame → ERROR MALFORMED, close 4001 (frames before it are handled)', async () => {
    const hello = encodeFrame({
      type: 'HELLO',
      version: 1,
      user: 'ws-mid',
      device: 'browser',
      token: '',
      resumeAfter: 0,
    });
    // A HELLO split over two messages: the first ends inside it.
    const a = await open('ws-mid-hello');
    a.sendRaw(hello.subarray(0, 10));
    a.sendRaw(hello.subarray(10));
    await a.expectError('MALFORMED', { ref: 0 });
    assert.equal(await a.expectClosed(), 4001);

    // Only the length prefix.
    const b = await open('ws-mid-header');
    b.sendRaw(hello.subarray(0, 3));
    await b.expectError('MALFORMED', { ref: 0 });
    assert.equal(await b.expectClosed(), 4001);

    // After WELCOME: a whole PING then half of one, in one message.
    const { client: c } = await openSession('ws-mid', 'browser');
    const ping = encodeFrame({ type: 'PING', nonce: 5 });
    c.sendRaw(Buffer.concat([ping, ping.subarray(0, 6)]));
    assert.equal((await c.expect('PONG')).nonce, 5);
    await c.expectError('MALFORMED', { ref: 0 });
    assert.equal(await c.expectClosed(), 4001);

    // An empty message holds no frame.
    const { client: d } = await openSession('ws-mid-empty', 'browser');
    d.sendRaw(new Uint8Array(0));
    await d.expectError('MALFORMED', { ref: 0 });
    assert.equal(await d.expectClosed(), 4001);
  });

  it('a message trickled in tiny pieces is cut (close 1008) instead of buffered piece by piece', async () => {
    const { client: c } = await openSession('ws-pieces', 'browser');
    // A message announced at 100 KB whose bytes come one TCP write at a time.
    c.writeSocket(wsClientFrame(new Uint8Array(0), { declaredLength: 100_000 }));
    let sent = 0;
    while (!c.ended && sent < 5000) {
      c.writeSocket(new Uint8Array([0]));
      sent++;
      await sleep(1);
    }
    assert.equal(await c.expectClosed(3000, { code: 1008 }), 1008);
    assert.ok(sent > 1024 && sent < 5000, `cut after ${sent} pieces`);
  });

  it('several frames in one message are all handled, in order', async () => {
    const c = await open('ws-many');
    const hello = encodeFrame({
      type: 'HELLO',
      version: 1,
      user: 'ws-many',
      device: 'browser',
      token: '',
      resumeAfter: 0,
    });
    const pings = [1, 2, 3].map((nonce) => encodeFrame({ type: 'PING', nonce }));
    const send = encodeFrame({
      type: 'SEND',
      clientMsgId: 1,
      flags: 0,
      to: 'ws-many',
      payload: new TextEncoder().encode('to myself'),
    });
    c.sendRaw(Buffer.concat([hello, pings[0]!, send, pings[1]!, pings[2]!]));
    await c.expect('WELCOME');
    for (const nonce of [1, 2, 3]) assert.equal((await c.waitFor('PONG')).nonce, nonce);
    assert.equal((await c.waitAccepted(1)).flags, 0);
    assert.equal(text((await c.waitFor('DELIVER')).payload), 'to myself');
  });

  it("the server's frames of one tick travel in one message; its messages hold whole frames, at most 256 KiB", async () => {
    const { client: c } = await openSession('ws-batch', 'browser');
    c.sendRaw(Buffer.concat([1, 2, 3, 4, 5].map((nonce) => encodeFrame({ type: 'PING', nonce }))));
    for (let n = 1; n <= 5; n++) assert.equal((await c.expect('PONG')).nonce, n);
    assert.equal(c.messageFrames.at(-1), 5, `messages held ${c.messageFrames.join(', ')} frames`);

    // A replay of ~600 KB goes out in several messages of whole frames, none over 256 KiB (the harness
    // fails on a message over the limit or one that ends inside a frame).
    const { client: sender } = await session(server.port, 'ws-batch-tx', 'phone', { transport: 'tcp' });
    clients.push(sender);
    const COUNT = 10;
    for (let id = 1; id <= COUNT; id++) {
      sender.send({
        type: 'SEND',
        clientMsgId: id,
        flags: 0,
        to: 'ws-batch-rx',
        payload: new Uint8Array(60_000),
      });
    }
    for (let id = 1; id <= COUNT; id++) await sender.waitAccepted(id, 5000);
    const { client: r } = await openSession('ws-batch-rx', 'browser');
    const got = (await r.collect('DELIVER', COUNT, 10_000)) as DeliverFrame[];
    assert.deepEqual(
      got.map((d) => d.seq),
      Array.from({ length: COUNT }, (_, i) => i + 1),
    );
    assert.ok(Math.max(...r.messageSizes) <= MAX_WS_MESSAGE);
    // WELCOME and the DELIVERs (the first of them may share WELCOME's message).
    assert.equal(
      r.messageFrames.reduce((x, y) => x + y, 0),
      1 + COUNT,
    );
    assert.ok(r.messageFrames.length >= 3, `WELCOME and 600 KB in ${r.messageFrames.length} messages`);
    assert.ok(
      r.messageFrames.some((n) => n > 1),
      `no message held more than one frame: ${r.messageFrames.join(', ')}`,
    );
    await r.expectNothing(200);
  });

  it('TCP and WebSocket clients exchange messages both ways', async () => {
    const { client: w } = await openSession('ws-mix-w', 'browser');
    const { client: t } = await session(server.port, 'ws-mix-t', 'phone', { transport: 'tcp' });
    clients.push(t);
    w.sendText(1, 'ws-mix-t', 'from the browser');
    await w.waitAccepted(1);
    assert.equal(text((await t.expectDeliver()).payload), 'from the browser');
    t.sendText(1, 'ws-mix-w', 'from the terminal');
    await t.waitAccepted(1);
    const d = await w.waitFor((f) => f.type === 'DELIVER' && f.from === 'ws-mix-t');
    assert.equal(text((d as DeliverFrame).payload), 'from the terminal');
  });

  it('a silent client after the upgrade gets ERROR HANDSHAKE_TIMEOUT at the deadline, close 4005', async () => {
    const c = await open('ws-silent');
    await c.expectError('HANDSHAKE_TIMEOUT', { ref: 0, timeoutMs: HANDSHAKE_MS + 3000 });
    const elapsed = c.arrivals[0]! - c.connectedAt;
    assert.ok(elapsed >= HANDSHAKE_MS - 200, `cut after ${elapsed} ms`);
    assert.ok(elapsed <= HANDSHAKE_MS + 1500, `cut after ${elapsed} ms`);
    assert.equal(await c.expectClosed(), 4005);
  });

  it('the handshake deadline runs from the TCP accept: a slow upgrade counts', async () => {
    const p = await raw(RawPeer.open(server.httpPort));
    const request = upgradeRequest('/sbp');
    // Four pieces 450 ms apart: the upgrade completes ~1.35 s after the accept. Counted from the upgrade,
    // the deadline would fall at ~3.35 s; counted from the accept (the contract), at 2 s.
    const PIECES = 4;
    const GAP_MS = 450;
    const step = Math.ceil(request.length / PIECES);
    for (let i = 0; i < PIECES; i++) {
      p.write(request.slice(i * step, (i + 1) * step));
      if (i < PIECES - 1) await sleep(GAP_MS);
    }
    await p.until(() => p.status !== null, 3000, 'upgrade response');
    assert.equal(p.status, 101, p.head);
    await p.until(() => p.sbp.length > 0 || p.closed, HANDSHAKE_MS + 3000, 'ERROR');
    const err = p.sbp[0];
    assert.ok(err?.type === 'ERROR' && err.code === 5, `got ${JSON.stringify(err)}`);
    const elapsed = p.wsFrames[0]!.at - p.connectedAt;
    assert.ok(elapsed >= HANDSHAKE_MS - 200, `cut after ${elapsed} ms, before the deadline`);
    assert.ok(
      elapsed < (PIECES - 1) * GAP_MS + HANDSHAKE_MS - 300,
      `cut after ${elapsed} ms: the deadline was counted from the upgrade, not the accept`,
    );
    await p.until(() => p.closeCode !== null, 3000, 'close frame');
    assert.equal(p.closeCode, 4005);
  });

  it('a connection that never completes its upgrade is cut at the deadline', async () => {
    const silent = await raw(RawPeer.open(server.httpPort));
    const partial = await raw(RawPeer.open(server.httpPort));
    partial.write(upgradeRequest('/sbp').slice(0, 60));
    const trickler = await raw(RawPeer.open(server.httpPort));
    const request = upgradeRequest('/sbp');
    let sent = 0;
    const trickle = (async () => {
      // One byte every 100 ms: the whole request would take ~20 s.
      while (sent < request.length && !trickler.closed) {
        trickler.write(request[sent++]!);
        await sleep(100);
      }
    })();
    for (const [name, p] of [
      ['silent', silent],
      ['partial', partial],
      ['trickling', trickler],
    ] as const) {
      await p.until(() => p.closed, HANDSHAKE_MS + 4000, `close of the ${name} connection`);
      const elapsed = p.closedAt - p.connectedAt;
      assert.ok(elapsed >= HANDSHAKE_MS - 200, `${name}: cut after ${elapsed} ms, before the deadline`);
      assert.ok(elapsed <= HANDSHAKE_MS + 2000, `${name}: cut after ${elapsed} ms, long after the deadline`);
      assert.notEqual(p.status, 101, `${name}: upgraded`);
    }
    assert.ok(sent < request.length);
    await trickle;
  });

  it('a peer that never answers the close frame is cut off 1 s after it', async () => {
    const p = await raw(RawPeer.upgraded(server.httpPort));
    // A first frame that is no HELLO, in a masked binary message written by hand.
    p.write(wsClientFrame(encodeFrame({ type: 'PING', nonce: 1 })));
    await p.until(() => p.closeCode !== null, 3000, 'close frame');
    const err = p.sbp[0];
    assert.ok(err?.type === 'ERROR' && err.code === 6, `got ${JSON.stringify(err)}`);
    assert.equal(p.closeCode, 4006);
    // We neither answer the close frame nor close: the server destroys the connection after its grace.
    await p.until(() => p.closed, 4000, 'server-side close');
    const after = p.closedAt - p.closeFrameAt;
    assert.ok(after <= 1000 + 1500, `the server held the connection ${after} ms after its close frame`);
  });
});

describe('WebSocket: the connection cap (--max-connections 2) counts both transports', () => {
  let server: Server;
  const clients: WireClient[] = [];

  before(async () => {
    server = await startServer({ args: ['--handshake-timeout', '2s', '--max-connections', '2'], workers: 1 });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('a WebSocket past the cap gets ERROR SERVER_FULL (ref = a delay), close 4009; a freed slot is usable', async () => {
    const { client: t } = await session(server.port, 'full-tcp', 'phone', { transport: 'tcp' });
    const { client: w } = await wsSession(server, 'full-ws', 'browser');
    clients.push(t, w);
    const extra = await wsClient(server, 'full-extra-ws');
    clients.push(extra);
    const err = await extra.expectError('SERVER_FULL');
    assert.ok(err.ref >= 0 && err.ref <= 10_000, `reconnect delay ${err.ref} ms is outside 0–10 s`);
    assert.equal(await extra.expectClosed(), 4009);
    // TCP is refused too: one cap for both transports.
    const extraTcp = await connect(server.port, 'full-extra-tcp', { transport: 'tcp' });
    clients.push(extraTcp);
    await extraTcp.expectError('SERVER_FULL');
    await extraTcp.expectClosed();
    await t.ping(1);
    await w.ping(2);
    // Free the WebSocket slot: a new WebSocket gets in (the server may take a moment to see the close).
    await w.close();
    const deadline = Date.now() + 3000;
    for (;;) {
      const c = await wsClient(server, 'full-retry');
      clients.push(c);
      c.sendHello('full-retry', 'browser');
      const first = await c.expect(() => true);
      if (first.type === 'WELCOME') break;
      assert.equal(first.type, 'ERROR');
      assert.ok(Date.now() < deadline, 'no slot freed 3 s after a client left');
      await sleep(100);
    }
  });
});

describe('WebSocket: too many connections in progress on the HTTP port', () => {
  let server: Server;
  const peers: RawPeer[] = [];
  const clients: WireClient[] = [];
  /** The server's cap on HTTP connections not yet upgraded. */
  const MAX_PENDING = 1024;

  before(async () => {
    // A long deadline so the flood is still there when the next connection comes; one process (the cap
    // is per process).
    server = await startServer({ args: ['--handshake-timeout', '20s'], workers: 1 });
  });
  after(async () => {
    for (const p of peers) p.destroy();
    await closeAll(clients);
    await server?.stop();
  });

  it('past 1 024 half-open upgrades a new connection gets 503 at once; sessions go on; it recovers', async () => {
    const { client: live } = await wsSession(server, 'flood-live', 'browser');
    clients.push(live);
    for (let batch = 0; batch < MAX_PENDING / 128; batch++) {
      peers.push(...(await Promise.all(Array.from({ length: 128 }, () => RawPeer.open(server.httpPort)))));
    }
    // Let the server accept them all.
    await sleep(500);
    const extra = await RawPeer.open(server.httpPort);
    peers.push(extra);
    extra.write(upgradeRequest('/sbp'));
    await extra.until(() => extra.status !== null || extra.closed, 3000, 'response');
    assert.equal(extra.status, 503, extra.head);
    await extra.until(() => extra.closed, 3000, 'close');
    await assert.rejects(wsClient(server, 'flood-refused'), /Unexpected server response: 503/);
    // The established session is not disturbed.
    await live.ping(1);
    // The flood leaves: upgrades work again.
    for (const p of peers) p.destroy();
    const deadline = Date.now() + 3000;
    for (;;) {
      try {
        const { client } = await wsSession(server, 'flood-after', 'browser');
        clients.push(client);
        break;
      } catch (err) {
        assert.ok(Date.now() < deadline, `no upgrade 3 s after the flood left: ${(err as Error).message}`);
        await sleep(100);
      }
    }
  });
});

describe('WebSocket: SIGTERM', () => {
  let server: Server | undefined;
  const clients: WireClient[] = [];

  before(async () => {
    server = await startServer({ args: ['--handshake-timeout', '5s'] });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop('SIGKILL');
  });

  it('every WebSocket client gets ERROR SHUTTING_DOWN and close 4010, like the TCP ones; exit 0', async () => {
    const s = server!;
    const all: WireClient[] = [];
    for (let i = 0; i < 20; i++) all.push((await wsSession(s, `sd-ws-${i}`, 'browser')).client);
    all.push((await session(s.port, 'sd-tcp', 'phone', { transport: 'tcp' })).client);
    clients.push(...all);
    const exit = s.stop('SIGTERM');
    await expectShutdownOfAll(all, { timeoutMs: 10_000 });
    for (const c of all.filter((x) => x.transport === 'ws')) assert.equal(c.closeCode, 4010, c.label);
    assert.equal(await exit, 0, `the server exited with ${await exit}:\n${s.output()}`);
    server = undefined;
  });
});
