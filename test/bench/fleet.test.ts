/**
 * The many-machines benchmark (bench/fleet.ts), small: one node on SQLite and two nodes on one Redis,
 * 40 users, a 2 s window. The script as a user runs it: it starts its own nodes and redis-server,
 * spreads the users over the nodes, delivers messages, reads what Redis did (commands, socket reads,
 * CPU), prints one JSON object, writes its section of a Markdown file and the chart beside it — and
 * leaves nothing behind in its temp folder (every process stopped, every folder removed).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { FleetResult } from '../../bench/lib/fleet.js';
import { runNode } from '../helpers/run-node.js';

const SCRIPT = fileURLToPath(new URL('../../bench/fleet.js', import.meta.url));
const USERS = 40;

describe('bench:fleet script', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-fleet-test-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs SQLite and a two-node fleet on Redis, prints the figures as JSON and writes its section', async () => {
    const doc = path.join(dir, 'BENCH.md');
    writeFileSync(
      doc,
      '# Benchmarks\n\nkept above\n\n<!-- fleet:start -->\nold\n<!-- fleet:end -->\n\nkept below\n',
    );
    // The script's own temp folder: what it leaves there is what it failed to clean up.
    const tmp = path.join(dir, 'tmp');
    mkdirSync(tmp);
    const { code, stdout, stderr } = await runNode(
      SCRIPT,
      [
        '--configs',
        'sqlite:1,redis:2',
        '--users',
        String(USERS),
        '--warmup',
        '500ms',
        '--duration',
        '2s',
        '--json',
        '--write',
        doc,
      ],
      { env: { TMPDIR: tmp } },
    );
    assert.equal(code, 0, stderr);
    assert.deepEqual(readdirSync(tmp), [], 'every node and Redis folder removed');

    const out = JSON.parse(stdout) as {
      benchmark: string;
      users: number;
      durability: string;
      failures: string[];
      results: FleetResult[];
    };
    assert.equal(out.benchmark, 'fleet');
    assert.equal(out.users, USERS);
    assert.equal(out.durability, 'normal');
    assert.deepEqual(out.failures, []);
    assert.deepEqual(
      out.results.map((r) => r.config),
      ['sqlite:1', 'redis:2'],
    );
    const [sqlite, redis] = out.results as [FleetResult, FleetResult];
    for (const r of out.results) {
      for (const field of [
        'msgPerSec',
        'latencyMs',
        'serverCpuSeconds',
        'redisCpuSeconds',
        'generatorCpuSeconds',
        'serverCpuShare',
        'redisCpuShare',
        'redisMainThreadPercent',
        'redisCommandsPerMsg',
        'redisScriptCallsPerMsg',
        'redisPublishesPerMsg',
        'redisReadsPerMsg',
        'sessionsByNode',
        'loadAverage1m',
      ]) {
        assert.ok(field in r, `${r.config} has ${field}`);
      }
      assert.ok(r.delivered > 0, `${r.config} delivered messages`);
      assert.ok(r.msgPerSec > 0);
      assert.ok(r.latencyMs.p50 > 0 && r.latencyMs.p50 <= r.latencyMs.p99);
      assert.ok(r.serverCpuSeconds > 0);
    }

    // SQLite: one node holds every user; no Redis at all.
    assert.equal(sqlite.nodes, 1);
    assert.deepEqual(Object.values(sqlite.sessionsByNode), [USERS]);
    assert.equal(sqlite.redisServers, 0);
    assert.equal(sqlite.redisCpuSeconds, 0);
    assert.equal(sqlite.redisCommandsPerMsg, null);
    assert.equal(sqlite.redisReadsPerMsg, null);

    // Two nodes on one Redis: the users split evenly, named by node; every message crossed nodes, so
    // the nodes published to each other, and Redis ran scripts and commands for them.
    assert.equal(redis.nodes, 2);
    assert.deepEqual(redis.sessionsByNode, { 'n1.w1': USERS / 2, 'n2.w1': USERS / 2 });
    assert.equal(redis.redisServers, 1);
    assert.equal(redis.redisMasters, 1);
    assert.equal(redis.appendfsync, 'everysec');
    assert.ok(redis.redisCpuSeconds > 0);
    assert.ok((redis.redisMainThreadPercent ?? 0) > 0);
    assert.ok((redis.redisScriptCallsPerMsg ?? 0) > 0, 'EVALSHA per message');
    assert.ok((redis.redisPublishesPerMsg ?? 0) > 0, 'SPUBLISH per message');
    assert.ok((redis.redisReadsPerMsg ?? 0) > 0, 'socket reads per message');
    assert.ok((redis.redisCommandsPerMsg ?? 0) >= (redis.redisScriptCallsPerMsg ?? 0));
    assert.ok('evalsha' in redis.redisCommandsPerMsgByName);
    assert.ok(!('info' in redis.redisCalls), 'the readings’ own INFO calls are left out');

    const text = readFileSync(doc, 'utf8');
    assert.match(text, /^# Benchmarks\n\nkept above\n\n<!-- fleet:start -->\nMeasured /);
    assert.match(text, /\| SQLite, 1 node \| [\d,]+ \|/);
    assert.match(text, /\| Redis, 2 nodes \| [\d,]+ \|/);
    assert.match(text, /\n<!-- fleet:end -->\n\nkept below\n$/);
    assert.doesNotMatch(text, /\nold\n/);
    assert.match(text, /!\[[^\]]*\]\(bench-fleet\.svg\)/);
    assert.match(readFileSync(path.join(dir, 'bench-fleet.svg'), 'utf8'), /^<svg [^>]*>[\s\S]*<\/svg>\n$/);
  });
});
