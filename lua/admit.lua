-- @include core
-- @include aimd
-- admit.lua: may this worker claim more of this job now, and how many? The fleet-wide limits of one
-- job, shared by every worker on every host: a token bucket for the rate (refilled by Redis TIME:
-- docs/ARCHITECTURE.md, invariant 5) and a cap on items leased at once (max_in_flight). Claims run
-- per partition on {J.p}; the limits belong to the whole job, so they live under {J} and a worker
-- calls this before claiming (docs/ARCHITECTURE.md, invariant 4: one script, one hash tag).
--
-- The limits hash (PREFIX{J}:limits) holds per_second (0: no rate limit), burst, tokens,
-- refilled_ms, max_in_flight (0: no cap), lease_ms, weight, and one field per worker,
-- "w:WORKER" = "COUNT:MS": the items it may hold, as of its last call (Redis time). An entry
-- older than lease_ms + 1 s is a lost worker's: its leases have expired by then, so its
-- slots come back (the same rule as its items), and the entry is deleted.
--
-- In-flight cap: a worker reports what it holds of the job (leased, not yet acknowledged);
-- the grant keeps the sum of every fresh entry (its own counted as held + grant) <= the cap.
-- A worker's count only falls when it calls again, so the sum never understates what is
-- leased. A worker that holds nothing and was granted nothing has no entry.
--
-- Adaptive concurrency (adaptive = 1): the cap is also the limit lua/lib/aimd.lua keeps in the
-- fields a_limit, a_start, a_changed_ms, a_steady, a_full, moved by the answers the workers
-- report (ARGV[5], ARGV[6]), never above max_in_flight or per_second when those are set.
--
-- KEYS[1]  limits  HASH  PREFIX{J}:limits
-- ARGV[1]  worker id
-- ARGV[2]  items wanted now (0: only report ARGV[3] and ARGV[4])
-- ARGV[3]  items this worker holds of the job now (claimed and not yet acknowledged)
-- ARGV[4]  items of its last grant that its claims did not find (their tokens go back to the
--          bucket, up to burst, so empty partitions do not use up the rate)
-- ARGV[5]  optional: overload signals (throttled answers) since this worker's last call
-- ARGV[6]  optional: ok answers since this worker's last call
-- Returns: {now_ms, granted, wait_ms}. wait_ms, when granted is 0 but items were wanted: > 0
--          the rate allows more in that many ms; -1 the in-flight cap is reached (try again
--          once the fleet's items finish). Without a limits hash (no limits) everything
--          wanted is granted.
-- Errors:  DRV_CORRUPT KEY: WHAT (the limits hash of another type, or a field of it that is
--          not a number; nothing written).
local f = rd('HMGET', KEYS[1], 'per_second', 'burst', 'tokens', 'refilled_ms', 'max_in_flight',
    'lease_ms', 'adaptive')
local function real(i, name, dflt)
    local v = f[i]
    if not v then
        return dflt
    end
    local n = tonumber(v)
    if not n or n ~= n or n == math.huge or n == -math.huge then
        corrupt(KEYS[1], name .. ' is not a number: ' .. string.sub(v, 1, 40))
    end
    return n
end
local now = now_ms()
local want = math.max(0, math.floor(tonumber(ARGV[2]) or 0))
local held = math.max(0, math.floor(tonumber(ARGV[3]) or 0))
local refund = math.max(0, math.floor(tonumber(ARGV[4]) or 0))
local bad = math.max(0, math.floor(tonumber(ARGV[5]) or 0))
local good = math.max(0, math.floor(tonumber(ARGV[6]) or 0))
if not f[6] then
    return {now, want, 0}
end
local rate, burst = real(1, 'per_second', 0), math.max(1, real(2, 'burst', 1))
local cap, lease_ms = real(5, 'max_in_flight', 0), real(6, 'lease_ms', 30000)
local tokens, last = real(3, 'tokens', false), real(4, 'refilled_ms', false)
local me = 'w:' .. ARGV[1]
local grant, wait = want, 0

-- The other workers' counts; lost workers' entries go.
local others, stale = 0, {}
local all = rd('HGETALL', KEYS[1])
for i = 1, #all, 2 do
    local k = all[i]
    if string.sub(k, 1, 2) == 'w:' and k ~= me then
        local c, t = string.match(all[i + 1], '^(%d+):(%d+)$')
        if c and tonumber(t) + lease_ms + 1000 >= now then
            others = others + tonumber(c)
        else
            stale[#stale + 1] = k
        end
    end
end
local adaptive = f[7] == '1'
local limited = cap
if adaptive then
    local hi = cap
    if rate > 0 and (hi == 0 or rate < hi) then
        hi = rate
    end
    limited = aimd_update(KEYS[1], 'a_', now, bad, good, hi)
end
-- Written only now: aimd_update checks its fields (DRV_CORRUPT) before anything is written.
if #stale > 0 then
    redis.call('HDEL', KEYS[1], unpack(stale))
end
if limited > 0 then
    local room = math.max(0, limited - others - held)
    if adaptive and want > room then
        aimd_full(KEYS[1], 'a_')
    end
    grant = math.max(0, math.min(grant, room))
    if grant == 0 and want > 0 then
        wait = -1
    end
end

if rate > 0 then
    if not tokens or not last then
        tokens = burst
    else
        tokens = tokens + math.max(0, now - last) * rate / 1000
    end
    tokens = math.min(burst, tokens + refund)
    local take = math.min(grant, math.floor(tokens))
    tokens = tokens - take
    if take == 0 and grant > 0 then
        -- Wait for a few tokens (at most 20 ms of refill) rather than one, so a fleet of
        -- waiting workers does not call every millisecond.
        local need = math.max(1, math.min(grant, burst, math.ceil(rate / 50)))
        wait = math.max(1, math.ceil((need - tokens) * 1000 / rate))
    end
    grant = take
    redis.call('HSET', KEYS[1], 'tokens', string.format('%.3f', tokens), 'refilled_ms', now)
end

if held + grant > 0 then
    redis.call('HSET', KEYS[1], me, (held + grant) .. ':' .. now)
else
    redis.call('HDEL', KEYS[1], me)
end
return {now, grant, wait}
