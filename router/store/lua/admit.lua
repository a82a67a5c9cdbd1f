-- admit: check RPM, TPM, concurrency and every budget; only if all pass, count the request,
-- take a concurrency lease and reserve on every budget. All or nothing.
-- KEYS[1] rate hash of one key: 'r:<minute>' requests, 't:<minute>' tokens
-- KEYS[2] lease zset of one key: request_id -> lease expiry (ms)
-- KEYS[3] reservations hash of the team: request_id -> JSON record
-- KEYS[4] reservation times zset of the team: request_id -> reserved at (ms)
-- KEYS[5..4+n] one hash per budget, in the order of the budget triples in ARGV
-- KEYS[5+n] settled zset of the team (request_id -> settled at, ms)
-- ARGV[1] request_id  ARGV[2] key_id  ARGV[3] reserve (micro-dollars)
-- ARGV[4] tokens counted against TPM now  ARGV[5] rpm  ARGV[6] tpm
-- ARGV[7] max concurrency ('' = unlimited for 5..7)  ARGV[8] lease ttl (ms)
-- ARGV[9] nonce of this admission attempt
-- ARGV[10..] per budget: period ('day'|'month'|'rolling'), hard limit (micro-dollars),
--   window (s; 0 for calendar periods)
-- Rate limits use a sliding window of 60 s estimated from two fixed minute buckets.
-- Returns {verdict, denied budget (1-based, 0 = none), retry after (ms), now (ms),
--   then per budget: spent, reserved, resets at (ms or '')}; verdict is 'ok', 'dup' (this
--   request_id holds a reservation made with this nonce: a retry, nothing changed), 'taken'
--   (it holds one under another nonce, or was settled: another request's id, nothing
--   changed), 'rpm', 'tpm', 'concurrency' or 'budget'.

local now = now_ms()
local rid, key_id = ARGV[1], ARGV[2]
local reserve, tokens = tonumber(ARGV[3]), tonumber(ARGV[4])
local lease_ttl = tonumber(ARGV[8])
local nonce = ARGV[9]
local n = (#ARGV - 9) / 3

local budgets = {}
for i = 1, n do
  local period, window = ARGV[7 + 3 * i], tonumber(ARGV[9 + 3 * i])
  local spent, reserved, resets, rf, sf = read_budget(KEYS[4 + i], period, window, now, true)
  budgets[i] = {key = KEYS[4 + i], period = period, window = window,
                hard = tonumber(ARGV[8 + 3 * i]), spent = spent, reserved = reserved,
                resets = resets, rf = rf, sf = sf}
end

local function reply(verdict, denied, retry_ms)
  local out = {verdict, denied, int_str(retry_ms), int_str(now)}
  for i = 1, n do
    local b = budgets[i]
    push_status(out, b.spent, b.reserved, b.resets)
  end
  return out
end

local held = redis.call('HGET', KEYS[3], rid)
if held then
  if (cjson.decode(held).nonce or '') == nonce then return reply('dup', 0, 0) end
  return reply('taken', 0, 0)
end
if redis.call('ZSCORE', KEYS[5 + n], rid) then
  return reply('taken', 0, 0)
end

local minute = math.floor(now / 60000)
local elapsed = now - minute * 60000
local prev_r, cur_r, prev_t, cur_t = 0, 0, 0, 0
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local field, value = flat[i], tonumber(flat[i + 1])
  local m = tonumber(string.sub(field, 3))
  if m < minute - 1 then
    redis.call('HDEL', KEYS[1], field)
  elseif m == minute - 1 then
    if string.sub(field, 1, 1) == 'r' then prev_r = value else prev_t = value end
  elseif m == minute then
    if string.sub(field, 1, 1) == 'r' then cur_r = value else cur_t = value end
  end
end

-- ms until prev * (60000 - elapsed) / 60000 + cur + cost fits in limit (0 = fits now).
local function wait_ms(prev, cur, cost, limit)
  if prev * (60000 - elapsed) + (cur + cost) * 60000 <= limit * 60000 then return 0 end
  if cur + cost <= limit then
    return 60000 - math.floor((limit - cur - cost) * 60000 / prev) - elapsed
  end
  local next_minute = 60000 - elapsed
  if cur <= 0 or cost > limit then return next_minute end
  return next_minute + math.max(0, 60000 - math.floor((limit - cost) * 60000 / cur))
end

if ARGV[5] ~= '' then
  local wait = wait_ms(prev_r, cur_r, 1, tonumber(ARGV[5]))
  if wait > 0 then return reply('rpm', 0, wait) end
end
if ARGV[6] ~= '' then
  local wait = wait_ms(prev_t, cur_t, tokens, tonumber(ARGV[6]))
  if wait > 0 then return reply('tpm', 0, wait) end
end

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if ARGV[7] ~= '' and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[7]) then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return reply('concurrency', 0, math.min(1000, tonumber(first[2]) - now))
end

for i = 1, n do
  local b = budgets[i]
  if b.spent + b.reserved + reserve > b.hard then
    return reply('budget', i, 0)
  end
end

redis.call('HINCRBY', KEYS[1], 'r:' .. minute, 1)
redis.call('HINCRBY', KEYS[1], 't:' .. minute, ARGV[4])
redis.call('EXPIRE', KEYS[1], 180)

redis.call('ZADD', KEYS[2], int_str(now + lease_ttl), rid)
if redis.call('PTTL', KEYS[2]) < lease_ttl then
  redis.call('PEXPIRE', KEYS[2], lease_ttl)
end

local refs = {}
for i = 1, n do
  local b = budgets[i]
  redis.call('HINCRBY', b.key, b.rf, ARGV[3])
  redis.call('EXPIRE', b.key, budget_ttl(b.period, b.window))
  b.reserved = b.reserved + reserve
  refs[i] = {b.key, b.rf, b.period == 'rolling' and '' or b.sf, b.period, tostring(b.window)}
end

redis.call('HSET', KEYS[3], rid, cjson.encode({
  amount = ARGV[3], key_id = key_id, at = int_str(now), minute = int_str(minute),
  tokens = ARGV[4], budgets = refs, nonce = nonce}))
redis.call('ZADD', KEYS[4], int_str(now), rid)
return reply('ok', 0, 0)
