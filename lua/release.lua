-- release.lua: hand back leased items a worker never started (a draining worker), to the
-- front of pending, without counting a delivery.
--
-- KEYS:    the partition keys (see _lib.lua).
-- ARGV:    id1, token1, id2, token2, ... (at most 1000 pairs)
-- Returns: the number of items released (items no longer held are skipped).
-- Errors:  DRV_NOJOB.
if redis.call('EXISTS', KEYS[K_STATE]) == 0 then
    return nojob()
end
local back = {}
for i = 1, #ARGV, 2 do
    local id = ARGV[i]
    if lease_drop(ARGV[i + 1], id) then
        if redis.call('HINCRBY', KEYS[K_TRIES], id, -1) <= 0 then
            redis.call('HDEL', KEYS[K_TRIES], id)
        end
        back[#back + 1] = id
    end
end
lease_flush()
if #back > 0 then
    -- LPUSH reverses its arguments; push in reverse to keep the claim order.
    local rev = {}
    for i = #back, 1, -1 do
        rev[#rev + 1] = back[i]
    end
    redis.call('LPUSH', KEYS[K_PENDING], unpack(rev))
    redis.call('HINCRBY', KEYS[K_STATE], 'released', #back)
end
return #back
