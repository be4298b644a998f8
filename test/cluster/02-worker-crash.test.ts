/**
 * One worker crashes (ARCHITECTURE.md "Guarantees", PROTOCOL.md section 5 "Durable", "Duplicates"):
 * four workers, senders and recipients on and homed on all of them, 10 000 pipelined SENDs; in the middle,
 * kill -9 of ONE worker. The primary starts a replacement at once (measured: the new process exists
 * within 2 s, and a user homed on the dead worker gets WELCOME again soon after); the clients of the dead
 * worker reconnect; every sender re-sends what was not ACCEPTED (after a reconnect, or after
 * STORE_UNAVAILABLE) with the same clientMsgId. Then every inbox is read back: every ACCEPTED message
 * exactly once by (from, device, clientMsgId), seqs gap-free, per-recipient order = send order per sender.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertNoProblems, splitOrderProblems } from '../helpers/audit.js';
import {
  auditSenders,
  eventually,
  isAlive,
  nodeName,
  openSession,
  ResendingSender,
  usersHomedOn,
  workersByIndex,
} from '../helpers/cluster.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';
import { closeAll, type WireClient } from '../wire/harness.js';

const WORKERS = 4;
const TOTAL = 10_000;
/** Two senders and two recipients homed on each worker. */
const SENDERS = Array.from({ length: WORKERS }, (_, w) => usersHomedOn(`wc-s${w}-`, w, WORKERS, 2)).flat();
const RECIPIENTS = Array.from({ length: WORKERS }, (_, w) => usersHomedOn(`wc-r${w}-`, w, WORKERS, 2)).flat();
const PER_SENDER = TOTAL / SENDERS.length;
/** The worker killed (0-based; WELCOME calls it w2). */
const VICTIM = 1;
/** kill -9 once this many SENDs (of all senders) are ACCEPTED. */
const KILL_AFTER_ACCEPTED = 3000;

const recipientOf = (senderIndex: number, id: number): string =>
  RECIPIENTS[(id + senderIndex) % RECIPIENTS.length]!;

describe('cluster: kill -9 of one worker in the middle of 10 000 SENDs', () => {
  let server: ServerProcess | undefined;
  const clients: WireClient[] = [];
  const senders: ResendingSender[] = [];
  /** Order violations found by the audit, checked on their own below. */
  let orderProblems: string[] | null = null;

  before(async () => {
    server = await startServer({ workers: WORKERS, args: ['--purge-interval', '1h'] });
  });
  after(async () => {
    await Promise.all(senders.map((s) => s.close()));
    await closeAll(clients);
    await server?.stop();
  });

  it('a replacement worker within 2 s; every ACCEPTED message stored once, gap-free', async () => {
    const srv = server!;
    const port = srv.port;
    SENDERS.forEach((user, j) => {
      senders.push(
        new ResendingSender({
          port,
          user,
          total: PER_SENDER,
          recipientOf: (id) => recipientOf(j, id),
          inFlight: 100,
          chunk: 25,
        }),
      );
    });
    // Sessions one after the other: the primary's round-robin puts them on every worker.
    for (const s of senders) await s.start();
    const onVictim = senders.filter((s) => s.node === nodeName(VICTIM));
    assert.deepEqual(
      [...new Set(senders.map((s) => s.node))].sort(),
      ['w1', 'w2', 'w3', 'w4'],
      'the senders do not sit on every worker',
    );
    const before = workersByIndex(srv);
    assert.equal(before.size, WORKERS, `worker processes: ${[...before]}`);
    const victimPid = before.get(VICTIM)!;

    const acceptedNow = (): number => senders.reduce((n, s) => n + s.accepted.size, 0);
    const runs = senders.map((s) => s.run(60_000));
    let failure: unknown = null;
    const all = Promise.all(runs).catch((err) => {
      failure = err;
    });

    // The kill, once the traffic is well under way.
    await eventually(
      'enough SENDs ACCEPTED for the kill',
      () => acceptedNow() >= KILL_AFTER_ACCEPTED || failure !== null,
      60_000,
      2,
    );
    if (failure) throw failure;
    const acceptedAtKill = acceptedNow();
    const killedAt = Date.now();
    process.kill(victimPid, 'SIGKILL');

    // The replacement: a new process for the same worker index.
    const replacement = await eventually(
      'a replacement worker process',
      () => {
        const pid = workersByIndex(srv).get(VICTIM);
        return pid !== undefined && pid !== victimPid ? pid : undefined;
      },
      10_000,
      5,
    );
    const restartMs = Date.now() - killedAt;
    // The server answers again for the dead worker's users: a HELLO of a user homed there gets WELCOME.
    const probe = await openSession(port, usersHomedOn('wc-probe-', VICTIM, WORKERS, 1)[0]!, 'probe', {
      timeoutMs: 15_000,
    });
    clients.push(probe.client);
    const answersMs = Date.now() - killedAt;
    console.log(
      `worker ${nodeName(VICTIM)} killed after ${acceptedAtKill} of ${TOTAL} SENDs ACCEPTED: ` +
        `replacement pid ${replacement} after ${restartMs} ms; a user homed there got WELCOME after ${answersMs} ms`,
    );
    assert.ok(!isAlive(victimPid), 'the killed worker is still alive');
    assert.ok(restartMs < 2000, `the replacement worker appeared only after ${restartMs} ms`);
    assert.ok(answersMs < 10_000, `a user homed on the dead worker got WELCOME only after ${answersMs} ms`);
    assert.equal(isAlive(srv.pid), true, 'the primary died with its worker');

    await all;
    if (failure) throw failure;
    assert.ok(acceptedAtKill < TOTAL, 'every SEND was ACCEPTED before the kill: it did not land mid-stream');
    // The clients of the dead worker noticed and connected again.
    for (const s of onVictim) {
      assert.ok(
        s.sessions >= 2,
        `${s.user} was on the killed worker and did not reconnect (sessions ${s.nodes})`,
      );
    }
    assertNoProblems(
      senders.flatMap((s) => s.problems),
      'protocol problems seen by the senders',
    );
    const resent = senders.reduce((n, s) => n + [...s.attempts.values()].filter((a) => a > 1).length, 0);
    const duplicates = senders.reduce(
      (n, s) => n + [...s.accepted.values()].filter((a) => a.flags !== 0).length,
      0,
    );
    console.log(
      `after the kill: ${senders.map((s) => `${s.user} ${s.nodes.join('→')} [${s.errorText()}]`).join('; ')}; ` +
        `${resent} SENDs written more than once, ${duplicates} answered as duplicates`,
    );

    // Every inbox read back in full.
    const problems = await auditSenders(port, RECIPIENTS, senders, () => PER_SENDER, recipientOf, clients);
    const { order, other } = splitOrderProblems(problems);
    orderProblems = order;
    assertNoProblems(other, 'messages lost, stored twice or altered by the crash');
  });

  it('keeps each sender’s messages in send order in every inbox', () => {
    assert.ok(orderProblems !== null, 'the crash run did not get as far as the audit');
    assertNoProblems(orderProblems, 'order violations after the crash');
  });
});
