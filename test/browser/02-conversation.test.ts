/**
 * The web app in Chromium against a real server: alice on a phone, bob on a desktop. They talk both
 * ways (ticks, receipts, typing), bob misses 20 messages while his page is closed (alice sees him go
 * offline and come back) and gets each exactly once, and a message alice sends from a second device
 * shows on her phone as her own.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { SwitchboardClient, TcpTransport } from '../../src/client/index.js';
import { DESKTOP, launchBrowser, PHONE, WEB_ROOT } from '../helpers/browser.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';
import {
  eventually,
  messageField,
  messageRow,
  messageRows,
  messageTexts,
  openConversation,
  sendMessage,
  signIn,
  waitForTick,
} from './app-driver.js';

describe('web app: a conversation between a phone and a desktop', () => {
  let server: ServerProcess;
  let browser: Browser;
  let phone: BrowserContext;
  let desktop: BrowserContext;
  let alice: Page;
  let bob: Page;
  /** Every text of the conversation so far, in order. */
  const said: string[] = [];

  before(async () => {
    [server, browser] = await Promise.all([startServer({ args: ['--web-root', WEB_ROOT] }), launchBrowser()]);
    const baseURL = `http://127.0.0.1:${server.httpPort}`;
    phone = await browser.newContext({ ...PHONE, baseURL });
    desktop = await browser.newContext({ ...DESKTOP, baseURL });
    alice = await phone.newPage();
    bob = await desktop.newPage();
    await Promise.all([alice.goto('/'), bob.goto('/')]);
    await signIn(alice, 'alice', { device: 'phone' });
    await signIn(bob, 'bob', { device: 'desktop' });
    await openConversation(alice, 'bob');
    await openConversation(bob, 'alice');
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** `from` says `text`; both sides show it last. */
  async function say(from: Page, to: Page, text: string): Promise<void> {
    await sendMessage(from, text);
    said.push(text);
    await messageRow(to, text).waitFor();
    await waitForTick(from, text);
  }

  test('alice and bob exchange messages both ways, in order, each ticked once accepted', async () => {
    await say(alice, bob, 'Hi bob! Are you coming tonight?');
    await say(bob, alice, 'Hi alice, yes — at 8.');
    await say(alice, bob, 'Great, see you there 🎉');
    await say(bob, alice, 'Ünïcödé and "quotes" <b>not bold</b>');
    assert.deepEqual(await messageTexts(alice), said);
    assert.deepEqual(await messageTexts(bob), said);
    // Bob has read alice's messages: his device ACKed them, so alice gets receipts (✓✓).
    await messageRow(alice, said[0]!).getByRole('img', { name: 'delivered' }).waitFor();
    // Own messages on the right, the peer's on the left, and no tick on the peer's.
    assert.equal(await messageRow(bob, said[0]!).getByRole('img').count(), 0);
  });

  test("bob's typing shows on alice's phone and clears when his message arrives", async () => {
    await messageField(bob).pressSequentially('On my w', { delay: 20 });
    await alice.getByText('bob is typing…').waitFor({ timeout: 5_000 });
    await messageField(bob).fill('On my way');
    await messageField(bob).press('Enter');
    said.push('On my way');
    await messageRow(alice, 'On my way').waitFor();
    // Cleared by the message, well before the indicator would run out by itself (4 s).
    await alice.getByText('bob is typing…').waitFor({ state: 'hidden', timeout: 1_500 });
    // A typing indicator is never stored as a message.
    assert.deepEqual(await messageTexts(alice), said);
  });

  test('bob closes his page, alice sends 20, bob comes back and sees each once, in order; presence follows', async () => {
    await alice.getByText('online', { exact: true }).waitFor();
    await bob.close();
    // PRESENCE: bob's only device is gone.
    await alice.getByText(/^last seen /).waitFor();
    const missed = Array.from(
      { length: 20 },
      (_, i) => `while you were away ${String(i + 1).padStart(2, '0')}`,
    );
    for (const text of missed) await sendMessage(alice, text);
    for (const text of missed) await waitForTick(alice, text);
    said.push(...missed);

    // A new page in the same browser profile: the remembered sign-in, the kept history.
    bob = await desktop.newPage();
    await bob.goto('/');
    const unread = bob.getByRole('button', { name: /alice/ }).getByText('20 unread');
    await unread.waitFor();
    await alice.getByText('online', { exact: true }).waitFor();
    await bob.getByRole('button', { name: /alice/ }).click();
    await eventually(
      'bob to show the whole conversation',
      () => messageTexts(bob),
      (t) => t.length >= said.length,
    );
    assert.deepEqual(await messageTexts(bob), said);

    // A reload shows the same, from the history kept in IndexedDB (nothing is replayed twice).
    await bob.reload();
    await bob.getByRole('button', { name: /alice/ }).click();
    await eventually(
      'bob to show the conversation again',
      () => messageTexts(bob),
      (t) => t.length >= said.length,
    );
    assert.deepEqual(await messageTexts(bob), said);
  });

  test('a message alice sends from another device shows on her phone as her own', async () => {
    const laptop = await browser.newContext(DESKTOP);
    try {
      const second = await laptop.newPage();
      await second.goto(`http://127.0.0.1:${server.httpPort}/`);
      await signIn(second, 'alice', { device: 'laptop' });
      await openConversation(second, 'bob');
      await sendMessage(second, 'Sent from my laptop');
      await messageRow(alice, 'Sent from my laptop').waitFor();
      assert.match((await messageRow(alice, 'Sent from my laptop').getAttribute('class')) ?? '', /\bmine\b/);
      await messageRow(bob, 'Sent from my laptop').waitFor();
      assert.match((await messageRow(bob, 'Sent from my laptop').getAttribute('class')) ?? '', /\btheirs\b/);
      // The new device got the conversation so far from the inbox.
      assert.deepEqual((await messageTexts(second)).slice(0, said.length), said);
    } finally {
      await laptop.close();
    }
    assert.equal(await messageRows(alice).count(), said.length + 1);
  });

  test('a group: both join through "To", and each message shows who wrote it', async () => {
    await openConversation(alice, '#crew');
    await openConversation(bob, '#crew');
    await sendMessage(alice, 'Hello crew');
    await messageRow(bob, 'Hello crew').getByText('alice', { exact: true }).waitFor();
    await waitForTick(alice, 'Hello crew');
    await sendMessage(bob, 'Hi all');
    await messageRow(alice, 'Hi all').getByText('bob', { exact: true }).waitFor();
    assert.deepEqual(await messageTexts(alice), ['Hello crew', 'Hi all']);
  });

  test('a payload that is not UTF-8 shows as hex', async () => {
    const carol = new SwitchboardClient({
      endpoint: server.endpoint,
      user: 'carol',
      device: 'cli',
      transport: new TcpTransport(),
    });
    await carol.start();
    try {
      await carol.send('alice', Uint8Array.from([0xff, 0xfe, 0x00, 0x41]));
    } finally {
      await carol.close();
    }
    await alice.getByRole('button', { name: 'Back to conversations' }).click();
    await alice.getByRole('button', { name: /carol/ }).click();
    await messageRow(alice, 'ff fe 00 41').waitFor();
  });
});
