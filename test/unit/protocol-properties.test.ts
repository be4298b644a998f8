/**
 * Property tests of the SBP/1 codec and decoder (fast-check, 10 000 runs each):
 * 1. every valid frame round-trips through encodeFrame and FrameDecoder, however the stream is chunked;
 * 2. arbitrary bytes only ever yield frames or SbpError, never another exception;
 * 3. truncated, corrupted and extended valid streams likewise, and what comes before the damage is intact;
 * 4. the memory bound: a header declaring more than the limit is rejected on the push that completes the
 *    header, and the bytes held for an unfinished frame never exceed the limit;
 * and the server's batch encoder of RECEIPTs writes what encodeFrame writes for each.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type DecoderLimits,
  type Direction,
  ErrorCode,
  encodeFrame,
  encodeReceipts,
  type Frame,
  FrameDecoder,
  MAX_U64,
  SbpError,
} from '../../src/protocol/index.js';

const RUNS = 10_000;
const DEFAULT_LIMITS: DecoderLimits = { firstFrame: 66_560, frame: 66_560 };
const DIRECTIONS = ['clientToServer', 'serverToClient'] as const;

// ---------------------------------------------------------------- arbitraries

const idArb = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);
const groupArb = idArb.map((id) => `#${id}`);
const addressArb = fc.oneof(idArb, groupArb);
const u64Arb = fc.oneof(fc.maxSafeNat(), fc.constantFrom(0, 1, 2 ** 32 - 1, 2 ** 32, MAX_U64 - 1, MAX_U64));
const u8Arb = fc.integer({ min: 0, max: 0xff });
const u16Arb = fc.integer({ min: 0, max: 0xffff });
const u32Arb = fc.integer({ min: 0, max: 0xffff_ffff });
const bitArb = fc.constantFrom(0, 1);
/** Any Unicode scalar values (no lone surrogates: they are not UTF-8), sometimes after a BOM. */
const strArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
  fc.string({ unit: 'binary', maxLength: 20 }).map((s) => `\uFEFF${s}`),
  fc.constant(''),
);
/** Large payloads (past the decoder's first buffer capacity) filled cheaply from a seed. */
const largePayloadArb = fc
  .tuple(fc.integer({ min: 4000, max: 20_000 }), fc.integer({ min: 0, max: 255 }))
  .map(([length, seed]) => Uint8Array.from({ length }, (_, i) => (seed + i * 31) & 0xff));
const payloadArb = fc.oneof(
  { weight: 8, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 2, arbitrary: fc.uint8Array({ minLength: 64, maxLength: 2048 }) },
  { weight: 1, arbitrary: largePayloadArb },
);

const helloArb: fc.Arbitrary<Frame> = fc.record({
  type: fc.constant('HELLO' as const),
  version: fc.constant(1),
  user: idArb,
  device: idArb,
  token: strArb,
  resumeAfter: u64Arb,
});
const clientFrameArb: fc.Arbitrary<Frame> = fc.oneof(
  helloArb,
  fc.record({
    type: fc.constant('SEND' as const),
    clientMsgId: u64Arb.filter((n) => n > 0),
    flags: bitArb,
    to: addressArb,
    payload: payloadArb,
  }),
  fc.record({ type: fc.constant('ACK' as const), seq: u64Arb }),
  fc.record({ type: fc.constant('PING' as const), nonce: u64Arb }),
  fc.record({ type: fc.constant('PONG' as const), nonce: u64Arb }),
  fc.record({ type: fc.constant('WATCH' as const), users: fc.array(idArb, { maxLength: 8 }) }),
  fc.record({ type: fc.constant('UNWATCH' as const), users: fc.array(idArb, { maxLength: 8 }) }),
  fc.record({ type: fc.constant('JOIN' as const), ref: u64Arb, group: groupArb }),
  fc.record({ type: fc.constant('LEAVE' as const), ref: u64Arb, group: groupArb }),
  fc.record({ type: fc.constant('BYE' as const), code: u16Arb, reason: strArb }),
);
const serverFrameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    type: fc.constant('WELCOME' as const),
    version: u8Arb,
    node: strArb,
    lastSeq: u64Arb,
    ackedSeq: u64Arb,
    heartbeatMs: u32Arb,
    maxPayload: u32Arb,
    window: u32Arb,
  }),
  fc.record({
    type: fc.constant('ACCEPTED' as const),
    clientMsgId: u64Arb,
    flags: bitArb,
    timestamp: u64Arb,
  }),
  fc.record({
    type: fc.constant('DELIVER' as const),
    seq: u64Arb,
    timestamp: u64Arb,
    from: idArb,
    fromDevice: idArb,
    clientMsgId: u64Arb,
    to: addressArb,
    payload: payloadArb,
  }),
  fc.record({ type: fc.constant('PING' as const), nonce: u64Arb }),
  fc.record({ type: fc.constant('PONG' as const), nonce: u64Arb }),
  fc.record({ type: fc.constant('PRESENCE' as const), user: idArb, online: bitArb, since: u64Arb }),
  fc.record({ type: fc.constant('DONE' as const), ref: u64Arb }),
  fc.record({
    type: fc.constant('RECEIPT' as const),
    by: idArb,
    byDevice: idArb,
    fromDevice: idArb,
    clientMsgId: u64Arb,
    timestamp: u64Arb,
  }),
  fc.record({ type: fc.constant('ERROR' as const), code: u16Arb, ref: u64Arb, message: strArb }),
  fc.record({ type: fc.constant('BYE' as const), code: u16Arb, reason: strArb }),
);

function frameArb(direction: Direction): fc.Arbitrary<Frame> {
  return direction === 'clientToServer' ? clientFrameArb : serverFrameArb;
}

/** A direction and 1–6 frames valid in it, with their encodings. */
const streamArb = fc.constantFrom(...DIRECTIONS).chain((direction) =>
  fc.record({
    direction: fc.constant(direction),
    frames: fc.array(frameArb(direction), { minLength: 1, maxLength: 6 }),
  }),
);

/** Cut points for chunking a stream of `length` bytes: sorted offsets in 0..length (repeats allowed). */
const cutsArb = fc.array(fc.nat(), { maxLength: 12 });

// ---------------------------------------------------------------- helpers

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Splits bytes at the given cut points (taken modulo length + 1), copying each chunk. */
function chunk(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = cuts.map((c) => c % (bytes.length + 1)).sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    chunks.push(bytes.slice(prev, p));
    prev = p;
  }
  return chunks;
}

function comparable(frame: Frame): Record<string, unknown> {
  return 'payload' in frame
    ? { ...frame, payload: Buffer.from(frame.payload).toString('hex') }
    : { ...frame };
}

/** How many of the encoded frames, laid end to end, end at or before `offset`. */
function framesEndingBy(encoded: Uint8Array[], offset: number): number {
  let end = 0;
  let n = 0;
  for (const e of encoded) {
    end += e.length;
    if (end > offset) break;
    n++;
  }
  return n;
}

interface Outcome {
  frames: Frame[];
  error: unknown;
  failedChunk: number;
}

/**
 * Feeds chunks to a decoder, stopping at the first throw. After each push, checks the memory bound:
 * the bytes held for an unfinished frame never exceed the larger limit plus the 4 header bytes.
 */
function feed(chunks: Uint8Array[], direction: Direction, limits: DecoderLimits = DEFAULT_LIMITS): Outcome {
  const decoder = new FrameDecoder(direction, limits);
  const frames: Frame[] = [];
  const bound = Math.max(limits.firstFrame, limits.frame) + 4;
  for (let i = 0; i < chunks.length; i++) {
    try {
      decoder.push(chunks[i]!, (f) => frames.push(f));
    } catch (error) {
      return { frames, error, failedChunk: i };
    }
    assert.ok(decoder.bufferedBytes <= bound, `holds ${decoder.bufferedBytes} bytes, over ${bound}`);
  }
  return { frames, error: null, failedChunk: -1 };
}

/** The only exception a decoder may throw on bad input is SbpError with a fatal wire code. */
function assertOnlySbpError(error: unknown): void {
  if (error === null) return;
  assert.ok(
    error instanceof SbpError,
    `not an SbpError: ${error instanceof Error ? error.stack : String(error)}`,
  );
  assert.ok(
    [
      ErrorCode.MALFORMED,
      ErrorCode.FRAME_TOO_LARGE,
      ErrorCode.UNSUPPORTED_VERSION,
      ErrorCode.PROTOCOL_VIOLATION,
    ].includes(error.code as 1 | 2 | 3 | 6),
    `unexpected code ${error.code}`,
  );
}

// ---------------------------------------------------------------- properties

describe('SBP/1 properties', () => {
  it('(1) every valid frame round-trips: encodeFrame then FrameDecoder gives the same fields', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...DIRECTIONS).chain((d) => fc.tuple(fc.constant(d), frameArb(d))),
        ([direction, frame]) => {
          const out = feed([encodeFrame(frame)], direction);
          assert.equal(out.error, null, String(out.error));
          assert.deepEqual(out.frames.map(comparable), [comparable(frame)]);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('(1) a stream of several valid frames split at random points decodes to the same frames', () => {
    fc.assert(
      fc.property(streamArb, cutsArb, ({ direction, frames }, cuts) => {
        const bytes = concat(frames.map(encodeFrame));
        const out = feed(chunk(bytes, cuts), direction);
        assert.equal(out.error, null, String(out.error));
        assert.deepEqual(out.frames.map(comparable), frames.map(comparable));
      }),
      { numRuns: RUNS },
    );
  });

  it('(2) arbitrary bytes, arbitrarily chunked, only ever yield frames or SbpError', () => {
    // Raw random bytes mostly fail on the first header; plausible headers (small lengths, type bytes
    // around the known range) reach the body checks too.
    const plausibleFrame = fc
      .tuple(
        fc.integer({ min: 0, max: 80 }),
        fc.integer({ min: 0, max: 0x14 }),
        fc.uint8Array({ maxLength: 80 }),
      )
      .map(([length, type, body]) => {
        const h = new Uint8Array(5);
        new DataView(h.buffer).setUint32(0, length);
        h[4] = type;
        return concat([h, body]);
      });
    const bytesArb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.array(plausibleFrame, { maxLength: 5 }).map(concat),
    );
    const limitsArb = fc.oneof(
      fc.constant(DEFAULT_LIMITS),
      fc.record({ firstFrame: fc.integer({ min: 1, max: 100 }), frame: fc.integer({ min: 1, max: 100 }) }),
    );
    fc.assert(
      fc.property(
        bytesArb,
        cutsArb,
        fc.constantFrom(...DIRECTIONS),
        limitsArb,
        (bytes, cuts, direction, limits) => {
          assertOnlySbpError(feed(chunk(bytes, cuts), direction, limits).error);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('(3) truncated valid streams yield a prefix of their frames and no error', () => {
    fc.assert(
      fc.property(streamArb, fc.nat(), cutsArb, ({ direction, frames }, cutAt, cuts) => {
        const encoded = frames.map(encodeFrame);
        const bytes = concat(encoded);
        const cut = cutAt % (bytes.length + 1);
        const out = feed(chunk(bytes.subarray(0, cut), cuts), direction);
        assert.equal(out.error, null, String(out.error));
        // Exactly the frames that end at or before the cut.
        const whole = framesEndingBy(encoded, cut);
        assert.deepEqual(out.frames.map(comparable), frames.slice(0, whole).map(comparable));
      }),
      { numRuns: RUNS },
    );
  });

  it('(3) a valid stream with a byte flipped yields its intact frames, then frames or SbpError', () => {
    fc.assert(
      fc.property(
        streamArb,
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        cutsArb,
        ({ direction, frames }, at, mask, cuts) => {
          const encoded = frames.map(encodeFrame);
          const bytes = concat(encoded);
          const pos = at % bytes.length;
          bytes[pos] = bytes[pos]! ^ mask;
          const out = feed(chunk(bytes, cuts), direction);
          assertOnlySbpError(out.error);
          // Frames wholly before the flipped byte come out unchanged.
          const intact = framesEndingBy(encoded, pos);
          assert.ok(out.frames.length >= intact, 'intact frames are not lost');
          assert.deepEqual(
            out.frames.slice(0, intact).map(comparable),
            frames.slice(0, intact).map(comparable),
          );
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('(3) a valid stream with random bytes appended yields all its frames, then frames or SbpError', () => {
    fc.assert(
      fc.property(
        streamArb,
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        cutsArb,
        ({ direction, frames }, extra, cuts) => {
          const bytes = concat([...frames.map(encodeFrame), extra]);
          const out = feed(chunk(bytes, cuts), direction);
          assertOnlySbpError(out.error);
          assert.ok(out.frames.length >= frames.length, 'every original frame is decoded');
          assert.deepEqual(out.frames.slice(0, frames.length).map(comparable), frames.map(comparable));
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('(4) a header declaring more than the limit throws FRAME_TOO_LARGE on the push completing the header', () => {
    const limitsArb = fc
      // At least 16: room for the small valid frames put before the oversize one.
      .record({
        firstFrame: fc.integer({ min: 16, max: 70_000 }),
        frame: fc.integer({ min: 16, max: 70_000 }),
      });
    fc.assert(
      fc.property(
        fc.constantFrom(...DIRECTIONS),
        limitsArb,
        fc.array(fc.constantFrom<Frame>({ type: 'PING', nonce: 1 }, { type: 'BYE', code: 0, reason: 'x' }), {
          maxLength: 3,
        }),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.uint8Array({ minLength: 1, maxLength: 16 }),
        cutsArb,
        (direction, limits, before, excess, tail, cuts) => {
          const limit = before.length === 0 ? limits.firstFrame : limits.frame;
          const declared = limit + 1 + (excess % (0xffff_ffff - limit));
          const header = new Uint8Array(4);
          new DataView(header.buffer).setUint32(0, declared);
          const prefix = concat(before.map(encodeFrame));
          const bytes = concat([prefix, header, tail]);
          const headerEnd = prefix.length + 4; // offset just past the oversize header
          const chunks = chunk(bytes, cuts);
          const out = feed(chunks, direction, limits);
          assert.ok(out.error instanceof SbpError, String(out.error));
          assert.equal(out.error.code, ErrorCode.FRAME_TOO_LARGE, out.error.message);
          // The throwing push is the one holding the header's last byte.
          let start = 0;
          for (let i = 0; i < out.failedChunk; i++) start += chunks[i]!.length;
          const end = start + chunks[out.failedChunk]!.length;
          assert.ok(
            start < headerEnd && headerEnd <= end,
            `threw on bytes ${start}..${end}, header ends at ${headerEnd}`,
          );
          assert.equal(out.frames.length, before.length);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('(4) whatever the input, the bytes held for an unfinished frame stay within the limit', () => {
    // Headers with lengths around the limit, followed by a part of their body, fed in random chunks:
    // `feed` asserts the bound after every push.
    fc.assert(
      fc.property(
        fc.integer({ min: 16, max: 70_000 }),
        fc.array(fc.tuple(fc.integer({ min: -8, max: 8 }), fc.nat({ max: 3000 })), {
          minLength: 1,
          maxLength: 3,
        }),
        cutsArb,
        (limit, parts, cuts) => {
          const pieces = parts.map(([delta, bodyBytes]) => {
            const length = Math.max(1, limit + delta);
            const piece = new Uint8Array(4 + Math.min(length, bodyBytes));
            new DataView(piece.buffer).setUint32(0, length);
            if (piece.length > 4) piece[4] = 0x03; // SEND: allowed from a client
            return piece;
          });
          const out = feed(chunk(concat(pieces), cuts), 'clientToServer', {
            firstFrame: limit,
            frame: limit,
          });
          assertOnlySbpError(out.error);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('encodeReceipts gives the bytes of encodeFrame for each RECEIPT, concatenated', () => {
    fc.assert(
      fc.property(
        strArb,
        strArb,
        u64Arb,
        fc.array(fc.record({ fromDevice: strArb, clientMsgId: u64Arb }), { maxLength: 8 }),
        (by, byDevice, timestamp, receipts) => {
          const one = receipts.map((r) => encodeFrame({ type: 'RECEIPT', by, byDevice, timestamp, ...r }));
          assert.deepEqual(
            Buffer.from(encodeReceipts(by, byDevice, timestamp, receipts)),
            Buffer.concat(one),
          );
        },
      ),
      { numRuns: RUNS },
    );
  });
});
