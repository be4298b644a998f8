import { type ChildProcess, fork } from 'node:child_process';

/**
 * Forks a generator process. No inherited node flags (a test runner's, a profiler's); stdout stays the
 * parent's own (--json), stderr is shared, and reports come over IPC.
 */
export function forkGenerator(worker: string): ChildProcess {
  return fork(worker, [], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
}

/**
 * Resolves once a forked generator has exited: with why it failed when it exited before its report,
 * else null; `reported` says whether the report has arrived. 'exit' can come before the child's last
 * IPC messages (its report) have been read, so a clean exit (code 0) without a report yet waits a
 * moment for it.
 */
export function generatorExit(child: ChildProcess, reported: () => boolean): Promise<string | null> {
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      const settle = (): void =>
        resolve(
          reported() ? null : `generator ${child.pid} exited (${signal ?? `code ${code}`}) before its report`,
        );
      if (!reported() && code === 0) setTimeout(settle, 250);
      else settle();
    });
  });
}
