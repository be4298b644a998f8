/**
 * FrameDecoder beyond the shared vectors (PROTOCOL.md sections 2.2 and 2.3): the first-frame limit,
 * checks 1–4 made as soon as their bytes arrive, ordering of frames and errors within a chunk, the dead
 * state after an error, payload views, midFrame and the memory held for an unfinished frame.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type DecoderLimits,
  type Direction,
  ErrorCode,
  type ErrorName,
  encodeFrame,
  type Frame,
  FrameDecoder,
  SbpError,
} from '../../src/protocol/index.js';

const SERVER_LIMITS: DecoderLimits = { firstFrame: 4096, frame: 66_560 };

function header(length: number): Uint8Array {
  const h = new Uint8Array(4);
  new DataView(h.buffer).setUint32(0, length);
  return h;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function hello(token = '', version = 1): Frame {
  return { type: 'HELLO', version, user: 'alice', device: 'phone', token, resumeAfter: 0 };
}

/** HELLO's encoded size without a token: 4 + 1 + 1 + (2+5) + (2+5) + 2 + 8. */
const HELLO_BASE = encodeFrame(hello()).length;

function send(payloadLength: number, clientMsgId = 1): Frame {
  return { type: 'SEND', clientMsgId, flags: 0, to: 'bob', payload: new Uint8Array(payloadLength).fill(7) };
}

/** `length` of a SEND to `bob` with an empty payload: type · clientMsgId · flags · to · payload length. */
const SEND_BASE = 1 + 8 + 1 + (2 + 3) + 4;

/** A SEND whose `length` field (type byte + body) is exactly `length`. */
function sendOfLength(length: number, clientMsgId = 1): Uint8Array {
  const bytes = encodeFrame(send(length - SEND_BASE, clientMsgId));
  assert.equal(new DataView(bytes.buffer).getUint32(0), length);
  return bytes;
}

const ping = (nonce: number): Frame => ({ type: 'PING', nonce });

function decoder(direction: Direction = 'clientToServer', limits = SERVER_LIMITS): FrameDecoder {
  return new FrameDecoder(direction, limits);
}

/** Pushes and returns the frames emitted; rethrows what push throws. */
function push(d: FrameDecoder, chunk: Uint8Array, into: Frame[] = []): Frame[] {
  d.push(chunk, (f) => into.push(f));
  return into;
}

function throwsSbp(fn: () => unknown, code: ErrorName): SbpError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof SbpError, `expected SbpError ${code}, got ${String(caught)}`);
  assert.equal(caught.codeName, code, caught.message);
  assert.equal(caught.code, ErrorCode[code]);
  assert.equal(caught.fatal, true);
  return caught;
}

describe('FrameDecoder: size limits (section 2.2)', () => {
  it('the first frame is held to firstFrame (4096), later frames to frame (66560)', () => {
    const d = decoder();
    const token = 'x'.repeat(4096 + 4 - HELLO_BASE);
    const first = encodeFrame(hello(token));
    assert.equal(new DataView(first.buffer).getUint32(0), 4096, 'a HELLO of exactly 4096');
    const frames = push(d, first);
    assert.deepEqual(
      frames.map((f) => f.type),
      ['HELLO'],
    );
    // From the second frame on, 66560 is accepted, 66561 is not.
    push(d, sendOfLength(66_560), frames);
    assert.equal(frames.length, 2);
    assert.equal(frames[1]!.type === 'SEND' && frames[1]!.payload.length, 66_560 - SEND_BASE);
    throwsSbp(() => push(d, header(66_561)), 'FRAME_TOO_LARGE');
  });

  it('a first frame of 4097 is FRAME_TOO_LARGE even though later frames may be that big', () => {
    throwsSbp(
      () => push(decoder(), encodeFrame(hello('x'.repeat(4097 + 4 - HELLO_BASE)))),
      'FRAME_TOO_LARGE',
    );
    throwsSbp(() => push(decoder(), sendOfLength(4097)), 'FRAME_TOO_LARGE');
    // The same frame as a second frame is fine.
    const d = decoder();
    const frames = push(d, concat(encodeFrame(hello()), sendOfLength(4097)));
    assert.deepEqual(
      frames.map((f) => f.type),
      ['HELLO', 'SEND'],
    );
  });

  it('the first-frame limit counts frames, not pushes: a frame after a split HELLO gets the larger limit', () => {
    const d = decoder();
    const h = encodeFrame(hello());
    const frames = push(d, h.subarray(0, 7));
    push(d, concat(h.subarray(7), sendOfLength(10_000)), frames);
    assert.deepEqual(
      frames.map((f) => f.type),
      ['HELLO', 'SEND'],
    );
    assert.equal(d.frameCount, 2);
  });

  it('setLimits applies from the next header, also within the chunk being decoded', () => {
    // A client: 66560 until WELCOME says otherwise.
    const d = decoder('serverToClient', { firstFrame: 66_560, frame: 66_560 });
    const welcome: Frame = {
      type: 'WELCOME',
      version: 1,
      node: 'w1',
      lastSeq: 0,
      ackedSeq: 0,
      heartbeatMs: 30_000,
      maxPayload: 1000,
      window: 10,
    };
    const deliver = (n: number): Frame => ({
      type: 'DELIVER',
      seq: 1,
      timestamp: 1,
      from: 'a',
      fromDevice: 'd',
      clientMsgId: 1,
      to: 'b',
      payload: new Uint8Array(n),
    });
    const frames: Frame[] = [];
    const bytes = concat(encodeFrame(welcome), encodeFrame(deliver(1000)), encodeFrame(deliver(1001 + 1024)));
    assert.throws(
      () =>
        d.push(bytes, (f) => {
          frames.push(f);
          if (f.type === 'WELCOME') d.setLimits({ firstFrame: 66_560, frame: f.maxPayload + 1024 + 30 });
        }),
      (err: unknown) => err instanceof SbpError && err.code === ErrorCode.FRAME_TOO_LARGE,
    );
    assert.deepEqual(
      frames.map((f) => f.type),
      ['WELCOME', 'DELIVER'],
    );
  });
});

describe('FrameDecoder: checks 1–4 as soon as their bytes arrive (section 2.3)', () => {
  it('length 0 is MALFORMED from the header alone', () => {
    throwsSbp(() => push(decoder(), header(0)), 'MALFORMED');
  });

  it('FRAME_TOO_LARGE is decided from the 4 header bytes alone, with no body buffered', () => {
    for (const length of [4097, 66_561, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff]) {
      const d = decoder();
      throwsSbp(() => push(d, header(length)), 'FRAME_TOO_LARGE');
      assert.equal(d.bufferedBytes, 0, `${length}: nothing allocated for the body`);
    }
    // Header split over pushes: the push completing it throws.
    const d = decoder();
    const h = header(0xffff_ffff);
    push(d, h.subarray(0, 1));
    push(d, h.subarray(1, 3));
    assert.equal(d.midFrame, true);
    throwsSbp(() => push(d, h.subarray(3)), 'FRAME_TOO_LARGE');
  });

  it('FRAME_TOO_LARGE wins over an unknown type and a bad HELLO version (check 2 before 3 and 4)', () => {
    throwsSbp(() => push(decoder(), concat(header(5000), Uint8Array.of(0x99))), 'FRAME_TOO_LARGE');
    throwsSbp(() => push(decoder(), concat(header(5000), Uint8Array.of(0x01, 0x07))), 'FRAME_TOO_LARGE');
  });

  it('an unknown type is PROTOCOL_VIOLATION as soon as the type byte arrives, before the body', () => {
    for (const type of [0x00, 0x12, 0x7f, 0x80, 0xff]) {
      const d = decoder();
      push(d, header(100));
      throwsSbp(() => push(d, Uint8Array.of(type)), 'PROTOCOL_VIOLATION');
      // Header and type byte in one chunk.
      throwsSbp(() => push(decoder(), concat(header(100), Uint8Array.of(type))), 'PROTOCOL_VIOLATION');
    }
  });

  it('a type not allowed in the direction is PROTOCOL_VIOLATION on the type byte', () => {
    // WELCOME, ACCEPTED, DELIVER… from a client; HELLO, SEND, ACK… from a server.
    for (const type of [0x02, 0x04, 0x05, 0x0b, 0x0e, 0x0f, 0x10]) {
      throwsSbp(
        () => push(decoder('clientToServer'), concat(header(50), Uint8Array.of(type))),
        'PROTOCOL_VIOLATION',
      );
    }
    for (const type of [0x01, 0x03, 0x06, 0x09, 0x0a, 0x0c, 0x0d]) {
      throwsSbp(
        () =>
          push(
            decoder('serverToClient', { firstFrame: 66_560, frame: 66_560 }),
            concat(header(50), Uint8Array.of(type)),
          ),
        'PROTOCOL_VIOLATION',
      );
    }
    // PING, PONG and BYE are both ways: no throw on the type byte.
    for (const direction of ['clientToServer', 'serverToClient'] as const) {
      for (const type of [0x07, 0x08, 0x11]) {
        const d = decoder(direction, { firstFrame: 66_560, frame: 66_560 });
        push(d, concat(header(50), Uint8Array.of(type)));
        assert.equal(d.midFrame, true);
      }
    }
  });

  it('HELLO with version ≠ 1 is UNSUPPORTED_VERSION on the version byte, before the rest of the body', () => {
    for (const version of [0, 2, 255]) {
      const d = decoder();
      push(d, header(3000));
      push(d, Uint8Array.of(0x01));
      assert.equal(d.midFrame, true);
      throwsSbp(() => push(d, Uint8Array.of(version)), 'UNSUPPORTED_VERSION');
      throwsSbp(
        () => push(decoder(), concat(header(3000), Uint8Array.of(0x01, version))),
        'UNSUPPORTED_VERSION',
      );
    }
    // Version 1: nothing is decided until the body is complete.
    const d = decoder();
    push(d, concat(header(3000), Uint8Array.of(0x01, 0x01), new Uint8Array(100)));
    assert.equal(d.midFrame, true);
  });

  it('a HELLO whose body ends before the version byte is MALFORMED (check 5)', () => {
    throwsSbp(() => push(decoder(), concat(header(1), Uint8Array.of(0x01))), 'MALFORMED');
  });

  it('a complete frame with a bad body is MALFORMED only once its last byte arrives', () => {
    // SEND with clientMsgId 0: the body is complete only at its end.
    const bad = encodeFrame(send(10, 1));
    bad[12] = 0; // clientMsgId's low byte: 1 → 0
    const d = decoder();
    const frames = push(d, encodeFrame(hello()));
    for (let i = 0; i < bad.length - 1; i++) push(d, bad.subarray(i, i + 1), frames);
    throwsSbp(() => push(d, bad.subarray(bad.length - 1)), 'MALFORMED');
    assert.equal(frames.length, 1);
  });
});

describe('FrameDecoder: frames and errors within a chunk', () => {
  it('frames before a bad one in the same chunk are delivered, in order, before the throw', () => {
    const d = decoder();
    const events: string[] = [];
    const chunk = concat(
      encodeFrame(hello()),
      encodeFrame(ping(1)),
      encodeFrame({ type: 'ACK', seq: 5 }),
      header(9),
      Uint8Array.of(0x99),
      new Uint8Array(8),
      encodeFrame(ping(2)),
    );
    try {
      d.push(chunk, (f) => events.push(f.type));
      assert.fail('expected a throw');
    } catch (err) {
      assert.ok(err instanceof SbpError && err.code === ErrorCode.PROTOCOL_VIOLATION, String(err));
      events.push('throw');
    }
    assert.deepEqual(events, ['HELLO', 'PING', 'ACK', 'throw']);
  });

  it('after an error every push throws the same error and emits nothing', () => {
    const d = decoder();
    const first = throwsSbp(() => push(d, header(0)), 'MALFORMED');
    const frames: Frame[] = [];
    for (const chunk of [encodeFrame(hello()), encodeFrame(ping(1)), new Uint8Array(0)]) {
      assert.throws(
        () => push(d, chunk, frames),
        (err) => err === first,
      );
    }
    assert.deepEqual(frames, []);
  });

  it('an exception thrown by onFrame also kills the decoder (the rest of its chunk is lost)', () => {
    const d = decoder();
    const boom = new Error('handler failed');
    assert.throws(
      () =>
        d.push(concat(encodeFrame(hello()), encodeFrame(ping(1))), () => {
          throw boom;
        }),
      (err) => err === boom,
    );
    assert.throws(
      () => push(d, encodeFrame(ping(2))),
      (err) => err === boom,
    );
  });

  it('an SbpError thrown by onFrame (a session-level check) is the error of later pushes', () => {
    const d = decoder();
    const violation = new SbpError(ErrorCode.PROTOCOL_VIOLATION, 'second HELLO');
    assert.throws(() =>
      d.push(encodeFrame(hello()), () => {
        throw violation;
      }),
    );
    assert.throws(
      () => push(d, encodeFrame(ping(1))),
      (err) => err === violation,
    );
  });

  it('an empty chunk changes nothing', () => {
    const d = decoder();
    assert.deepEqual(push(d, new Uint8Array(0)), []);
    assert.equal(d.midFrame, false);
    const h = encodeFrame(hello());
    push(d, h.subarray(0, 6));
    push(d, new Uint8Array(0));
    assert.deepEqual(
      push(d, h.subarray(6)).map((f) => f.type),
      ['HELLO'],
    );
  });
});

describe('FrameDecoder: payload views', () => {
  it('a payload wholly inside the pushed chunk is a view into it, not a copy', () => {
    const d = decoder();
    const chunk = concat(encodeFrame(hello()), encodeFrame(send(100)), encodeFrame(send(3, 2)));
    const frames = push(d, chunk);
    const s = frames[1];
    assert.ok(s?.type === 'SEND');
    assert.equal(s.payload.buffer, chunk.buffer, 'shares the chunk memory');
    assert.equal(s.payload.length, 100);
    chunk[s.payload.byteOffset] = 42;
    assert.equal(s.payload[0], 42, 'a view: changes to the chunk show through');
  });

  it('a payload of a frame split over chunks is intact and independent of the chunks', () => {
    const d = decoder();
    push(d, encodeFrame(hello()));
    const bytes = encodeFrame({
      type: 'SEND',
      clientMsgId: 9,
      flags: 1,
      to: '#g',
      payload: Uint8Array.of(1, 2, 3, 4, 5),
    });
    const a = bytes.slice(0, 10);
    const b = bytes.slice(10, 25);
    const c = bytes.slice(25);
    const frames = push(d, a);
    push(d, b, frames);
    push(d, c, frames);
    const s = frames[0];
    assert.ok(s?.type === 'SEND');
    assert.deepEqual([...s.payload], [1, 2, 3, 4, 5]);
    for (const chunk of [a, b, c]) {
      assert.notEqual(s.payload.buffer, chunk.buffer);
      chunk.fill(0);
    }
    assert.deepEqual([...s.payload], [1, 2, 3, 4, 5], 'reusing the chunks does not change it');
  });

  it('payloads of consecutive split frames do not share one buffer', () => {
    const d = decoder();
    push(d, encodeFrame(hello()));
    const f1 = encodeFrame({ type: 'SEND', clientMsgId: 1, flags: 0, to: 'b', payload: Uint8Array.of(1, 1) });
    const f2 = encodeFrame({ type: 'SEND', clientMsgId: 2, flags: 0, to: 'b', payload: Uint8Array.of(2, 2) });
    const frames: Frame[] = [];
    for (const byte of concat(f1, f2)) push(d, Uint8Array.of(byte), frames);
    const [s1, s2] = frames;
    assert.ok(s1?.type === 'SEND' && s2?.type === 'SEND');
    assert.deepEqual([...s1.payload, ...s2.payload], [1, 1, 2, 2]);
  });
});

describe('FrameDecoder: midFrame and buffered bytes', () => {
  it('midFrame is true exactly while an unfinished frame is buffered', () => {
    const d = decoder();
    assert.equal(d.midFrame, false);
    const h = encodeFrame(hello());
    push(d, h.subarray(0, 1));
    assert.equal(d.midFrame, true, 'one header byte');
    push(d, h.subarray(1, 4));
    assert.equal(d.midFrame, true, 'whole header, no body');
    push(d, h.subarray(4, 10));
    assert.equal(d.midFrame, true, 'part of the body');
    push(d, h.subarray(10));
    assert.equal(d.midFrame, false, 'frame complete');
    const p = encodeFrame(ping(1));
    push(d, concat(p, p, p));
    assert.equal(d.midFrame, false, 'several whole frames');
    push(d, concat(p, p.subarray(0, 2)));
    assert.equal(d.midFrame, true, 'a chunk ending inside the next frame');
    push(d, p.subarray(2));
    assert.equal(d.midFrame, false);
    assert.equal(d.frameCount, 6);
  });

  it('memory held for an unfinished frame follows the bytes received, not the declared length', () => {
    const d = decoder();
    push(d, encodeFrame(hello()));
    const big = sendOfLength(66_560);
    push(d, big.subarray(0, 4));
    assert.equal(d.bufferedBytes, 0, 'header only: no body buffer yet');
    push(d, big.subarray(4, 14));
    assert.ok(d.bufferedBytes <= 4096, `10 body bytes hold ${d.bufferedBytes}`);
    // Trickled in pieces, the buffer stays within twice what arrived and never past the frame.
    let off = 14;
    while (off < big.length - 1000) {
      const next = Math.min(big.length - 1000, off + 777);
      push(d, big.subarray(off, next));
      off = next;
      const received = off - 4;
      assert.ok(
        d.bufferedBytes <= Math.max(4096, 2 * received),
        `${received} received, ${d.bufferedBytes} held`,
      );
      assert.ok(d.bufferedBytes <= 66_560);
    }
    const frames = push(d, big.subarray(off));
    assert.equal(frames.length, 1);
    assert.ok(frames[0]?.type === 'SEND');
    assert.equal(frames[0].payload.length, 66_560 - SEND_BASE);
    assert.ok(frames[0].payload.every((b) => b === 7));
    assert.equal(d.bufferedBytes, 0, 'released once the frame is complete');
    assert.equal(d.midFrame, false);
  });

  it('a small frame split in two is buffered at its exact size', () => {
    const d = decoder();
    const h = encodeFrame(hello());
    push(d, h.subarray(0, 8));
    assert.equal(d.bufferedBytes, h.length - 4);
  });
});

describe('codec edges', () => {
  it('u64: 2^53−1 decodes, 2^53 and 2^64−1 are MALFORMED', () => {
    const ack = (hi: number, lo: number): Uint8Array => {
      const b = concat(header(9), Uint8Array.of(0x06), new Uint8Array(8));
      new DataView(b.buffer).setUint32(5, hi);
      new DataView(b.buffer).setUint32(9, lo);
      return b;
    };
    const frames = push(decoder(), ack(0x1f_ffff, 0xffff_ffff));
    assert.deepEqual(frames, [{ type: 'ACK', seq: Number.MAX_SAFE_INTEGER }]);
    throwsSbp(() => push(decoder(), ack(0x20_0000, 0)), 'MALFORMED');
    throwsSbp(() => push(decoder(), ack(0xffff_ffff, 0xffff_ffff)), 'MALFORMED');
  });

  it('a leading BOM is kept, strings are byte-length prefixed', () => {
    const bytes = encodeFrame({ type: 'BYE', code: 0, reason: '\uFEFFé' });
    assert.equal(new DataView(bytes.buffer).getUint16(7), 5, 'BOM (3 bytes) + é (2 bytes)');
    const frames = push(decoder('serverToClient'), bytes);
    assert.deepEqual(frames, [{ type: 'BYE', code: 0, reason: '\uFEFFé' }]);
  });

  it('encodeFrame refuses fields that do not fit their wire type instead of wrapping them', () => {
    const bad: Frame[] = [
      { type: 'ACK', seq: -1 },
      { type: 'ACK', seq: 2 ** 53 },
      { type: 'PING', nonce: 1.5 },
      { type: 'BYE', code: 0x1_0000, reason: '' },
      { type: 'BYE', code: -1, reason: '' },
      { type: 'SEND', clientMsgId: 1, flags: 256, to: 'bob', payload: new Uint8Array(0) },
      { type: 'PRESENCE', user: 'bob', online: Number.NaN, since: 0 },
      {
        type: 'WELCOME',
        version: 1,
        node: 'w1',
        lastSeq: 0,
        ackedSeq: 0,
        heartbeatMs: 2 ** 32,
        maxPayload: 0,
        window: 0,
      },
      { type: 'BYE', code: 0, reason: 'x'.repeat(0x1_0000) },
    ];
    for (const frame of bad)
      assert.throws(() => encodeFrame(frame), RangeError, JSON.stringify(frame).slice(0, 80));
    assert.throws(() => encodeFrame({ type: 'NOPE' } as unknown as Frame), TypeError);
  });
});
