-- lock.lua: take or renew a job's coordinator lock (one active coordinator per job; others
-- wait as standbys and take over when the lock expires).
--
-- KEYS[1]  the job's lock key, {JOB}:lock
-- ARGV[1]  the caller's coordinator id
-- ARGV[2]  time to live, ms
-- Returns: 1 if the caller holds the lock now, 0 if someone else does.
local cur = redis.call('GET', KEYS[1])
if not cur or cur == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
