/** SBP/1 frame types and their fields (PROTOCOL.md section 3). Pure data, no I/O. */

export const PROTOCOL_VERSION = 1;

export const FrameType = {
  HELLO: 0x01,
  WELCOME: 0x02,
  SEND: 0x03,
  ACCEPTED: 0x04,
  DELIVER: 0x05,
  ACK: 0x06,
  PING: 0x07,
  PONG: 0x08,
  WATCH: 0x09,
  UNWATCH: 0x0a,
  PRESENCE: 0x0b,
  JOIN: 0x0c,
  LEAVE: 0x0d,
  DONE: 0x0e,
  RECEIPT: 0x0f,
  ERROR: 0x10,
  BYE: 0x11,
} as const;

export type FrameTypeName = keyof typeof FrameType;

/** SEND flag bit 0: never stored, delivered only to connected devices. */
export const SEND_FLAG_EPHEMERAL = 0x01;
/** ACCEPTED flag bit 0: the message was already stored. */
export const ACCEPTED_FLAG_DUPLICATE = 0x01;

export interface HelloFrame {
  type: 'HELLO';
  version: number;
  user: string;
  device: string;
  token: string;
  resumeAfter: number;
}
export interface WelcomeFrame {
  type: 'WELCOME';
  version: number;
  node: string;
  lastSeq: number;
  ackedSeq: number;
  heartbeatMs: number;
  maxPayload: number;
  window: number;
}
export interface SendFrame {
  type: 'SEND';
  clientMsgId: number;
  flags: number;
  to: string;
  payload: Uint8Array;
}
export interface AcceptedFrame {
  type: 'ACCEPTED';
  clientMsgId: number;
  flags: number;
  timestamp: number;
}
export interface DeliverFrame {
  type: 'DELIVER';
  seq: number;
  timestamp: number;
  from: string;
  fromDevice: string;
  clientMsgId: number;
  to: string;
  payload: Uint8Array;
}
export interface AckFrame {
  type: 'ACK';
  seq: number;
}
export interface PingFrame {
  type: 'PING';
  nonce: number;
}
export interface PongFrame {
  type: 'PONG';
  nonce: number;
}
export interface WatchFrame {
  type: 'WATCH';
  users: string[];
}
export interface UnwatchFrame {
  type: 'UNWATCH';
  users: string[];
}
export interface PresenceFrame {
  type: 'PRESENCE';
  user: string;
  online: number;
  since: number;
}
export interface JoinFrame {
  type: 'JOIN';
  ref: number;
  group: string;
}
export interface LeaveFrame {
  type: 'LEAVE';
  ref: number;
  group: string;
}
export interface DoneFrame {
  type: 'DONE';
  ref: number;
}
export interface ReceiptFrame {
  type: 'RECEIPT';
  by: string;
  byDevice: string;
  fromDevice: string;
  clientMsgId: number;
  timestamp: number;
}
export interface ErrorFrame {
  type: 'ERROR';
  code: number;
  ref: number;
  message: string;
}
export interface ByeFrame {
  type: 'BYE';
  code: number;
  reason: string;
}

export type Frame =
  | HelloFrame
  | WelcomeFrame
  | SendFrame
  | AcceptedFrame
  | DeliverFrame
  | AckFrame
  | PingFrame
  | PongFrame
  | WatchFrame
  | UnwatchFrame
  | PresenceFrame
  | JoinFrame
  | LeaveFrame
  | DoneFrame
  | ReceiptFrame
  | ErrorFrame
  | ByeFrame;

/** Frames a client may send (c→s and both). */
export type ClientFrame =
  | HelloFrame
  | SendFrame
  | AckFrame
  | PingFrame
  | PongFrame
  | WatchFrame
  | UnwatchFrame
  | JoinFrame
  | LeaveFrame
  | ByeFrame;
/** Frames a server may send (s→c and both). */
export type ServerFrame =
  | WelcomeFrame
  | AcceptedFrame
  | DeliverFrame
  | PingFrame
  | PongFrame
  | PresenceFrame
  | DoneFrame
  | ReceiptFrame
  | ErrorFrame
  | ByeFrame;

/** Who sent the stream being decoded: decides which frame types are allowed (check 3 of section 2.3). */
export type Direction = 'clientToServer' | 'serverToClient';

const CLIENT_TYPES = new Set<number>([
  FrameType.HELLO,
  FrameType.SEND,
  FrameType.ACK,
  FrameType.PING,
  FrameType.PONG,
  FrameType.WATCH,
  FrameType.UNWATCH,
  FrameType.JOIN,
  FrameType.LEAVE,
  FrameType.BYE,
]);
const SERVER_TYPES = new Set<number>([
  FrameType.WELCOME,
  FrameType.ACCEPTED,
  FrameType.DELIVER,
  FrameType.PING,
  FrameType.PONG,
  FrameType.PRESENCE,
  FrameType.DONE,
  FrameType.RECEIPT,
  FrameType.ERROR,
  FrameType.BYE,
]);

export function isAllowedType(type: number, direction: Direction): boolean {
  return (direction === 'clientToServer' ? CLIENT_TYPES : SERVER_TYPES).has(type);
}

/** Ids of users, devices and groups (section 2). */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isValidId(s: string): boolean {
  return ID_PATTERN.test(s);
}

/** An address is a user id or `#` + group id. */
export function isValidAddress(s: string): boolean {
  return s.startsWith('#') ? ID_PATTERN.test(s.slice(1)) : ID_PATTERN.test(s);
}

export function isGroupAddress(s: string): boolean {
  return s.startsWith('#');
}
