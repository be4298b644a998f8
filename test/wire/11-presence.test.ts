/**
 * Presence (PROTOCOL.md section 6): WATCH answers at once and on every change; online while any device is
 * connected; a replaced session is no change; a session that dies without BYE goes offline at the idle
 * timeout; UNWATCH stops the updates. With several workers the watcher, the watched user's sessions and
 * the watched user's home are on different workers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PresenceFrame } from '../../src/protocol/index.js';
import { startServer } from '../helpers/server-process.js';
import { closeAll, portOf, session, type WireClient } from './harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

describe('presence', () => {
  let server: Server;
  const clients: WireClient[] = [];
  const open = async (user: string, device: string) => {
    const s = await session(portOf(server), user, device);
    clients.push(s.client);
    return s.client;
  };
  const presenceOf = (c: WireClient, user: string, timeoutMs?: number) =>
    c.waitFor((f) => f.type === 'PRESENCE' && f.user === user, timeoutMs) as Promise<PresenceFrame>;
  const bye = async (c: WireClient) => {
    c.send({ type: 'BYE', code: 0, reason: 'done' });
    await c.expectClosed(3000, { allowUnread: true });
  };

  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  it('answers a WATCH at once: offline with since 0 for a user never seen', async () => {
    const w = await open('pr1-watcher', 'phone');
    const t0 = Date.now();
    w.send({ type: 'WATCH', users: ['pr1-nobody'] });
    const p = await presenceOf(w, 'pr1-nobody', 1000);
    assert.deepEqual([p.online, p.since], [0, 0]);
    assert.ok(Date.now() - t0 < 1000);
  });

  it('reports online when the first device connects and offline when the last one leaves', async () => {
    const w = await open('pr2-watcher', 'phone');
    w.send({ type: 'WATCH', users: ['pr2-bob'] });
    assert.equal((await presenceOf(w, 'pr2-bob')).online, 0);

    const before = Date.now();
    const phone = await open('pr2-bob', 'phone');
    const on = await presenceOf(w, 'pr2-bob', 1000);
    assert.equal(on.online, 1);
    assert.ok(on.since >= before - 50 && on.since <= Date.now() + 50, `since ${on.since}`);

    // A second device, and the first one replaced by a new session: no change.
    const laptop = await open('pr2-bob', 'laptop');
    const phone2 = await open('pr2-bob', 'phone');
    await phone.expectError('SESSION_REPLACED');
    await w.expectNothing(500, (f) => f.type === 'PRESENCE');

    await bye(laptop);
    await w.expectNothing(300, (f) => f.type === 'PRESENCE');
    await bye(phone2);
    const off = await presenceOf(w, 'pr2-bob', 1000);
    assert.equal(off.online, 0);
    assert.ok(off.since >= on.since);

    // A later WATCH by someone else gets the time of that last change.
    const w2 = await open('pr2-watcher2', 'phone');
    w2.send({ type: 'WATCH', users: ['pr2-bob'] });
    assert.deepEqual(await presenceOf(w2, 'pr2-bob'), { ...off });
  });

  it('goes offline at the idle timeout when a device dies without BYE', async () => {
    // A server of its own with a 1 s heartbeat: a silent session is cut at 2 s (the idle timeout).
    const idle = await startServer({ args: ['--heartbeat', '1s'] });
    const at = async (user: string) => {
      const s = await session(portOf(idle), user, 'phone');
      clients.push(s.client);
      return s.client;
    };
    const w = await at('pr3-watcher');
    const silent = await at('pr3-bob');
    w.send({ type: 'WATCH', users: ['pr3-bob'] });
    assert.equal((await presenceOf(w, 'pr3-bob')).online, 1);
    // The watcher keeps itself alive; bob sends nothing more.
    const keepAlive = setInterval(() => w.send({ type: 'PING', nonce: 1 }), 300);
    try {
      const off = await presenceOf(w, 'pr3-bob', 6000);
      assert.equal(off.online, 0);
      await silent.waitFor((f) => f.type === 'ERROR', 1000);
    } finally {
      clearInterval(keepAlive);
      await idle.stop();
    }
  });

  it('stops after UNWATCH, and tells each of several watchers on their own sessions', async () => {
    const w1 = await open('pr4-w1', 'phone');
    const w2 = await open('pr4-w2', 'phone');
    w1.send({ type: 'WATCH', users: ['pr4-bob', 'pr4-carol'] });
    w2.send({ type: 'WATCH', users: ['pr4-bob'] });
    await presenceOf(w1, 'pr4-bob');
    await presenceOf(w1, 'pr4-carol');
    await presenceOf(w2, 'pr4-bob');
    w1.send({ type: 'UNWATCH', users: ['pr4-bob'] });
    w1.send({ type: 'PING', nonce: 7 });
    await w1.waitFor('PONG');
    const bob = await open('pr4-bob', 'phone');
    assert.equal((await presenceOf(w2, 'pr4-bob', 1000)).online, 1);
    await open('pr4-carol', 'phone');
    assert.equal((await presenceOf(w1, 'pr4-carol', 1000)).online, 1);
    await w1.expectNothing(300, (f) => f.type === 'PRESENCE' && f.user === 'pr4-bob');
    await bye(bob);
    assert.equal((await presenceOf(w2, 'pr4-bob', 1000)).online, 0);
  });
});
