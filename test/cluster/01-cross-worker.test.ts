/**
 * Messages across workers (ARCHITECTURE.md "Ownership and data flow", PROTOCOL.md section 5): with four
 * workers, 20 users whose sessions sit on all four (WELCOME's node) and whose homes are spread over them
 * exchange messages; each recipient gets every message in send order per sender, the sender's own copies
 * arrive on its session too, seqs ascend without gaps; an offline user homed on another worker than the
 * senders' gets everything on its next HELLO (store-and-forward through its home).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DeliverFrame } from '../../src/protocol/index.js';
import { assertNoProblems, type ExpectedMessage, inboxProblems } from '../helpers/audit.js';
import {
  homeWorkerOf,
  nodeName,
  openSession,
  type Placed,
  sessionsOnAllWorkers,
} from '../helpers/cluster.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';
import { closeAll, type WireClient } from '../wire/harness.js';

const WORKERS = 4;
const USERS = Array.from({ length: 20 }, (_, i) => `xw-u${String(i).padStart(2, '0')}`);
/** Each user sends this many messages to each of its peers. */
const PER_PEER = 8;
/** Peers of user i: three others, so every user both sends to and receives from several workers. */
const peersOf = (i: number): string[] => [1, 7, 13].map((k) => USERS[(i + k) % USERS.length]!);

describe('cluster: messages between users on different workers', () => {
  let server: ServerProcess | undefined;
  const clients: WireClient[] = [];

  before(async () => {
    server = await startServer({ workers: WORKERS, args: ['--purge-interval', '1h'] });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('20 users on all four workers: every message arrives, in send order, with the own copies', async () => {
    const port = server!.port;
    const placed = await sessionsOnAllWorkers(port, USERS, WORKERS, clients);
    const nodes = new Set([...placed.values()].map((p) => p.welcome.node));
    assert.deepEqual([...nodes].sort(), ['w1', 'w2', 'w3', 'w4']);
    const homes = new Set(USERS.map((u) => homeWorkerOf(u, WORKERS)));
    assert.ok(homes.size >= 3, `the users' homes cover only workers ${[...homes].join(', ')}`);
    for (const p of placed.values()) assert.equal(p.welcome.lastSeq, 0, `${p.user} is not a new inbox`);

    // What each inbox must hold: the messages to the user and the user's own copies.
    const expected = new Map<string, ExpectedMessage[]>(USERS.map((u) => [u, []]));
    // Everything pipelined at once; ids ascend per sender across its peers.
    const sent = new Map<string, number>();
    USERS.forEach((user, i) => {
      const c = placed.get(user)!.client;
      let id = 0;
      for (let round = 0; round < PER_PEER; round++) {
        for (const peer of peersOf(i)) {
          id++;
          const payload = `${user}>${peer}#${id}`;
          c.sendText(id, peer, payload);
          const m = { from: user, fromDevice: 'd1', clientMsgId: id, to: peer, payload };
          expected.get(peer)!.push(m);
          expected.get(user)!.push(m);
        }
      }
      sent.set(user, id);
    });
    const timestamps = new Map<string, number>();
    await Promise.all(
      USERS.map(async (user) => {
        const c = placed.get(user)!.client;
        for (let id = 1; id <= sent.get(user)!; id++) {
          const a = await c.waitAccepted(id, 15_000);
          assert.equal(a.flags, 0, `${user}'s ${id} came back as a duplicate`);
          timestamps.set(`${user}/d1/${id}`, a.timestamp);
        }
      }),
    );

    // Every session gets its whole inbox live: others' messages and its own copies, ascending seqs.
    const problems: string[] = [];
    let crossWorker = 0;
    await Promise.all(
      USERS.map(async (user) => {
        const p: Placed = placed.get(user)!;
        const want = expected
          .get(user)!
          .map((m) => ({ ...m, timestamp: timestamps.get(`${m.from}/d1/${m.clientMsgId}`) }));
        const got = (await p.client.collect('DELIVER', want.length, 15_000)) as DeliverFrame[];
        problems.push(...inboxProblems(user, got, want));
        for (const d of got) {
          if (d.from !== user && placed.get(d.from)!.welcome.node !== p.welcome.node) crossWorker++;
        }
        // Nothing more than the inbox.
        await p.client.expectNothing(100, 'DELIVER');
        p.client.send({ type: 'ACK', seq: got.at(-1)!.seq });
      }),
    );
    assertNoProblems(problems, 'problems in the live DELIVERs');
    assert.ok(crossWorker > 0, 'no message crossed workers');
  });

  it('store-and-forward: an offline user homed on another worker gets everything on its next HELLO', async () => {
    const port = server!.port;
    // Senders, one on each worker (fresh users of their own).
    const senders = await sessionsOnAllWorkers(
      port,
      Array.from({ length: WORKERS }, (_, i) => `xw-s${i}`),
      WORKERS,
      clients,
    );
    // The offline user's home is one worker; three of the four senders sit on others, so their messages
    // cross the bus to its home, where they wait for it.
    const offline = 'xw-offline';
    const home = nodeName(homeWorkerOf(offline, WORKERS));
    const remote = [...senders.values()].filter((s) => s.welcome.node !== home);
    assert.ok(remote.length >= WORKERS - 1, `senders on ${[...senders.values()].map((s) => s.welcome.node)}`);

    const PER_SENDER = 15;
    const want: ExpectedMessage[] = [];
    for (const s of senders.values()) {
      for (let id = 1; id <= PER_SENDER; id++) {
        const payload = `${s.user} to the offline ${offline}: ${id}`;
        s.client.sendText(id, offline, payload);
        want.push({ from: s.user, fromDevice: 'd1', clientMsgId: id, to: offline, payload });
      }
    }
    for (const s of senders.values()) {
      for (let id = 1; id <= PER_SENDER; id++) {
        const a = await s.client.waitAccepted(id, 15_000);
        want.find((m) => m.from === s.user && m.clientMsgId === id)!.timestamp = a.timestamp;
      }
    }

    // The user comes online (on whichever worker the primary hands it) and gets it all, in a row.
    const p = await openSession(port, offline, 'phone');
    clients.push(p.client);
    assert.equal(
      p.welcome.lastSeq,
      want.length,
      `WELCOME.lastSeq of ${offline} (home ${home}, session ${p.welcome.node})`,
    );
    const got = (await p.client.collect('DELIVER', want.length, 15_000)) as DeliverFrame[];
    assertNoProblems(inboxProblems(offline, got, want), `problems in ${offline}'s replay`);
    await p.client.expectNothing(100, 'DELIVER');

    // A second device of the user, on another connection (likely another worker), sees the same inbox.
    const second = await openSession(port, offline, 'laptop');
    clients.push(second.client);
    const again = (await second.client.collect('DELIVER', want.length, 15_000)) as DeliverFrame[];
    assert.deepEqual(
      again.map((d) => [d.seq, d.from, d.clientMsgId]),
      got.map((d) => [d.seq, d.from, d.clientMsgId]),
      `the second device (on ${second.welcome.node}) sees another inbox than the first (on ${p.welcome.node})`,
    );
  });
});
