/**
 * `switchboard bench throughput | drain | storm` (and `--report`) as child processes against a real
 * server. Small sizes: CI runs them on 2 cores. No assertion on speed, only on what was delivered.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type NodeRun, runNode } from '../helpers/run-node.js';
import { BIN, type ServerProcess, startServer } from '../helpers/server-process.js';

function cli(args: string[], timeoutMs = 120_000): Promise<NodeRun> {
  return runNode(BIN, args, { env: { SWITCHBOARD_AUTH_SECRET: '' }, timeoutMs });
}

/** The one JSON object a `--json` run printed. */
function json<T>(run: NodeRun): T {
  const lines = run.stdout.trim().split('\n');
  assert.equal(lines.length, 1, `one JSON object on stdout, got:\n${run.stdout}\nstderr:\n${run.stderr}`);
  return JSON.parse(lines[0]!) as T;
}

interface ThroughputJson {
  scenario: string;
  ok: boolean;
  failure: string | null;
  users: number;
  size: number;
  mode: string;
  ephemeral: boolean;
  processes: number;
  sent: number;
  delivered: number;
  deliveredPerSecond: number;
  lost: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  latencyPercentiles: [number, number][];
  generatorCpuSeconds: number;
  serverPids: number[];
  serverCpuSeconds: number | null;
  serverCpuMicrosPerMessage: number | null;
  errorsByName: Record<string, number>;
  timeSeries: {
    intervalSeconds: number;
    delivered: number[];
    latencyMs: ({ p50: number; p99: number; max: number } | null)[];
  };
}

interface DrainJson {
  scenario: string;
  ok: boolean;
  failure: string | null;
  messages: number;
  stored: number;
  replayed: number;
  replayMs: number;
  messagesPerSecond: number;
  outOfOrder: number;
  errorsByName: Record<string, number>;
}

interface StormJson {
  scenario: string;
  ok: boolean;
  failure: string | null;
  count: number;
  cut: string;
  back: number;
  secondsToAllBack: number | null;
  reconnectsPerSecond: number | null;
  accepted: number;
  lost: number;
  duplicates: number;
  inboxesRead: number;
  errorsByName: Record<string, number>;
}

function checkThroughput(r: ThroughputJson, server: ServerProcess): void {
  assert.equal(r.scenario, 'throughput');
  assert.equal(r.ok, true, String(r.failure));
  assert.ok(r.delivered > 0, `delivered ${r.delivered}`);
  assert.ok(r.sent >= r.delivered);
  assert.deepEqual(r.errorsByName, {});
  assert.ok(r.deliveredPerSecond > 0);
  for (const k of ['p50', 'p90', 'p99', 'p999', 'max'] as const) {
    assert.equal(typeof r.latencyMs[k], 'number', k);
    assert.ok(r.latencyMs[k] > 0, `${k} ${r.latencyMs[k]}`);
  }
  assert.ok(r.latencyMs.p50 <= r.latencyMs.p99 && r.latencyMs.p99 <= r.latencyMs.max);
  assert.ok(r.latencyPercentiles.length > 10);
  assert.equal(typeof r.generatorCpuSeconds, 'number');
  // The server's tree was found from its port, and its CPU measured.
  assert.ok(r.serverPids.includes(server.pid), JSON.stringify(r.serverPids));
  assert.equal(typeof r.serverCpuSeconds, 'number');
  assert.equal(typeof r.serverCpuMicrosPerMessage, 'number');
  assert.ok(r.timeSeries.delivered.length >= 2);
  assert.ok(r.timeSeries.delivered.reduce((a, b) => a + b, 0) >= r.delivered);
  // Each second's latency: a summary where that second delivered messages, null where it did not.
  assert.ok(r.timeSeries.latencyMs.length >= 2);
  r.timeSeries.delivered.forEach((n, i) => {
    const l = r.timeSeries.latencyMs[i] ?? null;
    assert.equal(l !== null, n > 0, `second ${i}: ${n} delivered, latency ${JSON.stringify(l)}`);
    if (l !== null) assert.ok(l.p50 > 0 && l.p50 <= l.p99 && l.p99 <= l.max, JSON.stringify(l));
  });
}

describe('bench scenarios against a server', () => {
  let server: ServerProcess;
  let dir: string;
  before(async () => {
    server = await startServer();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-bench-test-'));
  });
  after(async () => {
    await server?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  const target = (): string => `sbp://${server.endpoint}`;

  test('throughput: 20 users for 2 s deliver messages, without errors, and write the HTML report', async () => {
    const report = path.join(dir, 'throughput.html');
    const run = await cli([
      'bench',
      'throughput',
      '--users',
      '20',
      '--duration',
      '2s',
      '--warmup',
      '1s',
      '--target',
      target(),
      '--json',
      '--report',
      report,
    ]);
    assert.equal(run.code, 0, run.stderr);
    const r = json<ThroughputJson>(run);
    checkThroughput(r, server);
    assert.equal(r.users, 20);
    assert.equal(r.size, 100);
    assert.equal(r.mode, 'closed');
    assert.equal(r.ephemeral, false);
    assert.match(run.stderr, /msg\/s/, 'a progress line on stderr');

    const html = fs.readFileSync(report, 'utf8');
    assert.match(html, /^<!DOCTYPE html>/);
    assert.equal((html.match(/<svg /g) ?? []).length, 3, 'throughput, latency over time and latency charts');
    assert.match(html, /Delivered messages per second/);
    assert.match(html, /Latency per second/);
    assert.match(html, /Latency by percentile/);
    assert.match(html, /99\.999 %/);
    assert.match(html, /<polyline /);
    assert.match(html, /CPU model/);
    assert.match(html, /switchboard bench throughput --users 20/);
    // Self-contained: no script, no external style sheet, font or image.
    assert.doesNotMatch(html, /<script|<link|@import|url\(|src=/i);
  });

  test('throughput --ephemeral: ephemeral SENDs are delivered too', async () => {
    const run = await cli([
      'bench',
      'throughput',
      '--users',
      '20',
      '--duration',
      '2s',
      '--warmup',
      '1s',
      '--ephemeral',
      '--target',
      target(),
      '--json',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const r = json<ThroughputJson>(run);
    checkThroughput(r, server);
    assert.equal(r.ephemeral, true);
  });

  test('throughput --rate: an open loop over 2 generator processes', async () => {
    const run = await cli([
      'bench',
      'throughput',
      '--users',
      '20',
      '--duration',
      '1s',
      '--warmup',
      '500ms',
      '--rate',
      '500',
      '--processes',
      '2',
      '--target',
      target(),
      '--json',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const r = json<ThroughputJson>(run);
    checkThroughput(r, server);
    assert.equal(r.mode, 'open');
    assert.equal(r.processes, 2);
    // 500 msg/s for 1.5 s: about 750 sent, whatever the server's speed.
    assert.ok(r.sent > 300 && r.sent < 1200, `sent ${r.sent}`);
  });

  test('throughput refuses --rate with --window, and a target outside loopback', async () => {
    const both = await cli(['bench', 'throughput', '--rate', '10', '--window', '2', '--target', target()]);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /--rate .*--window|not both/);
    const remote = await cli(['bench', 'throughput', '--target', 'sbp://192.0.2.1:7070']);
    assert.equal(remote.code, 1);
    assert.match(remote.stderr, /loopback/);
  });

  test('drain: 500 messages stored for an offline user are all replayed on its reconnect', async () => {
    const run = await cli(['bench', 'drain', '--messages', '500', '--target', target(), '--json']);
    assert.equal(run.code, 0, run.stderr);
    const r = json<DrainJson>(run);
    assert.equal(r.scenario, 'drain');
    assert.equal(r.ok, true, String(r.failure));
    assert.equal(r.messages, 500);
    assert.equal(r.stored, 500);
    assert.equal(r.replayed, 500);
    assert.equal(r.outOfOrder, 0);
    assert.ok(r.replayMs > 0);
    assert.ok(r.messagesPerSecond > 0);
    assert.deepEqual(r.errorsByName, {});
  });

  test('storm: 50 clients cut client-side all come back; nothing ACCEPTED is lost or stored twice', async () => {
    const report = path.join(dir, 'storm.html');
    const run = await cli([
      'bench',
      'storm',
      '--count',
      '50',
      '--before',
      '1s',
      '--after',
      '1s',
      '--target',
      target(),
      '--json',
      '--report',
      report,
    ]);
    assert.equal(run.code, 0, run.stderr);
    const r = json<StormJson>(run);
    assert.equal(r.scenario, 'storm');
    assert.equal(r.cut, 'client');
    assert.equal(r.count, 50);
    assert.equal(r.back, 50);
    assert.ok(r.secondsToAllBack !== null && r.secondsToAllBack >= 0);
    assert.ok(r.reconnectsPerSecond !== null && r.reconnectsPerSecond > 0);
    assert.ok(r.accepted > 0);
    assert.equal(r.inboxesRead, 50);
    assert.equal(r.lost, 0);
    assert.equal(r.duplicates, 0);
    assert.equal(r.ok, true, String(r.failure));

    const html = fs.readFileSync(report, 'utf8');
    assert.equal((html.match(/<svg /g) ?? []).length, 3, 'connections, throughput and latency charts');
    assert.match(html, /Clients with a session/);
    assert.match(html, /ACCEPTED per second/);
    assert.doesNotMatch(html, /<script|<link|@import|url\(|src=/i);
  });

  test('connections --report draws the connections over time', async () => {
    const report = path.join(dir, 'connections.html');
    const run = await cli([
      'bench',
      'connections',
      '--count',
      '20',
      '--hold',
      '2s',
      '--processes',
      '1',
      '--target',
      target(),
      '--json',
      '--report',
      report,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(json<{ held: number }>(run).held, 20);
    const html = fs.readFileSync(report, 'utf8');
    assert.equal((html.match(/<svg /g) ?? []).length, 1);
    assert.match(html, /Connections over time/);
  });
});

describe('bench drain against a small inbox cap', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServer({ args: ['--inbox-max-messages', '100'] });
  });
  after(async () => {
    await server?.stop();
  });

  test('INBOX_FULL ends the run and says which cap to raise', async () => {
    const run = await cli([
      'bench',
      'drain',
      '--messages',
      '200',
      '--target',
      `sbp://${server.endpoint}`,
      '--json',
    ]);
    assert.equal(run.code, 2);
    const r = json<DrainJson>(run);
    assert.equal(r.ok, false);
    assert.match(String(r.failure), /INBOX_FULL.*--inbox-max-messages 200/);
    assert.ok((r.errorsByName.INBOX_FULL ?? 0) >= 1);
    assert.equal(r.stored, 100);
  });
});

/** True once `pid` is gone (or a zombie). */
function gone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('bench storm with a server restart', () => {
  let dataDir: string;
  let first: ServerProcess | undefined;
  let second: ServerProcess | undefined;
  before(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-storm-test-'));
  });
  after(async () => {
    await second?.stop();
    if (first && !gone(first.pid)) await first.kill9();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('SIGTERM to the server, restarted on the same data folder and port: all back, nothing lost', async () => {
    first = await startServer({ dataDir });
    const old = [first.pid, ...first.workerPids()];
    const running = cli([
      'bench',
      'storm',
      '--count',
      '50',
      '--before',
      '1s',
      '--after',
      '1s',
      '--restart',
      '--server-pid',
      String(first.pid),
      '--target',
      `sbp://${first.endpoint}`,
      '--json',
    ]);
    // The bench sends SIGTERM; this test is the supervisor: once the old server is gone, start it again.
    await waitFor(() => old.every(gone), 60_000, 'the bench to stop the server');
    second = await startServer({ dataDir, port: first.port, httpPort: first.httpPort });
    const run = await running;
    assert.equal(run.code, 0, run.stderr);
    const r = json<StormJson>(run);
    assert.equal(r.cut, 'sigterm');
    assert.equal(r.back, 50);
    assert.ok(r.accepted > 0);
    assert.equal(r.inboxesRead, 50);
    assert.equal(r.lost, 0);
    assert.equal(r.duplicates, 0);
    assert.equal(r.ok, true, String(r.failure));
  });
});
