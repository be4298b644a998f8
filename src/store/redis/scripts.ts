/**
 * The Lua scripts of the Redis store. Each runs atomically on one slot: the per-user ones on the user's
 * seven keys (keys.ts, KEYS[1…7]), `index` on one bucket of the sweep index.
 *
 * Numbers: seqs, timestamps and byte counts stay below 2^53, exact in Lua's doubles; timestamps go in and
 * out of Redis as the caller's decimal strings (sorted-set scores), never through Lua's number formatting.
 */

/** Helpers shared by the per-user scripts: the inbox state and the rules that change it. */
const USER_PRELUDE = `
local I, M, S, D, T, DV, DS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local h = redis.call('HMGET', I, 'last', 'n', 'b', 'pt', 'pend', 'due')
local st = {
  last = tonumber(h[1]) or 0, n = tonumber(h[2]) or 0, b = tonumber(h[3]) or 0,
  pt = tonumber(h[4]) or 0, pend = tonumber(h[5]) or 0, due = h[6] or ''
}

-- '<a>:<b>' -> a, b
local function split(v)
  local c = string.find(v, ':', 1, true)
  return string.sub(v, 1, c - 1), string.sub(v, c + 1)
end

-- Removes the kept messages that every device seen at or after cutoff has acknowledged, at most room
-- of them; their dedupe entries stay until they expire. Clears pend once nothing is left to remove.
local function settle(cutoff, room)
  local floor = nil
  for _, device in ipairs(redis.call('ZRANGEBYSCORE', DS, cutoff, '+inf')) do
    local acked = tonumber(redis.call('HGET', DV, device)) or 0
    if floor == nil or acked < floor then floor = acked end
  end
  local removed, complete = 0, true
  if floor ~= nil then
    -- Never past last: pt must not cover a seq that may still be assigned.
    local upper = math.min(floor, st.last)
    if upper > st.pt then
      local kept = redis.call('ZRANGEBYSCORE', S, '(' .. st.pt, upper, 'LIMIT', 0, room)
      local through = upper
      if #kept == room then
        through = tonumber((split(kept[#kept])))
        complete = through == upper
      end
      for _, member in ipairs(kept) do
        local seq, size = split(member)
        redis.call('HDEL', M, seq)
        st.n = st.n - 1
        st.b = st.b - tonumber(size)
      end
      redis.call('ZREMRANGEBYSCORE', S, '(' .. st.pt, through)
      st.pt = through
      removed = #kept
    end
  end
  if complete then st.pend = 0 end
  return removed
end

-- When the sweep next has work for this user: now (-inf) while acks are pending, else the oldest
-- remembered message id or the oldest device's last HELLO (due once older than the retention period);
-- '' when there is nothing at all.
local function dueOf()
  if st.pend == 1 then return '-inf' end
  local due = redis.call('ZRANGE', T, 0, 0, 'WITHSCORES')[2]
  local seen = redis.call('ZRANGE', DS, 0, 0, 'WITHSCORES')[2]
  if seen and (due == nil or tonumber(seen) < tonumber(due)) then due = seen end
  return due or ''
end

-- Writes the inbox state back. When the due time changed (or when forced) it takes the next index
-- generation, which the caller writes to the user's bucket with the due time: returns generation, due
-- (generation 0: the bucket is already right).
local function finish(force)
  local due = dueOf()
  local gen = 0
  if force or due ~= st.due then gen = redis.call('HINCRBY', I, 'g', 1) end
  redis.call('HSET', I, 'last', st.last, 'n', st.n, 'b', st.b, 'pt', st.pt, 'pend', st.pend, 'due', due)
  return gen, due
end
`;

/**
 * Every write of one tick for one user, in call order. ARGV: maxMessages, maxBytes, retentionMs, then ops:
 *   'a' dedupeKey timestamp payloadBytes message   append
 *   'k' device seq                                 ack
 *   'o' device now                                 openDevice (also re-sends the index entry)
 * Returns {generation, due, results…}: 3 numbers per append (1 stored / 2 duplicate / 3 full, seq,
 * timestamp), 2 per openDevice (acked seq, last seq), none per ack.
 */
export const BATCH_LUA = `${USER_PRELUDE}
local maxN, maxB, retention = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {0, ''}
local force = false
local k = 4
while k <= #ARGV do
  local op = ARGV[k]
  if op == 'a' then
    local key, ts, size, message = ARGV[k + 1], ARGV[k + 2], tonumber(ARGV[k + 3]), ARGV[k + 4]
    k = k + 5
    local original = redis.call('HGET', D, key)
    if original then
      local seq, at = split(original)
      out[#out + 1] = 2; out[#out + 1] = tonumber(seq); out[#out + 1] = tonumber(at)
    else
      -- At the cap, first reclaim what every recent device has acknowledged (the sweep may not have
      -- run since): a reader that keeps up never sees the inbox full.
      if st.n + 1 > maxN or st.b + size > maxB then settle(tonumber(ts) - retention, maxN + 1) end
      if st.n + 1 > maxN or st.b + size > maxB then
        out[#out + 1] = 3; out[#out + 1] = 0; out[#out + 1] = 0
      else
        st.last = st.last + 1
        st.n = st.n + 1
        st.b = st.b + size
        redis.call('HSET', M, st.last, message)
        redis.call('ZADD', S, st.last, st.last .. ':' .. size)
        redis.call('HSET', D, key, st.last .. ':' .. ts)
        redis.call('ZADD', T, ts, key)
        out[#out + 1] = 1; out[#out + 1] = st.last; out[#out + 1] = tonumber(ts)
      end
    end
  elseif op == 'k' then
    local device, seq = ARGV[k + 1], tonumber(ARGV[k + 2])
    k = k + 3
    local acked = tonumber(redis.call('HGET', DV, device))
    if acked == nil then
      -- An ack from a device never seen: kept, but as seen long ago, so it holds nothing back.
      redis.call('HSET', DV, device, seq)
      redis.call('ZADD', DS, 0, device)
      st.pend = 1
    elseif seq > acked then
      redis.call('HSET', DV, device, seq)
      st.pend = 1
    end
  else
    local device, now = ARGV[k + 1], ARGV[k + 2]
    k = k + 3
    force = true
    local acked = tonumber(redis.call('HGET', DV, device))
    if acked == nil then
      acked = 0
      redis.call('HSET', DV, device, 0)
      redis.call('ZADD', DS, now, device)
    else
      redis.call('ZADD', DS, 'GT', now, device)
      -- A device seen again counts again: its cursor may raise the floor.
      if acked > 0 then st.pend = 1 end
    end
    out[#out + 1] = acked; out[#out + 1] = st.last
  end
end
out[1], out[2] = finish(force)
return out
`;

/**
 * One bounded sweep step for one user. ARGV: cutoff (now - retention), room (most units of work).
 * Removes message ids (and their messages, when still kept) older than the cutoff, forgets devices not
 * seen since, then removes what every device seen since has acknowledged. Returns {work, generation, due}:
 * work is 1…room (a user with nothing to remove counts 1), generation is always new.
 */
export const PURGE_LUA = `${USER_PRELUDE}
local cutoff, room = ARGV[1], tonumber(ARGV[2])
local work = 0
for _, key in ipairs(redis.call('ZRANGEBYSCORE', T, '-inf', '(' .. cutoff, 'LIMIT', 0, room)) do
  local entry = redis.call('HGET', D, key)
  if entry then
    local seq = split(entry)
    local kept = redis.call('ZRANGEBYSCORE', S, seq, seq)[1]
    if kept then
      local _, size = split(kept)
      redis.call('ZREMRANGEBYSCORE', S, seq, seq)
      redis.call('HDEL', M, seq)
      st.n = st.n - 1
      st.b = st.b - tonumber(size)
    end
    redis.call('HDEL', D, key)
  end
  redis.call('ZREM', T, key)
  work = work + 1
end
if work < room then
  for _, device in ipairs(redis.call('ZRANGEBYSCORE', DS, '-inf', '(' .. cutoff, 'LIMIT', 0, room - work)) do
    redis.call('HDEL', DV, device)
    redis.call('ZREM', DS, device)
    st.pend = 1
    work = work + 1
  end
end
if st.pend == 1 and work < room then
  work = work + math.max(1, settle(tonumber(cutoff), room - work))
end
-- Always a new index entry: this rewrites a stale one (say, an index write lost to a crash) too.
local gen, due = finish(true)
return {math.max(work, 1), gen, due}
`;

/** KEYS: the user's :s and :m. ARGV: afterSeq, limit. Returns {seq, message, seq, message, …}. */
export const READ_LUA = `
local out = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'LIMIT', 0, ARGV[2])) do
  local seq = string.sub(member, 1, string.find(member, ':', 1, true) - 1)
  out[#out + 1] = tonumber(seq)
  out[#out + 1] = redis.call('HGET', KEYS[2], seq)
end
return out
`;

/**
 * KEYS: a bucket's :due and :gen. ARGV: user, generation, due ('' = drop the user). Applies only a
 * generation newer than the one the bucket holds, so index writes that overtake each other on their way
 * from different processes leave the newest; returns 1 if applied.
 */
export const INDEX_LUA = `
local known = tonumber(redis.call('HGET', KEYS[2], ARGV[1]))
if known and known >= tonumber(ARGV[2]) then return 0 end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return 1
`;
