import type { ChildProcess } from 'node:child_process';

/**
 * Calls `settled` once a forked generator has exited. 'exit' can come before the child's last IPC
 * messages (its report) have been read, so a clean exit (code 0) without a report yet waits a moment
 * for it; `reported` says whether the report has arrived.
 */
export function onGeneratorExit(
  child: ChildProcess,
  reported: () => boolean,
  settled: (code: number | null, signal: NodeJS.Signals | null) => void,
): void {
  child.once('exit', (code, signal) => {
    if (!reported() && code === 0) setTimeout(() => settled(code, signal), 250);
    else settled(code, signal);
  });
}
