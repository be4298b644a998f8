/**
 * Runs a real `switchboard serve` as a child process for tests: free ports, a temp data folder, waits
 * for /healthz, stops by PID. Reusable by every layer's tests.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's bin/switchboard.js (this file runs from dist/test/helpers/). */
export const BIN = fileURLToPath(new URL('../../../bin/switchboard.js', import.meta.url));

export interface StartServerOptions {
  /** Extra `serve` flags (e.g. ['--auth-secret', 's', '--window', '10']). */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Reuse a port / data folder (a restart); by default fresh ones. */
  port?: number;
  httpPort?: number;
  dataDir?: string;
  /** How long to wait for /healthz, ms (default 20 000). */
  readyTimeoutMs?: number;
  /** Worker processes (default: SWITCHBOARD_TEST_WORKERS, else 1), unless `args` has --workers. */
  workers?: number;
  /** 'https' for a server started with --tls-cert (its certificate is not checked by the readiness probe). */
  healthScheme?: 'http' | 'https';
  /**
   * The loopback address both ports listen on (default 127.0.0.1). A test that counts connections gives
   * its server an address of its own: a client of another test file, retrying a port that `freePort`
   * has since handed to this server, then cannot reach it.
   */
  host?: string;
}

/** The worker count tests run the server with: CI runs the suites with 1 and with 4. */
export const TEST_WORKERS = Number(process.env.SWITCHBOARD_TEST_WORKERS ?? 1) || 1;

export interface ServerProcess {
  host: string;
  port: number;
  httpPort: number;
  /** `host:port`, the SDK/CLI endpoint. */
  endpoint: string;
  dataDir: string;
  pid: number;
  /** Sends `signal` (default SIGTERM), waits for the exit; resolves with the exit code (null if killed by a signal). Removes the data folder if this helper created it. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** SIGKILL of the whole process tree (primary and workers) and wait; keeps the data folder (for a restart on it). */
  kill9(): Promise<void>;
  /** PIDs of the worker processes (the primary's children). */
  workerPids(): number[];
  /** Removes the data folder this helper created (after kill9, when no restart follows). */
  removeData(): void;
  /** What the process wrote so far (stdout + stderr), for failure messages. */
  output(): string;
}

/** A port free on `host` (default 127.0.0.1) right now. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function startServer(opts: StartServerOptions = {}): Promise<ServerProcess> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(host));
  let httpPort = opts.httpPort ?? (await freePort(host));
  while (httpPort === port) httpPort = await freePort(host);
  const ownsData = !opts.dataDir;
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-test-'));
  const child: ChildProcess = spawn(
    process.execPath,
    [
      BIN,
      'serve',
      '--host',
      host,
      '--port',
      String(port),
      '--http-port',
      String(httpPort),
      '--data',
      dataDir,
      '--log-level',
      'warn',
      ...(opts.args?.includes('--workers') ? [] : ['--workers', String(opts.workers ?? TEST_WORKERS)]),
      ...(opts.args ?? []),
    ],
    { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const keep = (chunk: Buffer): void => {
    out = (out + chunk.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      exitCode = code;
      resolve(code);
    });
  });
  const removeData = (): void => {
    if (ownsData) fs.rmSync(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000);
  for (;;) {
    if (exitCode !== undefined) {
      removeData();
      throw new Error(`server exited with ${exitCode} before it was ready:\n${out}`);
    }
    if (await healthy(host, httpPort, opts.healthScheme)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      removeData();
      throw new Error(`server not healthy within ${opts.readyTimeoutMs ?? 20_000} ms:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    host,
    port,
    httpPort,
    endpoint: `${host}:${port}`,
    dataDir,
    pid: child.pid!,
    async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
      if (exitCode === undefined) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      removeData();
      return exitCode ?? null;
    },
    async kill9(): Promise<void> {
      const tree = exitCode === undefined ? [child.pid!, ...descendants(child.pid!)] : [];
      for (const pid of tree) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      await exited;
      // The workers too: nothing of the old server may still write when a test restarts on its data.
      const deadline = Date.now() + 10_000;
      while (tree.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    },
    workerPids: () => (exitCode === undefined ? children(child.pid!) : []),
    removeData,
    output: () => out,
  };
}

/** Direct children of `pid` (Linux /proc). */
export function children(pid: number): number[] {
  try {
    return fs
      .readdirSync(`/proc/${pid}/task`)
      .flatMap((tid) => fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/))
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** The young-generation size (MiB) a worker process runs with: its `--max-semi-space-size`, or null. */
export function semiSpaceOf(pid: number): number | null {
  const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  const flag = args.find((a) => a.startsWith('--max-semi-space-size='));
  return flag === undefined ? null : Number(flag.slice('--max-semi-space-size='.length));
}

/** Every descendant of `pid`. */
export function descendants(pid: number): number[] {
  const all: number[] = [];
  for (const c of children(pid)) all.push(c, ...descendants(c));
  return all;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function healthy(host: string, httpPort: number, scheme: 'http' | 'https' = 'http'): Promise<boolean> {
  return new Promise((resolve) => {
    const get = scheme === 'https' ? https.get : http.get;
    const req = get(
      {
        host,
        port: httpPort,
        path: '/healthz',
        agent: false,
        timeout: 1_000,
        // Readiness only: the tests check the certificate themselves.
        rejectUnauthorized: false,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}
