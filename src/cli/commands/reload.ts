/**
 * `switchboard reload [--data ./data]`: asks the running server of a data folder to replace its workers
 * one at a time (new code, new settings read by the new workers), without dropping the listener. It reads
 * the primary's PID from `<data>/switchboard.pid` (written by the primary when it starts, removed when it
 * stops) and sends it SIGHUP; the primary keeps running and keeps its PID.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { pidFilePath } from '../../cluster/primary.js';

/** Exit code of every failure of `reload`. */
const EXIT_FAILED = 1;

function failReload(message: string): never {
  process.stderr.write(`switchboard reload: ${message}\n`);
  process.exit(EXIT_FAILED);
}

/** The PID recorded in the data folder; fails clearly when there is none or it is not a number. */
export function readPrimaryPid(dataDir: string): number {
  const file = pidFilePath(dataDir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      failReload(`no pid file at ${file}: is a server running on the data folder ${dataDir}?`);
    }
    failReload(`cannot read ${file}: ${(err as Error).message}`);
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) failReload(`${file} does not hold a process id: "${text.trim()}"`);
  return pid;
}

/**
 * On Linux, the command line of `pid`, to tell a Switchboard primary from an unrelated process that got
 * the PID of a server that died without removing its pid file; null where /proc is not available.
 */
function commandLineOf(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return null;
  }
}

export function registerReload(program: Command): void {
  program
    .command('reload')
    .description('replace the workers of the running server one at a time (SIGHUP to its primary)')
    .option('--data <dir>', 'data folder of the running server (where switchboard.pid is)', './data')
    .action((flags: { data: string }) => {
      const dataDir = resolve(flags.data);
      const pid = readPrimaryPid(dataDir);
      const stale = `${pidFilePath(dataDir)} names process ${pid}, which is not running (a stale pid file?)`;
      try {
        process.kill(pid, 0);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ESRCH') failReload(stale);
        if (code === 'EPERM') failReload(`process ${pid} belongs to another user: not allowed to signal it`);
        failReload(`cannot signal process ${pid}: ${(err as Error).message}`);
      }
      const cmdline = commandLineOf(pid);
      if (cmdline !== null && !/\bserve\b/.test(cmdline)) {
        failReload(
          `${pidFilePath(dataDir)} names process ${pid}, which is not a switchboard server ("${cmdline.trim()}"): a stale pid file?`,
        );
      }
      try {
        process.kill(pid, 'SIGHUP');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        failReload(code === 'ESRCH' ? stale : `cannot signal process ${pid}: ${(err as Error).message}`);
      }
      process.stdout.write(
        `sent SIGHUP to the switchboard primary (pid ${pid}) of ${dataDir}: ` +
          'it replaces its workers one at a time; the server keeps running\n',
      );
    });
}
