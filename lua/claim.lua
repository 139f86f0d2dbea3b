-- claim.lua: lease up to N items of one partition to a worker. Recovers expired leases and
-- due retries first, so a dead coordinator never stalls the fleet. Items already in the
-- done set are dropped, not handed out (invariant 2).
--
-- KEYS:    the partition keys (see _lib.lua).
-- ARGV[1]  worker id
-- ARGV[2]  most items to lease (capped at 1000; below 1 leases nothing)
-- Returns: {now_ms, token, deadline_ms, count, id1, attempt1, payload1, id2, ...}; payload is
--          "" when the id is the item. count is 0 when nothing is pending (or the partition
--          is done). One fencing token covers every lease of this call.
--          During a fleet cool-down (cooldown.lua) nothing is leased and the reply is
--          {now_ms, -1, cooldown_until_ms, 0}.
-- Errors:  DRV_NOJOB, DRV_PAUSED, DRV_CANCELLED.
local s = part_state('state', 'lease_ms', 'max_attempts', 'payloads', 'cooldown_until')
if not s then
    return nojob()
end
if s[1] == 'paused' then
    return redis.error_reply('DRV_PAUSED ' .. KEYS[K_STATE])
elseif s[1] == 'cancelled' then
    return redis.error_reply('DRV_CANCELLED ' .. KEYS[K_STATE])
end
local now = now_ms()
if s[1] == 'done' then
    return {now, 0, 0, 0}
end
local cool = tonumber(s[5] or '0')
if cool > now then
    return {now, -1, cool, 0}
end
local lease_ms, max_attempts = tonumber(s[2]), tonumber(s[3])
recover(now, max_attempts)

local want = math.min(tonumber(ARGV[2]) or 1, BATCH_MAX)
if want < 1 then
    -- LPOP refuses a count below 1 and pops nothing for 0: a caller asking for no items
    -- still recovers expired leases, and gets none.
    return {now, 0, 0, 0}
end
local ids = redis.call('LPOP', KEYS[K_PENDING], want)
if not ids then
    return {now, 0, 0, 0}
end
local isdone = done_has(ids)
local live, skipped = {}, {}
for i, id in ipairs(ids) do
    if isdone[i] == 1 then
        skipped[#skipped + 1] = id
    else
        live[#live + 1] = id
    end
end
if #skipped > 0 then
    redis.call('HINCRBY', KEYS[K_STATE], 'skipped', #skipped)
    if s[4] == '1' then
        redis.call('HDEL', KEYS[K_ITEMS], unpack(skipped))
    end
end
if #live == 0 then
    return {now, 0, 0, 0}
end

local token = redis.call('HINCRBY', KEYS[K_STATE], 'token', 1)
local deadline = now + lease_ms
local tries = redis.call('HMGET', KEYS[K_TRIES], unpack(live))
local payloads = {}
if s[4] == '1' then
    payloads = redis.call('HMGET', KEYS[K_ITEMS], unpack(live))
end
local zargs, targs, oargs = {}, {}, {}
local who = token .. ':' .. ARGV[1]
local out = {now, token, deadline, #live}
for i, id in ipairs(live) do
    local attempt = tonumber(tries[i] or '0') + 1
    zargs[#zargs + 1] = deadline
    zargs[#zargs + 1] = id
    targs[#targs + 1] = id
    targs[#targs + 1] = attempt
    oargs[#oargs + 1] = id
    oargs[#oargs + 1] = who
    out[#out + 1] = id
    out[#out + 1] = attempt
    out[#out + 1] = payloads[i] or ''
end
redis.call('ZADD', KEYS[K_LEASED], unpack(zargs))
redis.call('HSET', KEYS[K_TRIES], unpack(targs))
redis.call('HSET', KEYS[K_OWNER], unpack(oargs))
return out
