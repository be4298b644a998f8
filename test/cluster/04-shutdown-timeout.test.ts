/**
 * --shutdown-timeout (src/cluster/primary.ts): past it the primary kills what is left and exits. A hang is
 * hard to force from outside, so this checks the bound with clients that make a drain as slow as they
 * can: `serve --workers 2 --shutdown-timeout 1s` with clients that never close their side, never read
 * (a megabyte and more of DELIVERs stuck in the server's buffer), and connections that never sent HELLO;
 * SIGTERM → the primary exits within ~3 s and no worker outlives it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, isAlive, openSession } from '../helpers/cluster.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';
import { closeAll, connect, type WireClient } from '../wire/harness.js';

const WORKERS = 2;
const BIG = 60 * 1024;

describe('cluster: --shutdown-timeout 1s with stubborn clients', () => {
  let server: ServerProcess | undefined;
  const clients: WireClient[] = [];

  before(async () => {
    server = await startServer({ workers: WORKERS, args: ['--shutdown-timeout', '1s'] });
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await closeAll(clients);
    await server?.stop('SIGKILL');
  });

  it('SIGTERM → the primary exits within ~3 s, its workers with it', async () => {
    const srv = server!;
    const port = srv.port;
    // Readers that stop reading: each gets a backlog larger than the server's 1 MiB write buffer.
    const slow: WireClient[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await connect(port, `st-slow${i}`, { halfOpen: true });
      clients.push(c);
      await c.hello(`st-slow${i}`, 'd');
      c.socket.pause();
      slow.push(c);
    }
    const { client: sender } = await openSession(port, 'st-sender', 'd');
    clients.push(sender);
    const payload = new Uint8Array(BIG).fill(120);
    let id = 0;
    for (let k = 0; k < 30; k++) {
      for (let i = 0; i < slow.length; i++)
        sender.send({ type: 'SEND', clientMsgId: ++id, flags: 0, to: `st-slow${i}`, payload });
    }
    await sender.waitAccepted(id, 15_000);
    // Peers that never finish their side, and connections that never send HELLO.
    for (let i = 0; i < 6; i++) {
      const c = await connect(port, `st-half${i}`, { halfOpen: true });
      clients.push(c);
      if (i % 2 === 0) await c.hello(`st-half${i}`, 'd');
    }
    const workers = srv.workerPids();
    assert.equal(workers.length, WORKERS);

    const signalledAt = Date.now();
    const code = await srv.stop('SIGTERM');
    const ms = Date.now() - signalledAt;
    console.log(`--shutdown-timeout 1s: the primary exited ${code} after ${ms} ms`);
    assert.ok(ms < 3500, `the primary exited only ${ms} ms after SIGTERM`);
    // 0 when the drain made it in time, 1 when the timeout killed the rest: either way, it is over.
    assert.ok(code === 0 || code === 1, `exit code ${code}:\n${srv.output()}`);
    await eventually('every worker gone', () => workers.every((pid) => !isAlive(pid)), 2000);
  });
});
