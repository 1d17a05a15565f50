-- Per-account sliding windows on event time, read before the event is added.
-- KEYS[1] sorted set of the account's events: score = event_time, member = event_id .. '|' .. amount_minor
-- KEYS[2] dedupe record of this event (same hash tag as KEYS[1]): the vector returned the first time
-- ARGV[1] event_id   ARGV[2] event_time (ms)   ARGV[3] amount_minor
-- ARGV[4] retention (ms): history older than event_time - retention is dropped
-- ARGV[5] ttl (ms) of the account's key   ARGV[6] ttl (ms) of the dedupe record
-- Returns { duplicate(0|1), count_1h, sum_1h, count_24h, sum_24h, ms_since_last (-1 = none) }
local seen = redis.call('GET', KEYS[2])
if seen then
  local out = { 1 }
  for v in string.gmatch(seen, '[^,]+') do out[#out + 1] = tonumber(v) end
  return out
end

local t = tonumber(ARGV[2])
local hour = 3600000
local day = 86400000
local c1, s1, c24, s24 = 0, 0, 0, 0
-- Strictly before t: '(' makes the upper bound exclusive.
local rows = redis.call('ZRANGEBYSCORE', KEYS[1], t - day, '(' .. t, 'WITHSCORES')
for i = 1, #rows, 2 do
  local amount = tonumber(string.match(rows[i], '|(%d+)$'))
  local ts = tonumber(rows[i + 1])
  c24 = c24 + 1
  s24 = s24 + amount
  if ts >= t - hour then
    c1 = c1 + 1
    s1 = s1 + amount
  end
end
local since = -1
local last = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. t, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #last > 0 then since = t - tonumber(last[2]) end

redis.call('ZADD', KEYS[1], t, ARGV[1] .. '|' .. ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (t - tonumber(ARGV[4])))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local vec = c1 .. ',' .. s1 .. ',' .. c24 .. ',' .. s24 .. ',' .. since
redis.call('SET', KEYS[2], vec, 'PX', ARGV[6])
return { 0, c1, s1, c24, s24, since }
