-- release: drop a reservation and its lease without charging (the request was never served).
-- KEYS[1] reservations hash of the team  KEYS[2] reservation times zset of the team
-- KEYS[3] lease zset of the key
-- ARGV[1] request_id
-- Reserved amounts are micro-dollars, taken back from the budget fields named in the record.
-- Returns 1 when a reservation was dropped, 0 when there was none (settled, released, lost).

local raw = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if not raw then
  return 0
end
local rec = cjson.decode(raw)
local amount = tonumber(rec.amount)
for _, ref in ipairs(rec.budgets) do
  unreserve(ref[1], ref[2], amount)
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
