-- @include shared
-- @include core
-- mirror.lua: set a partition's copy of the job's state (where the other scripts read it),
-- only while its state hash exists: a job deleted under its coordinator (FLUSHALL, purge) gets
-- no state hash written back.
--
-- KEYS:    the partition keys (see common/shared.def).
-- ARGV[1]  the state (running, paused, cancelled, done)
-- Returns: 1 if written, 0 if the partition is gone.
if redis.call('EXISTS', KEYS[K_STATE]) == 0 then
    return 0
end
rd('HSET', KEYS[K_STATE], 'state', ARGV[1])
return 1
