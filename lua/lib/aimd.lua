-- aimd.lua: an adaptive in-flight limit, additive increase and multiplicative decrease (TCP's
-- AIMD, as Vector's adaptive request concurrency applies it to an HTTP sink), kept in a hash so
-- every worker of a fleet obeys one limit. admit.lua keeps the job's in its limits hash; the
-- fields carry a prefix so that a per-key limit can keep one per key in the same hash.
-- @include core

-- Constants (README "Adaptive concurrency"):
--   AIMD_WINDOW_MS  at most one change per window: every answer of one burst that says
--                   "too much" arrives within about one round trip, and is one decrease
--   AIMD_DECREASE   the factor of a decrease (TCP's 1/2: a throttle is an explicit "too much")
--   AIMD_INCREASE   the step of an increase, once per window in which the limit was reached
--                   and nothing pushed back; before the first decrease the limit doubles
--                   instead (TCP's slow start), so a job finds a high limit in a few seconds
local AIMD_WINDOW_MS, AIMD_DECREASE, AIMD_INCREASE = 1000, 0.5, 1

-- Fields, each PREFIX .. name: limit (the limit now), start (where it begins), changed_ms
-- (Redis ms of the last change), steady ("1" after the first decrease: additive from then on),
-- full ("1": a grant was cut by the limit since the last change). 'bad' counts the overload
-- signals (throttled answers) and 'good' the ok answers reported since the caller's last call;
-- 'hi' is the highest the limit may be (max_in_flight, rate). Returns the limit, written back.
local function aimd_update(key, prefix, now, bad, good, hi)
    local v = rd('HMGET', key, prefix .. 'limit', prefix .. 'start', prefix .. 'changed_ms',
        prefix .. 'steady', prefix .. 'full')
    local start = num(key, prefix .. 'start', v[2], 16, 1)
    local limit = num(key, prefix .. 'limit', v[1], start, 1)
    local changed = num(key, prefix .. 'changed_ms', v[3], 0)
    local steady, full = v[4] == '1', v[5] == '1'
    local was = limit
    if now - changed >= AIMD_WINDOW_MS then
        if bad > 0 then
            limit = math.max(1, math.floor(limit * AIMD_DECREASE))
            steady = true
        elseif good > 0 and full then
            limit = steady and limit + AIMD_INCREASE or limit * 2
        end
    end
    if hi > 0 and limit > hi then
        limit = hi
    end
    if limit ~= was and (bad > 0 or good > 0) then
        -- A change by the answers starts a window (a bound lowered by drover set does not).
        redis.call('HSET', key, prefix .. 'limit', limit, prefix .. 'changed_ms', now,
            prefix .. 'steady', steady and '1' or '0', prefix .. 'full', '0')
    elseif limit ~= was or not v[1] then
        redis.call('HSET', key, prefix .. 'limit', limit)
    end
    return limit
end

-- Notes that a grant was cut by the limit (the limit was reached: it may grow).
local function aimd_full(key, prefix)
    redis.call('HSET', key, prefix .. 'full', '1')
end
