-- @include shared
-- @include core
-- @include part
-- revive.lua: move dead items back to pending with a fresh attempt count (drover retry).
--
-- KEYS:    the partition keys (see common/shared.def).
-- ARGV:    ids to revive (at most BATCH_MAX, common/shared.def); ids not in the dead hash
--          are skipped.
-- Returns: the number revived. A partition marked done is set running again.
-- Errors:  DRV_NOJOB; DRV_CORRUPT KEY: WHAT (nothing written).
local s = part_state('state', 'dead')
if not s then
    return nojob()
end
num(KEYS[K_STATE], 'dead', s[2], 0)
if #ARGV == 0 then
    return 0
end
local was = rd('HMGET', KEYS[K_DEAD], unpack(ARGV))
has_type(KEYS[K_TRIES], 'hash')
has_type(KEYS[K_PENDING], 'list')
local back, seen = {}, {}
for i, id in ipairs(ARGV) do
    if was[i] and not seen[id] then
        seen[id] = true
        back[#back + 1] = id
    end
end
if #back > 0 then
    redis.call('HDEL', KEYS[K_DEAD], unpack(back))
    redis.call('HDEL', KEYS[K_TRIES], unpack(back))
    redis.call('RPUSH', KEYS[K_PENDING], unpack(back))
    redis.call('HINCRBY', KEYS[K_STATE], 'dead', -#back)
    if s[1] == 'done' then
        redis.call('HSET', KEYS[K_STATE], 'state', 'running')
    end
end
return #back
