-- @include core
-- unlock.lua: drop a job's coordinator lock if the caller holds it.
--
-- KEYS[1]  the job's lock key, {JOB}:lock
-- ARGV[1]  the caller's coordinator id
-- Returns: 1 if it was dropped, 0 otherwise.
if rd('GET', KEYS[1]) == ARGV[1] then
    redis.call('DEL', KEYS[1])
    return 1
end
return 0
