/**
 * Writing while the server is out of reach. The server is killed (so the WebSocket really drops —
 * Chromium's offline emulation would keep it open), alice writes, and reloads the page: with the
 * server gone the service worker serves the app shell from its cache, and the app shows the unsent
 * message from IndexedDB. The server is restarted on the same ports and data; the message goes out
 * once alice is reconnected, and bob gets it exactly once.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { DESKTOP, launchBrowser, PHONE, WEB_ROOT } from '../helpers/browser.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';
import {
  messageRow,
  messageTexts,
  openConversation,
  sendMessage,
  signIn,
  waitForTick,
} from './app-driver.js';

describe('web app: a message written while the server is unreachable', () => {
  let dataDir: string;
  let server: ServerProcess;
  let browser: Browser;
  let alice: Page;
  let bob: Page;

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-browser-offline-'));
    [server, browser] = await Promise.all([
      startServer({ args: ['--web-root', WEB_ROOT], dataDir }),
      launchBrowser(),
    ]);
    const baseURL = `http://127.0.0.1:${server.httpPort}`;
    alice = await (await browser.newContext({ ...PHONE, baseURL })).newPage();
    bob = await (await browser.newContext({ ...DESKTOP, baseURL })).newPage();
    await Promise.all([alice.goto('/'), bob.goto('/')]);
    await signIn(alice, 'alice', { device: 'phone' });
    await signIn(bob, 'bob', { device: 'desktop' });
    await openConversation(alice, 'bob');
    await openConversation(bob, 'alice');
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('it survives a reload from the offline shell and reaches bob exactly once', async () => {
    await sendMessage(alice, 'Before the outage');
    await messageRow(bob, 'Before the outage').waitFor();
    // The shell is cached once the service worker is active.
    await alice.evaluate(async () => {
      await navigator.serviceWorker.ready;
    });

    await server.kill9();
    await alice.getByRole('status').getByText("Can't reach the server. Retrying…").waitFor();
    await sendMessage(alice, 'Written during the outage');
    await messageRow(alice, 'Written during the outage').getByText('sending…').waitFor();

    // No server: the page comes from the service worker's cache, the message from IndexedDB.
    await alice.reload();
    await messageRow(alice, 'Written during the outage').getByText('sending…').waitFor();
    assert.deepEqual(await messageTexts(alice), ['Before the outage', 'Written during the outage']);

    server = await startServer({
      args: ['--web-root', WEB_ROOT],
      dataDir,
      port: server.port,
      httpPort: server.httpPort,
    });
    await waitForTick(alice, 'Written during the outage', 20_000);
    await messageRow(bob, 'Written during the outage').waitFor({ timeout: 20_000 });
    assert.equal(await alice.getByRole('status').isVisible(), false, 'the banner is gone');

    // Exactly once: now, after a moment for any second copy to arrive, and after a reload.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.deepEqual(await messageTexts(bob), ['Before the outage', 'Written during the outage']);
    // Alice's pending entry and her own copy from the server are one message.
    assert.deepEqual(await messageTexts(alice), ['Before the outage', 'Written during the outage']);
    await bob.reload();
    await messageRow(bob, 'Written during the outage').waitFor();
    assert.deepEqual(await messageTexts(bob), ['Before the outage', 'Written during the outage']);
  });
});
