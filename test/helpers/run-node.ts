/**
 * Runs a Node script as a child process to its end, as a user runs the CLI or a benchmark script:
 * stdout and stderr collected, the exit code, and how long it took. A run that outlives its time limit
 * is killed (SIGKILL), so a hung child fails its test instead of stalling the suite.
 */
import { spawn } from 'node:child_process';

export interface NodeRun {
  /** Null when the child was killed by a signal. */
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface NodeRunOptions {
  /** Set over this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Killed after this long (default 120 s). */
  timeoutMs?: number;
}

export function runNode(
  script: string,
  args: readonly string[],
  opts: NodeRunOptions = {},
): Promise<NodeRun> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}
