-- acquire: take a capacity lease and spend the provider quota for one call, both or neither.
-- KEYS[1] lease zset: lease id -> expiry (ms)  KEYS[2] quota hash (see _lib.lua)
-- ARGV[1] lease id  ARGV[2] max in flight ('' = no cap)  ARGV[3] lease ttl (ms)
-- ARGV[4] rpm  ARGV[5] tpm ('' = no limit, both '' = no quota)  ARGV[6] tokens to spend
-- Rates use a sliding 60 s window estimated from two fixed minute buckets.
-- Returns {verdict ('ok'|'capacity'|'quota'), in flight, quota left (0..1; '' = no quota),
--   retry after (ms)}.

local now = now_ms()
local lease_id, cap, rpm, tpm = ARGV[1], ARGV[2], ARGV[4], ARGV[5]
local tokens = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local in_flight = redis.call('ZCARD', KEYS[1])
if cap ~= '' and in_flight >= tonumber(cap) and not redis.call('ZSCORE', KEYS[1], lease_id) then
  return {'capacity', in_flight, '', '0'}
end
local left = ''
if rpm ~= '' or tpm ~= '' then
  local weight, q = load_quota(KEYS[2], now)
  local requests, used = q.r + weight * q.pr, q.t + weight * q.pt
  if (rpm ~= '' and requests + 1 > tonumber(rpm)) or (tpm ~= '' and used + tokens > tonumber(tpm)) then
    return {'quota', in_flight, quota_left(rpm, tpm, requests, used),
            int_str(MINUTE_MS - now % MINUTE_MS)}
  end
  redis.call('HSET', KEYS[2], 'bk', int_str(q.bk), 'r', int_str(q.r + 1),
             't', int_str(q.t + tokens), 'pr', int_str(q.pr), 'pt', int_str(q.pt))
  redis.call('PEXPIRE', KEYS[2], 2 * MINUTE_MS)
  left = quota_left(rpm, tpm, requests + 1, used + tokens)
end
if cap ~= '' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), lease_id)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
  in_flight = redis.call('ZCARD', KEYS[1])
end
return {'ok', in_flight, left, '0'}
