-- sync: one replica's periodic round trip per backend: flush its batched successes, renew
-- the capacity leases of its live calls, and read the breaker, in-flight count and quota.
-- KEYS[1] breaker hash  KEYS[2] half-open permit zset  KEYS[3] lease zset  KEYS[4] quota hash
-- ARGV[1..7] breaker settings (see _lib.lua)  ARGV[8] successes since the last sync
-- ARGV[9] lease ttl (ms)  ARGV[10] rpm  ARGV[11] tpm ('' = no limit)
-- ARGV[12..] lease ids this replica still holds
-- Returns the breaker view (see view() in _lib.lua), then in flight, then quota left
--   (0..1; '' = no quota).

local now, s = now_ms(), settings()
local b = load_breaker(KEYS[1])
record(b, now, s, KEYS[2], tonumber(ARGV[8]), 0, '', '')
save_breaker(KEYS[1], b)
local ttl = tonumber(ARGV[9])
for i = 12, #ARGV do
  redis.call('ZADD', KEYS[3], 'XX', now + ttl, ARGV[i])
end
if #ARGV >= 12 then redis.call('PEXPIRE', KEYS[3], ttl) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local out = view(b, now, s)
out[#out + 1] = redis.call('ZCARD', KEYS[3])
local left = ''
if ARGV[10] ~= '' or ARGV[11] ~= '' then
  local weight, q = load_quota(KEYS[4], now)
  left = quota_left(ARGV[10], ARGV[11], q.r + weight * q.pr, q.t + weight * q.pt)
end
out[#out + 1] = left
return out
