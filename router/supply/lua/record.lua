-- record: add call outcomes to one backend's breaker and give back a half-open trial permit.
-- KEYS[1] breaker hash  KEYS[2] half-open permit zset (see _lib.lua for both)
-- ARGV[1..7] breaker settings (see _lib.lua)
-- ARGV[8] successes  ARGV[9] failures  ARGV[10] Retry-After (ms; '' = none)
-- ARGV[11] trial permit id held by the call ('' = none)
-- Returns the breaker view (see view() in _lib.lua).

local now, s = now_ms(), settings()
local b = load_breaker(KEYS[1])
record(b, now, s, KEYS[2], tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10], ARGV[11])
save_breaker(KEYS[1], b)
return view(b, now, s)
