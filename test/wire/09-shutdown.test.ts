/**
 * Graceful shutdown (PROTOCOL.md sections 4.6 and 7): SIGTERM with a few hundred clients connected →
 * each gets ERROR SHUTTING_DOWN with a reconnect delay in 0–10 s (drawn per client) and is closed; the
 * process exits 0; after a restart on the same data every stored message is still there.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DeliverFrame } from '../../src/protocol/index.js';
import { expectShutdownOfAll } from '../helpers/audit.js';
import { startServer } from '../helpers/server-process.js';
import { closeAll, portOf, session, text, type WireClient } from './harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

const CLIENTS = 300;
const STORED = 40;
const ARGS = ['--handshake-timeout', '5s'];

describe('shutdown: SIGTERM with 300 clients connected', () => {
  // Our own data folder: the helper removes the folders it creates when it stops the server.
  let dataDir = '';
  let first: Server | undefined;
  let second: Server | undefined;
  const clients: WireClient[] = [];

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-wire-shutdown-'));
    first = await startServer({ args: ARGS, dataDir });
  });
  after(async () => {
    await closeAll(clients);
    await first?.stop('SIGKILL');
    await second?.stop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('every client gets ERROR SHUTTING_DOWN (ref 0–10 s) and is closed; exit 0; stored messages survive', async () => {
    const server = first!;
    // Messages stored before the shutdown: alice → bob (offline).
    const { client: alice } = await session(portOf(server), 'sd-alice', 'phone');
    clients.push(alice);
    for (let id = 1; id <= STORED; id++) alice.sendText(id, 'sd-bob', `stored ${id}`);
    const timestamps = new Map<number, number>();
    for (let id = 1; id <= STORED; id++) timestamps.set(id, (await alice.waitAccepted(id)).timestamp);

    // A few hundred more clients, handshaken, of many users.
    const others: WireClient[] = [];
    for (let batch = 0; batch < CLIENTS / 50; batch++) {
      const opened = await Promise.all(
        Array.from({ length: 50 }, (_, i) => session(portOf(server), `sd-u${batch * 50 + i}`, 'phone')),
      );
      for (const { client } of opened) {
        others.push(client);
        clients.push(client);
      }
    }
    const all = [alice, ...others];
    assert.equal(others.length, CLIENTS);

    const exit = server.stop('SIGTERM');
    const refs = await expectShutdownOfAll(all, { timeoutMs: 10_000 });
    // Drawn per client from a spread: not one delay for everybody.
    assert.ok(
      new Set(refs).size >= 20,
      `only ${new Set(refs).size} distinct reconnect delays among ${refs.length}`,
    );
    assert.equal(await exit, 0, `the server exited with ${await exit}:\n${server.output()}`);

    // Restart on the same data: every stored message is there, in order, with its timestamp.
    second = await startServer({ args: ARGS, dataDir });
    const { client: bob, welcome } = await session(portOf(second), 'sd-bob', 'phone');
    clients.push(bob);
    assert.equal(welcome.lastSeq, STORED);
    const got = (await bob.collect('DELIVER', STORED, 5000)) as DeliverFrame[];
    assert.deepEqual(
      got.map((d) => [d.seq, d.from, d.clientMsgId, text(d.payload), d.timestamp]),
      Array.from({ length: STORED }, (_, i) => [
        i + 1,
        'sd-alice',
        i + 1,
        `stored ${i + 1}`,
        timestamps.get(i + 1),
      ]),
    );
    const { welcome: aw } = await session(portOf(second), 'sd-alice', 'laptop').then((s) => {
      clients.push(s.client);
      return s;
    });
    assert.equal(aw.lastSeq, STORED, "the sender's own copies did not survive");
  });
});
