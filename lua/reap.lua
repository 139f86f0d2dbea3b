-- @include shared
-- @include core
-- @include part
-- @include recover
-- reap.lua: the coordinator's periodic pass over a partition: recover expired leases and due
-- retries (as claim does, for partitions no worker is claiming from), then report.
--
-- KEYS:    the partition keys (see common/shared.def).
-- ARGV:    none.
-- Returns: {pending, leased, retrying, dead, expired_recovered, retries_recovered, exhausted}
--          read in the same atomic step, so "everything drained" is never a torn read.
-- Errors:  DRV_NOJOB; DRV_CORRUPT KEY: WHAT (nothing written).
local s = part_state('state', 'max_attempts', 'exhausted', 'leased')
if not s then
    return nojob()
end
local max_attempts = num(KEYS[K_STATE], 'max_attempts', s[2], nil, 1)
num(KEYS[K_STATE], 'leased', s[4], 0)
local expired, due = 0, 0
if s[1] ~= 'cancelled' then
    expired, due = recover(now_ms(), max_attempts)
end
-- The sizes it reports, read after recovering: recover checked the types of the keys it
-- wrote before it wrote, and a refusal here comes when it wrote nothing.
return {
    rd('LLEN', KEYS[K_PENDING]),
    tonumber(redis.call('HGET', KEYS[K_STATE], 'leased') or '0'),
    rd('ZCARD', KEYS[K_RETRY]),
    rd('HLEN', KEYS[K_DEAD]),
    expired,
    due,
    tonumber(s[3] or '0'),
}
