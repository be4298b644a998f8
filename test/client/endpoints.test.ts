/**
 * A client given several endpoints (a fleet of nodes): it starts at a random one, moves to another when
 * a connection fails, and when its server shuts down (SHUTTING_DOWN) it comes back on another node,
 * re-sending what was not yet ACCEPTED. Two real server processes on one data folder stand in for two
 * nodes (one at a time holds the folder: the second starts once the first has stopped).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { MemoryStorage, SwitchboardClient, TcpTransport } from '../../src/client/index.js';
import { freePort, type ServerProcess, startServer } from '../helpers/server-process.js';

describe('several endpoints', () => {
  const clients: SwitchboardClient[] = [];
  const servers: ServerProcess[] = [];
  const client = (endpoints: string[]) => {
    const c = new SwitchboardClient({
      endpoints,
      user: `ep-${clients.length}`,
      device: 'phone',
      transport: new TcpTransport({ connectTimeoutMs: 2_000 }),
      storage: new MemoryStorage(),
      backoff: { initialMs: 50, maxMs: 200 },
    });
    clients.push(c);
    return c;
  };
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    for (const s of servers) await s.stop();
  });

  test('starts at a random endpoint and moves past one that refuses', async () => {
    const server = await startServer();
    servers.push(server);
    const dead = `127.0.0.1:${await freePort()}`;
    let startedAtDead = 0;
    let startedAtLive = 0;
    for (let i = 0; i < 20; i++) {
      const c = client([dead, server.endpoint]);
      let retried = false;
      c.on('reconnecting', () => {
        retried = true;
      });
      const info = await c.start();
      assert.equal(info.endpoint, server.endpoint);
      if (retried) startedAtDead++;
      else startedAtLive++;
      await c.close();
    }
    // 20 clients all starting at the same endpoint would happen once in half a million runs.
    assert.ok(startedAtDead > 0 && startedAtLive > 0, `${startedAtDead} started at the dead one`);
  });

  test('after SHUTTING_DOWN it reconnects to the other node and re-sends', async () => {
    const first = await startServer();
    servers.push(first);
    const secondPort = await freePort();
    // Only the first node is up: whichever endpoint it picks, it ends on the first.
    const c = client([first.endpoint, `127.0.0.1:${secondPort}`]);
    assert.equal((await c.start()).endpoint, first.endpoint);
    const moved = new Promise<string>((resolve) =>
      c.on('connected', (i) => {
        if (i.endpoint !== first.endpoint) resolve(i.endpoint);
      }),
    );
    servers.push(await startServer({ port: secondPort }));
    await first.stop();
    assert.equal(await moved, `127.0.0.1:${secondPort}`);
    const r = await c.send(c.user, 'after the move');
    assert.ok(r.clientMsgId > 0);
  });
});
