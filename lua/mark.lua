-- @include core
-- mark.lua: record that a job's callback was accepted (complete_sent, dead_alert_sent), once,
-- and only on the job it was sent for: a job replaced (new created_ms) or deleted meanwhile is
-- left alone, so a late mark never recreates a purged job hash. With ARGV[1] empty it writes
-- the field/value pairs ARGV[3..] under the same guard (the coordinator's rate, a state).
--
-- KEYS[1]  the job hash, {JOB}:job
-- KEYS[2]  (optional, with ARGV[1] "") a key deleted with the write: the HTTP source's staged
--          page, dropped in the same step that moves the job hash past it
-- ARGV[1]  the field to set (complete_sent or dead_alert_sent), or "" to write ARGV[3..]
-- ARGV[2]  the job's created_ms as the caller read it
-- ARGV[3..] with ARGV[1] "": field, value, field, value, ...
-- Returns: the mark (ms, Redis time): the new one, or the one already there; 0 if the job hash
-- is gone or belongs to another job (its created_ms differs). With ARGV[1] "": 1 when written.
local created = rd('HGET', KEYS[1], 'created_ms')
if not created or created ~= ARGV[2] then
    return 0
end
if ARGV[1] == '' then
    if #ARGV >= 4 then
        redis.call('HSET', KEYS[1], unpack(ARGV, 3))
    end
    if KEYS[2] then
        redis.call('DEL', KEYS[2])
    end
    return 1
end
local had = rd('HGET', KEYS[1], ARGV[1])
if had then
    return tonumber(had)
end
local now = now_ms()
redis.call('HSET', KEYS[1], ARGV[1], now)
return now
