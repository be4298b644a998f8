/**
 * The SDK against a real server process: send/receive, store-and-forward, re-send across a kill -9 and
 * restart, duplicate DELIVERs, ACK batching, request-level errors, SESSION_REPLACED.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type ClientOptions,
  type ClientTransport,
  type ConnectedInfo,
  FileStorage,
  MemoryStorage,
  type Message,
  parseEndpoint,
  SwitchboardClient,
  SwitchboardError,
  TcpTransport,
  toBase64,
} from '../../src/client/index.js';
import { encodeFrame, FrameDecoder } from '../../src/protocol/index.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';

const clients: SwitchboardClient[] = [];

function client(
  server: ServerProcess | string,
  user: string,
  device: string,
  opts: Partial<ClientOptions> = {},
) {
  const c = new SwitchboardClient({
    endpoint: typeof server === 'string' ? server : server.endpoint,
    user,
    device,
    transport: new TcpTransport(),
    backoff: { initialMs: 50, maxMs: 500 },
    ...opts,
  });
  clients.push(c);
  return c;
}

function messages(c: SwitchboardClient): Message[] {
  const got: Message[] = [];
  c.on('message', (m) => got.push(m));
  return got;
}

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A transport that hands every durable DELIVER to the client twice (a network/server fault). */
class DuplicatingTransport implements ClientTransport {
  private readonly inner = new TcpTransport();
  connect(endpoint: string, handlers: Parameters<ClientTransport['connect']>[1]) {
    const decoder = new FrameDecoder('serverToClient', { firstFrame: 1 << 20, frame: 1 << 20 });
    return this.inner.connect(endpoint, {
      ...handlers,
      onData: (chunk) =>
        decoder.push(chunk, (frame) => {
          const bytes = encodeFrame(frame);
          handlers.onData(bytes);
          if (frame.type === 'DELIVER' && frame.seq > 0) handlers.onData(bytes);
        }),
    });
  }
}

/** TCP, with a hook that sees every write (to act at an exact moment). */
class TappingTransport implements ClientTransport {
  private readonly inner = new TcpTransport();
  constructor(private readonly onWrite: (bytes: Uint8Array) => void) {}
  connect(endpoint: string, handlers: Parameters<ClientTransport['connect']>[1]) {
    const socket = this.inner.connect(endpoint, handlers);
    const onWrite = this.onWrite;
    return {
      send(bytes: Uint8Array) {
        socket.send(bytes);
        onWrite(bytes);
      },
      close: () => socket.close(),
      get bufferedAmount() {
        return socket.bufferedAmount;
      },
    };
  }
}

/** Texts of the pending sends in a FileStorage file. */
function savedPending(file: string): string[] {
  if (!fs.existsSync(file)) return [];
  const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as { pending: { payload: string }[] };
  return saved.pending.map((p) => Buffer.from(p.payload, 'base64').toString());
}

async function closeAll(): Promise<void> {
  await Promise.all(clients.splice(0).map((c) => c.close()));
}

describe('SDK pieces', () => {
  test('FileStorage saves atomically and loads back; a corrupt file is an error naming it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-filestorage-'));
    try {
      const storage = new FileStorage(path.join(dir, 'nested'), '127.0.0.1:7070', 'al.ice', 'cli-send');
      assert.equal(await storage.load(), null);
      const state = {
        lastClientMsgId: 5,
        processedSeq: 3,
        pending: [{ clientMsgId: 5, to: 'bob', payload: 'aGk=' }],
      };
      await storage.save(state);
      assert.deepEqual(await storage.load(), state);
      assert.deepEqual(fs.readdirSync(path.join(dir, 'nested')), ['127.0.0.1_7070__al.ice__cli-send.json']);
      fs.writeFileSync(storage.file, '{not json');
      await assert.rejects(storage.load(), (e: Error) => e.message.includes(storage.file));
      // The client does not start on a state it cannot read, and does not overwrite it.
      const c = client('127.0.0.1:1', 'al.ice', 'cli-send', { storage });
      const failed = new Promise<SwitchboardError>((r) => c.on('error', r));
      await assert.rejects(c.start(), (e: SwitchboardError) => e.codeName === 'STORAGE');
      assert.equal((await failed).codeName, 'STORAGE');
      await c.close();
      assert.equal(fs.readFileSync(storage.file, 'utf8'), '{not json');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('parseEndpoint', () => {
    assert.deepEqual(parseEndpoint('example.org:7000'), { host: 'example.org', port: 7000, tls: false });
    assert.deepEqual(parseEndpoint('[::1]:7070'), { host: '::1', port: 7070, tls: false });
    assert.deepEqual(parseEndpoint('localhost'), { host: 'localhost', port: 7070, tls: false });
    assert.deepEqual(parseEndpoint('tls://example.org:7443'), { host: 'example.org', port: 7443, tls: true });
    assert.throws(() => parseEndpoint('host:99999'));
  });
});

describe('SDK against a server', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await closeAll();
    await server?.stop();
  });

  test('two clients send and receive', async () => {
    const alice = client(server, 'alice1', 'phone');
    const bob = client(server, 'bob1', 'phone');
    const got = messages(bob);
    const info = await bob.start();
    assert.equal(info.lastSeq, 0);
    await alice.start();
    const r = await alice.send('bob1', 'hello bob');
    assert.equal(r.duplicate, false);
    assert.ok(r.clientMsgId > 0 && r.timestamp > 0);
    await until(() => got.length === 1, 'the DELIVER');
    const m = got[0]!;
    assert.deepEqual(
      {
        seq: m.seq,
        from: m.from,
        fromDevice: m.fromDevice,
        to: m.to,
        text: m.text,
        id: m.clientMsgId,
        ts: m.timestamp,
      },
      {
        seq: 1,
        from: 'alice1',
        fromDevice: 'phone',
        to: 'bob1',
        text: 'hello bob',
        id: r.clientMsgId,
        ts: r.timestamp,
      },
    );
    // Binary payloads come through as bytes, text null.
    const bin = new Uint8Array([0xff, 0x00, 0xfe]);
    await alice.send('bob1', bin);
    await until(() => got.length === 2, 'the binary DELIVER');
    assert.deepEqual([...got[1]!.payload], [...bin]);
    assert.equal(got[1]!.text, null);
    // Ephemeral: seq 0, only to connected devices.
    const e = await alice.send('bob1', 'typing', { ephemeral: true });
    assert.equal(e.timestamp, 0);
    await until(() => got.length === 3, 'the ephemeral DELIVER');
    assert.equal(got[2]!.seq, 0);
    assert.equal(got[2]!.ephemeral, true);
    assert.equal(bob.processedSeq, 2);
  });

  test('ids strictly increase and pending sends are kept in storage until ACCEPTED', async () => {
    const storage = new MemoryStorage();
    const alice = client(server, 'alice2', 'laptop', { storage });
    await alice.start();
    const ids: number[] = [];
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => alice.send('bob2', `m${i}`)));
    for (const r of results) ids.push(r.clientMsgId);
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
    );
    assert.equal(new Set(ids).size, 5);
    await until(() => storage.state.pending.length === 0, 'the state saved without pending');
    assert.equal(storage.state.lastClientMsgId, ids[4]);
  });

  test('a re-sent SEND that was stored already is ACCEPTED as duplicate and delivered once', async () => {
    const storage = new MemoryStorage();
    const alice = client(server, 'alice16', 'phone', { storage });
    await alice.start();
    const first = await alice.send('bob16', 'only once');
    await alice.close();
    // As if the ACCEPTED had been lost: the same id is still pending in the saved state.
    storage.state.pending = [
      {
        clientMsgId: first.clientMsgId,
        to: 'bob16',
        payload: toBase64(new TextEncoder().encode('only once')),
      },
    ];
    const again = client(server, 'alice16', 'phone', { storage });
    const accepted = new Promise<{ clientMsgId: number; duplicate: boolean; timestamp: number }>((r) =>
      again.once('accepted', r),
    );
    await again.start();
    const a = await accepted;
    assert.deepEqual(a, {
      clientMsgId: first.clientMsgId,
      duplicate: true,
      timestamp: first.timestamp,
      to: 'bob16',
    });
    const bob = client(server, 'bob16', 'phone');
    const got = messages(bob);
    const info = await bob.start();
    assert.equal(info.lastSeq, 1);
    await until(() => got.length === 1, 'the message');
    await sleep(200);
    assert.equal(got.length, 1);
  });

  test('offline store-and-forward', async () => {
    const alice = client(server, 'alice3', 'phone');
    await alice.start();
    await alice.send('carol3', 'one');
    await alice.send('carol3', 'two');
    const carol = client(server, 'carol3', 'tablet');
    const got = messages(carol);
    const info = await carol.start();
    assert.equal(info.lastSeq, 2);
    await until(() => got.length === 2, 'the replay');
    assert.deepEqual(
      got.map((m) => [m.seq, m.text]),
      [
        [1, 'one'],
        [2, 'two'],
      ],
    );
    // The sender's own inbox has the conversation too.
    const aliceOther = client(server, 'alice3', 'desktop');
    const mine = messages(aliceOther);
    await aliceOther.start();
    await until(() => mine.length === 2, "the sender's copies");
    assert.deepEqual(
      mine.map((m) => m.to),
      ['carol3', 'carol3'],
    );
  });

  test('duplicate DELIVERs are dropped and ACKs still move the cursor', async () => {
    const alice = client(server, 'alice4', 'phone');
    await alice.start();
    for (let i = 1; i <= 3; i++) await alice.send('bob4', `d${i}`);
    const bob = client(server, 'bob4', 'phone', { transport: new DuplicatingTransport(), ackDelayMs: 20 });
    const got = messages(bob);
    await bob.start();
    await until(() => got.length >= 3, 'three messages');
    await sleep(200);
    assert.deepEqual(
      got.map((m) => m.text),
      ['d1', 'd2', 'd3'],
    );
    await bob.close();
    const again = client(server, 'bob4', 'phone');
    const info = await again.start();
    assert.equal(info.ackedSeq, 3);
  });

  test('a request-level ERROR rejects that send; the connection stays open', async () => {
    const alice = client(server, 'alice5', 'phone');
    const info = await alice.start();
    const disconnects: unknown[] = [];
    alice.on('disconnected', (d) => disconnects.push(d));
    // Over maxPayload but within maxFrame: the server answers PAYLOAD_TOO_LARGE with ref.
    await assert.rejects(alice.send('bob5', new Uint8Array(info.maxPayload + 1)), (err: SwitchboardError) => {
      assert.ok(err instanceof SwitchboardError);
      assert.equal(err.codeName, 'PAYLOAD_TOO_LARGE');
      assert.equal(err.code, 32);
      assert.equal(err.local, false);
      assert.ok(err.ref > 0);
      return true;
    });
    // Over maxFrame: refused locally (it would cost the connection).
    await assert.rejects(
      alice.send('bob5', new Uint8Array(info.maxPayload + 2048)),
      (err: SwitchboardError) => {
        assert.equal(err.codeName, 'PAYLOAD_TOO_LARGE');
        assert.equal(err.local, true);
        return true;
      },
    );
    await assert.rejects(alice.send('#no-such-group', 'x'), (err: SwitchboardError) => {
      assert.equal(err.codeName, 'INVALID_ADDRESS');
      return true;
    });
    const ok = await alice.send('bob5', 'still fine');
    assert.ok(ok.clientMsgId > 0);
    assert.equal(alice.pendingCount, 0);
    assert.equal(disconnects.length, 0);
    assert.ok((await alice.ping()) >= 0);
  });

  test('SESSION_REPLACED stops the old client without a reconnect', async () => {
    const first = client(server, 'dave6', 'phone');
    await first.start();
    const events: string[] = [];
    first.on('reconnecting', () => events.push('reconnecting'));
    const stopped = new Promise<SwitchboardError>((resolve) => first.on('error', resolve));
    const second = client(server, 'dave6', 'phone');
    const secondErrors: unknown[] = [];
    second.on('error', (e) => secondErrors.push(e));
    await second.start();
    const err = await stopped;
    assert.equal(err.codeName, 'SESSION_REPLACED');
    assert.equal(first.state, 'closed');
    await assert.rejects(first.send('x', 'y'), (e: SwitchboardError) => e.codeName === 'CLOSED');
    await sleep(800);
    assert.deepEqual(events, []);
    assert.equal(second.state, 'connected');
    assert.deepEqual(secondErrors, []);
  });

  test('joins a group, sends to it, leaves it', async () => {
    const a = client(server, 'ann7', 'phone');
    const b = client(server, 'ben7', 'phone');
    const got = messages(b);
    await Promise.all([a.start(), b.start()]);
    await a.join('#team7');
    await b.join('#team7');
    await a.send('#team7', 'hi team');
    await until(() => got.length === 1, 'the group message');
    assert.equal(got[0]!.to, '#team7');
    await b.leave('#team7');
    await a.send('#team7', 'only me now');
    await b.leave('#team7'); // leaving again is DONE too
    await a.leave('#team7');
    await assert.rejects(a.send('#team7', 'gone'), (e: SwitchboardError) => e.codeName === 'INVALID_ADDRESS');
    await assert.rejects(
      b.send('#no-such-team7', 'x'),
      (e: SwitchboardError) => e.codeName === 'INVALID_ADDRESS',
    );
    await sleep(200);
    assert.deepEqual(
      got.map((m) => m.to),
      ['#team7'],
    );
  });
});

describe('SDK with a small window', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServer({ args: ['--window', '10', '--heartbeat', '300ms'] });
  });
  after(async () => {
    await closeAll();
    await server?.stop();
  });

  test('ACKs every window/2 messages without waiting for the idle delay', async () => {
    const alice = client(server, 'alice8', 'phone');
    await alice.start();
    for (let i = 1; i <= 12; i++) await alice.send('bob8', `n${i}`);
    // The idle ACK would come only after a minute: every ACK here comes from the count.
    const bob = client(server, 'bob8', 'phone', { ackDelayMs: 60_000 });
    const got = messages(bob);
    const info = await bob.start();
    assert.equal(info.window, 10);
    // More than the window arrives only because the batches ACKed on the way.
    await until(() => got.length === 12, 'all twelve messages');
    await sleep(200);
    // A new session of the device (replacing this one) shows the cursor the ACKs moved.
    const replacing = client(server, 'bob8', 'phone');
    const replaced = new Promise((resolve) => bob.on('error', resolve));
    const info2: ConnectedInfo = await replacing.start();
    await replaced;
    assert.equal(info2.ackedSeq, 10);
  });

  test('ACKs after the idle delay', async () => {
    const alice = client(server, 'alice9', 'phone');
    await alice.start();
    for (let i = 1; i <= 3; i++) await alice.send('bob9', `n${i}`);
    const bob = client(server, 'bob9', 'phone', { ackDelayMs: 50 });
    const got = messages(bob);
    await bob.start();
    await until(() => got.length === 3, 'three messages');
    await sleep(400);
    const replacing = client(server, 'bob9', 'phone');
    const info = await replacing.start();
    assert.equal(info.ackedSeq, 3);
  });
});

describe('SDK keep-alive and server faults', () => {
  test('PINGs keep an idle connection open past 2 × heartbeat', async () => {
    const server = await startServer({ args: ['--heartbeat', '300ms'] });
    try {
      const c = client(server, 'idle12', 'phone');
      const lost: unknown[] = [];
      c.on('disconnected', (d) => lost.push(d));
      const info = await c.start();
      assert.equal(info.heartbeatMs, 300);
      await sleep(1_500);
      assert.deepEqual(lost, []);
      assert.equal(c.state, 'connected');
      assert.ok((await c.ping()) >= 0);
    } finally {
      await closeAll();
      await server.stop();
    }
  });

  test('a frame that fails to decode: BYE with its code, then a reconnect', async () => {
    const server = await startServer();
    try {
      let injected = false;
      // After the first WELCOME, the "server" sends a frame of unknown type 0x80.
      const transport: ClientTransport = {
        connect(endpoint, handlers) {
          return new TcpTransport().connect(endpoint, {
            ...handlers,
            onData(chunk) {
              handlers.onData(chunk);
              if (!injected && chunk[4] === 0x02) {
                injected = true;
                handlers.onData(new Uint8Array([0, 0, 0, 1, 0x80]));
              }
            },
          });
        },
      };
      const c = client(server, 'eve13', 'phone', { transport });
      const disconnected = new Promise<{ reason: string; error?: Error }>((r) => c.once('disconnected', r));
      await c.start();
      const d = await disconnected;
      assert.equal(d.reason, 'protocol');
      assert.equal((d.error as SwitchboardError).codeName, 'PROTOCOL_VIOLATION');
      await new Promise((r) => c.once('connected', r));
      const r = await c.send('eve13', 'after the bad frame');
      assert.ok(r.clientMsgId > 0);
    } finally {
      await closeAll();
      await server.stop();
    }
  });

  test('SERVER_FULL: the client waits the delay the server suggests', async () => {
    // One process, so that the one place is this worker's (several workers split the cap by shares).
    const server = await startServer({ args: ['--max-connections', '1'], workers: 1 });
    try {
      await client(server, 'gus15', 'phone').start();
      const second = client(server, 'hal15', 'phone');
      second.start();
      const r = await new Promise<{ delayMs: number; lastError?: Error }>((res) =>
        second.once('reconnecting', res),
      );
      const err = r.lastError as SwitchboardError;
      assert.equal(err.codeName, 'SERVER_FULL');
      assert.equal(r.delayMs, err.ref);
      assert.equal(second.state, 'reconnecting');
    } finally {
      await closeAll();
      await server.stop();
    }
  });

  test('SHUTTING_DOWN: the client waits the delay the server suggests', async () => {
    const server = await startServer();
    const c = client(server, 'fay14', 'phone');
    try {
      await c.start();
      const disconnected = new Promise<{ error?: Error }>((r) => c.once('disconnected', r));
      const reconnecting = new Promise<{ delayMs: number }>((r) => c.once('reconnecting', r));
      const stopped = server.stop('SIGTERM');
      const d = await disconnected;
      const err = d.error as SwitchboardError;
      assert.equal(err.codeName, 'SHUTTING_DOWN');
      assert.equal((await reconnecting).delayMs, err.ref);
      assert.equal(await stopped, 0);
    } finally {
      await closeAll();
      await server.stop();
    }
  });
});

describe('SDK across a server crash', () => {
  test('a pending send is re-sent after kill -9 and a restart; delivered exactly once', async () => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-client-state-'));
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-client-data-'));
    let server = await startServer({ dataDir });
    try {
      const endpoint = server.endpoint;
      const aliceStorage = new FileStorage(stateDir, endpoint, 'alice10', 'phone');
      let killOnSend: (() => void) | null = null;
      const transport = new TappingTransport((bytes) => {
        if (bytes[4] === 0x03 && killOnSend) {
          killOnSend();
          killOnSend = null;
        }
      });
      const alice = client(endpoint, 'alice10', 'phone', { storage: aliceStorage, transport });
      const bob = client(endpoint, 'bob10', 'phone', {
        storage: new FileStorage(stateDir, endpoint, 'bob10', 'phone'),
      });
      const got = messages(bob);
      await Promise.all([alice.start(), bob.start()]);
      await alice.send('bob10', 'before');
      await until(() => got.length === 1, 'the first message');

      // The server is killed the moment the SEND is written: it may or may not have stored it.
      const pid = server.pid;
      killOnSend = () => process.kill(pid, 'SIGKILL');
      const racing = alice.send('bob10', 'racing');
      await until(() => killOnSend === null, 'the racing SEND written');
      await server.kill9();
      // Sent while the server is down: kept and saved as pending.
      const offline = alice.send('bob10', 'offline');
      await until(
        () => savedPending(aliceStorage.file).includes('offline'),
        'the offline send saved as pending',
      );

      server = await startServer({ dataDir, port: server.port });
      const [r1, r2] = await Promise.all([racing, offline]);
      assert.ok(r1.clientMsgId < r2.clientMsgId);
      await until(() => got.length >= 3, 'all three messages');
      await sleep(300);
      assert.deepEqual(
        got.map((m) => m.text),
        ['before', 'racing', 'offline'],
      );
      assert.deepEqual(
        got.map((m) => m.seq),
        [1, 2, 3],
      );
      assert.equal(alice.pendingCount, 0);
      await until(() => savedPending(aliceStorage.file).length === 0, 'no pending left');
    } finally {
      await closeAll();
      await server.stop();
      fs.rmSync(stateDir, { recursive: true, force: true });
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('pending sends saved by a stopped client are sent by the next one, in order', async () => {
    const server = await startServer();
    try {
      const storage = new MemoryStorage();
      // A client that never reaches the server (nothing listens there) keeps its sends pending.
      const offline = client('127.0.0.1:1', 'alice11', 'phone', { storage });
      offline.start();
      // Each outcome is caught at once: close() rejects them all in one go, and may then wait for the
      // socket of a connection attempt, long enough for a rejection without a handler to be reported.
      const outcomes = ['a', 'b', 'c'].map((t) =>
        offline.send('bob11', t).then(
          () => 'accepted',
          (e: SwitchboardError) => e.codeName,
        ),
      );
      await until(() => storage.state.pending.length === 3, 'three pending saved');
      await offline.close();
      assert.deepEqual(await Promise.all(outcomes), ['CLOSED', 'CLOSED', 'CLOSED']);

      const online = client(server, 'alice11', 'phone', { storage });
      const accepted: number[] = [];
      online.on('accepted', (a) => accepted.push(a.clientMsgId));
      await online.start();
      await until(() => accepted.length === 3, 'three ACCEPTED');
      assert.deepEqual(
        accepted,
        [...accepted].sort((x, y) => x - y),
      );
      const bob = client(server, 'bob11', 'phone');
      const got = messages(bob);
      await bob.start();
      await until(() => got.length === 3, 'three messages');
      assert.deepEqual(
        got.map((m) => m.text),
        ['a', 'b', 'c'],
      );
    } finally {
      await closeAll();
      await server.stop();
    }
  });
});
