/**
 * The service worker: keeps the app shell (index.html, the bundle, the styles, the icons) so the app
 * opens without a network. The page itself is fetched network-first (a new build shows at once when
 * the server is reachable); the other shell files have content-hashed names and are served from the
 * cache. Nothing else is touched: not the WebSocket endpoint /sbp, not /healthz, not other origins.
 */

/** Set by scripts/build-web.mjs: the shell's URL paths, and a hash of their contents. */
declare const SHELL_FILES: string[];
declare const BUILD_VERSION: string;

const worker = self as unknown as ServiceWorkerGlobalScope;
const CACHE_PREFIX = 'switchboard-shell-';
const CACHE = CACHE_PREFIX + BUILD_VERSION;
const INDEX = '/';
/** How long the page may take from the network before the cached one is shown, ms. */
const NETWORK_WAIT_MS = 4_000;

worker.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL_FILES))
      .then(() => worker.skipWaiting()),
  );
});

worker.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) =>
        Promise.all(
          keys.filter((k) => k.startsWith(CACHE_PREFIX) && k !== CACHE).map((k) => caches.delete(k)),
        ),
      )
      .then(() => worker.clients.claim()),
  );
});

worker.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== worker.location.origin) return;
  if (request.mode === 'navigate' && (url.pathname === INDEX || url.pathname === '/index.html')) {
    event.respondWith(pageFirstFromNetwork(request));
    return;
  }
  if (SHELL_FILES.includes(url.pathname)) event.respondWith(fromCache(request));
});

async function pageFirstFromNetwork(request: Request): Promise<Response> {
  const cache = await caches.open(CACHE);
  try {
    const response = await withTimeout(fetch(request), NETWORK_WAIT_MS);
    if (response.ok) await cache.put(INDEX, response.clone());
    return response;
  } catch (err) {
    const cached = await cache.match(INDEX);
    if (cached) return cached;
    throw err;
  }
}

async function fromCache(request: Request): Promise<Response> {
  const cached = await caches.match(request, { ignoreSearch: true });
  return cached ?? fetch(request);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

export {};
