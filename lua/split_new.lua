-- @include shared
-- split_new.lua: step 1 of splitting a partition (rebalancing, README "Rebalancing"): create
-- the state hash of the new partition that will take the rest of another partition's range.
-- The new partition is invisible until step 3 (split_grow.lua) raises the job's partition
-- count, so nothing claims or feeds it before then.
--
-- KEYS:    the new partition's keys (see common/shared.def).
-- ARGV:    field, value, field, value, ... for its state hash: start, end, cursor, exhausted,
--          split_from, state, the config fields and zeroed counters.
-- Returns: 1.
-- Errors:  DRV_EXISTS when any key of the partition exists already (an interrupted split the
--          caller must finish or undo first, or a stray key: never reuse a done record).
for i = 1, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then
        return redis.error_reply('DRV_EXISTS ' .. KEYS[i])
    end
end
if #ARGV < 2 or #ARGV % 2 ~= 0 then
    return redis.error_reply('DRV_ARGS field value pairs expected')
end
redis.call('HSET', KEYS[K_STATE], unpack(ARGV))
return 1
