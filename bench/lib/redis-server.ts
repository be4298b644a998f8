/**
 * Real redis-server processes for the tests and the benchmarks (test/helpers/redis.ts re-exports this):
 * one server (`startRedis`) or a Redis Cluster of 3 masters and 3 replicas (`startRedisCluster`), on
 * free loopback ports, each in a temporary folder with its own config file. Everything is stopped by PID
 * and waited for; the folders are removed on stop. `killAllRedisNow` is the synchronous last resort on
 * an abrupt exit of a benchmark.
 *
 * `redis-server` and `redis-cli` come from PATH (Debian's redis-server package).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import calculateSlot from 'cluster-key-slot';
import { Redis } from 'ioredis';
import { freePort } from './server.js';

const run = promisify(execFile);

export interface StartRedisOptions {
  /** AOF on (default true). */
  appendonly?: boolean;
  /** AOF fsync policy (default 'always'). */
  appendfsync?: 'always' | 'everysec' | 'no';
  /** Further config directives, written to the config file as `name value`. */
  config?: Readonly<Record<string, string>>;
  /** A port chosen by the caller (default: a free one). */
  port?: number;
}

export interface RedisProcess {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** PID of the running server (of the latest start). */
  readonly pid: number;
  /** The server's folder: config, AOF, nodes.conf. */
  readonly dir: string;
  /** Whether the server process is running. */
  running(): boolean;
  /** SIGTERM, waits for the exit (SIGKILL after 10 s), removes the folder. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit; keeps the folder for a restart. */
  kill9(): Promise<void>;
  /** Starts the server again on the same port, folder and config; resolves once it answers PING. */
  restart(): Promise<void>;
  /** What the server logged lately (for failure messages). */
  output(): string;
}

/** Every redis-server started here and still running, with its folder (for `killAllRedisNow`). */
const alive = new Map<ChildProcess, string>();

/** SIGKILL to every redis-server still running and removal of its folder; synchronous. */
export function killAllRedisNow(): void {
  for (const [proc, dir] of alive) {
    proc.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
  alive.clear();
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisProcess> {
  const port = opts.port ?? (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-redis-'));
  const directives: Record<string, string> = {
    port: String(port),
    bind: '127.0.0.1',
    'protected-mode': 'no',
    daemonize: 'no',
    dir,
    logfile: '""',
    save: '""',
    appendonly: opts.appendonly === false ? 'no' : 'yes',
    appendfsync: opts.appendfsync ?? 'always',
    ...opts.config,
  };
  const conf = path.join(dir, 'redis.conf');
  fs.writeFileSync(
    conf,
    Object.entries(directives)
      .map(([name, value]) => `${name} ${value}\n`)
      .join(''),
  );

  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let out = '';
  let removed = false;

  const launch = async (): Promise<void> => {
    const proc = spawn('redis-server', [conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    alive.set(proc, dir);
    let gone = false;
    exited = new Promise((resolve) => {
      proc.on('exit', () => {
        alive.delete(proc);
        gone = true;
        resolve();
      });
    });
    const keep = (chunk: Buffer): void => {
      out = (out + chunk.toString()).slice(-20_000);
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    const deadline = Date.now() + 15_000;
    while (!(await answersPing(port))) {
      if (gone) throw new Error(`redis-server on port ${port} exited before it was ready:\n${out}`);
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        await exited;
        throw new Error(`redis-server on port ${port} not ready within 15 s:\n${out}`);
      }
      await sleep(50);
    }
  };

  const running = (): boolean => child !== null && child.exitCode === null && child.signalCode === null;
  const kill = async (signal: NodeJS.Signals): Promise<void> => {
    if (!running()) return;
    const proc = child!;
    // Redis refuses a SIGTERM while it writes its first AOF (a replica right after its sync): ask again.
    const again = setInterval(() => proc.kill(signal), 500);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    proc.kill(signal);
    await exited;
    clearInterval(again);
    clearTimeout(timer);
  };

  try {
    await launch();
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child?.pid ?? 0;
    },
    dir,
    running,
    async stop() {
      await kill('SIGTERM');
      if (!removed) {
        removed = true;
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
    kill9: () => kill('SIGKILL'),
    async restart() {
      if (running()) throw new Error(`redis-server on port ${port} is still running`);
      await launch();
    },
    output: () => out,
  };
}

export interface RedisCluster {
  /** Every node: the first three started as masters, the others as their replicas. */
  readonly nodes: readonly RedisProcess[];
  /** `redis-cluster://127.0.0.1:<port>,…` naming every node. */
  readonly url: string;
  /** The node that serves `key`'s slot as master right now (asked of a running node). */
  masterOf(key: string): Promise<RedisProcess>;
  /** Waits until every running node reports cluster_state:ok and every replica is in sync with its master. */
  settled(timeoutMs?: number): Promise<void>;
  /** Stops every node and removes their folders. */
  stop(): Promise<void>;
}

export interface StartRedisClusterOptions {
  /** AOF fsync policy of every node (default 'always'). */
  appendfsync?: 'always' | 'everysec' | 'no';
}

/**
 * 3 masters and 3 replicas (`redis-cli --cluster create … --cluster-replicas 1`), AOF (appendfsync
 * always unless told otherwise), cluster-node-timeout 2000 ms (a dead master's replica is promoted a few
 * seconds later).
 */
export async function startRedisCluster(opts: StartRedisClusterOptions = {}): Promise<RedisCluster> {
  const nodes: RedisProcess[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    const ports: number[] = [];
    for (let k = 0; k < 6; k++) ports.push(await freeClusterPort(ports));
    const started = await Promise.allSettled(
      ports.map((port) =>
        startRedis({
          port,
          ...(opts.appendfsync === undefined ? {} : { appendfsync: opts.appendfsync }),
          config: {
            'cluster-enabled': 'yes',
            'cluster-config-file': 'nodes.conf',
            'cluster-node-timeout': '2000',
            // A replica's first sync starts at once (the default waits 5 s to serve several replicas together).
            'repl-diskless-sync-delay': '0',
            // Stopping the whole cluster: a master need not wait for replicas that stop too.
            'shutdown-timeout': '0',
          },
        }),
      ),
    );
    for (const s of started) if (s.status === 'fulfilled') nodes.push(s.value);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    await run('redis-cli', [
      '--cluster',
      'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    ]);
    const cluster: RedisCluster = {
      nodes,
      url: `redis-cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`,
      async masterOf(key) {
        const live = nodes.find((n) => n.running());
        if (!live) throw new Error('no node is running');
        const [slot, slots] = (await admin(live.port, [
          ['cluster', 'keyslot', key],
          ['cluster', 'slots'],
        ])) as [number, [number, number, [string, number]][]];
        const range = slots.find(([from, to]) => slot >= from && slot <= to);
        const node = nodes.find((n) => n.port === range?.[2][1]);
        if (!node) throw new Error(`no master serves slot ${slot}`);
        return node;
      },
      async settled(timeoutMs = 20_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const problem = await clusterProblem(nodes.filter((n) => n.running()));
          if (problem === null) return;
          if (Date.now() > deadline) throw new Error(`the cluster did not settle: ${problem}`);
          await sleep(100);
        }
      },
      stop,
    };
    await cluster.settled();
    return cluster;
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Why the cluster is not settled yet, or null when it is. */
async function clusterProblem(nodes: readonly RedisProcess[]): Promise<string | null> {
  const offsets = new Map<number, number>();
  const replicas: { port: number; master: number; offset: number }[] = [];
  for (const node of nodes) {
    let info: string;
    let replication: string;
    try {
      [info, replication] = (await admin(node.port, [
        ['cluster', 'info'],
        ['info', 'replication'],
      ])) as [string, string];
    } catch (err) {
      return `node ${node.port}: ${(err as Error).message}`;
    }
    if (field(info, 'cluster_state') !== 'ok') return `node ${node.port} is not ok`;
    if (field(replication, 'role') === 'master') {
      offsets.set(node.port, Number(field(replication, 'master_repl_offset')));
    } else {
      if (field(replication, 'master_link_status') !== 'up') return `replica ${node.port} is not linked`;
      replicas.push({
        port: node.port,
        master: Number(field(replication, 'master_port')),
        offset: Number(field(replication, 'slave_repl_offset')),
      });
    }
  }
  for (const r of replicas) {
    const master = offsets.get(r.master);
    if (master !== undefined && r.offset < master) return `replica ${r.port} is behind its master`;
  }
  // Linked is not yet answering: right after its first sync a replica can take a while to acknowledge
  // writes (WAIT, which durability full waits for). A write to each master, then WAIT on its connection.
  for (const port of new Set(replicas.map((r) => r.master))) {
    if (!nodes.some((n) => n.port === port)) continue;
    try {
      const [info] = (await admin(port, [['cluster', 'nodes']])) as [string];
      const key = keyServedBy(info);
      if (key === null) continue;
      const [, acked] = (await admin(port, [
        ['set', key, 'settled'],
        ['wait', 1, 200],
      ])) as [unknown, number];
      if (!(acked >= 1)) return `master ${port}: no replica acknowledges a write yet`;
    } catch (err) {
      return `master ${port}: ${(err as Error).message}`;
    }
  }
  return null;
}

/** A key whose slot the node answering CLUSTER NODES (`myself`) serves, or null if it serves none. */
function keyServedBy(clusterNodes: string): string | null {
  const mine = clusterNodes.split('\n').find((line) => line.split(' ')[2]?.split(',').includes('myself'));
  const ranges = (mine?.trim().split(' ').slice(8) ?? [])
    .filter((r) => /^\d+(-\d+)?$/.test(r))
    .map((r) => r.split('-').map(Number) as [number, number?]);
  for (let n = 0; n < 100_000 && ranges.length > 0; n++) {
    const key = `settle-${n}`;
    const slot = calculateSlot(key);
    if (ranges.some(([from, to = from]) => slot >= from && slot <= to)) return key;
  }
  return null;
}

function field(info: string, name: string): string | undefined {
  return new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}

/** Runs admin commands on one node over a short-lived connection (no retries) and returns their replies. */
export async function admin(
  port: number,
  commands: readonly (readonly (string | number)[])[],
): Promise<unknown[]> {
  const client = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: 2_000,
    commandTimeout: 5_000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const replies: unknown[] = [];
    for (const [name, ...args] of commands) replies.push(await client.call(String(name), ...args));
    return replies;
  } finally {
    client.disconnect();
  }
}

/** A port p with p and p + 10000 (its cluster bus port) both free, not among `taken`. */
async function freeClusterPort(taken: readonly number[]): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (taken.some((p) => Math.abs(p - port) === 10_000 || p === port)) continue;
    if ((await bindable(port)) && (await bindable(port + 10_000))) return port;
  }
  throw new Error('no free port pair for a cluster node');
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** Whether a server on `port` answers PING with PONG (not LOADING, not refused). */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
