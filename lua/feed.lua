-- @include shared
-- @include core
-- @include part
-- feed.lua: append a chunk of items to a partition and advance its source cursor, in one atomic
-- step (docs/ARCHITECTURE.md, invariant 3), so a restarted coordinator neither skips nor re-feeds.
--
-- KEYS:    the partition keys (see common/shared.def).
-- ARGV[1]  cursor the caller read the chunk from (compare-and-set guard)
-- ARGV[2]  cursor after the chunk
-- ARGV[3]  "1" when the chunk ends the partition's source, else "0"
-- ARGV[4]  "1" when items carry payloads (ARGV[5..] = id, payload, id, payload, ...),
--          "0" when the id is the item (ARGV[5..] = id, id, ...)
-- Returns: the pending list's length after the push.
-- Errors:  DRV_NOJOB (no such partition), DRV_CANCELLED, DRV_CURSOR <current cursor> (another
--          feeder moved the cursor: re-read it and start again from there; or the chunk would
--          move it past `cursor_max`, the first id of a partition split off this one by
--          split_cut.lua: re-read the partition's end); DRV_CORRUPT KEY: WHAT (nothing
--          written).
local s = part_state('state', 'cursor', 'cursor_max', 'fed')
if not s then
    return nojob()
end
local cursor_max = num(KEYS[K_STATE], 'cursor_max', s[3], false)
num(KEYS[K_STATE], 'fed', s[4], 0)
if s[1] == 'cancelled' then
    return redis.error_reply('DRV_CANCELLED ' .. KEYS[K_STATE])
end
if (s[2] or '') ~= ARGV[1] then
    return redis.error_reply('DRV_CURSOR ' .. tostring(s[2]))
end
if cursor_max and (tonumber(ARGV[2]) or 0) > cursor_max then
    return redis.error_reply('DRV_CURSOR ' .. tostring(s[2]) .. ' max ' .. s[3])
end
local n = #ARGV - 4
if n <= 0 then
    has_type(KEYS[K_PENDING], 'list') -- its length is the reply
end
if ARGV[4] == '1' then
    local ids = {}
    for i = 5, #ARGV, 2 do
        ids[#ids + 1] = ARGV[i]
    end
    if #ids > 0 then
        has_type(KEYS[K_ITEMS], 'hash')
        rd('RPUSH', KEYS[K_PENDING], unpack(ids))
        redis.call('HSET', KEYS[K_ITEMS], unpack(ARGV, 5))
    end
    n = #ids
elseif n > 0 then
    rd('RPUSH', KEYS[K_PENDING], unpack(ARGV, 5))
end
redis.call('HSET', KEYS[K_STATE], 'cursor', ARGV[2])
if n > 0 then
    redis.call('HINCRBY', KEYS[K_STATE], 'fed', n)
end
if ARGV[3] == '1' then
    redis.call('HSET', KEYS[K_STATE], 'exhausted', '1')
end
return redis.call('LLEN', KEYS[K_PENDING])
