/**
 * The Redis keyspace of the store (part of its data format: changing a name strands existing data).
 *
 * Every key of a user carries the hash tag `{u:<user>}`, so all of them live in one slot and one Lua
 * script can change them atomically on Redis Cluster; a group's keys carry `{g:<#group>}`. Redis takes the
 * tag from the first `{` to the first `}` after it, so a `}` inside a user id only shortens the tag: every
 * key of that user still shares it (the same prefix), and the fixed suffixes keep the key names distinct.
 *
 * The retention sweep finds users through PURGE_BUCKETS index buckets `{p:0}` … `{p:63}` (a user's bucket
 * is FNV-1a of its id modulo the count): Redis Cluster spreads the bucket keys over every master, and a
 * sweep reads all of them, so it reaches every user without SCAN or one global key.
 */
import { fnv1a32 } from '../shard.js';

/** Bucket keys of the sweep index. Fixed: a user indexed in bucket k must be found in bucket k. */
export const PURGE_BUCKETS = 64;

/**
 * A user's keys, in the order every per-user script takes them as KEYS[1…7]:
 * - `:i` hash, the inbox: `last` (highest seq assigned), `n`/`b` (count and payload bytes kept, for the caps),
 *   `pt` (every seq ≤ pt was removed as acknowledged), `pend` (1: new acks may free messages), `g`/`due`
 *   (generation and value of the latest sweep-index entry the scripts asked for);
 * - `:m` hash seq → message (codec.ts);
 * - `:s` sorted set of the kept messages: score seq, member `<seq>:<payload bytes>`;
 * - `:d` hash dedupe key → `<seq>:<timestamp>` of every message id remembered (kept or removed as
 *   acknowledged), until it is older than the retention period;
 * - `:t` sorted set of those dedupe keys by timestamp (the retention order);
 * - `:dv` hash device → acknowledged seq (the cursor);
 * - `:ds` sorted set of devices by last seen (ms).
 */
export function userKeys(user: string): [string, string, string, string, string, string, string] {
  const tag = `{u:${user}}`;
  return [`${tag}:i`, `${tag}:m`, `${tag}:s`, `${tag}:d`, `${tag}:t`, `${tag}:dv`, `${tag}:ds`];
}

/** The inbox hash alone (lastSeq). */
export function inboxKey(user: string): string {
  return `{u:${user}}:i`;
}

/** The set of a group's members (the group name includes its `#`). */
export function groupMembersKey(group: string): string {
  return `{g:${group}}:members`;
}

/** Bucket k of the sweep index: a sorted set user → when it next has work, and a hash user → generation. */
export function bucketKeys(k: number): [due: string, gen: string] {
  return [`{p:${k}}:due`, `{p:${k}}:gen`];
}

/** The sweep-index bucket of a user. */
export function bucketOf(user: string): number {
  return fnv1a32(user) % PURGE_BUCKETS;
}

/**
 * The dedupe key of a message in its inbox: (sender, sender device, clientMsgId), each length-prefixed so
 * that no two triples give the same key.
 */
export function dedupeKey(from: string, fromDevice: string, clientMsgId: number): string {
  return `${from.length}:${from}${fromDevice.length}:${fromDevice}${clientMsgId}`;
}
