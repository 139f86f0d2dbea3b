-- extend.lua: push the lease deadline of items the caller still holds to now + lease_ms.
--
-- KEYS:    the partition keys (see _lib.lua).
-- ARGV:    id1, token1, id2, token2, ... (at most 1000 pairs)
-- Returns: {deadline_ms, lost_id1, lost_id2, ...}: the ids whose lease was lost (expired and
--          recovered, or re-leased), so the worker can say so.
-- Errors:  DRV_NOJOB.
local s = part_state('state', 'lease_ms')
if not s then
    return nojob()
end
local deadline = now_ms() + tonumber(s[2])
local out = {deadline}
local ids = {}
for i = 1, #ARGV, 2 do
    ids[#ids + 1] = ARGV[i]
end
if #ids == 0 then
    return out
end
local owners = redis.call('HMGET', KEYS[K_OWNER], unpack(ids))
local zargs = {}
for i, id in ipairs(ids) do
    if holds(owners[i], ARGV[2 * i]) then
        zargs[#zargs + 1] = deadline
        zargs[#zargs + 1] = id
    else
        out[#out + 1] = id
    end
end
if #zargs > 0 then
    redis.call('ZADD', KEYS[K_LEASED], 'XX', unpack(zargs))
end
return out
