/** `switchboard bench connections` as a child process against a real server (small counts: CI runs it). */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type NodeRun, runNode } from '../helpers/run-node.js';
import { BIN, type ServerProcess, startServer } from '../helpers/server-process.js';

function cli(args: string[]): Promise<NodeRun> {
  return runNode(BIN, args, { env: { SWITCHBOARD_AUTH_SECRET: '' }, timeoutMs: 90_000 });
}

interface BenchJson {
  scenario: string;
  target: string;
  count: number;
  held: number;
  failed: number;
  failedByError: Record<string, number>;
  dropped: number;
  droppedByError: Record<string, number>;
  heldAtEnd: number;
  connectsPerSecond: number;
  secondsToAllConnected: number;
  serverRssBytes: number | null;
  serverRssBeforeBytes: number | null;
  rssPerConnectionBytes: number | null;
  serverProcesses: { pid: number; rssBefore: number | null; rssDuring: number | null }[];
  generatorProcesses: number;
  generatorCpuSeconds: number;
  sources: string[];
}

async function bench(server: ServerProcess, extra: string[]): Promise<BenchJson> {
  const run = await cli([
    'bench',
    'connections',
    '--target',
    `sbp://${server.endpoint}`,
    '--json',
    '--processes',
    '2',
    '--source-count',
    '2',
    ...extra,
  ]);
  assert.equal(run.code, 0, `exit ${run.code}\n${run.stderr}`);
  const lines = run.stdout.trim().split('\n');
  assert.equal(lines.length, 1, `one JSON object on stdout, got:\n${run.stdout}`);
  return JSON.parse(lines[0]!) as BenchJson;
}

describe('bench connections against a server', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test('holds 300 connections from 2 processes and 2 source addresses, and measures the server', async () => {
    const r = await bench(server, ['--count', '300', '--hold', '2s']);
    assert.equal(r.scenario, 'connections');
    assert.equal(r.target, `sbp://${server.endpoint}`);
    assert.equal(r.count, 300);
    assert.equal(r.held, 300, JSON.stringify(r.failedByError));
    assert.equal(r.failed, 0);
    assert.deepEqual(r.failedByError, {});
    assert.equal(r.heldAtEnd, 300);
    assert.equal(r.generatorProcesses, 2);
    assert.deepEqual(r.sources, ['127.0.0.2', '127.0.0.3']);
    assert.ok(r.connectsPerSecond > 0);
    // The server's tree was found from its port: the process the test started is in it.
    assert.ok(
      r.serverProcesses.some((p) => p.pid === server.pid),
      JSON.stringify(r.serverProcesses),
    );
    assert.ok(r.serverProcesses.every((p) => p.rssBefore === null || p.rssBefore > 0));
    assert.ok(r.serverRssBeforeBytes !== null && r.serverRssBeforeBytes > 0);
    assert.ok(
      r.rssPerConnectionBytes !== null && r.rssPerConnectionBytes > 0,
      String(r.rssPerConnectionBytes),
    );
  });

  test('a target outside loopback is refused', async () => {
    const run = await cli(['bench', 'connections', '--count', '1', '--target', 'sbp://192.0.2.1:7070']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /loopback/);
  });
});

describe('bench connections against a full server', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServer({ args: ['--max-connections', '100'] });
  });
  after(async () => {
    await server?.stop();
  });

  test('records the ERROR frames of the refused connections by name', async () => {
    const r = await bench(server, ['--count', '300', '--hold', '1s']);
    assert.ok(r.held <= 100, `held ${r.held}`);
    assert.equal(r.held + r.failed, 300);
    assert.ok((r.failedByError.SERVER_FULL ?? 0) >= 190, JSON.stringify(r.failedByError));
  });
});

describe('bench connections keeps connections alive', () => {
  let server: ServerProcess;
  before(async () => {
    // Idle connections are closed after 2 × heartbeat = 2 s: shorter than the 3 s hold.
    server = await startServer({ args: ['--heartbeat', '1s'] });
  });
  after(async () => {
    await server?.stop();
  });

  test('PINGs every heartbeat, so none is closed for idleness', async () => {
    const r = await bench(server, ['--count', '50', '--hold', '3s']);
    assert.equal(r.held, 50);
    assert.equal(r.heldAtEnd, 50, JSON.stringify(r.droppedByError));
    assert.equal(r.dropped, 0);
  });

  test('with --no-heartbeat-ping the server closes them with IDLE_TIMEOUT', async () => {
    const r = await bench(server, ['--count', '50', '--hold', '3s', '--no-heartbeat-ping']);
    assert.equal(r.held, 50);
    assert.equal(r.heldAtEnd, 0);
    assert.equal(r.droppedByError.IDLE_TIMEOUT, 50, JSON.stringify(r.droppedByError));
  });
});
