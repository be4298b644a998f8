/**
 * `switchboard reload` (src/cli/commands/reload.ts): SIGHUP to the primary named by the data folder's
 * pid file replaces the workers one at a time. With two workers and traffic flowing (senders re-sending on
 * errors and reconnects, as the SDK does), every worker pid changes, the primary's stays, and no ACCEPTED
 * message is lost or stored twice, in send order. Also: the command's clear errors without a server.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pidFilePath } from '../../src/cluster/primary.js';
import { assertNoProblems, splitOrderProblems } from '../helpers/audit.js';
import {
  auditSenders,
  eventually,
  isAlive,
  ResendingSender,
  runCli,
  usersHomedOn,
  workersByIndex,
} from '../helpers/cluster.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';
import { closeAll, sleep, type WireClient } from '../wire/harness.js';

const WORKERS = 2;
const SENDERS = Array.from({ length: WORKERS }, (_, w) => usersHomedOn(`rl-s${w}-`, w, WORKERS, 2)).flat();
const RECIPIENTS = Array.from({ length: WORKERS }, (_, w) => usersHomedOn(`rl-r${w}-`, w, WORKERS, 2)).flat();
/** Safety cap per sender; the test stops the traffic itself once the reload is over. */
const MAX_PER_SENDER = 6000;

describe('cluster: switchboard reload with traffic flowing', () => {
  let server: ServerProcess | undefined;
  const clients: WireClient[] = [];
  const senders: ResendingSender[] = [];
  /** Order violations found by the audit, checked on their own below. */
  let orderProblems: string[] | null = null;

  before(async () => {
    server = await startServer({
      workers: WORKERS,
      args: ['--purge-interval', '1h', '--inbox-max-messages', '100000'],
    });
  });
  after(async () => {
    await Promise.all(senders.map((s) => s.close()));
    await closeAll(clients);
    await server?.stop();
  });

  it('replaces every worker (new pids, same primary); nothing ACCEPTED lost or stored twice', async () => {
    const srv = server!;
    const port = srv.port;
    const oldWorkers = workersByIndex(srv);
    assert.equal(oldWorkers.size, WORKERS);
    assert.equal(Number(fs.readFileSync(pidFilePath(srv.dataDir), 'utf8')), srv.pid, 'the pid file');

    SENDERS.forEach((user, j) => {
      senders.push(
        new ResendingSender({
          port,
          user,
          total: MAX_PER_SENDER,
          recipientOf: (id) => RECIPIENTS[(id + j) % RECIPIENTS.length]!,
          inFlight: 50,
          chunk: 10,
          paceMs: 10,
        }),
      );
    });
    for (const s of senders) await s.start();
    assert.deepEqual([...new Set(senders.map((s) => s.node))].sort(), ['w1', 'w2']);
    let failure: unknown = null;
    const all = Promise.all(senders.map((s) => s.run(60_000))).catch((err) => {
      failure = err;
    });
    const acceptedNow = (): number => senders.reduce((n, s) => n + s.accepted.size, 0);
    await eventually('traffic under way', () => acceptedNow() >= 400 || failure !== null, 20_000);

    const acceptedAtReload = acceptedNow();
    const started = Date.now();
    const run = await runCli(['reload', '--data', srv.dataDir]);
    assert.equal(run.code, 0, `reload exited with ${run.code}: ${run.stderr}`);
    assert.match(run.stdout, new RegExp(`SIGHUP.*pid ${srv.pid}`));

    // Every worker replaced, one at a time: new pids for both indexes, the old processes gone.
    const replaced = await eventually(
      'every worker replaced',
      () => {
        const now = workersByIndex(srv);
        const done =
          now.size === WORKERS &&
          [...oldWorkers].every(
            ([i, pid]) => now.get(i) !== undefined && now.get(i) !== pid && !isAlive(pid),
          );
        return done ? now : undefined;
      },
      20_000,
    );
    const reloadMs = Date.now() - started;
    const acceptedDuringReload = acceptedNow() - acceptedAtReload;
    // The new workers serve: traffic keeps being ACCEPTED for a while after the reload.
    const afterReload = acceptedNow();
    await eventually(
      'traffic after the reload',
      () => acceptedNow() >= afterReload + 200 || failure !== null,
      20_000,
    );
    for (const s of senders) s.finish();
    await all;
    if (failure) throw failure;

    assert.ok(isAlive(srv.pid), 'the primary is gone');
    assert.deepEqual(workersByIndex(srv), replaced, 'a worker changed again after the reload');
    assert.equal(Number(fs.readFileSync(pidFilePath(srv.dataDir), 'utf8')), srv.pid, 'the pid file changed');
    console.log(
      `reload: workers ${[...oldWorkers.values()].join(',')} → ${[...replaced.values()].join(',')} in ${reloadMs} ms ` +
        `(${acceptedDuringReload} SENDs ACCEPTED meanwhile); ` +
        senders.map((s) => `${s.user} ${s.accepted.size} ${s.nodes.join('→')} [${s.errorText()}]`).join('; '),
    );
    // Every session of the old workers was told to go and came back (the senders reconnected).
    for (const s of senders) assert.ok(s.sessions >= 2, `${s.user} kept its session through the reload`);
    assertNoProblems(
      senders.flatMap((s) => s.problems),
      'protocol problems seen by the senders',
    );

    const problems = await auditSenders(
      port,
      RECIPIENTS,
      senders,
      (s) => s.total,
      (j, id) => RECIPIENTS[(id + j) % RECIPIENTS.length]!,
      clients,
    );
    const { order, other } = splitOrderProblems(problems);
    orderProblems = order;
    assertNoProblems(other, 'messages lost, stored twice or altered by the reload');
  });

  it('keeps each sender’s messages in send order in every inbox', () => {
    assert.ok(orderProblems !== null, 'the reload run did not get as far as the audit');
    assertNoProblems(orderProblems, 'order violations after the reload');
  });
});

describe('switchboard reload without a running server', () => {
  let dir = '';
  const spawned: number[] = [];
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-reload-'));
  });
  after(() => {
    for (const pid of spawned) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('no pid file: a clear error and exit 1', async () => {
    const run = await runCli(['reload', '--data', dir]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /no pid file at .*switchboard\.pid/);
    assert.equal(run.stdout, '');
  });

  it('a pid file naming no process: a clear error and exit 1', async () => {
    // The pid of a process that has exited.
    const gone = spawn(process.execPath, ['-e', '']);
    const pid = gone.pid!;
    await new Promise((r) => gone.on('exit', r));
    await sleep(50);
    fs.writeFileSync(pidFilePath(dir), `${pid}\n`);
    const run = await runCli(['reload', '--data', dir]);
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stderr, new RegExp(`process ${pid}, which is not running`));
  });

  it('a pid file naming another program: refused, the process untouched', async () => {
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    spawned.push(other.pid!);
    fs.writeFileSync(pidFilePath(dir), `${other.pid}\n`);
    const run = await runCli(['reload', '--data', dir]);
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stderr, /not a switchboard server/);
    await sleep(100);
    assert.ok(isAlive(other.pid!), 'the other program got the SIGHUP');
  });

  it('a pid file with garbage: a clear error and exit 1', async () => {
    fs.writeFileSync(pidFilePath(dir), 'not a pid\n');
    const run = await runCli(['reload', '--data', dir]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /does not hold a process id/);
  });
});
