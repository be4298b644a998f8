/**
 * Drives the web app the way a user does, finding everything by its accessible role or label: shared by
 * the browser tests and the screenshots script.
 */
import type { Locator, Page } from 'playwright-core';

export interface SignInOptions {
  device?: string;
  token?: string;
}

/** Fills the sign-in form and submits it (the result — the chat or an error — is the caller's to see). */
export async function submitSignIn(page: Page, user: string, options: SignInOptions = {}): Promise<void> {
  await page.getByLabel('User', { exact: true }).fill(user);
  if (options.device) await page.getByLabel('Device', { exact: true }).fill(options.device);
  if (options.token) await page.getByLabel('Token', { exact: true }).fill(options.token);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

/** Signs in and waits for the chat. */
export async function signIn(page: Page, user: string, options: SignInOptions = {}): Promise<void> {
  await submitSignIn(page, user, options);
  await toField(page).waitFor();
}

export function toField(page: Page): Locator {
  return page.getByLabel('To', { exact: true });
}

export function messageField(page: Page): Locator {
  return page.getByLabel('Message', { exact: true });
}

/** Opens the conversation with a user or a #group through the "To" field (on a phone, from the list). */
export async function openConversation(page: Page, to: string): Promise<void> {
  const back = page.getByRole('button', { name: 'Back to conversations' });
  if (await back.isVisible()) await back.click();
  await toField(page).fill(to);
  await toField(page).press('Enter');
  await page.getByRole('heading', { name: to, exact: true }).waitFor();
}

/** Types a message and sends it with Enter. */
export async function sendMessage(page: Page, text: string): Promise<void> {
  await messageField(page).fill(text);
  await messageField(page).press('Enter');
}

/** The rows of the open conversation's message log. */
export function messageRows(page: Page): Locator {
  return page.getByRole('log').getByRole('article');
}

/** The row of the message with exactly this text. */
export function messageRow(page: Page, text: string): Locator {
  return messageRows(page).filter({ has: page.getByText(text, { exact: true }) });
}

/** The texts of the open conversation, in the order shown. */
export function messageTexts(page: Page): Promise<string[]> {
  return messageRows(page).getByRole('paragraph').allInnerTexts();
}

/** Waits until the row of `text` shows a tick (✓ accepted, or ✓✓ received). */
export async function waitForTick(page: Page, text: string, timeout = 10_000): Promise<void> {
  await messageRow(page, text)
    .getByRole('img', { name: /^(sent|delivered)$/ })
    .waitFor({ timeout });
}

/** Polls `read` until `ok` accepts its value; throws with the last value after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  read: () => Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
