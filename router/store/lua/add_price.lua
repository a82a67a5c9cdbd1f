-- add_price: store a new price version of one model and announce it.
-- KEYS[1] set of priced models  KEYS[2] version counter of the model
-- KEYS[3] versions hash of the model: version -> price JSON
-- ARGV[1] model  ARGV[2] price JSON (every value a string; money in micro-dollars per
--   million tokens)  ARGV[3] pub/sub channel to announce on
-- Returns the stored JSON, with the version assigned by INCR.

local version = redis.call('INCR', KEYS[2])
local price = cjson.decode(ARGV[2])
price.version = tostring(version)
local stored = cjson.encode(price)
redis.call('HSET', KEYS[3], version, stored)
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], stored)
return stored
