/**
 * Audits shared by the crash, shutdown and cluster tests: read a whole inbox back with a fresh device,
 * check it against what was ACCEPTED (every message exactly once, seqs gap-free, per-sender send order),
 * and check that a graceful shutdown told every client SHUTTING_DOWN and closed it.
 */
import { type DeliverFrame, ErrorCode, errorName } from '../../src/protocol/index.js';
import { connect, text, type WireClient } from '../wire/harness.js';

export interface ReadInboxOptions {
  /** The device that reads (a device new to the inbox gets all of it; default `audit`). */
  device?: string;
  /** Bound of the handshake and of each wait for the next DELIVER, ms (default 10 000). */
  timeoutMs?: number;
  /** HELLO's token (a server with a secret). */
  token?: string;
}

/**
 * Reads a whole inbox with a new device: every DELIVER up to WELCOME's lastSeq, ACKing as it goes (so the
 * window never stalls the replay). The client is pushed on `clients` (closed by the caller's cleanup too).
 */
export async function readInbox(
  port: number,
  user: string,
  clients: WireClient[],
  opts: ReadInboxOptions = {},
): Promise<DeliverFrame[]> {
  const device = opts.device ?? 'audit';
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const client = await connect(port, `${user}/${device}`, { timeoutMs });
  clients.push(client);
  const welcome = await client.hello(user, device, { timeoutMs, token: opts.token ?? '' });
  const got: DeliverFrame[] = [];
  let last = 0;
  while (last < welcome.lastSeq) {
    const d = await client.expect('DELIVER', timeoutMs);
    got.push(d);
    last = d.seq;
    if (got.length % 200 === 0) client.send({ type: 'ACK', seq: d.seq });
  }
  await client.expectNothing(200);
  await client.close();
  return got;
}

/** One message an inbox must hold. */
export interface ExpectedMessage {
  from: string;
  fromDevice: string;
  clientMsgId: number;
  /** When given, the stored copy must have exactly these. */
  to?: string;
  payload?: string;
  timestamp?: number;
}

/** `from/fromDevice/clientMsgId`: a message's identity (PROTOCOL.md section 5). */
export function messageKey(m: { from: string; fromDevice: string; clientMsgId: number }): string {
  return `${m.from}/${m.fromDevice}/${m.clientMsgId}`;
}

const NOT_IN_SEND_ORDER = 'not in send order';

/** The kinds of problem inboxProblems reports, for a summary. */
const PROBLEM_KINDS = [
  NOT_IN_SEND_ORDER,
  'stored twice',
  'missing',
  'gap-free',
  'never sent',
  'timestamp',
  'payload',
  'has to=',
];

/**
 * What is wrong with an inbox read back in full (empty when nothing): every expected message present
 * exactly once by (from, device, clientMsgId), nothing else, seqs 1, 2, 3 … without gaps, and each
 * sender device's messages in send order (ascending clientMsgId), with the stored fields as expected.
 */
export function inboxProblems(
  user: string,
  inbox: readonly DeliverFrame[],
  expected: Iterable<ExpectedMessage>,
): string[] {
  const problems: string[] = [];
  const want = new Map<string, ExpectedMessage>();
  for (const e of expected) want.set(messageKey(e), e);
  let previous = 0;
  for (const d of inbox) {
    if (d.seq !== previous + 1)
      problems.push(`${user}: seq ${d.seq} follows seq ${previous} (seqs are not gap-free from 1)`);
    previous = d.seq;
  }
  const seen = new Set<string>();
  const lastIdOf = new Map<string, { id: number; seq: number }>();
  for (const d of inbox) {
    const key = messageKey(d);
    if (seen.has(key)) {
      problems.push(`${user}: ${key} is stored twice (again at seq ${d.seq})`);
      continue;
    }
    seen.add(key);
    const e = want.get(key);
    if (!e) problems.push(`${user}: ${key} at seq ${d.seq} was never sent to this inbox`);
    else {
      if (e.to !== undefined && d.to !== e.to)
        problems.push(`${user}: ${key} has to=${d.to}, sent to ${e.to}`);
      if (e.payload !== undefined && text(d.payload) !== e.payload) {
        problems.push(`${user}: ${key} has payload "${text(d.payload)}", sent "${e.payload}"`);
      }
      if (e.timestamp !== undefined && d.timestamp !== e.timestamp) {
        problems.push(`${user}: ${key} has timestamp ${d.timestamp}, ACCEPTED said ${e.timestamp}`);
      }
    }
    const sender = `${d.from}/${d.fromDevice}`;
    const before = lastIdOf.get(sender);
    if (before && d.clientMsgId <= before.id) {
      problems.push(
        `${user}: ${sender}'s ${d.clientMsgId} (seq ${d.seq}) is stored after its ${before.id} (seq ${before.seq}): ${NOT_IN_SEND_ORDER}`,
      );
    }
    if (!before || d.clientMsgId > before.id) lastIdOf.set(sender, { id: d.clientMsgId, seq: d.seq });
  }
  let missing = 0;
  for (const [key] of want) {
    if (seen.has(key)) continue;
    if (missing++ < 20) problems.push(`${user}: ${key} is missing`);
  }
  if (missing > 20) problems.push(`${user}: … ${missing} messages missing in all`);
  return problems;
}

/** Splits inboxProblems' list: order violations (a later message of a sender stored first) and the rest. */
export function splitOrderProblems(problems: readonly string[]): { order: string[]; other: string[] } {
  const order = problems.filter((p) => p.includes(NOT_IN_SEND_ORDER));
  return { order, other: problems.filter((p) => !p.includes(NOT_IN_SEND_ORDER)) };
}

/** Throws with the first problems (and how many there are) when the list is not empty. */
export function assertNoProblems(problems: readonly string[], what = 'problems'): void {
  if (problems.length === 0) return;
  const kinds = new Map<string, number>();
  for (const p of problems) {
    const kind = PROBLEM_KINDS.find((k) => p.includes(k)) ?? 'other';
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  const summary = [...kinds].map(([k, n]) => `${n} × ${k}`).join(', ');
  const shown = problems.slice(0, 15).join('\n  ');
  throw new Error(
    `${problems.length} ${what} (${summary}):\n  ${shown}${problems.length > 15 ? '\n  …' : ''}`,
  );
}

export interface ShutdownCheckOptions {
  /** Bound of the wait for each client's ERROR, ms (default 10 000). */
  timeoutMs?: number;
  /** Largest reconnect delay allowed in `ref`, ms (default 10 000: the default spread). */
  maxRef?: number;
}

/**
 * Every client gets ERROR SHUTTING_DOWN with a reconnect delay in 0 … maxRef ms, nothing after it, and is
 * closed (PROTOCOL.md sections 4.6 and 7). Resolves with the delays, in the clients' order; throws with the
 * first failures otherwise.
 */
export async function expectShutdownOfAll(
  clients: readonly WireClient[],
  opts: ShutdownCheckOptions = {},
): Promise<number[]> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const maxRef = opts.maxRef ?? 10_000;
  const results = await Promise.allSettled(
    clients.map(async (c) => {
      const err = await c.waitFor('ERROR', timeoutMs);
      if (err.code !== ErrorCode.SHUTTING_DOWN)
        throw new Error(
          `[${c.label}] got ERROR ${err.code} ${errorName(err.code)} ${err.message}, not SHUTTING_DOWN`,
        );
      if (!(err.ref >= 0 && err.ref <= maxRef)) throw new Error(`[${c.label}] reconnect delay ${err.ref} ms`);
      await c.expectClosed(5000, { allowUnread: true });
      const after = c.frames.slice(c.frames.indexOf(err) + 1);
      if (after.length > 0) throw new Error(`[${c.label}] frames after the fatal ERROR: ${after.length}`);
      return err.ref;
    }),
  );
  const failed = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
  assertNoProblems(failed, `of ${clients.length} clients were not shut down properly`);
  return results.map((r) => (r.status === 'fulfilled' ? r.value : -1));
}
