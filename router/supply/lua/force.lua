-- force: an operator's override of one backend's breaker; any change restarts the evidence
-- from a closed breaker and forgets a provider's Retry-After hold.
-- KEYS[1] breaker hash  KEYS[2] half-open permit zset (see _lib.lua for both)
-- ARGV[1..7] breaker settings (see _lib.lua)  ARGV[8] 'auto'|'open'|'closed'
-- Returns the breaker view (see view() in _lib.lua).

local now, s = now_ms(), settings()
local b = load_breaker(KEYS[1])
enter(b, 'closed', now, KEYS[2])
b.hold, b.forced = 0, ARGV[8]
save_breaker(KEYS[1], b)
return view(b, now, s)
