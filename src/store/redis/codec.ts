/**
 * One stored message as a Redis value (part of the data format). The seq is not in it: it is the hash
 * field the value is stored under, assigned by the append script.
 *
 *   u8 version (1) | f64 LE timestamp | f64 LE clientMsgId
 *   | u16 LE length + UTF-8 from | u16 LE length + UTF-8 fromDevice | u16 LE length + UTF-8 to | payload
 *
 * Both numbers are safe integers, exact as doubles. Decoding returns the payload as a view of the reply.
 */
import type { AppendRequest, StoredMessage } from '../inbox-store.js';

const VERSION = 1;
const FIXED = 1 + 8 + 8;

export function encodeMessage(req: AppendRequest): Buffer {
  const from = Buffer.from(req.from, 'utf8');
  const device = Buffer.from(req.fromDevice, 'utf8');
  const to = Buffer.from(req.to, 'utf8');
  for (const [name, bytes] of [
    ['from', from],
    ['fromDevice', device],
    ['to', to],
  ] as const) {
    if (bytes.length > 0xffff) throw new RangeError(`${name} is longer than 65535 bytes`);
  }
  const out = Buffer.allocUnsafe(
    FIXED + 6 + from.length + device.length + to.length + req.payload.byteLength,
  );
  out[0] = VERSION;
  out.writeDoubleLE(req.timestamp, 1);
  out.writeDoubleLE(req.clientMsgId, 9);
  let at = FIXED;
  for (const bytes of [from, device, to]) {
    out.writeUInt16LE(bytes.length, at);
    bytes.copy(out, at + 2);
    at += 2 + bytes.length;
  }
  out.set(req.payload, at);
  return out;
}

export function decodeMessage(seq: number, value: Buffer): StoredMessage {
  if (value.length < FIXED + 6 || value[0] !== VERSION) {
    throw new Error(`stored message ${seq} has an unknown format`);
  }
  let at = FIXED;
  const text = (): string => {
    const n = value.readUInt16LE(at);
    const s = value.toString('utf8', at + 2, at + 2 + n);
    at += 2 + n;
    return s;
  };
  const from = text();
  const fromDevice = text();
  const to = text();
  return {
    seq,
    timestamp: value.readDoubleLE(1),
    from,
    fromDevice,
    clientMsgId: value.readDoubleLE(9),
    to,
    payload: value.subarray(at),
  };
}
