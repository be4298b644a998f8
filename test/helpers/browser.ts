/**
 * Chromium for the browser tests and the screenshots: Debian's /usr/bin/chromium driven by
 * playwright-core, headless, with a fresh profile per launch (Playwright makes it in a temp folder and
 * removes it on close). Two device profiles: a phone and a desktop.
 */
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContextOptions, chromium } from 'playwright-core';

/** The documented Debian browser path (scripts/test.sh installs the package). */
export const CHROMIUM = '/usr/bin/chromium';

/** The built web client, dist/web (this file runs from dist/test/helpers/). */
export const WEB_ROOT = fileURLToPath(new URL('../../web', import.meta.url));

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
}

/** A phone: 390 × 844 CSS pixels, touch, a mobile user agent. */
export const PHONE: BrowserContextOptions = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 3,
  isMobile: true,
  hasTouch: true,
  userAgent:
    'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36',
};

/** A desktop browser window: 1280 × 800. */
export const DESKTOP: BrowserContextOptions = {
  viewport: { width: 1280, height: 800 },
  deviceScaleFactor: 1,
};
