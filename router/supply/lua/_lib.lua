-- _lib: helpers prepended to every supply script at load time (router/supply/redis_store.py).
-- KEYS: none. ARGV: none. Defines locals only.
-- Units: times in ms from Redis TIME (never the client's clock); durations returned to the
-- client are relative ms, so replicas with skewed clocks agree. The Python mirror of the
-- breaker is router/supply/breaker.py and of the quota router/supply/memory.py.
-- Breaker hash fields: st state ('closed'|'open'|'half_open'), since (ms the state began),
--   cons consecutive failures, bk window bucket, ok/fl and pok/pfl successes/failures in the
--   current/previous bucket, tok half-open trial successes, hold (ms a Retry-After ends),
--   forced ('auto'|'open'|'closed'), drain ('1' while draining).
-- Permit zset: half-open trial probe id -> expiry (ms).
-- Quota hash fields: bk minute bucket, r/t and pr/pt requests/tokens this/previous minute.
-- Breaker settings are ARGV[1..7] of every script that touches the breaker: consecutive
--   failures, failure rate (0..1), min requests, window (ms), cooldown (ms), half-open
--   probes, longest Retry-After hold (ms).

local MINUTE_MS = 60000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function int_str(n)
  return string.format('%d', n)
end

local function settings()
  return {cons = tonumber(ARGV[1]), rate = tonumber(ARGV[2]), min = tonumber(ARGV[3]),
          window = math.max(1, tonumber(ARGV[4])), cooldown = tonumber(ARGV[5]),
          probes = tonumber(ARGV[6]), max_hold = tonumber(ARGV[7])}
end

local NUMERIC = {'since', 'cons', 'bk', 'ok', 'fl', 'pok', 'pfl', 'tok', 'hold'}

local function load_breaker(key)
  local b = {st = 'closed', forced = 'auto', drain = '0'}
  for _, name in ipairs(NUMERIC) do b[name] = 0 end
  local raw = redis.call('HGETALL', key)
  for i = 1, #raw, 2 do
    local value = raw[i + 1]
    b[raw[i]] = tonumber(value) or value
  end
  return b
end

local function save_breaker(key, b)
  local args = {'st', b.st, 'forced', b.forced, 'drain', b.drain}
  for _, name in ipairs(NUMERIC) do
    args[#args + 1] = name
    args[#args + 1] = int_str(b[name])
  end
  redis.call('HSET', key, unpack(args))
end

local function enter(b, state, now, permits_key)
  b.st, b.since = state, now
  b.cons, b.ok, b.fl, b.pok, b.pfl, b.tok = 0, 0, 0, 0, 0, 0
  redis.call('DEL', permits_key)
end

-- What time alone changes: an open breaker whose cooldown ended is half-open.
local function settle(b, now, s, permits_key)
  if b.st == 'open' and now >= b.since + s.cooldown then
    enter(b, 'half_open', now, permits_key)
  end
  redis.call('ZREMRANGEBYSCORE', permits_key, '-inf', now)
end

-- Moves the window to now; returns the weight of the previous bucket.
local function roll(b, now, window)
  local bucket = math.floor(now / window)
  if bucket ~= b.bk then
    if bucket == b.bk + 1 then
      b.pok, b.pfl = b.ok, b.fl
    else
      b.pok, b.pfl = 0, 0
    end
    b.ok, b.fl, b.bk = 0, 0, bucket
  end
  return 1 - (now - bucket * window) / window
end

-- Successes are taken to precede the failures of the same report.
local function record(b, now, s, permits_key, ok, failed, retry_after, probe_id)
  settle(b, now, s, permits_key)
  local trial = probe_id ~= '' and redis.call('ZREM', permits_key, probe_id) == 1
  if retry_after ~= '' and failed > 0 then
    b.hold = math.max(b.hold, now + math.min(tonumber(retry_after), s.max_hold))
  end
  if b.st == 'closed' then
    local weight = roll(b, now, s.window)
    b.ok, b.fl = b.ok + ok, b.fl + failed
    if ok > 0 then b.cons = 0 end
    b.cons = b.cons + failed
    local total = b.ok + b.fl + weight * (b.pok + b.pfl)
    local bad = b.fl + weight * b.pfl
    if failed > 0 and (b.cons >= s.cons or (total >= s.min and bad >= s.rate * total)) then
      enter(b, 'open', now, permits_key)
    end
  elseif b.st == 'half_open' and trial then
    if failed > 0 then
      enter(b, 'open', now, permits_key)
    elseif ok > 0 then
      b.tok = b.tok + ok
      if b.tok >= s.probes then enter(b, 'closed', now, permits_key) end
    end
  end
end

-- {state, open for (ms), hold for (ms), forced, draining ('1'|'0')}, forced state applied.
local function view(b, now, s)
  local open_for = 0
  if b.st == 'open' then open_for = math.max(0, b.since + s.cooldown - now) end
  local state = b.st
  if b.forced ~= 'auto' then state = b.forced end
  return {state, int_str(open_for), int_str(math.max(0, b.hold - now)), b.forced,
          tostring(b.drain)}
end

-- Quota: {weight of the previous minute, quota hash as a table}, rolled to now.
local function load_quota(key, now)
  local q = {bk = 0, r = 0, t = 0, pr = 0, pt = 0}
  local raw = redis.call('HGETALL', key)
  for i = 1, #raw, 2 do q[raw[i]] = tonumber(raw[i + 1]) end
  local bucket = math.floor(now / MINUTE_MS)
  if bucket ~= q.bk then
    if bucket == q.bk + 1 then q.pr, q.pt = q.r, q.t else q.pr, q.pt = 0, 0 end
    q.r, q.t, q.bk = 0, 0, bucket
  end
  return 1 - (now - bucket * MINUTE_MS) / MINUTE_MS, q
end

-- The smaller fraction left of the two limits ('' = unlimited), as a decimal string.
local function quota_left(rpm, tpm, requests, tokens)
  local left = 1
  if rpm ~= '' then left = math.min(left, 1 - requests / tonumber(rpm)) end
  if tpm ~= '' then left = math.min(left, 1 - tokens / tonumber(tpm)) end
  return string.format('%.4f', math.max(0, math.min(1, left)))
end
