-- @include core
-- lock.lua: take or renew a job's coordinator lock (one active coordinator per job; others
-- wait as standbys and take over when the lock expires).
--
-- KEYS[1]  the job's lock key, {JOB}:lock
-- KEYS[2]  (optional) the job hash, {JOB}:job
-- ARGV[1]  the caller's coordinator id
-- ARGV[2]  time to live, ms
-- ARGV[3]  (with KEYS[2]) the job's created_ms as the caller read it
-- Returns: 1 if the caller holds the lock now, 0 if someone else does, -1 (nothing written)
-- when the job hash is gone or belongs to another job: a lock never outlives its job, and a
-- coordinator of a deleted (FLUSHALL, purge) or replaced job never writes one back.
if KEYS[2] then
    local created = rd('HGET', KEYS[2], 'created_ms')
    if not created or created ~= ARGV[3] then
        return -1
    end
end
local cur = rd('GET', KEYS[1])
if not cur or cur == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
