-- reap.lua: the coordinator's periodic pass over a partition: recover expired leases and due
-- retries (as claim does, for partitions no worker is claiming from), then report.
--
-- KEYS:    the partition keys (see _lib.lua).
-- ARGV:    none.
-- Returns: {pending, leased, retrying, dead, expired_recovered, retries_recovered, exhausted}
--          read in the same atomic step, so "everything drained" is never a torn read.
-- Errors:  DRV_NOJOB.
local s = part_state('state', 'max_attempts', 'exhausted')
if not s then
    return nojob()
end
local expired, due = 0, 0
if s[1] ~= 'cancelled' then
    expired, due = recover(now_ms(), tonumber(s[2]))
end
return {
    redis.call('LLEN', KEYS[K_PENDING]),
    tonumber(redis.call('HGET', KEYS[K_STATE], 'leased') or '0'),
    redis.call('ZCARD', KEYS[K_RETRY]),
    redis.call('HLEN', KEYS[K_DEAD]),
    expired,
    due,
    tonumber(s[3] or '0'),
}
