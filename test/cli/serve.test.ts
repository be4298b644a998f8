/** `switchboard serve` refuses what it cannot serve safely, before any worker starts. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../helpers/cluster.js';
import { freePort, semiSpaceOf, startServer } from '../helpers/server-process.js';

describe('serve refuses to start', () => {
  let dir = '';
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-serve-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const serve = async (...args: string[]) =>
    runCli([
      'serve',
      '--port',
      String(await freePort()),
      '--http-port',
      String(await freePort()),
      '--data',
      dir,
      ...args,
    ]);

  it('open mode (no secret) on an address other than loopback, with a clear message', async () => {
    const r = await serve('--host', '0.0.0.0');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0 without an auth secret/);
  });

  it('flag values that are not what they say', async () => {
    for (const [flag, value, message] of [
      ['--window', '0', /--window must be a positive integer/],
      ['--handshake-timeout', 'soon', /not a duration: "soon"/],
      ['--max-payload', 'big', /not a size: "big"/],
      ['--workers', '-1', /--workers must be a positive integer/],
    ] as const) {
      const r = await serve(flag, value);
      assert.equal(r.code, 1, `${flag} ${value}`);
      assert.match(r.stderr, message);
    }
  });

  it('--shards on a data folder created with another count', async () => {
    const server = await startServer({ dataDir: dir, args: ['--shards', '4'] });
    assert.equal(await server.stop(), 0);
    const r = await serve('--shards', '8');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /holds 4 shards; --shards 8 applies only to a new data folder/);
    // Without --shards the folder's own count is used.
    const again = await startServer({ dataDir: dir });
    assert.equal(await again.stop(), 0);
  });
});

describe("serve: the workers' young generation", () => {
  it('is 16 MiB on SQLite unless --semi-space says otherwise', async () => {
    for (const [args, expected] of [
      [[], 16],
      [['--semi-space', '4'], 4],
    ] as const) {
      const server = await startServer({ args: [...args] });
      try {
        const workers = server.workerPids();
        assert.ok(workers.length > 0);
        for (const pid of workers) assert.equal(semiSpaceOf(pid), expected, args.join(' ') || 'default');
      } finally {
        assert.equal(await server.stop(), 0);
      }
    }
  });
});
