/**
 * Signing in to a server that requires tokens: a wrong token is a clear error on the form and no
 * reconnect loop; a good one gets in, a reload goes straight back in, and "Sign out" comes back out.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext } from 'playwright-core';
import { signToken } from '../../src/server/auth.js';
import { launchBrowser, PHONE, WEB_ROOT } from '../helpers/browser.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';
import { signIn, submitSignIn, toField } from './app-driver.js';

const SECRET = 'browser-test-secret';

describe('web app: signing in with tokens', () => {
  let server: ServerProcess;
  let browser: Browser;
  let context: BrowserContext;

  before(async () => {
    [server, browser] = await Promise.all([
      startServer({ args: ['--web-root', WEB_ROOT, '--auth-secret', SECRET] }),
      launchBrowser(),
    ]);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('a wrong token shows a clear sign-in error and the app does not retry', async () => {
    context = await browser.newContext({ ...PHONE, baseURL: `http://127.0.0.1:${server.httpPort}` });
    const page = await context.newPage();
    let sockets = 0;
    page.on('websocket', () => sockets++);
    await page.goto('/');
    const wrong = await signToken('another-secret', 'alice', 60_000);
    await submitSignIn(page, 'alice', { token: wrong });
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match((await alert.textContent()) ?? '', /did not accept this token for "alice"/);
    assert.equal(await page.getByLabel('User', { exact: true }).inputValue(), 'alice');
    // A reconnect loop would open more WebSockets; the client stopped after UNAUTHORIZED.
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(sockets, 1);
    assert.equal(await toField(page).count(), 1);
    assert.equal(await toField(page).isVisible(), false, 'still on the sign-in form');
    await context.close();
  });

  test('a good token signs in; a reload goes straight back in; Sign out leaves', async () => {
    context = await browser.newContext({ ...PHONE, baseURL: `http://127.0.0.1:${server.httpPort}` });
    const page = await context.newPage();
    await page.goto('/');
    await signIn(page, 'alice', { token: await signToken(SECRET, 'alice', 60_000) });
    await page.reload();
    await toField(page).waitFor();
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
    await page.reload();
    await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
    assert.equal(await toField(page).isVisible(), false);
    await context.close();
  });
});
