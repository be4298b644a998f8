/**
 * The shared SBP/1 test vectors (test/fixtures/vectors.json, PROTOCOL.md sections 2 and 3): every valid
 * frame encodes to exactly its bytes and decodes back, however the bytes are chunked; every invalid one
 * is rejected with its error code on the first frame, however the bytes are chunked.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  type DecoderLimits,
  type Direction,
  decodeFrameBody,
  ErrorCode,
  type ErrorName,
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameType,
  isAllowedType,
  SbpError,
  setFrameAllocator,
} from '../../src/protocol/index.js';

interface ValidVector {
  name: string;
  type: keyof typeof FrameType;
  fields: Record<string, unknown>;
  hex: string;
}
interface InvalidVector {
  name: string;
  error: ErrorName;
  hex: string;
  note?: string;
}
interface Vectors {
  about: string;
  valid: ValidVector[];
  invalid: InvalidVector[];
}

// Compiled to dist/test/unit/: the fixture stays in the source tree.
const vectors = JSON.parse(
  readFileSync(new URL('../../../test/fixtures/vectors.json', import.meta.url), 'utf8'),
) as Vectors;

/** The limits the fixture's "about" states: maxFrame 66 560 for every frame. */
const LIMITS: DecoderLimits = { firstFrame: 66_560, frame: 66_560 };

function fromHex(hex: string): Uint8Array {
  // A plain Uint8Array (not a Buffer), like the bytes a browser would have.
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** The fixture's fields as a Frame: payloadHex becomes payload. */
function fieldsToFrame(fields: Record<string, unknown>): Frame {
  const { payloadHex, ...rest } = fields;
  return (typeof payloadHex === 'string'
    ? { ...rest, payload: fromHex(payloadHex) }
    : rest) as unknown as Frame;
}

/** A frame in comparable form: payload as hex, so diffs are readable and views compare by content. */
function comparable(frame: Frame): Record<string, unknown> {
  return 'payload' in frame ? { ...frame, payload: toHex(frame.payload) } : { ...frame };
}

/** The directions a frame type is decoded in: c→s, s→c, or both (PING, PONG, BYE). */
function directionsOf(type: number): Direction[] {
  return (['clientToServer', 'serverToClient'] as const).filter((d) => isAllowedType(type, d));
}

interface Outcome {
  frames: Frame[];
  error: unknown;
  /** Index of the chunk whose push threw, or -1. */
  failedChunk: number;
}

/** Feeds the chunks in order to one decoder, stopping at the first throw. */
function feed(chunks: Uint8Array[], direction: Direction, limits = LIMITS): Outcome {
  const decoder = new FrameDecoder(direction, limits);
  const frames: Frame[] = [];
  for (let i = 0; i < chunks.length; i++) {
    try {
      decoder.push(chunks[i]!, (f) => frames.push(f));
    } catch (error) {
      return { frames, error, failedChunk: i };
    }
  }
  return { frames, error: null, failedChunk: -1 };
}

function bytewise(bytes: Uint8Array): Uint8Array[] {
  return Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
}

/** Every way to cut the bytes into two chunks (an empty first or second chunk included). */
function twoChunkSplits(bytes: Uint8Array): Array<[number, Uint8Array[]]> {
  const splits: Array<[number, Uint8Array[]]> = [];
  for (let at = 0; at <= bytes.length; at++) {
    // Copies, so nothing decoded can lean on the other chunk's memory.
    splits.push([at, [bytes.slice(0, at), bytes.slice(at)]]);
  }
  return splits;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function assertSbpError(error: unknown, expected: ErrorName, context: string): void {
  assert.ok(error instanceof SbpError, `${context}: expected SbpError ${expected}, got ${String(error)}`);
  assert.equal(error.codeName, expected, `${context}: ${error.message}`);
  assert.equal(error.code, ErrorCode[expected], context);
}

describe('SBP/1 test vectors', () => {
  it('the fixture is the one this suite expects', () => {
    assert.match(vectors.about, /maxFrame 66560/);
    assert.ok(vectors.valid.length >= 20, 'valid vectors');
    assert.ok(vectors.invalid.length >= 20, 'invalid vectors');
    // Every frame type of section 3 has at least one valid vector.
    const covered = new Set(vectors.valid.map((v) => v.type));
    for (const name of Object.keys(FrameType)) assert.ok(covered.has(name as ValidVector['type']), name);
  });

  describe('valid: encode', () => {
    for (const v of vectors.valid) {
      it(`${v.name}: encodeFrame(fields) equals the hex byte for byte`, () => {
        assert.equal(v.fields.type, v.type);
        const encoded = encodeFrame(fieldsToFrame(v.fields));
        assert.ok(encoded instanceof Uint8Array);
        assert.equal(toHex(encoded), v.hex);
      });
    }
    it('every valid frame encodes the same from memory full of old bytes (a pooled allocator)', () => {
      // A server takes frame bytes from a pool that is not zeroed: a byte the encoder skipped would
      // leak whatever was there before (another user's message).
      setFrameAllocator((size) => new Uint8Array(size).fill(0xa5));
      try {
        for (const v of vectors.valid)
          assert.equal(toHex(encodeFrame(fieldsToFrame(v.fields))), v.hex, v.name);
      } finally {
        setFrameAllocator((size) => new Uint8Array(size));
      }
    });
    it('an allocator that hands out more bytes than the frame fills is refused, not sent', () => {
      setFrameAllocator((size) => new Uint8Array(size + 1));
      try {
        assert.throws(() => encodeFrame({ type: 'PING', nonce: 1 }), /frame encoder wrote 13 of 14 bytes/);
      } finally {
        setFrameAllocator((size) => new Uint8Array(size));
      }
    });
  });

  describe('valid: decode', () => {
    for (const v of vectors.valid) {
      const bytes = fromHex(v.hex);
      const expected = comparable(fieldsToFrame(v.fields));
      const directions = directionsOf(FrameType[v.type]);

      it(`${v.name}: decodes in ${directions.join(' and ')} (one chunk, decodeFrameBody too)`, () => {
        assert.ok(directions.length > 0);
        for (const direction of directions) {
          const out = feed([bytes], direction);
          assert.equal(out.error, null, `${direction}: ${String(out.error)}`);
          assert.deepEqual(out.frames.map(comparable), [expected], direction);
          assert.deepEqual(comparable(decodeFrameBody(bytes.subarray(4), direction)), expected, direction);
        }
      });

      it(`${v.name}: decodes fed one byte at a time`, () => {
        for (const direction of directions) {
          const out = feed(bytewise(bytes), direction);
          assert.equal(out.error, null, `${direction}: ${String(out.error)}`);
          assert.deepEqual(out.frames.map(comparable), [expected], direction);
        }
      });

      it(`${v.name}: decodes split into two chunks at every boundary`, () => {
        for (const direction of directions) {
          for (const [at, chunks] of twoChunkSplits(bytes)) {
            const out = feed(chunks, direction);
            assert.equal(out.error, null, `${direction}, split at ${at}: ${String(out.error)}`);
            assert.deepEqual(out.frames.map(comparable), [expected], `${direction}, split at ${at}`);
          }
        }
      });
    }
  });

  describe('valid: several frames in one stream', () => {
    for (const direction of ['clientToServer', 'serverToClient'] as const) {
      const stream = vectors.valid.filter((v) => isAllowedType(FrameType[v.type], direction));
      const bytes = concat(stream.map((v) => fromHex(v.hex)));
      const expected = stream.map((v) => comparable(fieldsToFrame(v.fields)));

      it(`${direction}: all ${stream.length} frames concatenated in one chunk`, () => {
        const out = feed([bytes], direction);
        assert.equal(out.error, null, String(out.error));
        assert.deepEqual(out.frames.map(comparable), expected);
      });

      it(`${direction}: the concatenation split at every boundary, and byte by byte`, () => {
        for (const [at, chunks] of twoChunkSplits(bytes)) {
          const out = feed(chunks, direction);
          assert.equal(out.error, null, `split at ${at}: ${String(out.error)}`);
          assert.deepEqual(out.frames.map(comparable), expected, `split at ${at}`);
        }
        const out = feed(bytewise(bytes), direction);
        assert.equal(out.error, null, String(out.error));
        assert.deepEqual(out.frames.map(comparable), expected);
      });

      it(`${direction}: each frame repeated three times in one chunk`, () => {
        for (const v of stream) {
          const one = fromHex(v.hex);
          const out = feed([concat([one, one, one])], direction);
          assert.equal(out.error, null, `${v.name}: ${String(out.error)}`);
          const e = comparable(fieldsToFrame(v.fields));
          assert.deepEqual(out.frames.map(comparable), [e, e, e], v.name);
        }
      });
    }
  });

  describe('invalid: decoded as a client→server stream', () => {
    for (const v of vectors.invalid) {
      const bytes = fromHex(v.hex);
      const isNeverReadInto = v.note?.includes('never read into') ?? false;
      // The push that completes the first frame (or its header, when the header alone decides) must
      // throw: nothing after the first frame's declared end is ever needed.
      const declared = bytes.length >= 4 ? new DataView(bytes.buffer).getUint32(0) : 0;
      const lastNeeded = Math.min(bytes.length, 4 + declared) - 1;

      it(`${v.name}: ${v.error} in one chunk${isNeverReadInto ? ', the PING after it never emitted' : ''}`, () => {
        assert.ok(v.error in ErrorCode, `unknown error name ${v.error}`);
        const out = feed([bytes], 'clientToServer');
        assertSbpError(out.error, v.error, v.name);
        assert.deepEqual(out.frames, [], 'no frame is emitted before the error');
      });

      it(`${v.name}: ${v.error} fed one byte at a time, at the first frame's end at the latest`, () => {
        const out = feed(bytewise(bytes), 'clientToServer');
        assertSbpError(out.error, v.error, v.name);
        assert.deepEqual(out.frames, []);
        assert.ok(
          out.failedChunk <= lastNeeded,
          `threw on byte ${out.failedChunk}, after the first frame ended at byte ${lastNeeded}`,
        );
        if (v.error === 'FRAME_TOO_LARGE' || (v.error === 'MALFORMED' && declared === 0)) {
          assert.equal(out.failedChunk, 3, 'decided from the 4 header bytes alone');
        }
        if (v.error === 'PROTOCOL_VIOLATION') assert.equal(out.failedChunk, 4, 'decided on the type byte');
        if (v.error === 'UNSUPPORTED_VERSION')
          assert.equal(out.failedChunk, 5, 'decided on the version byte');
      });

      it(`${v.name}: ${v.error} split into two chunks at every boundary`, () => {
        for (const [at, chunks] of twoChunkSplits(bytes)) {
          const out = feed(chunks, 'clientToServer');
          assertSbpError(out.error, v.error, `${v.name}, split at ${at}`);
          assert.deepEqual(out.frames, [], `split at ${at}`);
        }
      });

      if (isNeverReadInto) {
        it(`${v.name}: the first frame alone is rejected the same way (the PING is not needed)`, () => {
          assert.ok(lastNeeded < bytes.length - 1, 'a PING follows the first frame');
          const out = feed([bytes.slice(0, lastNeeded + 1)], 'clientToServer');
          assertSbpError(out.error, v.error, v.name);
          const rest = feed([bytes.slice(lastNeeded + 1)], 'clientToServer');
          assert.equal(rest.error, null, 'what follows is a valid frame on its own');
          assert.deepEqual(
            rest.frames.map((f) => f.type),
            ['PING'],
          );
        });
      }
    }
  });
});
