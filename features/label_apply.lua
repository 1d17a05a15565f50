-- Label application, step 2, on one entity (merchant, device or destination): count a confirmed
-- fraud in the label-time buckets of the 24 h, 7 d and 30 d windows (1 h, 6 h and 1 d buckets), in
-- the entity's state (see entity.lua).
-- KEYS[1] entity base key   ARGV[1] labelled_at (ms)   ARGV[2] allowed lateness (ms)
local t = tonumber(ARGV[1])
local lateness = tonumber(ARGV[2])
local G = { { 3600000, 24 }, { 21600000, 28 }, { 86400000, 30 } }
local DAY = 86400000
local key = KEYS[1] .. ':s'
local raw = redis.call('GET', key)
local S
if raw then S = cmsgpack.unpack(raw) else S = { w = {}, d = {}, l = {} } end
S.l = S.l or {}
for j, g in ipairs(G) do
  local b, n = g[1], g[2]
  local lb = S.l[j] or {}
  S.l[j] = lb
  local B = math.floor(t / b)
  lb[B] = (lb[B] or 0) + 1
  -- Drop buckets no window can reach any more.
  local oldest = B - n - math.ceil(lateness / b)
  for k in pairs(lb) do
    if k < oldest then lb[k] = nil end
  end
end
redis.call('SET', key, cmsgpack.pack(S), 'PX', 30 * DAY + lateness + DAY)
return 1
