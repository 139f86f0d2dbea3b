-- @include shared
-- @include core
-- @include part
-- @include lease
-- extend.lua: push the deadline of the leases holding items the caller still holds to
-- now + lease_ms (a lease, one claim's items, is extended as a whole).
--
-- KEYS:    the partition keys (see common/shared.def).
-- ARGV:    id1, token1, id2, token2, ... (at most BATCH_MAX pairs)
-- Returns: {deadline_ms, lost_id1, lost_id2, ...}: the ids whose lease was lost (expired and
--          recovered, or re-leased), so the worker can say so.
-- Errors:  DRV_NOJOB; DRV_CORRUPT KEY: WHAT (nothing written).
local s = part_state('state', 'lease_ms')
if not s then
    return nojob()
end
local deadline = now_ms() + num(KEYS[K_STATE], 'lease_ms', s[2], nil, 1)
local out = {deadline}
local ids = {}
for i = 1, #ARGV, 2 do
    ids[#ids + 1] = ARGV[i]
end
if #ids == 0 then
    return out
end
-- A lease is extended as a whole: the caller holds all of its ids still leased.
local extend = {}
for i, id in ipairs(ids) do
    local token = ARGV[2 * i]
    local l = lease_get(token)
    if l and l.at[id] then
        extend[token] = true
    else
        out[#out + 1] = id
    end
end
for token in pairs(extend) do
    rd('ZADD', KEYS[K_LEASED], 'XX', deadline, token)
end
return out
