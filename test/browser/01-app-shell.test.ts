/**
 * The app shell as the server serves it: index.html under a self-only CSP, the manifest and the service
 * worker with their content types, icons of the sizes the manifest claims, no way out of the web root;
 * and in Chromium the page runs under that CSP without an error and installs its service worker.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, PHONE, WEB_ROOT } from '../helpers/browser.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';
import { openConversation, sendMessage, signIn, waitForTick } from './app-driver.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A GET with the path sent exactly as given (fetch would normalise `..` away). */
function get(port: number, rawPath: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: rawPath, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.on('error', reject);
  });
}

/** Width and height from a PNG's IHDR. */
function pngSize(png: Buffer): [number, number] {
  assert.equal(png.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', 'a PNG signature');
  assert.equal(png.subarray(12, 16).toString('ascii'), 'IHDR');
  return [png.readUInt32BE(16), png.readUInt32BE(20)];
}

describe('web app: the shell', () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServer({ args: ['--web-root', WEB_ROOT] });
  });

  after(async () => {
    await server?.stop();
  });

  test('GET / serves index.html with a self-only CSP, and its script and styles', async () => {
    const page = await get(server.httpPort, '/');
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    const html = page.body.toString();
    assert.match(html, /<title>Switchboard<\/title>/);
    const script = /<script type="module" src="(\/app-[\w-]+\.js)">/.exec(html)?.[1];
    const style = /<link rel="stylesheet" href="(\/style-[\w-]+\.css)"/.exec(html)?.[1];
    assert.ok(script && style, 'index.html names the bundle and the styles');
    const [js, css] = await Promise.all([get(server.httpPort, script), get(server.httpPort, style)]);
    assert.equal(js.status, 200);
    assert.match(String(js.headers['content-type']), /^text\/javascript/);
    assert.equal(css.status, 200);
    assert.match(String(css.headers['content-type']), /^text\/css/);
  });

  test('the manifest and the service worker have their content types; the icons their sizes', async () => {
    const manifest = await get(server.httpPort, '/manifest.webmanifest');
    assert.equal(manifest.status, 200);
    assert.match(String(manifest.headers['content-type']), /^application\/manifest\+json/);
    const m = JSON.parse(manifest.body.toString()) as {
      name: string;
      short_name: string;
      start_url: string;
      display: string;
      theme_color: string;
      icons: { src: string; sizes: string; type: string }[];
    };
    assert.equal(m.display, 'standalone');
    assert.equal(m.start_url, '/');
    assert.ok(m.name && m.short_name && m.theme_color);
    const pngs = m.icons.filter((i) => i.type === 'image/png');
    for (const size of ['192x192', '512x512'])
      assert.ok(
        pngs.some((i) => i.sizes === size),
        `a ${size} PNG`,
      );
    for (const icon of pngs) {
      const png = await get(server.httpPort, icon.src);
      assert.equal(png.status, 200, icon.src);
      assert.equal(png.headers['content-type'], 'image/png');
      assert.equal(pngSize(png.body).join('x'), icon.sizes, icon.src);
    }

    const sw = await get(server.httpPort, '/sw.js');
    assert.equal(sw.status, 200);
    assert.match(String(sw.headers['content-type']), /^text\/javascript/);
    assert.doesNotMatch(sw.body.toString(), /"\/sbp"/, 'the endpoint is not among the cached files');
  });

  test('a path that leaves the web root is a 404', async () => {
    for (const path of [
      '/../package.json',
      '/%2e%2e/package.json',
      '/..%2fpackage.json',
      '/icons/../../package.json',
      '/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
      '/.tsbuildinfo',
    ]) {
      const reply = await get(server.httpPort, path);
      assert.equal(reply.status, 404, path);
    }
  });

  test('in Chromium the app runs under its CSP without errors and installs its service worker', async () => {
    const browser = await launchBrowser();
    try {
      const context = await browser.newContext({ ...PHONE, baseURL: `http://127.0.0.1:${server.httpPort}` });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
      page.on('pageerror', (e) => problems.push(e.message));
      await page.goto('/');
      await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
      const scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
      assert.equal(scope, `http://127.0.0.1:${server.httpPort}/`);
      // The chat too renders under the CSP (no inline styles or scripts anywhere).
      await signIn(page, 'alice');
      await openConversation(page, 'alice');
      await sendMessage(page, 'a note to self');
      await waitForTick(page, 'a note to self');
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });
});
