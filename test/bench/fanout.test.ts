/**
 * The group fan-out benchmark (bench/fanout.ts, bench/lib/fanout.ts), small: 50 members + the sender,
 * 5 messages, against real servers. The scenario against a server started here: every member gets
 * every message exactly once and in order (recorded here, apart from the scenario's own counts). The
 * script as a user runs it: it starts and stops its own server, prints one JSON object with the figures
 * (the loop delay inside the server's worker included), writes its section of a Markdown file
 * between the markers and the chart beside it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runFanout } from '../../bench/lib/fanout.js';
import type { DeliverFrame } from '../../src/protocol/index.js';
import { runNode } from '../helpers/run-node.js';
import { startServer } from '../helpers/server-process.js';

const MEMBERS = 50;
const MESSAGES = 5;
const SCRIPT = fileURLToPath(new URL('../../bench/fanout.js', import.meta.url));

describe('group fan-out scenario', () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  it('delivers every message to every member exactly once, in order', async () => {
    const run = `fot${randomBytes(3).toString('hex')}`;
    const received = new Map<string, DeliverFrame[]>();
    const r = await runFanout(
      {
        host: '127.0.0.1',
        port: server.port,
        run,
        members: MEMBERS,
        messages: MESSAGES,
        size: 100,
        label: '[test]',
      },
      {
        onDeliver: (member, frame) => {
          const list = received.get(member) ?? [];
          list.push(frame);
          received.set(member, list);
        },
      },
    );
    assert.equal(r.failure, null);
    assert.equal(received.size, MEMBERS);
    for (let i = 0; i < MEMBERS; i++) {
      const frames = received.get(`${run}-m${i}`) ?? [];
      assert.deepEqual(
        frames.map((f) => f.clientMsgId),
        [1, 2, 3, 4, 5],
        `${run}-m${i}: each message once, in SEND order`,
      );
      for (const f of frames) {
        assert.equal(f.from, `${run}-s`);
        assert.equal(f.to, `#${run}`);
        assert.equal(f.payload.length, 100);
      }
      const seqs = frames.map((f) => f.seq);
      assert.deepEqual(
        seqs,
        [...seqs].sort((a, b) => a - b),
        'seqs ascend',
      );
      assert.equal(new Set(seqs).size, MESSAGES);
    }
    assert.equal(r.ok, true);
    assert.deepEqual(
      {
        delivered: r.delivered,
        membersComplete: r.membersComplete,
        outOfOrder: r.outOfOrder,
        duplicates: r.duplicates,
        accepted: r.accepted,
      },
      {
        delivered: MEMBERS * MESSAGES,
        membersComplete: MEMBERS,
        outOfOrder: 0,
        duplicates: 0,
        accepted: MESSAGES,
      },
    );
    assert.equal(r.firstDeliveryMs.length, MESSAGES);
    r.firstDeliveryMs.forEach((first, k) => {
      assert.ok(
        first > 0 && first <= r.lastDeliveryMs[k]!,
        `message ${k + 1}: first delivery before the last`,
      );
    });
    assert.equal(
      Object.values(r.sessionsByNode).reduce((a, b) => a + b, 0),
      MEMBERS + 1,
    );
    assert.ok(r.probe !== null && r.probe.answered >= 1, 'the probe timed at least one PONG');
    assert.ok(r.endEpochMs > r.startEpochMs);
  });
});

describe('bench:fanout script', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-fanout-test-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs against its own server, prints the figures as JSON and writes its section and chart', async () => {
    const doc = path.join(dir, 'BENCH.md');
    writeFileSync(
      doc,
      '# Benchmarks\n\nkept above\n\n<!-- fanout:start -->\nold\n<!-- fanout:end -->\n\nkept below\n',
    );
    const { code, stdout, stderr } = await runNode(SCRIPT, [
      '--members',
      String(MEMBERS),
      '--messages',
      String(MESSAGES),
      '--json',
      '--write',
      doc,
    ]);
    assert.equal(code, 0, stderr);

    const out = JSON.parse(stdout) as {
      benchmark: string;
      failures: string[];
      results: Record<string, unknown>[];
    };
    assert.equal(out.benchmark, 'fanout');
    assert.deepEqual(out.failures, []);
    assert.equal(out.results.length, 1);
    const r = out.results[0]!;
    for (const field of [
      'deliveriesPerSecond',
      'fanoutMs',
      'acceptedMs',
      'firstDeliveryMs',
      'lastDeliveryMs',
      'serverCpuSeconds',
      'serverCpuMicrosPerDelivery',
      'probe',
      'serverLoopDelay',
      'timeSeries',
    ]) {
      assert.ok(field in r, `the result has ${field}`);
    }
    assert.equal(r.ok, true);
    assert.equal(r.workers, 1);
    assert.equal(r.delivered, MEMBERS * MESSAGES);
    assert.equal(r.membersComplete, MEMBERS);
    assert.ok((r.deliveriesPerSecond as number) > 0);
    const accepted = r.acceptedMs as { p50: number; p99: number; max: number };
    assert.ok(accepted.p50 > 0 && accepted.p50 <= accepted.max);
    const series = r.timeSeries as { delivered: number[] };
    assert.equal(
      series.delivered.reduce((a, b) => a + b, 0),
      MEMBERS * MESSAGES,
    );
    // The loop-delay probe ran in the worker and sampled it during the fan-out.
    const loops = r.serverLoopDelay as { node: string; samples: number; maxMs: number }[];
    assert.deepEqual(
      loops.map((p) => p.node),
      ['w1'],
    );
    assert.ok(loops[0]!.samples >= 1);
    assert.ok((r.probe as { answered: number }).answered >= 1);

    const text = readFileSync(doc, 'utf8');
    assert.match(text, /^# Benchmarks\n\nkept above\n\n<!-- fanout:start -->\nMeasured /);
    assert.match(text, /\| \*\*member deliveries per second\*\* \| \*\*[\d,]+\*\* \|/);
    assert.match(text, /\n<!-- fanout:end -->\n\nkept below\n$/);
    assert.doesNotMatch(text, /\nold\n/);
    assert.match(text, /!\[[^\]]*\]\(bench-fanout\.svg\)/);
    assert.match(readFileSync(path.join(dir, 'bench-fanout.svg'), 'utf8'), /^<svg [^>]*>[\s\S]*<\/svg>\n$/);
  });
});
