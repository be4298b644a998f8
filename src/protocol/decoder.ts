/**
 * Incremental SBP/1 frame decoder: bytes in (split anywhere), frames out. Owns no socket and no timer.
 *
 * States: HEADER (collecting the 4 length bytes) and BODY (collecting `length` bytes). The length is
 * checked against the current limit from the header alone, so an oversize frame is rejected before a
 * single body byte is buffered; a body is buffered only up to that limit. The buffer of an unfinished
 * frame grows with the bytes that actually arrived (to at most twice them, never past the declared length),
 * so a peer that declares a large frame and then trickles it holds a few KiB, not the whole limit.
 * Checks 3 and 4 of PROTOCOL.md section 2.3 run as soon as the type and version bytes arrive.
 *
 * After the first error the decoder is dead: every later push throws the same error. That includes an
 * exception thrown by `onFrame`: the rest of that chunk was not consumed, so the stream cannot go on.
 */
import { checkHelloVersion, checkType, decodeFrameBody } from './codec.js';
import { ErrorCode, SbpError } from './errors.js';
import { type Direction, type Frame, FrameType } from './frames.js';

export interface DecoderLimits {
  /** Largest `length` accepted for the first frame of the stream (a server's HELLO: 4 096). */
  firstFrame: number;
  /** Largest `length` accepted from the second frame on (maxFrame). */
  frame: number;
}

/** An object that takes decoded frames (lets a long-lived owner avoid a closure per instance). */
export interface FrameSink {
  onFrame(frame: Frame): void;
}

enum State {
  Header,
  Body,
}

/** First capacity of an unfinished frame's buffer, bytes: frames up to this size get it in one go. */
const INITIAL_BODY_CAPACITY = 4096;
const EMPTY = new Uint8Array(0);

export class FrameDecoder {
  private state = State.Header;
  /** Header bytes received so far of a header split over chunks (no buffer: connections are many). */
  private headerValue = 0;
  private headerFill = 0;
  /** Buffer of the unfinished frame's body; its capacity grows with the bytes received. */
  private body: Uint8Array = EMPTY;
  private bodyFill = 0;
  private bodyLength = 0;
  private framesSeen = 0;
  private dead = false;
  private failure: unknown = null;

  constructor(
    private readonly direction: Direction,
    private limits: DecoderLimits,
  ) {}

  /** Changes the limits (a client learns maxFrame from WELCOME); applies from the next frame header. */
  setLimits(limits: DecoderLimits): void {
    this.limits = limits;
  }

  /** Bytes of an unfinished frame are buffered; true while one is. */
  get midFrame(): boolean {
    return this.headerFill > 0 || this.state === State.Body;
  }

  /** Memory held for the unfinished frame, bytes (header bytes + body buffer capacity). */
  get bufferedBytes(): number {
    return this.headerFill + this.body.length;
  }

  /** Complete frames decoded so far. */
  get frameCount(): number {
    return this.framesSeen;
  }

  /**
   * Feeds a chunk; calls `onFrame` for every complete frame in order, then throws SbpError at the first
   * invalid one (frames before it have been delivered). Payloads of frames wholly inside `chunk` are
   * views into it, not copies (copy them to keep them past the chunk's reuse); payloads of frames
   * split over several chunks are views into a buffer the decoder no longer uses.
   */
  push(chunk: Uint8Array, onFrame: FrameSink | ((frame: Frame) => void)): void {
    if (this.dead) throw this.failure;
    try {
      this.consume(chunk, onFrame);
    } catch (err) {
      this.dead = true;
      this.failure = err;
      this.body = EMPTY;
      throw err;
    }
  }

  private consume(chunk: Uint8Array, onFrame: FrameSink | ((frame: Frame) => void)): void {
    let off = 0;
    const end = chunk.length;
    while (off < end) {
      if (this.state === State.Header) {
        let length: number;
        if (this.headerFill === 0 && end - off >= 4) {
          length =
            ((chunk[off]! << 24) | (chunk[off + 1]! << 16) | (chunk[off + 2]! << 8) | chunk[off + 3]!) >>> 0;
          off += 4;
        } else {
          while (this.headerFill < 4 && off < end) {
            this.headerValue = ((this.headerValue << 8) | chunk[off++]!) >>> 0;
            this.headerFill++;
          }
          if (this.headerFill < 4) return;
          length = this.headerValue;
          this.headerValue = 0;
          this.headerFill = 0;
        }
        this.checkLength(length);
        if (end - off >= length) {
          // Fast path: the whole body is in this chunk; decode it in place.
          const body = chunk.subarray(off, off + length);
          off += length;
          this.emit(body, onFrame);
          continue;
        }
        this.state = State.Body;
        this.bodyLength = length;
        this.bodyFill = 0;
        continue;
      }
      const n = Math.min(this.bodyLength - this.bodyFill, end - off);
      const before = this.bodyFill;
      this.reserve(before + n);
      this.body.set(chunk.subarray(off, off + n), before);
      this.bodyFill += n;
      off += n;
      this.earlyChecks(before);
      if (this.bodyFill === this.bodyLength) {
        const body = this.body;
        this.body = EMPTY;
        this.state = State.Header;
        this.emit(body, onFrame);
      }
    }
  }

  /**
   * Grows the body buffer to hold `needed` bytes: to twice that (so a frame arriving in several chunks
   * is copied a few times at most), at least INITIAL_BODY_CAPACITY, never past the frame's length.
   */
  private reserve(needed: number): void {
    if (this.body.length >= needed) return;
    const grown = new Uint8Array(Math.min(this.bodyLength, Math.max(2 * needed, INITIAL_BODY_CAPACITY)));
    if (this.bodyFill > 0) grown.set(this.body.subarray(0, this.bodyFill));
    this.body = grown;
  }

  /** Checks 1 and 2: from the 4 header bytes alone. */
  private checkLength(length: number): void {
    if (length === 0) throw new SbpError(ErrorCode.MALFORMED, 'frame length is 0');
    const limit = this.framesSeen === 0 ? this.limits.firstFrame : this.limits.frame;
    if (length > limit) {
      throw new SbpError(ErrorCode.FRAME_TOO_LARGE, `frame of ${length} bytes is over the limit of ${limit}`);
    }
  }

  /** Checks 3 and 4 as soon as the type (and HELLO's version) byte is buffered. */
  private earlyChecks(filledBefore: number): void {
    const body = this.body;
    if (filledBefore === 0 && this.bodyFill >= 1) checkType(body[0]!, this.direction);
    if (filledBefore < 2 && this.bodyFill >= 2 && body[0] === FrameType.HELLO) checkHelloVersion(body);
  }

  private emit(body: Uint8Array, onFrame: FrameSink | ((frame: Frame) => void)): void {
    const frame = decodeFrameBody(body, this.direction);
    this.framesSeen++;
    if (typeof onFrame === 'function') onFrame(frame);
    else onFrame.onFrame(frame);
  }
}
