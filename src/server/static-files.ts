/**
 * Serves the built web client (dist/web) on the HTTP port: GET and HEAD of files under one root,
 * `/` as index.html. Files are read once and kept in memory (the whole app is a few hundred KiB), so a
 * request never waits on the disk and never blocks the loop. Paths are resolved against the root and
 * anything outside it (or a dotfile) is a 404.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, relative, sep } from 'node:path';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/** Most a root may hold: the web client is small; a wrong --web-root (a home folder) must not be loaded. */
const MAX_TOTAL_BYTES = 32 * 1024 * 1024;

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

/** A request handler for the files under `root`; it answers and returns true, or returns false (not ours). */
export type StaticHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export function staticFiles(root: string): StaticHandler {
  const files = loadTree(root);
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const path = pathOf(req.url);
    if (path === null) return false;
    const file = files.get(path === '/' ? '/index.html' : path);
    if (!file) return false;
    const headers: Record<string, string> = {
      'content-type': file.type,
      'content-length': String(file.body.length),
      etag: file.etag,
      'x-content-type-options': 'nosniff',
      // The page and its worker must always be checked again (a new build is picked up on reload);
      // the bundles are small, so everything is revalidated with its ETag rather than cached for long.
      'cache-control': 'no-cache',
    };
    if (file.type.startsWith('text/html')) {
      headers['content-security-policy'] =
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; " +
        "script-src 'self'; manifest-src 'self'; worker-src 'self'; base-uri 'none'; frame-ancestors 'none'";
      headers['referrer-policy'] = 'no-referrer';
    }
    if (req.headers['if-none-match'] === file.etag) {
      res.writeHead(304, { etag: file.etag, 'cache-control': headers['cache-control']! }).end();
      return true;
    }
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : file.body);
    return true;
  };
}

/** The decoded path of a request URL, or null when it is not a plain absolute path. */
function pathOf(url: string | undefined): string | null {
  if (!url?.startsWith('/')) return null;
  const q = url.search(/[?#]/);
  let path = q < 0 ? url : url.slice(0, q);
  try {
    path = decodeURIComponent(path);
  } catch {
    return null;
  }
  return path.includes('\0') ? null : path;
}

/** Every regular file under `root` (no dotfiles), keyed by its URL path. A missing root serves nothing. */
function loadTree(root: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  let total = 0;
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names.sort()) {
      if (name.startsWith('.')) continue;
      const full = join(dir, name);
      const st = statSync(full);
      if (st.isDirectory()) {
        walk(full);
        continue;
      }
      if (!st.isFile()) continue;
      total += st.size;
      if (total > MAX_TOTAL_BYTES)
        throw new Error(`web root ${root} holds more than 32 MiB: not the web client`);
      const body = readFileSync(full);
      const url = `/${relative(root, full).split(sep).join('/')}`;
      const type = CONTENT_TYPES[extname(name)] ?? 'application/octet-stream';
      files.set(url, {
        body,
        type,
        etag: `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`,
      });
    }
  };
  walk(root);
  return files;
}
