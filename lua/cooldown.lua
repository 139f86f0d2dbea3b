-- @include shared
-- @include core
-- @include part
-- cooldown.lua: pause claims of one partition for a while, because the API the job calls
-- told the fleet when to come back (a Retry-After). A worker that sees such an answer calls
-- this on every partition of the job, so every worker's next claim honours it (claim.lua
-- returns no items until then). A cool-down only ever grows; it needs no clearing.
--
-- KEYS:    the partition keys (see common/shared.def).
-- ARGV[1]  milliseconds from now (Redis time)
-- ARGV[2]  optional: the end itself (ms, Redis time) instead, so that every partition of the
--          job gets the same end as the first
-- Returns: the cool-down's end (ms, Redis time), which may be a later one already set.
-- Errors:  DRV_NOJOB; DRV_CORRUPT KEY: WHAT (nothing written).
local s = part_state('state', 'cooldown_until', 'cooldowns')
if not s then
    return nojob()
end
num(KEYS[K_STATE], 'cooldowns', s[3], 0)
local now = now_ms()
local want = now + math.max(0, math.floor(tonumber(ARGV[1]) or 0))
if ARGV[2] then
    want = math.floor(tonumber(ARGV[2]) or want)
end
local have = num(KEYS[K_STATE], 'cooldown_until', s[2], 0)
if want > have then
    redis.call('HSET', KEYS[K_STATE], 'cooldown_until', want)
    redis.call('HINCRBY', KEYS[K_STATE], 'cooldowns', 1)
    return want
end
return have
