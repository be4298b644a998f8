/**
 * A generator process of `switchboard bench connections` (forked by the parent, talks to it over IPC):
 * waits for its config, connects its share of the clients, reports its counters once a second, and on
 * the close order reports how many it held, closes them all and exits. It exits as soon as its parent
 * is gone, so an interrupted bench leaves nothing behind. It never writes to stdout.
 */
import { Generator } from './generator.js';
import type { ChildMessage, ParentMessage } from './messages.js';

/** After BYE the server closes each connection; what is still open after this is destroyed. */
const CLOSE_GRACE_MS = 5_000;

function send(message: ChildMessage, then?: () => void): void {
  if (!process.connected) {
    then?.();
    return;
  }
  process.send!(message, undefined, undefined, () => then?.());
}

let generator: Generator | null = null;
let reporter: NodeJS.Timeout | null = null;

function report(): void {
  if (generator) send({ type: 'progress', stats: generator.stats });
}

async function closeAndExit(): Promise<void> {
  if (reporter) clearInterval(reporter);
  const gen = generator;
  const openAtClose = gen?.stats.open ?? 0;
  if (gen) await gen.closeAll(CLOSE_GRACE_MS);
  const cpu = process.cpuUsage();
  const stats = gen?.stats ?? null;
  if (stats) {
    send({ type: 'done', openAtClose, stats, cpuSeconds: (cpu.user + cpu.system) / 1e6 }, () =>
      process.exit(0),
    );
  } else {
    process.exit(0);
  }
}

process.on('message', (message: ParentMessage) => {
  switch (message.type) {
    case 'start':
      if (generator) return;
      try {
        generator = new Generator(message.config);
      } catch (err) {
        send({ type: 'fatal', message: err instanceof Error ? err.message : String(err) }, () =>
          process.exit(1),
        );
        return;
      }
      reporter = setInterval(report, 1000);
      generator.start(report);
      return;
    case 'stop-connecting':
      generator?.stopConnecting();
      return;
    case 'close':
      void closeAndExit();
      return;
  }
});

// The parent orchestrates the end; Ctrl-C reaches the whole process group, so leave it to the parent.
process.on('SIGINT', () => {});
process.on('disconnect', () => {
  generator?.destroyAll();
  process.exit(0);
});
process.on('uncaughtException', (err) => {
  send({ type: 'fatal', message: err.stack ?? err.message }, () => process.exit(1));
  setTimeout(() => process.exit(1), 1000).unref();
});

send({ type: 'ready', pid: process.pid });
