-- _lib: helpers prepended to every script at load time (router/store/scripts.py).
-- KEYS: none. ARGV: none. Defines locals only.
-- Units: times in ms since the epoch from Redis TIME (never the client's clock), money in
-- integer micro-dollars, rolling windows in s. Calendar periods are UTC days and months.
-- Budget hashes hold one field pair per period bucket: 's:<bucket>' spent and 'r:<bucket>'
-- reserved for calendar periods; 's:<bucket>' spent per time bucket and one 'r' reserved for
-- rolling windows. The Python mirror is router/store/windows.py.

local DAY_MS = 86400000

-- Integer as a decimal string: redis.call and tostring() could print 1e+15 for big numbers.
local function int_str(n)
  return string.format('%d', n)
end

-- Redis TIME as (seconds, microseconds).
local function redis_time()
  local t = redis.call('TIME')
  return tonumber(t[1]), tonumber(t[2])
end

local function now_ms()
  local sec, usec = redis_time()
  return sec * 1000 + math.floor(usec / 1000)
end

-- Howard Hinnant's civil-from-days / days-from-civil, valid for days >= 0.
local function civil_from_days(days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m
end

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- Bucket id and end (ms) of the calendar period containing `now`.
local function calendar(period, now)
  local day = math.floor(now / DAY_MS)
  if period == 'day' then
    return day, (day + 1) * DAY_MS
  end
  local y, m = civil_from_days(day)
  local ny, nm = y, m + 1
  if nm == 13 then ny, nm = y + 1, 1 end
  return y * 12 + m - 1, days_from_civil(ny, nm, 1) * DAY_MS
end

-- A rolling window is kept as ~60 buckets; spend leaves the window whole buckets at a time,
-- never early.
local function rolling_geometry(window_s)
  local size = math.max(1, math.ceil(window_s / 60))
  return size, math.ceil(window_s / size)
end

-- Seconds a budget hash lives after its last write: long enough to outlive late settles.
local function budget_ttl(period, window_s)
  if period == 'day' then return 3 * 86400 end
  if period == 'month' then return 70 * 86400 end
  return 2 * window_s + 86400
end

-- Where one budget stands at `now`: spent, reserved, resets_at (ms or ''), and the field
-- names a reservation and a charge made now would use. With `purge`, buckets that can no
-- longer count are deleted.
local function read_budget(key, period, window_s, now, purge)
  if period == 'rolling' then
    local size, count = rolling_geometry(window_s)
    local idx = math.floor(now / 1000 / size)
    local flat = redis.call('HGETALL', key)
    local spent, reserved, oldest = 0, 0, nil
    for i = 1, #flat, 2 do
      local field, value = flat[i], tonumber(flat[i + 1])
      if field == 'r' then
        reserved = value
      else
        local b = tonumber(string.sub(field, 3))
        if b <= idx - count then
          if purge then redis.call('HDEL', key, field) end
        else
          spent = spent + value
          if oldest == nil or b < oldest then oldest = b end
        end
      end
    end
    local resets = ''
    if oldest ~= nil then resets = (oldest + count) * size * 1000 end
    return spent, reserved, resets, 'r', 's:' .. idx
  end
  local bucket, resets = calendar(period, now)
  local sf, rf = 's:' .. bucket, 'r:' .. bucket
  local v = redis.call('HMGET', key, sf, rf)
  if purge and not v[1] and not v[2] then
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if tonumber(string.sub(field, 3)) < bucket - 1 then redis.call('HDEL', key, field) end
    end
  end
  return tonumber(v[1] or '0'), tonumber(v[2] or '0'), resets, rf, sf
end

-- Take `amount` back off a reserved field, deleting it when it reaches zero (or was lost).
local function unreserve(key, field, amount)
  if redis.call('HINCRBY', key, field, int_str(-amount)) <= 0 then
    redis.call('HDEL', key, field)
  end
end

-- Append each budget's status to `out` as spent, reserved, resets_at strings.
local function push_status(out, spent, reserved, resets)
  out[#out + 1] = int_str(spent)
  out[#out + 1] = int_str(reserved)
  out[#out + 1] = resets == '' and '' or int_str(resets)
end
