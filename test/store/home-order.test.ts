/**
 * A home keeps a device's messages to an inbox in send order through a failed append: an append that
 * reaches it after an earlier one from the same device to the same inbox failed is refused until the
 * failed one comes again (appends from another worker can arrive before the sender has heard).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { Home, type WorkerSink } from '../../src/server/home.js';
import { type AppendRequest, StoreUnavailableError } from '../../src/store/inbox-store.js';
import { openFillableStore } from '../helpers/sqlite-store.js';

/** The home's announcements go nowhere: no sessions in this test. */
const noSessions: WorkerSink = { stored() {}, ephemeral() {}, replace() {}, presence() {} };

function copy(clientMsgId: number, fromDevice: string, payload: Uint8Array): AppendRequest {
  return { inbox: 'bob', from: 'alice', fromDevice, clientMsgId, to: 'bob', payload, timestamp: Date.now() };
}

describe('Home: appends after a failed one', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'switchboard-home-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a device’s later appends to the inbox until the failed one comes again, then keeps send order', async () => {
    // At most ~0.5 MiB: a 600 KiB payload fails (SQLITE_FULL), small ones fit.
    const store = await openFillableStore(dir);
    let now = 1_000_000;
    const home = new Home(store, noSessions, () => now);
    const small = new Uint8Array([1, 2, 3]);
    try {
      await home.append([copy(1, 'phone', small)]);
      await assert.rejects(
        home.append([copy(2, 'phone', new Uint8Array(600 * 1024))]),
        StoreUnavailableError,
      );
      // Message 3 from the same device reaches the home before the sender has heard: refused, not stored.
      await assert.rejects(home.append([copy(3, 'phone', small)]), /message 2 .* failed/);
      // Another device of the sender is not held back.
      assert.equal((await home.append([copy(9, 'laptop', small)]))[0]?.status, 'stored');
      // The failed one again (smaller this time), then the later one: in send order.
      assert.equal((await home.append([copy(2, 'phone', small)]))[0]?.status, 'stored');
      assert.equal((await home.append([copy(3, 'phone', small)]))[0]?.status, 'stored');
      assert.deepEqual(
        (await store.read('bob', 0, 10)).map((m) => `${m.fromDevice} ${m.clientMsgId}`),
        ['phone 1', 'laptop 9', 'phone 2', 'phone 3'],
      );
      // A failure that is never followed by its re-send holds the device back only for a while.
      await assert.rejects(
        home.append([copy(4, 'phone', new Uint8Array(600 * 1024))]),
        StoreUnavailableError,
      );
      await assert.rejects(home.append([copy(5, 'phone', small)]), /message 4 .* failed/);
      now += 6_000;
      assert.equal((await home.append([copy(5, 'phone', small)]))[0]?.status, 'stored');
    } finally {
      await store.close();
    }
  });
});
