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
  portOf,
  prng,
  session,
  describe as show,
  sleep,
  text,
  type WireClient,
  wsClientFrame,
} from './harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

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
    const { client: a } = await session(portOf(server), 'load-a', 'phone');
    const { client: b } = await session(portOf(server), 'load-b', 'phone');
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
            connect(portOf(server), `silent-${batch * 100 + i}`, { timeoutMs: 10_000 }),
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

    // The pair's messages all arrived, in order, on both sides; each side's DELIVERs (the peer's
    // messages and its own copies) are its inbox's seqs 1..N, gap-free, in order.
    assert.ok(sentAB > 20, `the pair exchanged only ${sentAB} messages during the storm`);
    const total = sentAB + sentBA;
    for (const [rx, from, count, prefix] of [
      [b, 'load-a', sentAB, 'a→b'],
      [a, 'load-b', sentBA, 'b→a'],
    ] as const) {
      const delivers = (): DeliverFrame[] => rx.frames.filter((f): f is DeliverFrame => f.type === 'DELIVER');
      const until = Date.now() + 15_000;
      let acked = 0;
      while (delivers().length < total && Date.now() < until && !rx.ended) {
        const last = delivers().at(-1)?.seq ?? 0;
        if (last > acked) {
          rx.send({ type: 'ACK', seq: last });
          acked = last;
        }
        await sleep(20);
      }
      const all = delivers();
      assert.deepEqual(
        all.map((d) => d.seq),
        Array.from({ length: total }, (_, i) => i + 1),
        `${rx.label}: inbox seqs are not 1..${total} in order`,
      );
      const incoming = all.filter((d) => d.from === from);
      assert.deepEqual(
        incoming.map((d) => [d.clientMsgId, text(d.payload)]),
        Array.from({ length: count }, (_, i) => [i + 1, `${prefix} ${i + 1}`]),
        `${rx.label}: the peer's messages are not all there in order`,
      );
      assert.equal(rx.frames.filter((f) => f.type === 'ERROR').length, 0, `${rx.label} got an ERROR`);
    }
    for (let id = 1; id <= sentAB; id++) assert.equal((await a.waitAccepted(id, 5000)).flags, 0);
    for (let id = 1; id <= sentBA; id++) assert.equal((await b.waitAccepted(id, 5000)).flags, 0);
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

  it('each gets an ERROR before it is closed, and the server still serves a new client after', async (t) => {
    // The whole plan (bytes, chunking, delays) is drawn up front from a seeded PRNG, so a run is
    // reproducible whatever order the connections progress in.
    const rand = prng(0x5b_0001);
    const int = (n: number): number => Math.floor(rand() * n);
    const randomBytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => int(256));
    const CLIENT_TYPES = [0x01, 0x03, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x11];
    interface Plan {
      kind: number;
      withHello: boolean;
      chunks: Uint8Array[];
      delays: number[];
    }
    const plans: Plan[] = [];
    for (let i = 0; i < CONNECTIONS; i++) {
      const kind = i % 5;
      const withHello = kind === 1 || (kind >= 3 && int(2) === 0);
      const chunks: Uint8Array[] = [];
      if (kind === 0 || kind === 1) {
        // Raw random bytes in one write.
        chunks.push(randomBytes(1 + int(512)));
      } else if (kind === 2) {
        // Raw random bytes over several writes.
        for (let k = 0, n = 2 + int(5); k < n; k++) chunks.push(randomBytes(1 + int(40)));
      } else if (kind === 3) {
        // A well-formed length prefix around a (mostly client) type byte and a random body: reaches
        // the body decoder; sometimes followed by more random bytes.
        const type = int(10) < 7 ? CLIENT_TYPES[int(CLIENT_TYPES.length)]! : int(256);
        const body = new Uint8Array([type, ...randomBytes(int(64))]);
        if (type === 0x01) body[1] = 1; // a HELLO with version 1, so its body is what fails
        const header = Buffer.alloc(4);
        header.writeUInt32BE(body.length);
        chunks.push(Buffer.concat([header, body]));
        if (int(2) === 0) chunks.push(randomBytes(1 + int(32)));
      } else {
        // A frame that never completes: declared longer than what follows (within the limits).
        const declared = 20 + int(1000);
        const header = Buffer.alloc(5);
        header.writeUInt32BE(declared);
        header[4] = withHello ? 0x07 : 0x01;
        chunks.push(Buffer.concat([header, randomBytes(int(declared - 2))]));
        if (!withHello) chunks[0]![5] = 1; // HELLO version 1: only the missing bytes are wrong
      }
      plans.push({ kind, withHello, chunks, delays: chunks.map(() => (kind === 2 ? int(20) : 0)) });
    }

    const runs: Promise<void>[] = [];
    const opened: WireClient[] = [];
    for (const [i, plan] of plans.entries()) {
      const c = await connect(portOf(server), `fuzz-${i}/kind${plan.kind}${plan.withHello ? '+hello' : ''}`);
      opened.push(c);
      clients.push(c);
      runs.push(
        (async () => {
          if (plan.withHello) {
            c.send({ type: 'HELLO', version: 1, user: `fuzz-${i}`, device: 'd', token: '', resumeAfter: 0 });
            await c.expect('WELCOME');
          }
          for (const [k, chunk] of plan.chunks.entries()) {
            // Over WebSocket a frame that never completes travels in a message that never completes (a
            // message ending inside a frame is MALFORMED at once): the header announces more than follows.
            if (plan.kind === 4 && c.transport === 'ws') {
              c.writeSocket(wsClientFrame(chunk, { declaredLength: chunk.length + 64 }));
            } else c.sendRaw(chunk);
            if (plan.delays[k]) await sleep(plan.delays[k]!);
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
    t.diagnostic(`closing errors: ${JSON.stringify(Object.fromEntries(codes))}`);
    // The plan exercises every kind of rejection: length, type, body, and both deadlines.
    for (const code of [
      'FRAME_TOO_LARGE',
      'PROTOCOL_VIOLATION',
      'MALFORMED',
      'HANDSHAKE_TIMEOUT',
      'IDLE_TIMEOUT',
    ]) {
      assert.ok(codes.has(code), `no connection was closed with ${code}: ${[...codes.keys()].join(', ')}`);
    }

    // The process is alive and serves a new client.
    assert.doesNotThrow(() => process.kill(server.pid, 0), 'the server process is gone');
    const { client: x } = await session(portOf(server), 'after-fuzz', 'phone');
    clients.push(x);
    x.sendText(1, 'after-fuzz', 'still serving');
    assert.equal((await x.waitAccepted(1)).flags, 0);
    const d = await x.waitFor('DELIVER');
    assert.equal(text(d.payload), 'still serving');
  });
});
