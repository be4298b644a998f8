/**
 * Crash safety (the "Done when" (c), PROTOCOL.md section 5 "Durable", "Duplicates",
 * "Delivery guarantee"): kill -9 of the server in the middle of 5 000 pipelined SENDs from two senders
 * to four recipients; restart on the same data folder, re-send every SEND not yet ACCEPTED with the
 * same clientMsgIds (as the SDK does), then read every inbox: every ACCEPTED message is there, none
 * twice, seqs gap-free, per-recipient order = send order, every copy with the ACCEPTED timestamp, and
 * whatever a device saw before the crash is still there at the same seq.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type DeliverFrame, encodeFrame, type Frame } from '../../src/protocol/index.js';
import { readInbox } from '../helpers/audit.js';
import { startServer } from '../helpers/server-process.js';
import { closeAll, portOf, session, sleep, text, type WireClient } from './harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

const TOTAL = 5000;
const SENDERS = ['cr-s1', 'cr-s2'] as const;
const RECIPIENTS = ['cr-r0', 'cr-r1', 'cr-r2', 'cr-r3'] as const;
const PER_SENDER = TOTAL / SENDERS.length;
/** kill -9 once this many SENDs (of both senders) are ACCEPTED. */
const KILL_AFTER_ACCEPTED = 1500;
const ARGS = ['--handshake-timeout', '5s', '--purge-interval', '1h'];

const recipientOf = (id: number): string => RECIPIENTS[(id - 1) % RECIPIENTS.length]!;
const payloadOf = (sender: string, id: number): string => `${sender}:${id}`;

/** Direct children of a process, from /proc (Linux). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid …: comm may hold spaces, so parse after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // The process is gone.
    }
  }
  return out;
}

/**
 * kill -9 of the server: every process of it (the workers, if it runs any, and the primary) at the
 * same moment, so no process of it gets to finish anything.
 */
function killTree9(server: Server): Promise<void> {
  for (const child of childrenOf(server.pid)) {
    try {
      process.kill(child, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  return server.kill9();
}

describe('crash: kill -9 in the middle of 5 000 SENDs', () => {
  let first: Server | undefined;
  let second: Server | undefined;
  const clients: WireClient[] = [];

  before(async () => {
    first = await startServer({ args: ARGS });
  });
  after(async () => {
    await closeAll(clients);
    await first?.kill9();
    await second?.stop();
    first?.removeData();
  });

  it('every ACCEPTED message survives, none twice, gap-free, in send order, after re-sending the rest', async (t) => {
    const server = first!;
    // A live reader of one recipient, ACKing as it goes: what it saw must survive the crash.
    const { client: live } = await session(portOf(server), 'cr-r0', 'live');
    clients.push(live);
    const seenLive: DeliverFrame[] = [];
    live.listeners.add((f) => {
      if (f.type !== 'DELIVER') return;
      seenLive.push(f);
      if (seenLive.length % 100 === 0) live.send({ type: 'ACK', seq: f.seq });
    });

    /** Failures seen inside frame listeners, asserted after (a throw there would crash the runner). */
    const problems: string[] = [];
    const senders = new Map<string, WireClient>();
    const accepted = new Map<string, Map<number, number>>(); // sender → clientMsgId → timestamp
    let acceptedTotal = 0;
    let killed: Promise<void> | null = null;
    let acceptedAtKill = -1;
    for (const s of SENDERS) {
      const { client } = await session(portOf(server), s, 'd1', { resumeAfter: 0 });
      clients.push(client);
      senders.set(s, client);
      const mine = new Map<number, number>();
      accepted.set(s, mine);
      client.listeners.add((f: Frame) => {
        if (f.type === 'ERROR') problems.push(`${s}: unexpected ERROR ${f.code} ${f.message}`);
        if (f.type !== 'ACCEPTED') return;
        if (f.flags !== 0) problems.push(`${s}: first SEND ${f.clientMsgId} came back as a duplicate`);
        mine.set(f.clientMsgId, f.timestamp);
        acceptedTotal++;
        if (acceptedTotal >= KILL_AFTER_ACCEPTED && !killed) {
          acceptedAtKill = acceptedTotal;
          killed = killTree9(server);
        }
      });
    }

    // Pipelined, not one at a time: each sender keeps up to IN_FLIGHT SENDs unanswered, written in
    // chunks, so the kill lands while SENDs are in flight (a sender that wrote all 5 000 at once would be
    // answered in full before the kill could land).
    const IN_FLIGHT = 400;
    const CHUNK = 100;
    const encodeSend = (s: string, id: number): Uint8Array =>
      encodeFrame({
        type: 'SEND',
        clientMsgId: id,
        flags: 0,
        to: recipientOf(id),
        payload: new TextEncoder().encode(payloadOf(s, id)),
      });
    const written = new Map<string, number>();
    await Promise.all(
      SENDERS.map(async (s) => {
        const c = senders.get(s)!;
        const mine = accepted.get(s)!;
        let next = 1;
        const until = Date.now() + 30_000;
        while (next <= PER_SENDER && !killed && !c.ended && Date.now() < until) {
          const room = Math.min(IN_FLIGHT - (next - 1 - mine.size), CHUNK, PER_SENDER - next + 1);
          if (room <= 0) {
            await sleep(1);
            continue;
          }
          const frames: Uint8Array[] = [];
          for (let k = 0; k < room; k++) frames.push(encodeSend(s, next++));
          c.sendRaw(Buffer.concat(frames));
          await new Promise((r) => setImmediate(r));
        }
        written.set(s, next - 1);
      }),
    );
    // Wait for the kill (bounded) and for every connection to notice it.
    const deadline = Date.now() + 30_000;
    while (!killed && Date.now() < deadline) await sleep(10);
    assert.ok(killed, `only ${acceptedTotal} SENDs were ACCEPTED in 30 s; the kill never came`);
    await killed;
    assert.equal(problems.length, 0, problems.slice(0, 5).join('\n'));
    for (const c of [...senders.values(), live]) await c.expectClosed(5000, { allowUnread: true });
    assert.ok(
      acceptedTotal < TOTAL,
      `all ${TOTAL} SENDs were ACCEPTED before the kill landed: the crash did not hit mid-stream`,
    );
    const acceptedBeforeCrash = new Map([...accepted].map(([s, m]) => [s, new Map(m)]));
    const liveBeforeCrash = [...seenLive];

    // Restart on the same data folder.
    second = await startServer({ args: ARGS, dataDir: server.dataDir });
    const port = portOf(second);

    // Re-send every SEND not yet ACCEPTED, ascending, with the same clientMsgIds.
    const finalTimestamp = new Map<string, number>(); // `${sender}:${id}` → timestamp
    let duplicates = 0;
    await Promise.all(
      SENDERS.map(async (s) => {
        const { client } = await session(port, s, 'd1', { resumeAfter: Number.MAX_SAFE_INTEGER });
        clients.push(client);
        const mine = acceptedBeforeCrash.get(s)!;
        for (const [id, ts] of mine) finalTimestamp.set(payloadOf(s, id), ts);
        const missing = Array.from({ length: PER_SENDER }, (_, i) => i + 1).filter((id) => !mine.has(id));
        const answers = new Map<number, { flags: number; timestamp: number }>();
        client.listeners.add((f) => {
          if (f.type === 'ACCEPTED') answers.set(f.clientMsgId, f);
          if (f.type === 'ERROR')
            problems.push(`${s}: unexpected ERROR ${f.code} ${f.message} after restart`);
        });
        for (let i = 0; i < missing.length; i += CHUNK) {
          const frames = missing.slice(i, i + CHUNK).map((id) => encodeSend(s, id));
          client.sendRaw(Buffer.concat(frames));
          await new Promise((r) => setImmediate(r));
        }
        const until = Date.now() + 30_000;
        while (answers.size < missing.length && Date.now() < until && !client.ended) await sleep(10);
        assert.equal(
          answers.size,
          missing.length,
          `${s}: ${answers.size} of ${missing.length} re-sent SENDs ACCEPTED`,
        );
        for (const [id, a] of answers) {
          finalTimestamp.set(payloadOf(s, id), a.timestamp);
          if (a.flags === 1) duplicates++;
        }
      }),
    );

    t.diagnostic(
      `killed after ${acceptedAtKill} ACCEPTED (${acceptedTotal} seen in all, ${[...written.values()].join('+')} written); ` +
        `${duplicates} re-sent SENDs were already stored (duplicate)`,
    );

    // Read every inbox.
    const expectedIn = (user: string): Array<[string, number]> => {
      const out: Array<[string, number]> = [];
      for (const s of SENDERS) {
        for (let id = 1; id <= PER_SENDER; id++) {
          if (s === user || recipientOf(id) === user) out.push([s, id]);
        }
      }
      return out;
    };
    for (const user of [...RECIPIENTS, ...SENDERS]) {
      const inbox = await readInbox(port, user, clients);
      const want = expectedIn(user);
      assert.equal(
        inbox.length,
        want.length,
        `${user}: ${inbox.length} messages stored, ${want.length} sent`,
      );
      assert.deepEqual(
        inbox.map((d) => d.seq),
        Array.from({ length: inbox.length }, (_, i) => i + 1),
        `${user}: seqs are not gap-free from 1`,
      );
      const keys = new Set<string>();
      for (const d of inbox) {
        const key = `${d.from}/${d.fromDevice}/${d.clientMsgId}`;
        assert.ok(!keys.has(key), `${user}: ${key} is stored twice`);
        keys.add(key);
        assert.equal(text(d.payload), payloadOf(d.from, d.clientMsgId), `${user}: payload of ${key}`);
        assert.equal(d.to, recipientOf(d.clientMsgId), `${user}: to of ${key}`);
        assert.equal(
          d.timestamp,
          finalTimestamp.get(payloadOf(d.from, d.clientMsgId)),
          `${user}: ${key} is stored with another timestamp than ACCEPTED said`,
        );
      }
      for (const [s, id] of want) assert.ok(keys.has(`${s}/d1/${id}`), `${user}: ${s}/d1/${id} is missing`);
      for (const s of SENDERS) {
        const ids = inbox.filter((d) => d.from === s).map((d) => d.clientMsgId);
        for (let i = 1; i < ids.length; i++) {
          assert.ok(ids[i]! > ids[i - 1]!, `${user}: ${s}'s messages are out of send order at seq ${i + 1}`);
        }
      }
      if (user === 'cr-r0') {
        for (const seen of liveBeforeCrash) {
          const stored = inbox[seen.seq - 1];
          assert.deepEqual(
            stored && [stored.from, stored.clientMsgId],
            [seen.from, seen.clientMsgId],
            `seq ${seen.seq} was DELIVERed before the crash and is not the same message after it`,
          );
        }
      }
    }
    assert.ok(acceptedAtKill >= KILL_AFTER_ACCEPTED);
    assert.equal(problems.length, 0, problems.slice(0, 5).join('\n'));
  });
});
