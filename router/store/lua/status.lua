-- status: read where budgets stand now, changing nothing.
-- KEYS[1..n] budget hashes
-- ARGV per budget: period ('day'|'month'|'rolling'), window (s; 0 for calendar periods)
-- Returns per budget: spent, reserved (micro-dollars), resets at (ms or '')

local now = now_ms()
local out = {}
for i = 1, #KEYS do
  local spent, reserved, resets = read_budget(KEYS[i], ARGV[2 * i - 1],
    tonumber(ARGV[2 * i]), now, false)
  push_status(out, spent, reserved, resets)
end
return out
