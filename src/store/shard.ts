/**
 * Users → shards. Part of the data format: a user's inbox lives in the shard file `shardOf(user, n)` of a
 * store created with n shards, so this function must never change (a change would strand every existing
 * inbox in the wrong file). The count is recorded in every shard file and read back when a store reopens,
 * so the default below only decides the layout of a new data folder.
 *
 * The hash is FNV-1a, 32 bits, over the UTF-8 bytes of the user id (offset basis 2166136261, prime
 * 16777619); a lone UTF-16 surrogate counts as U+FFFD, as TextEncoder encodes it. The shard is the
 * unsigned hash modulo the shard count.
 */

/**
 * Shards of a new store created without an explicit count. Each shard is one SQLite file and one commit
 * per tick: fewer shards mean larger, cheaper commit batches (with durability full, fewer fsyncs); more
 * shards spread the home-worker load more evenly. 16 spreads evenly over 1, 2, 4, 8 or 16 workers.
 */
export const DEFAULT_SHARD_COUNT = 16;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a 32-bit of the UTF-8 encoding of `text`, as an unsigned integer. Encodes on the fly (no allocation). */
export function fnv1a32(text: string): number {
  let h = FNV_OFFSET;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, FNV_PRIME);
      continue;
    }
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < n ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
        h = Math.imul(h ^ (0xf0 | (cp >> 18)), FNV_PRIME);
        h = Math.imul(h ^ (0x80 | ((cp >> 12) & 0x3f)), FNV_PRIME);
        h = Math.imul(h ^ (0x80 | ((cp >> 6) & 0x3f)), FNV_PRIME);
        h = Math.imul(h ^ (0x80 | (cp & 0x3f)), FNV_PRIME);
        continue;
      }
      c = 0xfffd; // lone surrogate
    }
    h = Math.imul(h ^ (0xe0 | (c >> 12)), FNV_PRIME);
    h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
  }
  return h >>> 0;
}

/** The shard (0 … shardCount-1) holding `user`'s inbox, cursors and dedupe entries. */
export function shardOf(user: string, shardCount: number): number {
  if (!Number.isInteger(shardCount) || shardCount < 1) throw new RangeError(`bad shard count: ${shardCount}`);
  return fnv1a32(user) % shardCount;
}
