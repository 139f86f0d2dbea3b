-- revive.lua: move dead items back to pending with a fresh attempt count (drover retry).
--
-- KEYS:    the partition keys (see _lib.lua).
-- ARGV:    ids to revive (at most 1000); ids not in the dead hash are skipped.
-- Returns: the number revived. A partition marked done is set running again.
-- Errors:  DRV_NOJOB.
local s = part_state('state')
if not s then
    return nojob()
end
local back = {}
for _, id in ipairs(ARGV) do
    if redis.call('HDEL', KEYS[K_DEAD], id) == 1 then
        redis.call('HDEL', KEYS[K_TRIES], id)
        back[#back + 1] = id
    end
end
if #back > 0 then
    redis.call('RPUSH', KEYS[K_PENDING], unpack(back))
    redis.call('HINCRBY', KEYS[K_STATE], 'dead', -#back)
    if s[1] == 'done' then
        redis.call('HSET', KEYS[K_STATE], 'state', 'running')
    end
end
return #back
