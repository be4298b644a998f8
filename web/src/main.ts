/** Entry point: the app, and the service worker that lets it open without a network. */
import { App } from './app.js';

// Service workers exist only in secure contexts (https, or localhost): over plain http on a LAN address
// the app still works, it just does not open offline.
if ('serviceWorker' in navigator) {
  navigator.serviceWorker
    .register('/sw.js')
    .catch((err) => console.warn('switchboard: no offline shell', err));
}

new App().start();
