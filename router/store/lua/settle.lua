-- settle: replace a request's reservation with its actual cost, release its lease, record it
-- as settled and append its ledger entry, atomically. A second settle of the same request_id
-- is a no-op. Spend lands in the calendar period recorded at admission (a request admitted
-- before midnight UTC is charged to that day) and in the rolling bucket of now. With no
-- reservation (admitted while the store was unreachable, or lost), the budgets in KEYS are
-- charged for the current period instead, unless ARGV[4] asks for a reservation.
-- KEYS[1] reservations hash  KEYS[2] reservation times zset  KEYS[3] settled zset
--   (request_id -> settled at, ms; kept two days)  KEYS[4] lease zset of the key
-- KEYS[5] rate hash of the key  KEYS[6] team ledger stream
-- KEYS[7..6+n] the settlement's budget hashes, in the order of the pairs in ARGV
-- ARGV[1] request_id  ARGV[2] cost (micro-dollars)
-- ARGV[3] tokens actually used, to correct the TPM count made at admission ('' = keep)
-- ARGV[4] '1' = settle only an existing reservation (reconcile), '0' = charge regardless
-- ARGV[5] n  ARGV[6..5+2n] per budget: period, window (s; 0 for calendar periods)
-- ARGV[6+2n..] ledger entry as field, value pairs (money as integer strings); adds 'ts'
--   (s, with microseconds: the ledger merges teams' streams by it)
-- Returns {verdict ('ok' | 'dup' = already settled | 'gone' = no reservation and ARGV[4]
--   is '1'), then per KEYS budget: spent, reserved, resets at (ms or '')}

local sec, usec = redis_time()
local now = sec * 1000 + math.floor(usec / 1000)
local rid, cost = ARGV[1], tonumber(ARGV[2])
local n = tonumber(ARGV[5])

local function reply(verdict)
  local out = {verdict}
  for i = 1, n do
    local spent, reserved, resets = read_budget(KEYS[6 + i], ARGV[4 + 2 * i],
      tonumber(ARGV[5 + 2 * i]), now, false)
    push_status(out, spent, reserved, resets)
  end
  return out
end

if redis.call('ZSCORE', KEYS[3], rid) then
  return reply('dup')
end

local function charge(key, period, window, spent_field)
  if spent_field == '' then
    local _, _, _, _, sf = read_budget(key, period, window, now, false)
    spent_field = sf
  end
  redis.call('HINCRBY', key, spent_field, ARGV[2])
  redis.call('EXPIRE', key, budget_ttl(period, window))
end

local raw = redis.call('HGET', KEYS[1], rid)
if raw then
  local rec = cjson.decode(raw)
  local amount = tonumber(rec.amount)
  for _, ref in ipairs(rec.budgets) do
    local key, rf, sf, period, window = ref[1], ref[2], ref[3], ref[4], tonumber(ref[5])
    unreserve(key, rf, amount)
    if period == 'rolling' then sf = '' end
    charge(key, period, window, sf)
  end
  redis.call('HDEL', KEYS[1], rid)
  redis.call('ZREM', KEYS[2], rid)
  if ARGV[3] ~= '' then
    local field = 't:' .. rec.minute
    if redis.call('HEXISTS', KEYS[5], field) == 1 then
      local left = redis.call('HINCRBY', KEYS[5], field,
        int_str(tonumber(ARGV[3]) - tonumber(rec.tokens)))
      if left < 0 then redis.call('HSET', KEYS[5], field, 0) end
    end
  end
elseif ARGV[4] == '1' then
  return reply('gone')
else
  for i = 1, n do
    charge(KEYS[6 + i], ARGV[4 + 2 * i], tonumber(ARGV[5 + 2 * i]), '')
  end
end

redis.call('ZREM', KEYS[4], rid)
redis.call('ZADD', KEYS[3], int_str(now), rid)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', int_str(now - 2 * DAY_MS))

local fields = {}
for i = 6 + 2 * n, #ARGV do fields[#fields + 1] = ARGV[i] end
fields[#fields + 1] = 'ts'
fields[#fields + 1] = string.format('%d.%06d', sec, usec)
redis.call('XADD', KEYS[6], '*', unpack(fields))
return reply('ok')
