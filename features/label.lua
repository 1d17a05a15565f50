-- Label application, step 1, on the labelled event's account: find the entities the event touched and
-- forget them, so a label for one event is applied once however often it is delivered.
-- KEYS[1] account base key   ARGV[1] event_id
-- Returns "merchant\tdevice\tdestination" ('' for none), or nil when unknown or already applied.
local key = KEYS[1] .. ':lbl:' .. ARGV[1]
local rec = redis.call('GET', key)
if not rec then return nil end
redis.call('DEL', key)
return rec
