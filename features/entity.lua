-- Sliding-window features of one entity for one event, on event time; then the event is added.
-- Every key this touches starts with KEYS[1] (`<prefix>{<tag>:<id>}`), so all of them live in one
-- Redis Cluster slot. Semantics: docs/features.md; the plain-TypeScript reference in
-- test/reference.ts implements the same rules and the property tests compare the two.
--
-- The entity's state is one MessagePack value (`<base>:s`): a few redis.call per event instead of
-- dozens, which is what the per-event cost is made of.
--
-- KEYS[1]  entity base key
-- ARGV[1]  event_id        ARGV[2] event_time (ms)   ARGV[3] amount_minor
-- ARGV[4]  allowed lateness (ms)   ARGV[5] dedupe horizon (ms)   ARGV[6] label horizon (ms)
-- ARGV[7]  role: 'a' account, 'l' entity with label-informed risk (merchant, device, destination),
--          'p' plain (instrument, ip)
-- account only: ARGV[8..12] instrument, merchant, device, destination, country ('' = none);
--               ARGV[13], ARGV[14] lat, lon ('' = not located)
--
-- Returns { duplicate (0|1), too_late (0|1), values... }: integers, except q30 and the location
-- (strings, so Redis does not truncate them). They are stored with the dedupe record and returned
-- unchanged for a repeated event_id:
--   since_ms (-1: no earlier event), then per window: count, sum, max (6 windows);
--   account: q30 (sum of squared amounts over the 30 d window), distinct counts (instrument, merchant,
--            device, destination, country) over 24 h then 30 d, first-seen flags (device,
--            destination, country), previous located event lat, lon, time ('' when none);
--   role 'l': confirmed-fraud label counts over 1 d, 7 d, 30 d (by labelled_at).

local base = KEYS[1]
local id = ARGV[1]
local t = tonumber(ARGV[2])
local amt = tonumber(ARGV[3])
local lateness = tonumber(ARGV[4])
local dedupe = tonumber(ARGV[5])
local labelHorizon = tonumber(ARGV[6])
local role = ARGV[7]
local floor = math.floor

-- { bucket size (ms), buckets per window }: 1 min, 10 min, 1 h, 24 h, 7 d, 30 d (spec.ts WINDOWS).
local G = { { 10000, 6 }, { 60000, 10 }, { 300000, 12 }, { 3600000, 24 }, { 21600000, 28 }, { 86400000, 30 } }
local LG = { 4, 5, 6 }
local DAY = 86400000
local KEEP = 30 * DAY + lateness + DAY

-- One small key per event and entity: the cheapest dedupe record Redis 7.0 offers (no field TTLs).
local seenKey = base .. ':q:' .. id
local prev = redis.call('GET', seenKey)
if prev then
  local rec = cmsgpack.unpack(prev)
  rec[1] = 1
  return rec
end

local stateKey = base .. ':s'
local raw = redis.call('GET', stateKey)
-- S.mx newest event time; S.la, S.lo, S.lt latest located event; S.w[i] window i: running aggregate
-- c, s, m (max, in bucket y), q (sum of squares, account 30 d) over buckets [x-n+1, x], and b the
-- kept buckets (B -> { c, s, m, q }); S.d[dim] value -> latest time (account); S.l[i] label buckets.
local S
if raw then S = cmsgpack.unpack(raw) else S = { w = {}, d = {}, l = {} } end
local maxT = S.mx
local late = 0
if maxT and t < maxT - lateness then late = 1 end
local newMax = t
if maxT and maxT > t then newMax = maxT end

-- out[1], out[2]: duplicate and too-late flags; then the values.
local out = { 0, 0 }
local function push(v) out[#out + 1] = v end

-- Buckets are kept only within the newest event's windows: an out-of-order event sees (and lands
-- in) the buckets still held; older history is gone. Keeps the state of a busy entity small.
local function pruneTo(i) return floor(newMax / G[i][1]) - G[i][2] + 1 end

local function sumBuckets(bk, lo, hi)
  local c, s, mx, my, q = 0, 0, 0, nil, 0
  for k = lo, hi do
    local e = bk[k]
    if e then
      c = c + e[1]
      s = s + e[2]
      if e[3] > mx then mx, my = e[3], k end
      q = q + (e[4] or 0)
    end
  end
  return c, s, mx, my, q
end

if maxT then push(t - maxT < 0 and 0 or t - maxT) else push(-1) end

local q30 = 0
local W = {}
for i = 1, #G do
  local b, n = G[i][1], G[i][2]
  local w = S.w[i]
  if not w then
    w = { c = 0, s = 0, m = 0, q = 0, b = {} }
    S.w[i] = w
  end
  local bk = w.b
  local B = floor(t / b)
  local fc, fs, fm, fq
  local x = w.x
  if x == nil or B - x >= n then
    -- Nothing yet, or everything expired: the window starts empty at B.
    w.c, w.s, w.m, w.q, w.y, w.x = 0, 0, 0, 0, nil, B
    fc, fs, fm, fq = 0, 0, 0, 0
  elseif B > x then
    -- Slide: drop buckets [x-n+1, B-n] from the running aggregate.
    local ec, es, emx, emy, eq = sumBuckets(bk, x - n + 1, B - n)
    w.c, w.s, w.q = w.c - ec, w.s - es, w.q - eq
    if w.y and w.y <= B - n then
      local rc, rs, rmx, rmy = sumBuckets(bk, B - n + 1, x)
      w.m, w.y = rmx, rmy
    end
    w.x = B
    fc, fs, fm, fq = w.c, w.s, w.m, w.q
  elseif B == x then
    fc, fs, fm, fq = w.c, w.s, w.m, w.q
  else
    -- Out of order: its own window, summed explicitly (only kept buckets count).
    local lo = B - n + 1
    local p = pruneTo(i)
    if lo < p then lo = p end
    local my
    fc, fs, fm, my, fq = sumBuckets(bk, lo, B)
  end
  W[i] = B
  push(fc)
  push(fs)
  push(fm)
  if i == 6 then q30 = fq end
end

local DIMS = { 'instrument', 'merchant', 'device', 'destination', 'country' }
if role == 'a' then
  push(string.format('%.17g', q30))
  -- Distinct values per dimension over 24 h and 30 d (latest time seen >= window start), and first-seen.
  local start24 = (floor(t / G[4][1]) - G[4][2] + 1) * G[4][1]
  local start30 = (floor(t / G[6][1]) - G[6][2] + 1) * G[6][1]
  local d24, d30, known = {}, {}, {}
  for i = 1, #DIMS do
    local dm = S.d[i] or {}
    local n24, n30 = 0, 0
    for _, lt in pairs(dm) do
      if lt >= start24 then n24 = n24 + 1 end
      if lt >= start30 then n30 = n30 + 1 end
    end
    local v = ARGV[7 + i]
    d24[i], d30[i], known[i] = n24, n30, (v ~= '' and dm[v] ~= nil)
  end
  for i = 1, #DIMS do push(d24[i]) end
  for i = 1, #DIMS do push(d30[i]) end
  push((ARGV[10] ~= '' and not known[3]) and 1 or 0)
  push((ARGV[11] ~= '' and not known[4]) and 1 or 0)
  push((ARGV[12] ~= '' and not known[5]) and 1 or 0)
  push(S.la or '')
  push(S.lo or '')
  push(S.lt and tostring(S.lt) or '')
elseif role == 'l' then
  for j, i in ipairs(LG) do
    local b, n = G[i][1], G[i][2]
    local B = floor(t / b)
    local lb = S.l[j] or {}
    local f = 0
    for k = B - n + 1, B do f = f + (lb[k] or 0) end
    push(f)
  end
end

out[2] = late

if late == 0 then
  for i = 1, #G do
    local n = G[i][2]
    local w = S.w[i]
    local bk = w.b
    -- Forget buckets no event within the lateness can reach.
    local p = pruneTo(i)
    for k in pairs(bk) do
      if k < p then bk[k] = nil end
    end
    local B = W[i]
    local e = bk[B]
    if not e then
      e = { 0, 0, 0 }
      bk[B] = e
    end
    e[1] = e[1] + 1
    e[2] = e[2] + amt
    if amt > e[3] then e[3] = amt end
    local withQ = role == 'a' and i == 6
    if withQ then e[4] = (e[4] or 0) + amt * amt end
    -- The running aggregate covers [x-n+1, x]: add the event if its bucket is inside.
    if B > w.x - n then
      w.c, w.s = w.c + 1, w.s + amt
      if withQ then w.q = w.q + amt * amt end
      if amt > w.m or not w.y then w.m, w.y = amt, B end
    end
  end
  S.mx = newMax
  if role == 'a' then
    for i = 1, #DIMS do
      local v = ARGV[7 + i]
      local dm = S.d[i]
      if not dm then
        dm = {}
        S.d[i] = dm
      end
      if v ~= '' then
        local old = dm[v]
        if not old or t > old then dm[v] = t end
      end
      -- Forget values not seen for longer than the longest window plus the lateness.
      for k, lt in pairs(dm) do
        if lt < newMax - KEEP then dm[k] = nil end
      end
    end
    if ARGV[13] ~= '' and (not S.lt or t >= S.lt) then
      -- Kept as the strings given, so the coordinates come back exactly.
      S.la, S.lo, S.lt = ARGV[13], ARGV[14], t
    end
    -- What label application needs to find the event's merchant, device and destination.
    redis.call('SET', base .. ':lbl:' .. id, ARGV[9] .. '\t' .. ARGV[10] .. '\t' .. ARGV[11], 'PX', labelHorizon)
  end
  redis.call('SET', stateKey, cmsgpack.pack(S), 'PX', KEEP)
end

-- The dedupe record: the late flag and the values, returned unchanged for a repeated event_id.
redis.call('SET', seenKey, cmsgpack.pack(out), 'PX', dedupe)
return out
