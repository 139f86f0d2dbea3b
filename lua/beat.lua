-- @include core
-- beat.lua: a worker's heartbeat. Records it in the registry of workers (drover workers) and
-- tells the worker whether an operator asked it to drain (drover drain).
--
-- KEYS[1]  PREFIX{workers}      ZSET  worker id -> last heartbeat (ms, Redis time)
-- KEYS[2]  PREFIX{workers}:ID   HASH  what the worker reports, and 'drain' (same tag: one slot)
-- ARGV[1]  worker id
-- ARGV[2]  seconds the hash outlives the last heartbeat (a dead worker's entry goes away)
-- ARGV[3..] field, value, ...   host, pid, version, jobs, in_flight, done, failed, lease_ms,
--                               state, spans_dropped
-- Returns: {now_ms, drain} where drain is 1 once drover drain was called for this worker.
-- Errors:  DRV_CORRUPT KEY: WRONGTYPE (nothing written).
local now = now_ms()
local drain = rd('HGET', KEYS[2], 'drain')
rd('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSETNX', KEYS[2], 'started_ms', now)
redis.call('HSET', KEYS[2], 'beat_ms', now, unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
return {now, drain == '1' and 1 or 0}
