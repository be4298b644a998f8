/**
 * GET /metrics, /readyz and /healthz on a real server (docs/OPERATIONS.md, "Metrics and health"): after
 * HELLOs, SENDs, DELIVERs, a bad frame and a closed connection the scrape parses as the Prometheus text
 * format and counts them over every worker, whichever worker the scrape reached; a stopped worker leaves
 * the scrape partial, not unanswered; /readyz turns 503 while a Redis store is down and once a shutdown
 * begins. And what the metrics and /readyz take from the stores, on SQLite files and a real
 * redis-server: commit reports and the probe.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { AppendRequest, InboxStore } from '../../src/store/inbox-store.js';
import { RedisInboxStore } from '../../src/store/redis.js';
import { SqliteInboxStore } from '../../src/store/sqlite.js';
import { eventually } from '../helpers/cluster.js';
import { startRedis } from '../helpers/redis.js';
import { type ServerProcess, startServer, TEST_WORKERS } from '../helpers/server-process.js';
import { DEFAULT_CAPS } from '../store/conformance.js';
import { closeAll, connect, session, sleep, type WireClient } from '../wire/harness.js';

// ---------------------------------------------------------------- the Prometheus text format

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = `([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"`;
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL},?)*)\\})? (\\S+)$`);
const SUFFIXES: Record<string, string[]> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['_sum', '_count'],
};

/**
 * Parses the text exposition format 0.0.4 strictly: every line a comment, HELP/TYPE or sample; every
 * sample of a family declared by TYPE first, a family's samples together, no series twice.
 */
function parseExposition(text: string): Sample[] {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const types = new Map<string, string>();
  const finished = new Set<string>();
  const seen = new Set<string>();
  const samples: Sample[] = [];
  let current = '';
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      assert.match(name, new RegExp(`^${NAME}$`), line);
      if (kind === 'TYPE') {
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest), line);
        assert.ok(!types.has(name), `TYPE of ${name} twice`);
        types.set(name, rest);
      }
      if (current !== name) {
        if (current) finished.add(current);
        current = name;
      }
      continue;
    }
    assert.ok(!line.startsWith('#') || line.startsWith('# '), line);
    if (line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const name = m[1]!;
    const family = [...types.keys()].find(
      (f) => f === name || (SUFFIXES[types.get(f)!] ?? []).some((s) => name === f + s),
    );
    assert.ok(family, `${name} has no TYPE before it`);
    assert.equal(family, current, `${name} is outside its family's block`);
    assert.ok(!finished.has(family), `${family} continues after another family`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(new RegExp(LABEL, 'g'))) labels[l[1]!] = l[2]!;
    const value = m[m.length - 1]!;
    assert.ok(/^([+-]?Inf|NaN|[+-]?\d+(\.\d+)?([eE][+-]?\d+)?)$/.test(value), `value of ${line}`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    assert.ok(!seen.has(key), `series twice: ${line}`);
    seen.add(key);
    samples.push({ name, labels, value: Number(value.replace('Inf', 'Infinity')) });
  }
  return samples;
}

/** Reading a parsed scrape: the cluster's totals (no `worker` label) and each worker's series. */
class Scrape {
  constructor(readonly samples: Sample[]) {}

  /** The series `name` whose labels are exactly `labels` (undefined when absent). */
  find(name: string, labels: Record<string, string> = {}): number | undefined {
    const want = Object.entries(labels).sort();
    return this.samples.find(
      (s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(want),
    )?.value;
  }

  /** The cluster's total of `name` with `labels` (the series without a worker label); 0 when absent. */
  total(name: string, labels: Record<string, string> = {}): number {
    return this.find(name, labels) ?? 0;
  }

  /** The values of `name` with `labels`, by worker label. */
  perWorker(name: string, labels: Record<string, string> = {}): Map<string, number> {
    const out = new Map<string, number>();
    for (const worker of this.workers()) {
      const v = this.find(name, { ...labels, worker });
      if (v !== undefined) out.set(worker, v);
    }
    return out;
  }

  /** Every worker label in the scrape, sorted. */
  workers(): string[] {
    return [...new Set(this.samples.flatMap((s) => (s.labels.worker ? [s.labels.worker] : [])))].sort();
  }
}

// ---------------------------------------------------------------- HTTP

interface Reply {
  status: number;
  type: string;
  body: string;
}

function get(port: number, path: string, timeoutMs = 10_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

async function scrape(server: ServerProcess): Promise<Scrape> {
  const reply = await get(server.httpPort, '/metrics');
  assert.equal(reply.status, 200, reply.body);
  assert.match(reply.type, /^text\/plain; version=0\.0\.4/);
  return new Scrape(parseExposition(reply.body));
}

/**
 * A connection to the HTTP port that a worker has taken on (a first request answered 200 ready on it),
 * and a second request on it sent but for its last line: the server has begun reading it (a shutdown
 * does not close that connection as idle) and answers it once finish() sends the rest.
 */
async function requestBegun(port: number, path: string): Promise<{ finish(): Promise<Reply> }> {
  const socket = net.createConnection({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let raw = '';
  let arrived: () => void = () => {};
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    raw += chunk;
    arrived();
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const responses = async (count: number): Promise<Reply[]> => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const replies = parseResponses(raw);
      if (replies.length >= count || Date.now() > deadline) return replies;
      await Promise.race([new Promise<void>((r) => (arrived = r)), closed, sleep(100)]);
    }
  };
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  const [first] = await responses(1);
  assert.equal(first?.status, 200, `before the shutdown: ${JSON.stringify(raw)}`);
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n`);
  return {
    async finish() {
      socket.write('\r\n');
      const replies = await responses(2);
      socket.destroy();
      assert.ok(replies[1], `no second response: ${JSON.stringify(raw)}`);
      return replies[1];
    },
  };
}

/** The complete HTTP/1.1 responses in `raw`, in order (bodies with content-length or chunked). */
function parseResponses(raw: string): Reply[] {
  const replies: Reply[] = [];
  let rest = raw;
  for (;;) {
    const head = /^HTTP\/1\.1 (\d{3}) [^\r]*\r\n([\s\S]*?)\r\n\r\n/.exec(rest);
    if (!head) return replies;
    const headers = head[2]!;
    let body = '';
    let at = head[0].length;
    const length = /^content-length: *(\d+)$/im.exec(headers);
    if (length) {
      if (rest.length < at + Number(length[1])) return replies;
      body = rest.slice(at, at + Number(length[1]));
      at += Number(length[1]);
    } else {
      for (;;) {
        const chunk = /^([0-9a-fA-F]+)\r\n/.exec(rest.slice(at));
        if (!chunk) return replies;
        const size = Number.parseInt(chunk[1]!, 16);
        if (rest.length < at + chunk[0].length + size + 2) return replies;
        body += rest.slice(at + chunk[0].length, at + chunk[0].length + size);
        at += chunk[0].length + size + 2;
        if (size === 0) break;
      }
    }
    const type = /^content-type: *(.*)$/im.exec(headers)?.[1] ?? '';
    replies.push({ status: Number(head[1]), type, body });
    rest = rest.slice(at);
  }
}

/** True once nothing listens on the port any more (every worker of the server stopped accepting). */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

// ---------------------------------------------------------------- tests

describe('GET /metrics, /readyz and /healthz', () => {
  const servers: ServerProcess[] = [];
  const clients: WireClient[] = [];
  after(async () => {
    await closeAll(clients);
    for (const s of servers) await s.stop('SIGKILL');
  });

  it('counts what the clients did, over every worker, per worker and in total', async () => {
    const server = await startServer();
    servers.push(server);
    const health = await get(server.httpPort, '/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual(JSON.parse(health.body), { status: 'ok', connections: 0 });
    const ready = await get(server.httpPort, '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(JSON.parse(ready.body), { status: 'ready' });

    // Two users over TCP, one over WebSocket: 5 + 2 messages to bob, who acknowledges them.
    const alice = (await session(server.port, 'm-alice', 'phone', { transport: 'tcp' })).client;
    const bob = (await session(server.port, 'm-bob', 'phone', { transport: 'tcp' })).client;
    const carol = (await session(server.httpPort, 'm-carol', 'web', { transport: 'ws' })).client;
    clients.push(alice, bob, carol);
    for (let id = 1; id <= 5; id++) alice.sendText(id, 'm-bob', `from alice ${id}`);
    for (let id = 1; id <= 2; id++) carol.sendText(id, 'm-bob', `from carol ${id}`);
    for (let id = 1; id <= 5; id++) await alice.waitAccepted(id);
    for (let id = 1; id <= 2; id++) await carol.waitAccepted(id);
    const toBob = await bob.collect('DELIVER', 7);
    bob.send({ type: 'ACK', seq: Math.max(...toBob.map((d) => (d.type === 'DELIVER' ? d.seq : 0))) });
    await bob.ping();

    // A bad frame after a good HELLO (length 0: MALFORMED, fatal), and a connection its client closes.
    const bad = (await session(server.port, 'm-bad', 'phone', { transport: 'tcp' })).client;
    clients.push(bad);
    bad.sendRaw(new Uint8Array([0, 0, 0, 0]));
    await bad.expectError('MALFORMED');
    await bad.expectClosed();
    const quitter = (await session(server.port, 'm-quitter', 'phone', { transport: 'tcp' })).client;
    await quitter.close();

    const deliversReceived = (): number =>
      [alice, bob, carol].reduce((n, c) => n + c.frames.filter((f) => f.type === 'DELIVER').length, 0);
    // The server sees both closes, and writes the last DELIVERs, a moment after the clients see theirs.
    const m = await eventually(
      'the scrape to count both closes and every DELIVER',
      async () => {
        const s = await scrape(server);
        const closed =
          s.total('switchboard_closes_total', { reason: 'peer closed' }) === 1 &&
          s.total('switchboard_connections', { transport: 'tcp' }) === 2;
        const delivered =
          s.total('switchboard_frames_sent_total', { type: 'DELIVER' }) === deliversReceived();
        return closed && delivered && s;
      },
      10_000,
      100,
    );

    // Every worker answered, each with its own series.
    const workers = Array.from({ length: TEST_WORKERS }, (_, i) => `w${i + 1}`);
    assert.equal(m.total('switchboard_workers'), TEST_WORKERS);
    assert.equal(m.total('switchboard_workers_reporting'), TEST_WORKERS);
    assert.deepEqual(m.workers(), workers);
    assert.deepEqual([...m.perWorker('switchboard_connections_limit').keys()], workers);

    // The totals: what the clients did.
    assert.equal(m.total('switchboard_messages_accepted_total'), 7);
    assert.equal(m.total('switchboard_frames_received_total', { type: 'SEND' }), 7);
    assert.equal(m.total('switchboard_frames_received_total', { type: 'HELLO' }), 5);
    assert.equal(m.total('switchboard_frames_received_total', { type: 'ACK' }), 1);
    assert.equal(m.total('switchboard_frames_received_total', { type: 'PING' }), 1);
    assert.equal(m.total('switchboard_frames_sent_total', { type: 'ACCEPTED' }), 7);
    assert.equal(m.total('switchboard_frames_sent_total', { type: 'WELCOME' }), 5);
    assert.equal(m.total('switchboard_frames_sent_total', { type: 'ERROR' }), 1);
    assert.equal(m.total('switchboard_errors_total', { code: 'MALFORMED' }), 1);
    assert.equal(m.total('switchboard_errors_total', { code: 'SERVER_FULL' }), 0);
    assert.equal(m.total('switchboard_closes_total', { reason: 'MALFORMED' }), 1);
    const delivered = ['live', 'replay', 'ephemeral'].reduce(
      (n, kind) => n + m.total('switchboard_messages_delivered_total', { kind }),
      0,
    );
    assert.equal(delivered, deliversReceived());
    assert.equal(m.total('switchboard_messages_delivered_total', { kind: 'ephemeral' }), 0);
    assert.equal(m.total('switchboard_sessions', { transport: 'tcp' }), 2);
    assert.equal(m.total('switchboard_sessions', { transport: 'ws' }), 1);
    assert.equal(m.total('switchboard_connections', { transport: 'ws' }), 1);
    assert.equal(m.total('switchboard_connections_opened_total', { transport: 'tcp' }), 4);
    assert.equal(m.total('switchboard_handshakes_total', { transport: 'tcp', result: 'ok' }), 4);
    assert.equal(m.total('switchboard_handshakes_total', { transport: 'ws', result: 'ok' }), 1);
    assert.equal(m.total('switchboard_handshakes_total', { transport: 'tcp', result: 'failed' }), 0);
    assert.ok(m.total('switchboard_store_commit_duration_seconds_count') > 0);
    assert.equal(
      m.total('switchboard_store_commit_ops_count'),
      m.total('switchboard_store_commit_duration_seconds_count'),
    );
    assert.ok(m.total('switchboard_store_commit_ops_sum') >= 7 + 7, 'at least each message and its own copy');

    // Each total is the sum of the workers' series.
    for (const [name, labels] of [
      ['switchboard_messages_accepted_total', {}],
      ['switchboard_frames_received_total', { type: 'SEND' }],
      ['switchboard_sessions', { transport: 'tcp' }],
      ['switchboard_errors_total', { code: 'MALFORMED' }],
      ['switchboard_store_commit_duration_seconds_count', {}],
      ['switchboard_process_resident_memory_bytes', {}],
    ] as const) {
      const parts = m.perWorker(name, labels);
      assert.equal(parts.size, TEST_WORKERS, `${name} of every worker`);
      assert.equal(
        [...parts.values()].reduce((a, b) => a + b, 0),
        m.total(name, labels),
        name,
      );
    }
    // The event-loop delay is each worker's; its total is the worst worker's.
    const p99 = m.perWorker('switchboard_event_loop_delay_seconds', { quantile: '0.99' });
    assert.equal(p99.size, TEST_WORKERS);
    assert.equal(
      m.total('switchboard_event_loop_delay_seconds', { quantile: '0.99' }),
      Math.max(...p99.values()),
    );
    if (TEST_WORKERS > 1) {
      // Users' homes are spread over the workers: messages crossed the bus.
      assert.ok(m.total('switchboard_bus_batch_messages_count') > 0);
      assert.ok(m.total('switchboard_bus_batch_lag_seconds_count') > 0);
    }

    // /healthz as before: its status and the connections of the worker that answered.
    const later = JSON.parse((await get(server.httpPort, '/healthz')).body) as Record<string, unknown>;
    assert.deepEqual(Object.keys(later), ['status', 'connections']);
    assert.equal(later.status, 'ok');
  });

  it('a stopped worker leaves the scrape partial, not unanswered', async () => {
    // Two workers at least: the stopped one cannot answer HTTP, the other can.
    const server = await startServer({ workers: Math.max(2, TEST_WORKERS) });
    servers.push(server);
    const workers = Math.max(2, TEST_WORKERS);
    const [stopped] = server.workerPids();
    assert.ok(stopped, 'a worker process');
    process.kill(stopped, 'SIGSTOP');
    try {
      // A connection handed to the stopped worker is not answered: the next one goes to another.
      let m: Scrape | null = null;
      for (let attempt = 0; attempt < workers && !m; attempt++) {
        const reply = await get(server.httpPort, '/metrics', 5_000).catch(() => null);
        if (reply) m = new Scrape(parseExposition(reply.body));
      }
      assert.ok(m, 'no worker answered /metrics');
      assert.equal(m.total('switchboard_workers'), workers);
      assert.equal(m.total('switchboard_workers_reporting'), workers - 1);
      assert.equal(m.perWorker('switchboard_connections_limit').size, workers - 1);
    } finally {
      process.kill(stopped, 'SIGCONT');
    }
  });

  it('/readyz answers 503 while its Redis store is down, 200 again once it is back', async () => {
    const redis = await startRedis();
    try {
      const server = await startServer({ args: ['--store', redis.url] });
      servers.push(server);
      const readyz = async () => {
        const reply = await get(server.httpPort, '/readyz');
        return { code: reply.status, body: JSON.parse(reply.body) as { status: string; reason?: string } };
      };
      assert.deepEqual(await readyz(), { code: 200, body: { status: 'ready' } });
      await redis.kill9();
      const down = await readyz();
      assert.equal(down.code, 503);
      assert.equal(down.body.status, 'not ready');
      assert.match(down.body.reason ?? '', /^the store is unreachable: redis store/);
      // /healthz is about the process, not the store.
      assert.equal((await get(server.httpPort, '/healthz')).status, 200);
      await redis.restart();
      await eventually('ready again', async () => (await readyz()).code === 200, 10_000, 100);
    } finally {
      await redis.stop();
    }
  });

  it('/readyz answers 503 once a shutdown begins', async () => {
    // Long enough deadlines that the requests begun below are neither cut nor killed meanwhile.
    const server = await startServer({ args: ['--shutdown-timeout', '30s', '--handshake-timeout', '20s'] });
    servers.push(server);
    // A client that never closes its side keeps the shutdown draining until the server's close grace.
    const client = await connect(server.port, 'stays', { halfOpen: true, transport: 'tcp' });
    clients.push(client);
    await client.hello('m-stays', 'phone');
    // Begun on every worker (connections are handed round-robin); answered once the shutdown is under way.
    const begun = await Promise.all(
      Array.from({ length: 2 * TEST_WORKERS }, () => requestBegun(server.httpPort, '/readyz')),
    );
    // Time for each worker to read what was sent of the second request.
    await sleep(300);

    const exit = server.stop('SIGTERM');
    await client.expectError('SHUTTING_DOWN', { timeoutMs: 5000 });
    await eventually('every worker to stop accepting', () => refused(server.port), 5000);
    for (const request of begun) {
      const reply = await request.finish();
      assert.equal(reply.status, 503, reply.body);
      assert.deepEqual(JSON.parse(reply.body), { status: 'not ready', reason: 'shutting down' });
    }
    assert.equal(await exit, 0, server.output());
  });
});

describe('what the stores give the metrics and /readyz', () => {
  const message = (inbox: string, clientMsgId: number): AppendRequest => ({
    inbox,
    from: 'sender',
    fromDevice: 'dev',
    clientMsgId,
    to: inbox,
    payload: new Uint8Array([1, 2, 3]),
    timestamp: Date.now(),
  });

  /** One tick's writes (appends to three inboxes, an ACK): one commit reported, then the probe. */
  async function commitsAndProbe(
    store: InboxStore & { onCommit: ((s: number, ops: number) => void) | null },
  ) {
    const commits: [number, number][] = [];
    store.onCommit = (seconds, ops) => commits.push([seconds, ops]);
    await Promise.all([
      store.append([message('probe-a', 1), message('probe-b', 1), message('probe-c', 1)]),
      store.ack('probe-a', 'dev', 0),
    ]);
    await eventually('the commit report', () => commits.length > 0, 2000);
    assert.equal(commits.length, 1, JSON.stringify(commits));
    const [seconds, ops] = commits[0]!;
    assert.equal(ops, 4);
    assert.ok(seconds > 0 && seconds < 5, `${seconds} s`);
    await store.ping!();
  }

  it("SQLite: one report per tick for all its shards' transactions; the probe reads the files", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-metrics-store-'));
    try {
      const store = await SqliteInboxStore.open({
        dir,
        durability: 'normal',
        caps: DEFAULT_CAPS,
      });
      await commitsAndProbe(store);
      await store.close();
      await assert.rejects(store.ping(), /closed/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("Redis: one report per tick's replies, with its op count; the probe fails while Redis is down", async () => {
    const redis = await startRedis();
    try {
      const store = await RedisInboxStore.open({ url: redis.url, caps: DEFAULT_CAPS, durability: 'full' });
      try {
        await commitsAndProbe(store);
        await redis.kill9();
        await assert.rejects(store.ping(), /redis store/);
        await redis.restart();
        await eventually(
          'the probe to answer again',
          () =>
            store.ping().then(
              () => true,
              () => false,
            ),
          10_000,
          100,
        );
      } finally {
        await store.close();
      }
    } finally {
      await redis.stop();
    }
  });
});
