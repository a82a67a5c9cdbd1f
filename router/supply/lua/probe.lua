-- probe: take a half-open trial permit, turning an open breaker whose cooldown ended
-- half-open first.
-- KEYS[1] breaker hash  KEYS[2] half-open permit zset (see _lib.lua for both)
-- ARGV[1..7] breaker settings (see _lib.lua)  ARGV[8] permit id  ARGV[9] permit ttl (ms)
-- Returns {granted ('1'|'0'), then the breaker view (see view() in _lib.lua)}.

local now, s = now_ms(), settings()
local b = load_breaker(KEYS[1])
settle(b, now, s, KEYS[2])
local granted = '0'
if b.st == 'half_open' and redis.call('ZCARD', KEYS[2]) < s.probes then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[9]), ARGV[8])
  granted = '1'
end
save_breaker(KEYS[1], b)
local out = view(b, now, s)
table.insert(out, 1, granted)
return out
