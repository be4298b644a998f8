/**
 * A generator process of `switchboard bench throughput --processes P` (forked by the parent, talks to
 * it over IPC): runs one `LoadRun` over its own users, which send only to each other, so every
 * message's latency is read on this process's one clock. Connects on 'connect', starts the warm-up on
 * 'go' (the parent sends it to every generator at once), reports its deliveries once a second, and its
 * result (the latency histogram encoded) at the end, then exits. It exits as soon as its parent is gone.
 * It never writes to stdout.
 */
import { encodeHistogram } from './latency.js';
import { type LoadConfig, type LoadProgress, type LoadResult, LoadRun } from './throughput.js';

export type ToLoadWorker = { type: 'connect'; config: LoadConfig; label: string } | { type: 'go' };

/** A LoadResult with its histogram as HdrHistogram's compressed base64. */
export type EncodedLoadResult = Omit<LoadResult, 'histogram'> & { histogram: string };

export type FromLoadWorker =
  | { type: 'ready' }
  | { type: 'connected'; sessionsByNode: Record<string, number> }
  | { type: 'progress'; progress: LoadProgress }
  | { type: 'done'; result: EncodedLoadResult }
  | { type: 'failed'; message: string };

function send(message: FromLoadWorker, then?: () => void): void {
  if (!process.connected) {
    then?.();
    return;
  }
  process.send!(message, undefined, undefined, () => then?.());
}

let load: LoadRun | null = null;
let label = '';

async function go(): Promise<void> {
  if (!load) return;
  const r = await load.run({ label, onSecond: (progress) => send({ type: 'progress', progress }) });
  await new Promise<void>((resolve) =>
    send({ type: 'done', result: { ...r, histogram: encodeHistogram(r.histogram) } }, resolve),
  );
  await load.close();
  process.exit(0);
}

process.on('message', (m: ToLoadWorker) => {
  switch (m.type) {
    case 'connect':
      if (load) return;
      label = m.label;
      LoadRun.connect(m.config, m.label, true).then(
        (l) => {
          load = l;
          send({ type: 'connected', sessionsByNode: l.sessionsByNode });
        },
        (err: unknown) =>
          send({ type: 'failed', message: err instanceof Error ? err.message : String(err) }, () =>
            process.exit(1),
          ),
      );
      return;
    case 'go':
      go().catch((err: unknown) =>
        send({ type: 'failed', message: err instanceof Error ? err.message : String(err) }, () =>
          process.exit(1),
        ),
      );
      return;
  }
});

process.on('SIGINT', () => {}); // The parent orchestrates the end.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
