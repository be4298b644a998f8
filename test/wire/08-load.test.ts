/**
 * Load and hostile input (the "Done when", PROTOCOL.md sections 4.1, 4.5 and 2.3):
 * (a) 1 000 connections that never send are all closed at the handshake deadline with
 *     HANDSHAKE_TIMEOUT while a live pair keeps exchanging messages, in order;
 * (b) random bytes on 100 connections (some after a valid HELLO): each gets an ERROR before it is
 *     closed, and the server keeps serving.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type DeliverFrame, errorName } from '../../src/protocol/index.js';
import { startServer } from '../helpers/server-process.js';
import {
  closeAll,
  connect,
  prng,
  session,
  describe as show,
  sleep,
  text,
  type WireClient,
} from './harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

async function healthConnections(httpPort: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`, { signal: AbortSignal.timeout(2000) });
  const body = (await res.json()) as { connections?: number };
  return body.connections ?? -1;
}

/** Settles every promise and fails with the first few reasons, counted. */
async function allOk(what: string, promises: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.flatMap((r, i) =>
    r.status === 'rejected' ? [`#${i}: ${(r.reason as Error).message}`] : [],
  );
  assert.equal(
    failed.length,
    0,
    `${failed.length} of ${promises.length} ${what} failed:\n${failed.slice(0, 5).join('\n')}`,
  );
}

describe('load (a): 1 000 silent connections at the handshake deadline', () => {
  const HANDSHAKE_MS = 2000;
  const SILENT = 1000;
  let server: Server;
  const clients: WireClient[] = [];

  before(async () => {
    server = await startServer({ args: ['--handshake-timeout', '2s'] });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('all 1 000 get ERROR HANDSHAKE_TIMEOUT and are closed, while a live pair keeps exchanging messages in order', async () => {
    const { client: a } = await session(server.port, 'load-a', 'phone');
    const { client: b } = await session(server.port, 'load-b', 'phone');
    clients.push(a, b);
    let chatting = true;
    let sentAB = 0;
    let sentBA = 0;
    const chatter = (async () => {
      while (chatting && sentAB < 2000) {
        sentAB++;
        a.sendText(sentAB, 'load-b', `a→b ${sentAB}`);
        sentBA++;
        b.sendText(sentBA, 'load-a', `b→a ${sentBA}`);
        await sleep(10);
      }
    })();

    const silent: WireClient[] = [];
    try {
      for (let batch = 0; batch < SILENT / 100; batch++) {
        const opened = await Promise.all(
          Array.from({ length: 100 }, (_, i) =>
            connect(server.port, `silent-${batch * 100 + i}`, { timeoutMs: 10_000 }),
          ),
        );
        silent.push(...opened);
        clients.push(...opened);
      }
      assert.equal(silent.length, SILENT);
      await allOk(
        'silent connections',
        silent.map(async (c) => {
          await c.expectError('HANDSHAKE_TIMEOUT', { ref: 0, timeoutMs: HANDSHAKE_MS + 8000 });
          const elapsed = c.arrivals[0]! - c.connectedAt;
          if (elapsed < HANDSHAKE_MS - 200)
            throw new Error(`closed after ${elapsed} ms, before the deadline`);
          await c.expectClosed(3000);
        }),
      );
    } finally {
      chatting = false;
      await chatter;
    }
    const closedCount = silent.filter((c) => c.ended && c.frames.length === 1).length;
    assert.equal(
      closedCount,
      SILENT,
      'every silent connection got exactly one frame (the ERROR) and was closed',
    );

    // The pair's messages all arrived, in order, gap-free, on both sides.
    const check = async (rx: WireClient, from: string, count: number, prefix: string): Promise<void> => {
      const got: DeliverFrame[] = [];
      while (got.length < count) {
        const d = (await rx.waitFor((f) => f.type === 'DELIVER' && f.from === from, 5000)) as DeliverFrame;
        got.push(d);
        // Keep the window open (own copies interleave with these).
        if (got.length % 100 === 0) rx.send({ type: 'ACK', seq: d.seq });
      }
      assert.deepEqual(
        got.map((d) => [d.clientMsgId, text(d.payload)]),
        Array.from({ length: count }, (_, i) => [i + 1, `${prefix} ${i + 1}`]),
      );
      const seqs = got.map((d) => d.seq);
      for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, 'seqs not ascending');
    };
    assert.ok(sentAB > 20, `the pair exchanged only ${sentAB} messages during the storm`);
    await check(b, 'load-a', sentAB, 'a→b');
    await check(a, 'load-b', sentBA, 'b→a');
    for (let id = 1; id <= sentAB; id++) assert.equal((await a.waitAccepted(id, 5000)).flags, 0);
    for (let id = 1; id <= sentBA; id++) assert.equal((await b.waitAccepted(id, 5000)).flags, 0);

    // No session leaked: only the pair is left.
    const deadline = Date.now() + 3000;
    let n = await healthConnections(server.httpPort);
    while (n !== 2 && Date.now() < deadline) {
      await sleep(100);
      n = await healthConnections(server.httpPort);
    }
    assert.equal(n, 2, 'the server still counts connections that were closed');
  });
});

describe('load (b): random bytes on 100 connections', () => {
  const CONNECTIONS = 100;
  let server: Server;
  const clients: WireClient[] = [];

  before(async () => {
    server = await startServer({ args: ['--handshake-timeout', '1s', '--heartbeat', '1s'] });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('each gets an ERROR before it is closed, and the server still serves a new client after', async () => {
    const rand = prng(0x5b_0001);
    const int = (n: number): number => Math.floor(rand() * n);
    const randomBytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => int(256));

    const runs: Promise<void>[] = [];
    const opened: WireClient[] = [];
    for (let i = 0; i < CONNECTIONS; i++) {
      const kind = i % 4;
      const withHello = kind === 1 || (kind === 3 && i % 8 === 3);
      const garbage: Uint8Array[] = [];
      if (kind === 3) {
        // A well-formed length prefix around a random type byte and body: reaches the body decoder.
        const body = randomBytes(1 + int(64));
        const header = Buffer.alloc(4);
        header.writeUInt32BE(body.length);
        garbage.push(header, body);
        if (int(2) === 0) garbage.push(randomBytes(1 + int(32)));
      } else if (kind === 2) {
        for (let k = 0, n = 2 + int(5); k < n; k++) garbage.push(randomBytes(1 + int(40)));
      } else {
        garbage.push(randomBytes(1 + int(512)));
      }
      const user = `fuzz-${i}`;
      const c = await connect(server.port, `fuzz-${i}/kind${kind}`);
      opened.push(c);
      clients.push(c);
      runs.push(
        (async () => {
          if (withHello) {
            c.send({ type: 'HELLO', version: 1, user, device: 'd', token: '', resumeAfter: 0 });
            await c.expect('WELCOME');
          }
          for (const chunk of garbage) {
            c.sendRaw(chunk);
            if (kind === 2) await sleep(int(20));
          }
          // Fatal within the handshake deadline (1 s) or the idle timeout (2 s) at the latest.
          await c.expectClosed(6000, { allowUnread: true });
          const last = c.frames.at(-1);
          if (c.decodeError)
            throw new Error(`the server sent bytes that do not decode: ${c.decodeError.message}`);
          if (last?.type !== 'ERROR') {
            throw new Error(`closed without an ERROR; frames: ${c.frames.map(show).join(', ') || 'none'}`);
          }
          if (last.code < 1 || last.code > 31) {
            throw new Error(`the closing ERROR is not fatal: ${last.code} ${errorName(last.code)}`);
          }
        })(),
      );
    }
    await allOk('random-byte connections', runs);
    const codes = new Map<string, number>();
    for (const c of opened) {
      const last = c.frames.at(-1);
      if (last?.type === 'ERROR') codes.set(errorName(last.code), (codes.get(errorName(last.code)) ?? 0) + 1);
    }
    // Several kinds of rejection were exercised, not only one.
    assert.ok(codes.size >= 3, `only ${[...codes.keys()].join(', ')} seen`);
    assert.ok(codes.has('FRAME_TOO_LARGE') || codes.has('MALFORMED'));

    // The process is alive and serves a new client.
    assert.doesNotThrow(() => process.kill(server.pid, 0), 'the server process is gone');
    const { client: x } = await session(server.port, 'after-fuzz', 'phone');
    clients.push(x);
    x.sendText(1, 'after-fuzz', 'still serving');
    assert.equal((await x.waitAccepted(1)).flags, 0);
    const d = await x.waitFor('DELIVER');
    assert.equal(text(d.payload), 'still serving');
  });
});
