/**
 * Graceful shutdown of a multi-worker server (ARCHITECTURE.md "KillPacket", PROTOCOL.md sections 4.6 and
 * 7): four workers, CLIENTS authenticated sessions spread over them (1 000 here; run by hand with
 * SWITCHBOARD_TEST_SHUTDOWN_CLIENTS=10000 — the test process needs about one file descriptor per client),
 * then SIGTERM to the primary: every client gets ERROR SHUTTING_DOWN with a reconnect delay in 0–10 s and
 * is closed, the primary exits 0 within 10 s of the signal and no worker outlives it; after a restart on
 * the same data folder every message stored before is there.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeToken } from '../../src/cli/commands/token.js';
import {
  assertNoProblems,
  type ExpectedMessage,
  expectShutdownOfAll,
  inboxProblems,
  readInbox,
} from '../helpers/audit.js';
import { eventually, isAlive, openSession, sessionsOnAllWorkers, usersHomedOn } from '../helpers/cluster.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';
import { closeAll, type WireClient } from '../wire/harness.js';

const WORKERS = 4;
const CLIENTS = Number(process.env.SWITCHBOARD_TEST_SHUTDOWN_CLIENTS ?? 1000) || 1000;
/** Sessions opened in parallel at a time. */
const BATCH = 100;
const SECRET = 'cluster-shutdown-secret';
const ARGS = ['--auth-secret', SECRET, '--purge-interval', '1h'];
/** Offline users homed on every worker, each sent messages from senders on every worker. */
const OFFLINE = Array.from({ length: WORKERS }, (_, w) => usersHomedOn(`sd-off${w}-`, w, WORKERS, 1)).flat();
const SENDERS = Array.from({ length: WORKERS }, (_, i) => `sd-s${i}`);
const PER_PAIR = 10;

/** An HS256 token for `user`, as `switchboard token` prints it. */
function tokenFor(user: string): Promise<string> {
  return makeToken(user, SECRET, 3600_000);
}

describe(`cluster: SIGTERM with ${CLIENTS} clients on four workers`, () => {
  let dataDir = '';
  let first: ServerProcess | undefined;
  let second: ServerProcess | undefined;
  const clients: WireClient[] = [];

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-cluster-shutdown-'));
    first = await startServer({ workers: WORKERS, args: ARGS, dataDir });
  });
  after(async () => {
    await closeAll(clients);
    await first?.stop('SIGKILL');
    await second?.stop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('every client gets SHUTTING_DOWN (ref 0–10 s) and is closed; exit 0 within 10 s; stored messages survive', async () => {
    const server = first!;
    const port = server.port;
    const tokens = new Map<string, string>();
    const token = async (user: string): Promise<string> => {
      let t = tokens.get(user);
      if (!t) {
        t = await tokenFor(user);
        tokens.set(user, t);
      }
      return t;
    };

    // Messages stored before the shutdown, across workers: senders on every worker to offline users
    // homed on every worker.
    const senderTokens = await Promise.all(SENDERS.map(token));
    const senders = await sessionsOnAllWorkers(
      port,
      SENDERS,
      WORKERS,
      clients,
      'phone',
      (u) => senderTokens[SENDERS.indexOf(u)]!,
    );
    const expected = new Map<string, ExpectedMessage[]>([...OFFLINE, ...SENDERS].map((u) => [u, []]));
    for (const s of senders.values()) {
      let id = 0;
      for (let k = 0; k < PER_PAIR; k++) {
        for (const to of OFFLINE) {
          id++;
          const payload = `${s.user}→${to} ${id}`;
          s.client.sendText(id, to, payload);
          const m: ExpectedMessage = { from: s.user, fromDevice: 'phone', clientMsgId: id, to, payload };
          expected.get(to)!.push(m);
          expected.get(s.user)!.push(m);
        }
      }
    }
    for (const s of senders.values()) {
      for (const m of expected.get(s.user)!)
        m.timestamp = (await s.client.waitAccepted(m.clientMsgId, 10_000)).timestamp;
    }

    // The many clients, each with its own user and token, a batch at a time.
    const others: WireClient[] = [];
    const byNode = new Map<string, number>();
    for (let start = 0; start < CLIENTS - senders.size; start += BATCH) {
      const count = Math.min(BATCH, CLIENTS - senders.size - start);
      const opened = await Promise.all(
        Array.from({ length: count }, async (_, i) => {
          const user = `sd-u${start + i}`;
          const p = await openSession(port, user, 'phone', { token: await token(user), timeoutMs: 20_000 });
          clients.push(p.client);
          return p;
        }),
      );
      for (const p of opened) {
        others.push(p.client);
        byNode.set(p.welcome.node, (byNode.get(p.welcome.node) ?? 0) + 1);
      }
    }
    const all = [...[...senders.values()].map((s) => s.client), ...others];
    assert.equal(all.length, CLIENTS);
    assert.equal(byNode.size, WORKERS, `sessions per worker: ${[...byNode]}`);
    const workerPids = server.workerPids();
    assert.equal(workerPids.length, WORKERS);

    const signalledAt = Date.now();
    const exit = server.stop('SIGTERM').then((code) => ({ code, ms: Date.now() - signalledAt }));
    const refs = await expectShutdownOfAll(all, { timeoutMs: 10_000 });
    const { code, ms } = await exit;
    console.log(
      `SIGTERM with ${CLIENTS} clients (${[...byNode].map(([n, c]) => `${n}: ${c}`).join(', ')}): ` +
        `every client told and closed; the primary exited ${code} after ${ms} ms`,
    );
    assert.equal(code, 0, `the server exited with ${code}:\n${server.output()}`);
    assert.ok(ms < 10_000, `the primary exited only ${ms} ms after SIGTERM`);
    // Drawn per client from a spread: not one delay for everybody.
    assert.ok(
      new Set(refs).size >= Math.min(20, CLIENTS / 2),
      `only ${new Set(refs).size} distinct reconnect delays`,
    );
    await eventually('every worker gone', () => workerPids.every((pid) => !isAlive(pid)), 2000);
    assert.equal(fs.existsSync(path.join(dataDir, 'switchboard.pid')), false, 'the pid file was left behind');

    // Restart on the same data: every stored message is there, in order, with its timestamp.
    second = await startServer({ workers: WORKERS, args: ARGS, dataDir });
    const problems: string[] = [];
    for (const [user, want] of expected) {
      const inbox = await readInbox(second.port, user, clients, { token: await token(user) });
      problems.push(...inboxProblems(user, inbox, want));
    }
    assertNoProblems(problems, 'problems in the inboxes after the restart');
  });
});
