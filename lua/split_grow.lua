-- @include core
-- split_grow.lua: step 3 of splitting a partition: raise the job's partition count so the new
-- partition becomes visible to workers, drover status and the coordinator's done check.
--
-- KEYS[1]  the job hash, {JOB}:job
-- ARGV[1]  the partition count the caller read (the new partition's number)
-- Returns: the partition count now (ARGV[1] + 1). Raising a count that was raised already
--          (a repeated call) returns it unchanged.
-- Errors:  DRV_NOJOB (no job hash); DRV_CURSOR <count> when the count is neither ARGV[1] nor
--          ARGV[1] + 1 (someone else changed it: re-read).
local n = rd('HGET', KEYS[1], 'partitions')
if not n then
    return redis.error_reply('DRV_NOJOB ' .. KEYS[1])
end
local want = tonumber(ARGV[1])
if tonumber(n) == want + 1 then
    return want + 1
end
if tonumber(n) ~= want then
    return redis.error_reply('DRV_CURSOR ' .. n)
end
redis.call('HSET', KEYS[1], 'partitions', want + 1)
redis.call('HINCRBY', KEYS[1], 'splits', 1)
return want + 1
