/**
 * TLS on both ports (`serve --tls-cert --tls-key`), with a self-signed certificate made by the test
 * (openssl): the SDK over `tls://`, a WebSocket over `wss://`, /healthz over https, the CLI with --ca; a
 * client that does not trust the certificate, a plain TCP client, and one that connects and never starts
 * its TLS handshake are all refused — the last one at the handshake deadline.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { MemoryStorage, SwitchboardClient, TcpTransport } from '../../src/client/index.js';
import { encodeFrame, FrameDecoder } from '../../src/protocol/index.js';
import { BIN, type ServerProcess, startServer } from '../helpers/server-process.js';

describe('TLS on both ports', () => {
  let dir: string;
  let ca: Buffer;
  let server: ServerProcess;
  const clients: SwitchboardClient[] = [];
  const client = (user: string, trust: Buffer | null = ca) => {
    const c = new SwitchboardClient({
      endpoint: `tls://127.0.0.1:${server.port}`,
      user,
      device: 'phone',
      transport: new TcpTransport(trust ? { tls: { ca: trust } } : {}),
      storage: new MemoryStorage(),
    });
    clients.push(c);
    return c;
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-tls-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-subj',
        '/CN=localhost',
        '-days',
        '1',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-keyout',
        path.join(dir, 'key.pem'),
        '-out',
        path.join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    ca = fs.readFileSync(path.join(dir, 'cert.pem'));
    server = await startServer({
      args: [
        '--tls-cert',
        path.join(dir, 'cert.pem'),
        '--tls-key',
        path.join(dir, 'key.pem'),
        '--handshake-timeout',
        '2s',
      ],
      healthScheme: 'https',
    });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the SDK over tls:// sends and receives', async () => {
    const alice = client('tls-alice');
    const bob = client('tls-bob');
    const got = new Promise<string>((resolve) => bob.on('message', (m) => resolve(m.text ?? '')));
    await Promise.all([alice.start(), bob.start()]);
    await alice.send('tls-bob', 'over TLS');
    assert.equal(await got, 'over TLS');
  });

  test('a client that does not trust the certificate cannot connect', async () => {
    const mallory = client('tls-mallory', null);
    const failed = new Promise<Error | undefined>((resolve) =>
      mallory.on('reconnecting', (r) => resolve(r.lastError)),
    );
    mallory.start().catch(() => {});
    const err = await failed;
    assert.match(String(err?.message), /self[- ]signed|certificate/i);
  });

  test('wss:// carries SBP, and /healthz answers over https', async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${server.httpPort}/sbp`, 'sbp.v1', { ca });
    ws.binaryType = 'nodebuffer';
    const frames: string[] = [];
    const decoder = new FrameDecoder('serverToClient', { firstFrame: 70_000, frame: 70_000 });
    const welcome = new Promise<void>((resolve, reject) => {
      ws.on('message', (data: Buffer) => {
        decoder.push(data, (f) => {
          frames.push(f.type);
          if (f.type === 'WELCOME') resolve();
        });
      });
      ws.on('error', reject);
    });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.send(
      encodeFrame({ type: 'HELLO', version: 1, user: 'tls-wss', device: 'web', token: '', resumeAfter: 0 }),
    );
    await welcome;
    assert.deepEqual(frames, ['WELCOME']);
    ws.close();

    const health = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      https
        .get(`https://127.0.0.1:${server.httpPort}/healthz`, { ca }, (res) => {
          let body = '';
          res.on('data', (c) => {
            body += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
        .on('error', reject);
    });
    assert.equal(health.status, 200);
    assert.equal(JSON.parse(health.body).status, 'ok');
  });

  test('a plain TCP HELLO gets no SBP answer, and a silent client is cut at the handshake deadline', async () => {
    // Both ports: one that connects and never starts TLS holds its descriptor only until the deadline.
    const silentFor = async (port: number): Promise<{ ms: number; bytes: number }> => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      await new Promise((resolve) => socket.once('connect', resolve));
      const started = Date.now();
      let bytes = 0;
      socket.on('data', (c: Buffer) => {
        bytes += c.length;
      });
      await new Promise((resolve) => socket.once('close', resolve));
      return { ms: Date.now() - started, bytes };
    };
    const cuts = await Promise.all([silentFor(server.port), silentFor(server.httpPort)]);
    for (const { ms, bytes } of cuts) {
      assert.ok(ms >= 1500 && ms < 6000, `closed after ${ms} ms (deadline 2 s)`);
      assert.equal(bytes, 0, 'nothing was sent to a client that never started TLS');
    }

    const plain = net.connect(server.port, '127.0.0.1');
    plain.on('error', () => {});
    await new Promise((resolve) => plain.once('connect', resolve));
    plain.write(
      encodeFrame({ type: 'HELLO', version: 1, user: 'x', device: 'y', token: '', resumeAfter: 0 }),
    );
    const reply = await new Promise<Buffer>((resolve) => {
      let all = Buffer.alloc(0);
      plain.on('data', (c: Buffer) => {
        all = Buffer.concat([all, c]);
      });
      plain.once('close', () => resolve(all));
    });
    // Whatever came back is a TLS alert at most, never an SBP frame (type byte 0x02 WELCOME after a length).
    assert.ok(reply.length === 0 || reply[0] === 0x15, `got ${reply.toString('hex')}`);
  });

  test('the CLI sends over tls:// with --ca', () => {
    const home = fs.mkdtempSync(path.join(dir, 'home-'));
    const run = spawnSync(
      process.execPath,
      [
        BIN,
        'send',
        '--server',
        `tls://127.0.0.1:${server.port}`,
        '--ca',
        path.join(dir, 'cert.pem'),
        '--state-dir',
        home,
        '--user',
        'tls-cli',
        '--to',
        'tls-bob',
        'hello from the CLI',
      ],
      { encoding: 'utf8', env: { ...process.env, HOME: home, SWITCHBOARD_TOKEN: '' }, timeout: 20_000 },
    );
    assert.equal(run.status, 0, run.stderr);
  });
});
