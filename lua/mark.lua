-- mark.lua: record that a job's callback was accepted (complete_sent, dead_alert_sent), once,
-- and only on the job it was sent for: a job replaced (new created_ms) or deleted meanwhile is
-- left alone, so a late mark never recreates a purged job hash.
--
-- KEYS[1]  the job hash, {JOB}:job
-- ARGV[1]  the field to set (complete_sent or dead_alert_sent)
-- ARGV[2]  the job's created_ms as the caller read it
-- Returns: the mark (ms, Redis time): the new one, or the one already there; 0 if the job hash
-- is gone or belongs to another job (its created_ms differs).
local created = redis.call('HGET', KEYS[1], 'created_ms')
if not created or created ~= ARGV[2] then
    return 0
end
local had = redis.call('HGET', KEYS[1], ARGV[1])
if had then
    return tonumber(had)
end
local now = now_ms()
redis.call('HSET', KEYS[1], ARGV[1], now)
return now
