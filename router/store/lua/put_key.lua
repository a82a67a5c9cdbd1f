-- put_key: create or replace a key record, keeping the hash index in step (a rotated key's
-- old hash stops resolving in the same step).
-- KEYS[1] records by key id (hash)  KEYS[2] records by key hash (hash)
-- ARGV[1] key_id  ARGV[2] key_hash (sha256 hex)  ARGV[3] record JSON (budgets in
--   micro-dollars, created_at in s)
-- Returns 1.

local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local old_hash = cjson.decode(old).key_hash
  if old_hash ~= ARGV[2] then redis.call('HDEL', KEYS[2], old_hash) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
