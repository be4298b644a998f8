/**
 * The peer benchmarks' drivers (bench/drivers/) against real servers: Switchboard (startServer),
 * Mosquitto and nats-server started here on free loopback ports in temp folders. For each driver,
 * 10 users exchange messages in the closed loop for 1 s: messages are delivered, and every message
 * sent is delivered exactly once. MQTT QoS 1 with a persistent session delivers the messages published
 * while the subscriber was offline (the drain), and so does SBP. A peer's tests are skipped only when
 * its binary is not installed (scripts/test.sh installs both first).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { closedLoop, drain, type LoopOptions } from '../../bench/drivers/closed-loop.js';
import type { Driver } from '../../bench/drivers/driver.js';
import { encodeRemainingLength, MqttDriver } from '../../bench/drivers/mqtt.js';
import { NatsDriver } from '../../bench/drivers/nats.js';
import { SbpDriver } from '../../bench/drivers/sbp.js';
import { findBinary, type PeerServer, startMosquitto, startNats } from '../../bench/drivers/servers.js';
import { encodeFrame } from '../../src/protocol/index.js';
import { startServer } from '../helpers/server-process.js';

const LOOP: Omit<LoopOptions, 'label'> = {
  users: 10,
  inFlight: 4,
  payloadBytes: 100,
  warmupMs: 0,
  durationMs: 1000,
  settleMs: 5000,
  serverPid: null,
  progress: false,
};

/** 10 users for 1 s: something is delivered, nothing twice, nothing lost. */
async function exchange(driver: Driver, port: number, label: string): Promise<void> {
  // Users of their own per test: a server shared by tests still holds the unacknowledged tail of
  // an earlier test's durable messages, which it would replay to the same users.
  const r = await closedLoop(driver, port, { ...LOOP, label, userPrefix: `${label.replace(/\W+/g, '-')}-u` });
  assert.ok(r.delivered > 0, `${label}: nothing delivered in the window`);
  assert.equal(r.duplicates, 0, `${label}: duplicates`);
  assert.equal(r.lost, 0, `${label}: messages never delivered`);
  assert.equal(r.deliveredTotal, r.sentTotal, `${label}: every message sent is delivered once`);
  assert.ok(r.sentTotal >= LOOP.users * LOOP.inFlight);
}

const MOSQUITTO = findBinary('mosquitto');
const NATS = findBinary('nats-server');

describe('SBP driver against Switchboard', () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  it('durable SENDs: 10 users, every message delivered exactly once', async () => {
    await exchange(new SbpDriver({ ephemeral: false }), server.port, 'sbp durable');
  });

  it('ephemeral SENDs: 10 users, every message delivered exactly once', async () => {
    await exchange(new SbpDriver({ ephemeral: true }), server.port, 'sbp ephemeral');
  });

  it('replays the messages stored while the receiver was offline (drain)', async () => {
    const r = await drain(
      new SbpDriver({ ephemeral: false }),
      new SbpDriver({ ephemeral: false, replay: true }),
      server.port,
      {
        messages: 200,
        payloadBytes: 100,
        timeoutMs: 20_000,
      },
    );
    assert.deepEqual(
      { received: r.received, duplicates: r.duplicates, missing: r.missing },
      { received: 200, duplicates: 0, missing: 0 },
    );
    assert.ok(r.drainMs > 0);
  });
  it('ACKs as the SDK does: at the latest 100 ms after the first unacknowledged DELIVER', async () => {
    // With the timer, three messages are acknowledged long before window/2 DELIVERs; without it
    // (ackDelayMs 0) they are still unacknowledged, and a reconnect of the device replays them.
    for (const [ackDelayMs, replayed] of [
      [undefined, 0],
      [0, 3],
    ] as const) {
      const tag = `ack-${ackDelayMs ?? 'sdk'}-${Date.now()}`;
      const driver = new SbpDriver({ ephemeral: false, ackDelayMs });
      const got: number[] = [];
      const onFail = (why: string) => assert.fail(why);
      const receiver = await driver.connect(server.port, `${tag}-r`, {
        onMessage: () => got.push(1),
        onFail,
      });
      const sender = await driver.connect(server.port, `${tag}-s`, { onMessage: () => {}, onFail });
      for (let i = 0; i < 3; i++) sender.publish(`${tag}-r`, new Uint8Array(8));
      await sender.flush();
      for (let i = 0; i < 50 && got.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(got.length, 3);
      await new Promise((r) => setTimeout(r, 400)); // well past the 100 ms
      await receiver.close();
      await sender.close();
      const again: number[] = [];
      const reconnected = await new SbpDriver({ ephemeral: false, replay: true }).connect(
        server.port,
        `${tag}-r`,
        { onMessage: () => again.push(1), onFail },
      );
      await new Promise((r) => setTimeout(r, 400));
      await reconnected.close();
      assert.equal(again.length, replayed, `ackDelayMs ${ackDelayMs ?? 'default'}: messages replayed`);
    }
  });
});

describe('MQTT 3.1.1 driver against Mosquitto', {
  skip: MOSQUITTO === null && 'mosquitto is not installed',
}, () => {
  let server: PeerServer;
  before(async () => {
    server = await startMosquitto({ maxQueuedMessages: 1000 });
  });
  after(async () => {
    await server?.stop();
  });

  it('QoS 1, persistent sessions: 10 users, every message delivered exactly once', async () => {
    await exchange(new MqttDriver({ qos: 1, cleanSession: false }), server.port, 'mqtt qos1');
  });

  it('QoS 0, clean sessions: 10 users, every message delivered exactly once', async () => {
    await exchange(new MqttDriver({ qos: 0, cleanSession: true }), server.port, 'mqtt qos0');
  });

  it('QoS 1, persistent session: delivers what was published while the subscriber was offline', async () => {
    const driver = new MqttDriver({ qos: 1, cleanSession: false });
    const r = await drain(driver, driver, server.port, {
      messages: 300,
      payloadBytes: 100,
      timeoutMs: 20_000,
      receiver: 'offline-sub',
      sender: 'offline-pub',
    });
    assert.deepEqual(
      { received: r.received, duplicates: r.duplicates, missing: r.missing },
      { received: 300, duplicates: 0, missing: 0 },
    );
  });

  it('QoS 0 with a clean session keeps nothing for an offline subscriber', async () => {
    const driver = new MqttDriver({ qos: 0, cleanSession: true });
    const r = await drain(driver, driver, server.port, {
      messages: 20,
      payloadBytes: 100,
      timeoutMs: 1000,
      receiver: 'clean-sub',
      sender: 'clean-pub',
    });
    assert.equal(r.received, 0);
  });
});

describe('NATS core driver against nats-server', {
  skip: NATS === null && 'nats-server is not installed',
}, () => {
  let server: PeerServer;
  before(async () => {
    server = await startNats();
  });
  after(async () => {
    await server?.stop();
  });

  it('10 users, every message delivered exactly once', async () => {
    await exchange(new NatsDriver(), server.port, 'nats');
  });

  it('keeps nothing for a subscriber that is not connected (no store)', async () => {
    const driver = new NatsDriver();
    const r = await drain(driver, driver, server.port, {
      messages: 20,
      payloadBytes: 100,
      timeoutMs: 1000,
    });
    assert.equal(r.received, 0);
  });
});

/**
 * A one-connection TCP server that answers the client's first bytes with `greeting`, then writes
 * `stream` one byte per write, a few ms apart, so the client's parser sees packets split everywhere.
 */
async function tricklingServer(
  greetFirst: Buffer | null,
  answer: Buffer,
  stream: Buffer,
): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('error', () => {});
    if (greetFirst) socket.write(greetFirst);
    socket.once('data', async () => {
      socket.write(answer);
      for (const b of stream) {
        if (socket.destroyed) return;
        socket.write(Buffer.of(b));
        await new Promise((r) => setTimeout(r, 1));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Waits until `n` payloads arrived through `driver` from a trickling server. */
async function receiveTrickled(driver: Driver, port: number, n: number): Promise<string[]> {
  const got: string[] = [];
  let done: () => void = () => {};
  const all = new Promise<void>((resolve) => {
    done = resolve;
  });
  const conn = await driver.connect(port, 'trickle', {
    onMessage: (p) => {
      got.push(Buffer.from(p).toString());
      if (got.length === n) done();
    },
    onFail: (why) => assert.fail(why),
  });
  await Promise.race([all, new Promise((r) => setTimeout(r, 5000))]);
  conn.destroy();
  return got;
}

describe('driver parsers, packets split at every byte', () => {
  it('MQTT: PUBLISH packets (QoS 0 and QoS 1) arriving a byte at a time', async () => {
    const publish = (qos: number, topic: string, payload: string, id: number): Buffer => {
      const t = Buffer.from(topic);
      const p = Buffer.from(payload);
      const rl = 2 + t.length + (qos ? 2 : 0) + p.length;
      const head = Buffer.from([
        0x30 | (qos << 1),
        ...encodeRemainingLength(rl),
        t.length >> 8,
        t.length & 0xff,
      ]);
      return Buffer.concat([head, t, qos ? Buffer.from([id >> 8, id & 0xff]) : Buffer.alloc(0), p]);
    };
    // A payload over 127 bytes takes a two-byte remaining length.
    const long = 'x'.repeat(200);
    const stream = Buffer.concat([publish(1, 'u/trickle', 'one', 7), publish(0, 'u/trickle', long, 0)]);
    const server = await tricklingServer(null, Buffer.from([0x20, 2, 0, 0]), stream);
    try {
      const got = await receiveTrickled(new MqttDriver({ qos: 1, cleanSession: true }), server.port, 2);
      assert.deepEqual(got, ['one', long]);
    } finally {
      await server.close();
    }
  });

  it('SBP: DELIVERs read in place, split at every byte, the own copy not passed on', async () => {
    const welcome = encodeFrame({
      type: 'WELCOME',
      version: 1,
      node: 'w1',
      lastSeq: 0,
      ackedSeq: 0,
      heartbeatMs: 30_000,
      maxPayload: 65_536,
      window: 1000,
    });
    const deliver = (seq: number, from: string, payload: string): Uint8Array =>
      encodeFrame({
        type: 'DELIVER',
        seq,
        timestamp: 1,
        from,
        fromDevice: 'd',
        clientMsgId: seq,
        to: from === 'trickle' ? 'someone' : 'trickle',
        payload: Buffer.from(payload),
      });
    const long = 'y'.repeat(300);
    const frames = Buffer.concat([
      deliver(1, 'alice', 'one'),
      deliver(2, 'trickle', 'own copy'),
      encodeFrame({ type: 'PING', nonce: 5 }),
      deliver(3, 'trickl', 'a sender whose id is a prefix of ours'),
      deliver(4, 'bob', long),
    ]);
    // Once with WELCOME alone in its chunk, once with the first DELIVER begun in WELCOME's chunk (the
    // switch from the decoder to reading in place waits for the decoder to finish that frame).
    for (const cut of [0, 9]) {
      const server = await tricklingServer(
        null,
        Buffer.concat([welcome, frames.subarray(0, cut)]),
        frames.subarray(cut),
      );
      try {
        const got = await receiveTrickled(new SbpDriver({ ephemeral: false }), server.port, 3);
        assert.deepEqual(got, ['one', 'a sender whose id is a prefix of ours', long], `cut at ${cut}`);
      } finally {
        await server.close();
      }
    }
  });

  it('NATS: MSG lines and payloads arriving a byte at a time (a PING among them)', async () => {
    const stream = Buffer.from(
      'MSG u.trickle 1 5\r\nhello\r\nPING\r\nMSG u.trickle 1 reply.to 9\r\na\r\nb c\r\nd\r\n',
    );
    const server = await tricklingServer(Buffer.from('INFO {}\r\n'), Buffer.from('PONG\r\n'), stream);
    try {
      const got = await receiveTrickled(new NatsDriver(), server.port, 2);
      assert.deepEqual(got, ['hello', 'a\r\nb c\r\nd']);
    } finally {
      await server.close();
    }
  });
});
