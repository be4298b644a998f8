/**
 * The stateless SBP/1 codec: one frame's fields to bytes and back (PROTOCOL.md sections 2 and 3).
 * Pure and runtime-neutral (Uint8Array, DataView, TextEncoder/TextDecoder), so browsers use it too.
 */
import { ErrorCode, SbpError } from './errors.js';
import {
  type DeliverFrame,
  type Direction,
  type Frame,
  FrameType,
  ID_PATTERN,
  isAllowedType,
  PROTOCOL_VERSION,
} from './frames.js';

/** Largest integer a u64 field may carry: exact in a JS number (section 2). */
export const MAX_U64 = Number.MAX_SAFE_INTEGER;
const TWO_32 = 0x1_0000_0000;

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

function malformed(message: string): SbpError {
  return new SbpError(ErrorCode.MALFORMED, message);
}

/** Reads one frame body; every read checks bounds so nothing is read past the frame. */
class BodyReader {
  private offset: number;

  // Integers are read byte by byte: no DataView per frame.
  constructor(
    private readonly bytes: Uint8Array,
    start: number,
  ) {
    this.offset = start;
  }

  private get32(at: number): number {
    const b = this.bytes;
    return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
  }

  private need(n: number, what: string): void {
    if (this.offset + n > this.bytes.length) throw malformed(`frame ends inside ${what}`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.offset++]!;
  }

  u16(what: string): number {
    this.need(2, what);
    const v = (this.bytes[this.offset]! << 8) | this.bytes[this.offset + 1]!;
    this.offset += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.get32(this.offset);
    this.offset += 4;
    return v;
  }

  u64(what: string): number {
    this.need(8, what);
    const hi = this.get32(this.offset);
    const lo = this.get32(this.offset + 4);
    this.offset += 8;
    if (hi > 0x1f_ffff) throw malformed(`${what} is over 2^53-1`);
    return hi * TWO_32 + lo;
  }

  str(what: string): string {
    const len = this.u16(what);
    this.need(len, what);
    const start = this.offset;
    this.offset += len;
    return decodeUtf8(this.bytes, start, start + len, what);
  }

  id(what: string): string {
    const s = this.str(what);
    if (!ID_PATTERN.test(s)) throw malformed(`${what} is not a valid id`);
    return s;
  }

  address(what: string): string {
    const s = this.str(what);
    const ok = s.startsWith('#') ? ID_PATTERN.test(s.slice(1)) : ID_PATTERN.test(s);
    if (!ok) throw malformed(`${what} is not a valid address`);
    return s;
  }

  group(what: string): string {
    const s = this.address(what);
    if (!s.startsWith('#')) throw malformed(`${what} must be a group address (#…)`);
    return s;
  }

  /** A view into the frame, not a copy: the caller copies if it keeps it past the chunk. */
  bytesField(what: string): Uint8Array {
    const len = this.u32(what);
    this.need(len, what);
    const start = this.offset;
    this.offset += len;
    return this.bytes.subarray(start, start + len);
  }

  end(): void {
    if (this.offset !== this.bytes.length) throw malformed('trailing bytes after the frame body');
  }
}

/** Strict UTF-8 (no BOM stripping); pure ASCII, the common case for ids, skips TextDecoder. */
function decodeUtf8(bytes: Uint8Array, start: number, end: number, what: string): string {
  let ascii = true;
  for (let i = start; i < end; i++) {
    if (bytes[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) {
    return end - start <= 64
      ? String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[])
      : utf8Decoder.decode(bytes.subarray(start, end));
  }
  try {
    return utf8Decoder.decode(bytes.subarray(start, end));
  } catch {
    throw malformed(`${what} is not valid UTF-8`);
  }
}

/**
 * Decodes one whole frame, given its bytes after the length prefix (type byte first).
 * Applies checks 3–5 of section 2.3; throws SbpError.
 */
export function decodeFrameBody(body: Uint8Array, direction: Direction): Frame {
  const type = body[0];
  if (type === undefined) throw malformed('frame length is 0');
  checkType(type, direction);
  if (type === FrameType.HELLO) checkHelloVersion(body);
  const r = new BodyReader(body, 1);
  let frame: Frame;
  switch (type) {
    case FrameType.HELLO:
      frame = {
        type: 'HELLO',
        version: r.u8('version'),
        user: r.id('user'),
        device: r.id('device'),
        token: r.str('token'),
        resumeAfter: r.u64('resumeAfter'),
      };
      break;
    case FrameType.WELCOME:
      frame = {
        type: 'WELCOME',
        version: r.u8('version'),
        node: r.str('node'),
        lastSeq: r.u64('lastSeq'),
        ackedSeq: r.u64('ackedSeq'),
        heartbeatMs: r.u32('heartbeatMs'),
        maxPayload: r.u32('maxPayload'),
        window: r.u32('window'),
      };
      break;
    case FrameType.SEND: {
      const clientMsgId = r.u64('clientMsgId');
      if (clientMsgId === 0) throw malformed('clientMsgId must be > 0');
      const flags = r.u8('flags');
      if (flags & ~0x01) throw malformed('SEND flags has an undefined bit set');
      frame = { type: 'SEND', clientMsgId, flags, to: r.address('to'), payload: r.bytesField('payload') };
      break;
    }
    case FrameType.ACCEPTED: {
      const clientMsgId = r.u64('clientMsgId');
      const flags = r.u8('flags');
      if (flags & ~0x01) throw malformed('ACCEPTED flags has an undefined bit set');
      frame = { type: 'ACCEPTED', clientMsgId, flags, timestamp: r.u64('timestamp') };
      break;
    }
    case FrameType.DELIVER:
      frame = {
        type: 'DELIVER',
        seq: r.u64('seq'),
        timestamp: r.u64('timestamp'),
        from: r.id('from'),
        fromDevice: r.id('fromDevice'),
        clientMsgId: r.u64('clientMsgId'),
        to: r.address('to'),
        payload: r.bytesField('payload'),
      };
      break;
    case FrameType.ACK:
      frame = { type: 'ACK', seq: r.u64('seq') };
      break;
    case FrameType.PING:
      frame = { type: 'PING', nonce: r.u64('nonce') };
      break;
    case FrameType.PONG:
      frame = { type: 'PONG', nonce: r.u64('nonce') };
      break;
    case FrameType.WATCH:
    case FrameType.UNWATCH: {
      const count = r.u16('count');
      const users: string[] = [];
      for (let i = 0; i < count; i++) users.push(r.id('user'));
      frame = type === FrameType.WATCH ? { type: 'WATCH', users } : { type: 'UNWATCH', users };
      break;
    }
    case FrameType.PRESENCE: {
      const user = r.id('user');
      const online = r.u8('online');
      if (online > 1) throw malformed('PRESENCE online must be 0 or 1');
      frame = { type: 'PRESENCE', user, online, since: r.u64('since') };
      break;
    }
    case FrameType.JOIN:
      frame = { type: 'JOIN', ref: r.u64('ref'), group: r.group('group') };
      break;
    case FrameType.LEAVE:
      frame = { type: 'LEAVE', ref: r.u64('ref'), group: r.group('group') };
      break;
    case FrameType.DONE:
      frame = { type: 'DONE', ref: r.u64('ref') };
      break;
    case FrameType.RECEIPT:
      frame = {
        type: 'RECEIPT',
        by: r.id('by'),
        byDevice: r.id('byDevice'),
        fromDevice: r.id('fromDevice'),
        clientMsgId: r.u64('clientMsgId'),
        timestamp: r.u64('timestamp'),
      };
      break;
    case FrameType.ERROR:
      frame = { type: 'ERROR', code: r.u16('code'), ref: r.u64('ref'), message: r.str('message') };
      break;
    case FrameType.BYE:
      frame = { type: 'BYE', code: r.u16('code'), reason: r.str('reason') };
      break;
    default:
      throw new SbpError(ErrorCode.PROTOCOL_VIOLATION, `unknown frame type 0x${type.toString(16)}`);
  }
  r.end();
  return frame;
}

/** Check 3: a type unknown to v1, or not allowed in this direction. */
export function checkType(type: number, direction: Direction): void {
  if (!isAllowedType(type, direction)) {
    throw new SbpError(
      ErrorCode.PROTOCOL_VIOLATION,
      `frame type 0x${type.toString(16).padStart(2, '0')} is not allowed ${direction === 'clientToServer' ? 'from a client' : 'from a server'}`,
    );
  }
}

/** Check 4: HELLO's version byte, before anything else of its body is decoded. */
export function checkHelloVersion(body: Uint8Array): void {
  const version = body[1];
  if (version !== undefined && version !== PROTOCOL_VERSION) {
    throw new SbpError(
      ErrorCode.UNSUPPORTED_VERSION,
      `protocol version ${version} is not supported (this is SBP/1)`,
    );
  }
}

// ---------------------------------------------------------------- encoding

/** Gives encodeFrame the bytes of one frame; see setFrameAllocator. */
export type FrameAllocator = (size: number) => Uint8Array;

let allocate: FrameAllocator = (size) => new Uint8Array(size);

/**
 * Where encodeFrame takes each frame's bytes from; by default a new Uint8Array. A server encodes tens of
 * thousands of short frames a second, and a Uint8Array of ~150 bytes has a backing store of its own,
 * which costs an allocation and garbage-collector work; Node's `Buffer.allocUnsafe` hands out slices of
 * a shared pool instead (and sockets take Buffers without a conversion). The memory need not be zeroed:
 * every frame is written to its last byte, and finish() checks that it was.
 */
export function setFrameAllocator(fn: FrameAllocator): void {
  allocate = fn;
}

/** Writes one frame into a buffer sized exactly from its fields. */
class FrameWriter {
  readonly bytes: Uint8Array;
  private offset = 0;

  // Integers are written byte by byte: no DataView per frame (frames are many and short-lived).
  constructor(size: number) {
    this.bytes = allocate(size);
  }

  /** The frame, once every byte of it has been written (the allocator's memory may hold old data). */
  finish(): Uint8Array {
    if (this.offset !== this.bytes.length) {
      throw new Error(`frame encoder wrote ${this.offset} of ${this.bytes.length} bytes`);
    }
    return this.bytes;
  }

  // Out-of-range integers throw instead of wrapping silently into a different value on the wire.
  u8(v: number): void {
    if (!(v >= 0 && v <= 0xff && Number.isInteger(v))) throw new RangeError(`u8 field out of range: ${v}`);
    this.bytes[this.offset++] = v;
  }
  u16(v: number): void {
    if (!(v >= 0 && v <= 0xffff && Number.isInteger(v))) throw new RangeError(`u16 field out of range: ${v}`);
    const b = this.bytes;
    b[this.offset++] = v >>> 8;
    b[this.offset++] = v & 0xff;
  }
  u32(v: number): void {
    if (!(v >= 0 && v <= 0xffff_ffff && Number.isInteger(v))) {
      throw new RangeError(`u32 field out of range: ${v}`);
    }
    this.put32(v);
  }
  u64(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 field out of range: ${v}`);
    this.put32(Math.floor(v / TWO_32));
    this.put32(v >>> 0);
  }
  private put32(v: number): void {
    const b = this.bytes;
    b[this.offset++] = v >>> 24;
    b[this.offset++] = (v >>> 16) & 0xff;
    b[this.offset++] = (v >>> 8) & 0xff;
    b[this.offset++] = v & 0xff;
  }
  /** Strings are measured first (see strBytes) so the frame size is known before writing. */
  str(field: StrField): void {
    this.text(field.text, field.length);
  }
  /** A string of `length` UTF-8 bytes (strLength): its u16 length, then the bytes. */
  text(text: string, length: number): void {
    this.u16(length);
    if (length === text.length) {
      // ASCII (every id and address): byte per code unit, no encoder call.
      const bytes = this.bytes;
      for (let i = 0, o = this.offset; i < length; i++, o++) bytes[o] = text.charCodeAt(i);
    } else {
      utf8Encoder.encodeInto(text, this.bytes.subarray(this.offset, this.offset + length));
    }
    this.offset += length;
  }
  raw(b: Uint8Array): void {
    this.u32(b.length);
    this.bytes.set(b, this.offset);
    this.offset += b.length;
  }
}

/** A string field with its UTF-8 byte length. */
interface StrField {
  text: string;
  length: number;
}

function strBytes(text: string): StrField {
  return { text, length: strLength(text) };
}

/** The UTF-8 length of a string field, which must fit its u16 length prefix. */
function strLength(text: string): number {
  const length = utf8Length(text);
  if (length > 0xffff) throw new RangeError('string field longer than 65535 bytes');
  return length;
}

/** UTF-8 byte length as TextEncoder encodes it (a lone surrogate becomes U+FFFD: 3 bytes). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** Encodes a frame: u32 length · u8 type · body. */
export function encodeFrame(frame: Frame): Uint8Array {
  switch (frame.type) {
    case 'HELLO': {
      const user = strBytes(frame.user);
      const device = strBytes(frame.device);
      const token = strBytes(frame.token);
      const w = start(FrameType.HELLO, 1 + 2 + user.length + 2 + device.length + 2 + token.length + 8);
      w.u8(frame.version);
      w.str(user);
      w.str(device);
      w.str(token);
      w.u64(frame.resumeAfter);
      return w.finish();
    }
    case 'WELCOME': {
      const node = strBytes(frame.node);
      const w = start(FrameType.WELCOME, 1 + 2 + node.length + 8 + 8 + 4 + 4 + 4);
      w.u8(frame.version);
      w.str(node);
      w.u64(frame.lastSeq);
      w.u64(frame.ackedSeq);
      w.u32(frame.heartbeatMs);
      w.u32(frame.maxPayload);
      w.u32(frame.window);
      return w.finish();
    }
    case 'SEND': {
      const to = strBytes(frame.to);
      const w = start(FrameType.SEND, 8 + 1 + 2 + to.length + 4 + frame.payload.length);
      w.u64(frame.clientMsgId);
      w.u8(frame.flags);
      w.str(to);
      w.raw(frame.payload);
      return w.finish();
    }
    case 'ACCEPTED': {
      const w = start(FrameType.ACCEPTED, 8 + 1 + 8);
      w.u64(frame.clientMsgId);
      w.u8(frame.flags);
      w.u64(frame.timestamp);
      return w.finish();
    }
    case 'DELIVER':
      return encodeDeliver(frame);
    case 'ACK':
      return u64Frame(FrameType.ACK, frame.seq);
    case 'PING':
      return u64Frame(FrameType.PING, frame.nonce);
    case 'PONG':
      return u64Frame(FrameType.PONG, frame.nonce);
    case 'DONE':
      return u64Frame(FrameType.DONE, frame.ref);
    case 'WATCH':
    case 'UNWATCH': {
      const users = frame.users.map(strBytes);
      const w = start(
        frame.type === 'WATCH' ? FrameType.WATCH : FrameType.UNWATCH,
        2 + users.reduce((n, u) => n + 2 + u.length, 0),
      );
      w.u16(users.length);
      for (const u of users) w.str(u);
      return w.finish();
    }
    case 'PRESENCE': {
      const user = strBytes(frame.user);
      const w = start(FrameType.PRESENCE, 2 + user.length + 1 + 8);
      w.str(user);
      w.u8(frame.online);
      w.u64(frame.since);
      return w.finish();
    }
    case 'JOIN':
    case 'LEAVE': {
      const group = strBytes(frame.group);
      const w = start(frame.type === 'JOIN' ? FrameType.JOIN : FrameType.LEAVE, 8 + 2 + group.length);
      w.u64(frame.ref);
      w.str(group);
      return w.finish();
    }
    case 'RECEIPT': {
      const by = strBytes(frame.by);
      const byDevice = strBytes(frame.byDevice);
      const fromDevice = strBytes(frame.fromDevice);
      const w = start(FrameType.RECEIPT, 2 + by.length + 2 + byDevice.length + 2 + fromDevice.length + 8 + 8);
      w.str(by);
      w.str(byDevice);
      w.str(fromDevice);
      w.u64(frame.clientMsgId);
      w.u64(frame.timestamp);
      return w.finish();
    }
    case 'ERROR': {
      const message = strBytes(frame.message);
      const w = start(FrameType.ERROR, 2 + 8 + 2 + message.length);
      w.u16(frame.code);
      w.u64(frame.ref);
      w.str(message);
      return w.finish();
    }
    case 'BYE': {
      const reason = strBytes(frame.reason);
      const w = start(FrameType.BYE, 2 + 2 + reason.length);
      w.u16(frame.code);
      w.str(reason);
      return w.finish();
    }
    default:
      throw new TypeError(`unknown frame type: ${String((frame as { type: unknown }).type)}`);
  }
}

/**
 * A DELIVER from a stored message's fields (anything shaped like DeliverFrame without its `type`): the
 * server encodes one per stored copy, and this spares it an object spread per frame.
 */
export function encodeDeliver(m: Omit<DeliverFrame, 'type'>): Uint8Array {
  // Lengths as numbers, not StrField objects: three fewer allocations for every DELIVER.
  const fromLength = strLength(m.from);
  const fromDeviceLength = strLength(m.fromDevice);
  const toLength = strLength(m.to);
  const w = start(
    FrameType.DELIVER,
    8 + 8 + 2 + fromLength + 2 + fromDeviceLength + 8 + 2 + toLength + 4 + m.payload.length,
  );
  w.u64(m.seq);
  w.u64(m.timestamp);
  w.text(m.from, fromLength);
  w.text(m.fromDevice, fromDeviceLength);
  w.u64(m.clientMsgId);
  w.text(m.to, toLength);
  w.raw(m.payload);
  return w.finish();
}

/**
 * The RECEIPTs one ACK owes one sender, as consecutive frames in one buffer: the same bytes as
 * encodeFrame gives for each, concatenated. A server sends one per message its users acknowledge, in
 * runs per sender (PROTOCOL.md section 6), and this spares a frame object, a buffer and a copy each.
 */
export function encodeReceipts(
  by: string,
  byDevice: string,
  timestamp: number,
  receipts: readonly { fromDevice: string; clientMsgId: number }[],
): Uint8Array {
  const byLength = strLength(by);
  const byDeviceLength = strLength(byDevice);
  const fixed = 2 + byLength + 2 + byDeviceLength + 2 + 8 + 8;
  let size = 0;
  const n = receipts.length;
  const fromDeviceLengths = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const length = strLength(receipts[i]!.fromDevice);
    fromDeviceLengths[i] = length;
    size += 4 + 1 + fixed + length;
  }
  const w = new FrameWriter(size);
  for (let i = 0; i < n; i++) {
    const r = receipts[i]!;
    w.u32(1 + fixed + fromDeviceLengths[i]!);
    w.u8(FrameType.RECEIPT);
    w.text(by, byLength);
    w.text(byDevice, byDeviceLength);
    w.text(r.fromDevice, fromDeviceLengths[i]!);
    w.u64(r.clientMsgId);
    w.u64(timestamp);
  }
  return w.finish();
}

function start(type: number, bodySize: number): FrameWriter {
  const w = new FrameWriter(4 + 1 + bodySize);
  w.u32(1 + bodySize);
  w.u8(type);
  return w;
}

function u64Frame(type: number, v: number): Uint8Array {
  const w = start(type, 8);
  w.u64(v);
  return w.finish();
}
