/** `switchboard send | listen | token` as child processes against a real server. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type NodeRun, runNode } from '../helpers/run-node.js';
import { BIN, type ServerProcess, startServer } from '../helpers/server-process.js';

let home: string;

/** Runs the CLI with HOME and the state folder in a temp dir. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<NodeRun> {
  return runNode(BIN, args, {
    env: { HOME: home, SWITCHBOARD_TOKEN: '', SWITCHBOARD_AUTH_SECRET: '', ...env },
    timeoutMs: 30_000,
  });
}

before(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-cli-home-'));
});
after(() => {
  fs.rmSync(home, { recursive: true, force: true });
});

describe('CLI in open mode', () => {
  let server: ServerProcess;
  let common: string[];
  before(async () => {
    server = await startServer();
    common = ['--server', server.endpoint, '--state-dir', path.join(home, 'state')];
  });
  after(async () => {
    await server?.stop();
  });

  test('send, then listen --count 1 --json prints it', async () => {
    const sent = await cli(['send', ...common, '--user', 'alice', '--to', 'bob', '--json', 'hello', 'bob']);
    assert.equal(sent.code, 0, sent.stderr);
    const accepted = JSON.parse(sent.stdout);
    assert.ok(accepted.clientMsgId > 0);
    assert.equal(accepted.duplicate, false);

    const heard = await cli(['listen', ...common, '--user', 'bob', '--count', '1', '--json']);
    assert.equal(heard.code, 0, heard.stderr);
    const lines = heard.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    const m = JSON.parse(lines[0]!);
    assert.deepEqual(
      { seq: m.seq, from: m.from, fromDevice: m.fromDevice, to: m.to, text: m.text, id: m.clientMsgId },
      {
        seq: 1,
        from: 'alice',
        fromDevice: 'cli-send',
        to: 'bob',
        text: 'hello bob',
        id: accepted.clientMsgId,
      },
    );
    assert.equal(m.timestamp, accepted.timestamp);

    // Processed and ACKed: a second listen has nothing, exits 0 at its timeout without --count.
    const again = await cli(['listen', ...common, '--user', 'bob', '--timeout', '1s', '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, '');
  });

  test('listen --count stops at the count and leaves the rest for next time', async () => {
    for (const text of ['one', 'two', 'three']) {
      const r = await cli(['send', ...common, '--user', 'alice', '--to', 'carol', text]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '');
    }
    const first = await cli(['listen', ...common, '--user', 'carol', '--count', '2', '--json']);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(
      first.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).text),
      ['one', 'two'],
    );
    const human = await cli(['listen', ...common, '--user', 'carol', '--count', '1']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^\d\d:\d\d:\d\d alice → carol: three\n$/);
    // --count not reached by the timeout: non-zero.
    const short = await cli(['listen', ...common, '--user', 'carol', '--count', '1', '--timeout', '500ms']);
    assert.equal(short.code, 3);
    assert.match(short.stderr, /TIMEOUT/);
  });

  test('a request-level error exits non-zero with its name', async () => {
    const r = await cli(['send', ...common, '--user', 'alice', '--to', '#nowhere', 'x']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^INVALID_ADDRESS: /);
  });

  test('send to a server that is down fails within the timeout', async () => {
    const r = await cli([
      'send',
      '--server',
      '127.0.0.1:1',
      '--state-dir',
      path.join(home, 'state'),
      '--user',
      'alice',
      '--to',
      'bob',
      '--timeout',
      '1s',
      'lost',
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^TIMEOUT: could not connect to 127\.0\.0\.1:1 \(.*ECONNREFUSED.*\) within 1s/);
    assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
    // Not re-sent later: the failed message is not left pending.
    const state = fs.readFileSync(path.join(home, 'state', '127.0.0.1_1__alice__cli-send.json'), 'utf8');
    assert.deepEqual(JSON.parse(state).pending, []);
  });

  test('token needs a secret', async () => {
    const r = await cli(['token', 'alice']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /secret/);
  });
});

describe('CLI with an auth secret', () => {
  const secret = 'test-secret-of-enough-length';
  let server: ServerProcess;
  let common: string[];
  before(async () => {
    server = await startServer({ args: ['--auth-secret', secret] });
    common = ['--server', server.endpoint, '--state-dir', path.join(home, 'state-auth')];
  });
  after(async () => {
    await server?.stop();
  });

  test('a token from `token` is accepted', async () => {
    const alice = await cli(['token', 'alice', '--secret', secret, '--ttl', '1h']);
    assert.equal(alice.code, 0, alice.stderr);
    const token = alice.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const sent = await cli(['send', ...common, '--user', 'alice', '--token', token, '--to', 'bob', 'signed']);
    assert.equal(sent.code, 0, sent.stderr);

    const bob = await cli(['token', 'bob'], { SWITCHBOARD_AUTH_SECRET: secret });
    assert.equal(bob.code, 0, bob.stderr);
    const heard = await cli(['listen', ...common, '--user', 'bob', '--count', '1', '--json'], {
      SWITCHBOARD_TOKEN: bob.stdout.trim(),
    });
    assert.equal(heard.code, 0, heard.stderr);
    assert.equal(JSON.parse(heard.stdout).text, 'signed');
  });

  test('a wrong token is UNAUTHORIZED, at once', async () => {
    const forBob = (await cli(['token', 'bob', '--secret', secret])).stdout.trim();
    const wrongUser = await cli([
      'send',
      ...common,
      '--user',
      'alice',
      '--token',
      forBob,
      '--to',
      'bob',
      'x',
    ]);
    assert.equal(wrongUser.code, 2);
    assert.match(wrongUser.stderr, /^UNAUTHORIZED/);
    assert.ok(wrongUser.ms < 8_000, `took ${wrongUser.ms} ms`);

    const otherSecret = (await cli(['token', 'alice', '--secret', 'another-secret'])).stdout.trim();
    const badSig = await cli([
      'listen',
      ...common,
      '--user',
      'alice',
      '--token',
      otherSecret,
      '--count',
      '1',
    ]);
    assert.equal(badSig.code, 2);
    assert.match(badSig.stderr, /^UNAUTHORIZED/);

    const none = await cli(['send', ...common, '--user', 'alice', '--to', 'bob', 'x']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^UNAUTHORIZED/);
  });
});
