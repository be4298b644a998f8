/**
 * --max-connections with several workers (src/cli/commands/serve.ts workerShare): each worker holds its
 * share of the cap, so with --workers 2 --max-connections 10 the server never holds more than 10 sessions;
 * the 11th and later connections get ERROR SERVER_FULL (a reconnect delay in 0–10 s) and are closed, and a
 * freed place can be taken again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ErrorCode } from '../../src/protocol/index.js';
import { eventually, openSession, type Placed } from '../helpers/cluster.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';
import { closeAll, connect, sleep, type WireClient } from '../wire/harness.js';

const CAP = 10;
/** An address of its own, so every connection the server counts is this test's (wire/05-limits.test.ts). */
const HOST = '127.0.0.78';

describe('cluster: --workers 2 --max-connections 10', () => {
  let server: ServerProcess | undefined;
  const clients: WireClient[] = [];

  before(async () => {
    server = await startServer({ workers: 2, args: ['--max-connections', String(CAP)], host: HOST });
  });
  after(async () => {
    await closeAll(clients);
    await server?.stop();
  });

  /** Opens a connection and says HELLO: the WELCOME, or the ERROR that came instead. */
  async function attempt(
    port: number,
    user: string,
  ): Promise<{ client: WireClient; welcome?: Placed['welcome']; error?: { code: number; ref: number } }> {
    const client = await connect(port, user, { timeoutMs: 10_000, host: HOST });
    clients.push(client);
    client.sendHello(user, 'd');
    const first = await client.waitFor(() => true, 10_000);
    if (first.type === 'WELCOME') return { client, welcome: first };
    if (first.type === 'ERROR') return { client, error: { code: first.code, ref: first.ref } };
    throw new Error(`[${user}] got ${first.type} instead of WELCOME or ERROR`);
  }

  it('at most 10 sessions; the 11th and later get SERVER_FULL; a freed place is taken again', async () => {
    const port = server!.port;
    // Ten, one after the other: the primary's round-robin gives each worker its share of five.
    const held: Placed[] = [];
    for (let i = 0; i < CAP; i++) held.push(await openSession(port, `mc-u${i}`, 'd', { host: HOST }));
    clients.push(...held.map((p) => p.client));
    const byNode = new Map<string, number>();
    for (const p of held) byNode.set(p.welcome.node, (byNode.get(p.welcome.node) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries([...byNode].sort()), { w1: CAP / 2, w2: CAP / 2 });

    // More, all at once: every one is turned away, and nothing is held beyond the cap.
    const extra = await Promise.all(Array.from({ length: 10 }, (_, i) => attempt(port, `mc-x${i}`)));
    for (const [i, r] of extra.entries()) {
      assert.equal(
        r.welcome,
        undefined,
        `mc-x${i} got a session beyond the cap of ${CAP} (on ${r.welcome?.node})`,
      );
      assert.equal(r.error?.code, ErrorCode.SERVER_FULL, `mc-x${i}: ${JSON.stringify(r.error)}`);
      assert.ok(r.error!.ref >= 0 && r.error!.ref <= 10_000, `mc-x${i}: reconnect delay ${r.error!.ref}`);
      await r.client.expectClosed(3000, { allowUnread: true });
    }
    // The ten are still served.
    await Promise.all(held.map((p) => p.client.ping()));

    // Every place freed: ten new sessions fit again, and the eleventh does not.
    await closeAll(held.map((p) => p.client));
    const again: WireClient[] = [];
    for (let i = 0; i < CAP; i++) {
      // The server notices a close a moment after the client makes it: retry a refused one briefly.
      const p = await eventually(
        `session ${i} after the places were freed`,
        async () => {
          const r = await attempt(port, `mc-again${i}`);
          if (r.welcome) return r;
          await sleep(50);
          return undefined;
        },
        5000,
        0,
      );
      again.push(p.client);
    }
    const over = await attempt(port, 'mc-over');
    assert.equal(
      over.error?.code,
      ErrorCode.SERVER_FULL,
      `the 11th: ${JSON.stringify(over.error ?? over.welcome)}`,
    );
  });
});
