/**
 * The benchmarks' CPU figures from /proc: a process tree's CPU time keeps the time of a child that has
 * ended (Redis's append-only-file rewrite is such a child), so a figure taken over an interval never
 * shrinks when one ends.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { treeCpu } from '../../bench/lib/proc.js';

describe('bench process figures', () => {
  it("a tree's CPU time keeps what a child that ended had used", async () => {
    // The parent runs a child that spins for 600 ms of CPU and waits for it, then idles until killed.
    const child = `const end = process.cpuUsage().user + 600000; while (process.cpuUsage().user < end) {}`;
    const parent = spawn(process.execPath, [
      '-e',
      `require('node:child_process').spawnSync(process.execPath, ['-e', ${JSON.stringify(child)}]);
       process.stdout.write('done\\n'); setTimeout(() => {}, 60000);`,
    ]);
    try {
      const [line] = (await once(parent.stdout, 'data')) as [Buffer];
      assert.equal(line.toString().trim(), 'done');
      const cpu = treeCpu(parent.pid!);
      assert.equal(cpu.processes, 1, 'the child has ended');
      assert.ok(cpu.seconds >= 0.5, `the tree's CPU time (${cpu.seconds} s) includes the child's 0.6 s`);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
