/**
 * Builds the web client into dist/web/, which `switchboard serve` serves at / (--web-root):
 * the app bundle and the styles under content-hashed names (minified, with source maps), index.html
 * pointing at them, the service worker with the list of shell files to keep offline, the manifest and
 * the icons (drawn here, as PNG and SVG). Run by `npm run build` after the type-checks.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { iconPng, iconSvg } from '../web/icons/icon.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = path.join(root, 'dist', 'web');

/** Browsers of the last few years; the app needs ES2022, IndexedDB and WebSocket. */
const COMMON = {
  absWorkingDir: root,
  bundle: true,
  minify: true,
  sourcemap: true,
  target: ['es2022', 'chrome100', 'firefox100', 'safari15.4'],
  legalComments: 'none',
  logLevel: 'warning',
};

const ICONS = {
  'icons/icon.svg': () => iconSvg(),
  'icons/icon-192.png': () => iconPng(192),
  'icons/icon-512.png': () => iconPng(512),
  'icons/icon-maskable-512.png': () => iconPng(512, { square: true }),
  // iOS rounds the corners itself.
  'icons/apple-touch-icon.png': () => iconPng(180, { square: true }),
};

await rm(out, { recursive: true, force: true });
await mkdir(path.join(out, 'icons'), { recursive: true });

const app = await build({
  ...COMMON,
  entryPoints: { app: 'web/src/main.ts', style: 'web/styles.css' },
  entryNames: '[name]-[hash]',
  outdir: out,
  format: 'esm',
  metafile: true,
});
const bundled = (entry) => {
  const [file] = Object.entries(app.metafile.outputs).find(([, o]) => o.entryPoint === entry) ?? [];
  if (!file) throw new Error(`esbuild wrote no output for ${entry}`);
  return path.basename(file);
};
const appFile = bundled('web/src/main.ts');
const styleFile = bundled('web/styles.css');

const html = (await readFile(path.join(root, 'web', 'index.html'), 'utf8'))
  .replace('%APP%', appFile)
  .replace('%STYLE%', styleFile);
const written = {
  'index.html': html,
  'manifest.webmanifest': await readFile(path.join(root, 'web', 'manifest.webmanifest'), 'utf8'),
};
for (const [file, draw] of Object.entries(ICONS)) written[file] = draw();
for (const [file, body] of Object.entries(written)) await writeFile(path.join(out, file), body);

// The service worker keeps these; its version changes whenever one of them does, so a new build
// replaces the old cache. index.html is kept as "/", the URL the app opens at.
const shell = [
  '/',
  `/${appFile}`,
  `/${styleFile}`,
  ...Object.keys(written)
    .filter((f) => f !== 'index.html')
    .map((f) => `/${f}`),
];
const hash = createHash('sha256').update(JSON.stringify(shell));
for (const body of Object.values(written)) hash.update(body);
const version = hash.digest('hex').slice(0, 12);
await build({
  ...COMMON,
  entryPoints: ['web/src/sw.ts'],
  outfile: path.join(out, 'sw.js'),
  format: 'iife',
  define: { SHELL_FILES: JSON.stringify(shell), BUILD_VERSION: JSON.stringify(version) },
});

console.log(`web client: dist/web (${appFile}, ${styleFile}, sw.js, shell ${version})`);
