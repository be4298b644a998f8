/**
 * The soak benchmark (bench/soak.ts), small: 20 users at 200 msg/s for 4 s, a sample every second. The
 * script as a user runs it: it starts its own server, samples it while the load runs, drains what is
 * in flight, stops the server, prints one JSON object, writes its section of a Markdown file and both
 * charts — and leaves nothing behind in its temp folder.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { SoakResult } from '../../bench/lib/soak.js';
import { type NodeRun, runNode } from '../helpers/run-node.js';

const SCRIPT = fileURLToPath(new URL('../../bench/soak.js', import.meta.url));

function runScript(args: string[], tmp: string): Promise<NodeRun> {
  return runNode(SCRIPT, args, { env: { TMPDIR: tmp } });
}

describe('bench:soak script', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-soak-test-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('samples a server under a steady load, delivers everything sent, and writes its section and charts', async () => {
    const doc = path.join(dir, 'BENCH.md');
    writeFileSync(
      doc,
      '# Benchmarks\n\nkept above\n\n<!-- soak:start -->\nold\n<!-- soak:end -->\n\nkept below\n',
    );
    const svg = path.join(dir, 'soak.svg');
    const tmp = path.join(dir, 'tmp');
    mkdirSync(tmp);
    const { code, stdout, stderr } = await runScript(
      [
        '--duration',
        '4s',
        '--every',
        '1s',
        '--rate',
        '200',
        '--users',
        '20',
        '--json',
        '--write',
        doc,
        '--svg',
        svg,
      ],
      tmp,
    );
    assert.equal(code, 0, stderr);
    assert.deepEqual(readdirSync(tmp), [], 'the server and its data folder removed');

    const r = JSON.parse(stdout) as SoakResult;
    assert.equal(r.benchmark, 'soak');
    assert.equal(r.store, 'sqlite');
    assert.equal(r.redisRssBytes, null);
    assert.equal(r.ok, true, String(r.failure));
    assert.equal(r.users, 20);
    assert.equal(r.rate, 200);
    // Every message sent was delivered: those in flight at the end arrived during the drain.
    assert.ok(r.sent >= 600, `sent ${r.sent}`);
    assert.equal(r.undelivered, 0);
    assert.equal(r.delivered, r.sent);
    assert.deepEqual(r.errorsByName, {});
    assert.equal(r.serverExit, 'exit code 0');
    // One row per second of load, each with what the server did in it.
    assert.equal(r.intervals.length, 4);
    for (const i of r.intervals) {
      assert.ok(i.msgPerSec > 100 && i.msgPerSec < 300, `about 200 msg/s in each interval: ${i.msgPerSec}`);
      assert.ok(i.latencyMs !== null && i.latencyMs.p50 > 0 && i.latencyMs.p50 <= i.latencyMs.p99);
      assert.ok(i.latencyMs.p99 <= i.latencyMs.max);
      assert.ok(i.serverRssBytes > 10 * 2 ** 20, 'the server tree holds some memory');
      assert.ok(i.serverCpuPercent > 0);
      // The machine's busy time includes the server's (and this generator's).
      assert.ok(i.machineCpuPercent !== null && i.machineCpuPercent > i.serverCpuPercent / 2);
    }
    // The store grew on disk with what it kept.
    assert.ok(r.dataBytes.end > r.dataBytes.before, 'the data folder grew');
    assert.ok(r.dataBytesPerMessage !== null && r.dataBytesPerMessage > 0);
    assert.ok(r.serverRssBytes.max >= r.serverRssBytes.end);
    const half = r.serverRssBytes.secondHalf;
    assert.ok(half !== null && half.min > 0 && half.min <= half.max && half.max <= r.serverRssBytes.max);
    assert.equal(typeof half.trendPerMinute, 'number');

    const text = readFileSync(doc, 'utf8');
    assert.ok(text.startsWith('# Benchmarks\n\nkept above\n\n<!-- soak:start -->\nMeasured '));
    assert.ok(text.endsWith('<!-- soak:end -->\n\nkept below\n'));
    assert.ok(!text.includes('\nold\n'));
    assert.match(
      text,
      /\| time \| msg\/s \| p50 ms \| p99 ms \| max ms \| server CPU % \| server RSS MiB \| data MiB \| machine CPU % \|/,
    );
    assert.match(text, /0 undelivered/);
    assert.match(text, /the generator \(this benchmark's process\) [\d.]+ s of CPU, \d+ % of one core/);
    assert.match(text, /!\[server memory and data folder over the soak\]\(soak\.svg\)/);
    assert.match(text, /!\[latency per interval over the soak\]\(soak-latency\.svg\)/);
    assert.match(readFileSync(svg, 'utf8'), /^<svg [^>]*>[\s\S]*data folder[\s\S]*<\/svg>\s*$/);
    assert.match(
      readFileSync(path.join(dir, 'soak-latency.svg'), 'utf8'),
      /^<svg [^>]*>[\s\S]*p99[\s\S]*<\/svg>\s*$/,
    );
  });

  it('--store redis: the server on a redis-server of its own, whose memory and folder it samples too', async () => {
    const tmp = path.join(dir, 'tmp-redis');
    mkdirSync(tmp);
    const { code, stdout, stderr } = await runScript(
      ['--store', 'redis', '--duration', '3s', '--every', '1s', '--rate', '200', '--users', '20', '--json'],
      tmp,
    );
    assert.equal(code, 0, stderr);
    assert.deepEqual(readdirSync(tmp), [], 'the server, redis-server and their folders removed');
    const r = JSON.parse(stdout) as SoakResult;
    assert.equal(r.store, 'redis');
    assert.equal(r.ok, true, String(r.failure));
    assert.equal(r.undelivered, 0);
    assert.equal(r.delivered, r.sent);
    assert.equal(r.intervals.length, 3);
    for (const i of r.intervals) {
      assert.ok(i.redisRssBytes !== null && i.redisRssBytes > 2 ** 20, 'Redis holds some memory');
      assert.ok(i.redisCpuPercent !== null && i.redisCpuPercent > 0, 'Redis did work');
    }
    assert.ok(r.redisRssBytes !== null && r.redisRssBytes.max >= r.redisRssBytes.end);
    assert.ok(r.dataBytes.end > r.dataBytes.before, 'the append-only file grew');
    assert.equal(r.serverExit, 'exit code 0');
  });

  it('refuses bad flags with the usage, starting nothing', async () => {
    const tmp = path.join(dir, 'tmp-bad');
    mkdirSync(tmp);
    for (const args of [
      ['--every', '1500ms'],
      ['--every', '2m', '--duration', '1m'],
      ['--every', '7s', '--duration', '1m'],
      ['--durability', 'normal,full'],
      ['--svg', 'chart.png'],
      ['--rate', '0'],
      ['--store', 'postgres'],
    ]) {
      const { code, stderr } = await runScript(args, tmp);
      assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
      assert.match(stderr, /usage: node dist\/bench\/soak\.js/);
    }
    assert.deepEqual(readdirSync(tmp), []);
  });
});
