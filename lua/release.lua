-- @include shared
-- @include core
-- @include part
-- @include lease
-- release.lua: hand back leased items a worker never started (a draining worker), to the
-- front of pending, without counting a delivery.
--
-- KEYS:    the partition keys (see common/shared.def).
-- ARGV:    id1, token1, id2, token2, ... (at most BATCH_MAX pairs)
-- Returns: the number of items released (items no longer held are skipped).
-- Errors:  DRV_NOJOB; DRV_CORRUPT KEY: WHAT (nothing written: everything is read and checked
--          first).
local s = part_state('state', 'released', 'leased')
if not s then
    return nojob()
end
num(KEYS[K_STATE], 'released', s[2], 0)
num(KEYS[K_STATE], 'leased', s[3], 0)
local back = {}
for i = 1, #ARGV, 2 do
    local id = ARGV[i]
    if lease_drop(ARGV[i + 1], id) then
        back[#back + 1] = id
    end
end
if #back == 0 then
    return 0
end
-- A delivery not made: the tries entry goes one down (an entry of 1 or none: gone).
local tries = rd('HMGET', KEYS[K_TRIES], unpack(back))
local set, del = {}, {}
for i, id in ipairs(back) do
    local n = num(KEYS[K_TRIES], string.sub(id, 1, 64), tries[i], 0) - 1
    if n > 0 then
        set[#set + 1] = id
        set[#set + 1] = n
    else
        del[#del + 1] = id
    end
end
has_type(KEYS[K_PENDING], 'list')
lease_check()
if #set > 0 then
    redis.call('HSET', KEYS[K_TRIES], unpack(set))
end
if #del > 0 then
    redis.call('HDEL', KEYS[K_TRIES], unpack(del))
end
lease_flush()
-- LPUSH reverses its arguments; push in reverse to keep the claim order.
local rev = {}
for i = #back, 1, -1 do
    rev[#rev + 1] = back[i]
end
redis.call('LPUSH', KEYS[K_PENDING], unpack(rev))
redis.call('HINCRBY', KEYS[K_STATE], 'released', #back)
return #back
