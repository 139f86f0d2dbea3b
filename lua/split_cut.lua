-- @include shared
-- @include part
-- split_cut.lua: step 2 of splitting a partition: shrink the source partition's range so the
-- new partition (created by split_new.lua, first id ARGV[3]) owns the rest. A compare-and-set
-- on the end and the cursor, so ids already fed are never handed to the new partition and a
-- cut is never applied twice.
--
-- KEYS:    the source partition's keys (see common/shared.def).
-- ARGV[1]  its end as the caller read it (must still be the end)
-- ARGV[2]  its new end (the new partition's start - 1)
-- ARGV[3]  the new partition's start: the cursor may not be past it now, and feed.lua never
--          moves it past it afterwards (field cursor_max)
-- Returns: 1 when the partition now keeps nothing more to feed (its cursor was at the cut and
--          it is marked exhausted), else 0.
-- Errors:  DRV_NOJOB; DRV_SPLIT end <end> (the end is not ARGV[1]: cut already or changed);
--          DRV_SPLIT cursor <cursor> (ids at or past the cut were fed already).
local s = part_state('state', 'end', 'cursor', 'exhausted')
if not s then
    return nojob()
end
if (s[2] or '') ~= ARGV[1] then
    return redis.error_reply('DRV_SPLIT end ' .. tostring(s[2]))
end
local cursor, cut = tonumber(s[3] or ''), tonumber(ARGV[3])
if not cursor or not cut or cursor > cut or s[4] == '1' then
    return redis.error_reply('DRV_SPLIT cursor ' .. tostring(s[3]))
end
redis.call('HSET', KEYS[K_STATE], 'end', ARGV[2], 'cursor_max', ARGV[3])
if cursor == cut then
    redis.call('HSET', KEYS[K_STATE], 'exhausted', '1')
    return 1
end
return 0
