-- @include shared
-- @include core
-- @include part
-- @include lease
-- @include done
-- fail.lua: record failed attempts. An item the caller still holds is scheduled for a retry
-- with capped exponential backoff and full jitter, or dead-lettered with its error when it
-- was permanent or this was its last attempt (max_attempts).
--
-- A throttled answer (the API said 429, or gave a Retry-After) is not the item's failure: it
-- counts no attempt (the tries entry goes one down, as for a delivery handed back), only a
-- throttle, and the item dies only once it was throttled more than max_throttled times. Its
-- count rides in the item's errors entry (a "throttled" field of the JSON), so it needs no
-- key of its own and goes wherever the error goes (dead, or gone once the item is done).
--
-- KEYS:    the partition keys (see common/shared.def).
-- ARGV:    groups of five, at most BATCH_MAX groups:
--          id, token, kind ("0" failed, "1" permanent: dead at once, "2" throttled),
--          retry_after_ms (the item is not retried before it, "0" for none), error (JSON text)
-- Jitter comes from math.random, seeded per call from Redis TIME and the call's tokens and
-- ids, so workers failing in the same millisecond still spread out; replicas receive the
-- script's effects, not the draw (effects replication).
-- Returns: {retrying, dead, stale, throttled}; throttled counts the throttled answers among
--          retrying and dead; stale counts items whose lease the caller no longer
--          held (ignored: the new holder decides), and items another delivery already
--          acked done (the caller's lease is dropped; done is final).
-- Errors:  DRV_NOJOB; DRV_CORRUPT KEY: WHAT (nothing written: everything is read and checked
--          first).
local s = part_state('state', 'max_attempts', 'backoff_ms', 'backoff_max_ms', 'failed', 'dead',
    'leased', 'max_throttled', 'throttled')
if not s then
    return nojob()
end
local st = KEYS[K_STATE]
local max_attempts = num(st, 'max_attempts', s[2], nil, 1)
local base, cap = num(st, 'backoff_ms', s[3], nil, 0), num(st, 'backoff_max_ms', s[4], nil, 0)
num(st, 'failed', s[5], 0)
num(st, 'dead', s[6], 0)
num(st, 'leased', s[7], 0)
-- Jobs from before max_throttled have neither field: its default.
local max_throttled = num(st, 'max_throttled', s[8], 50, 1)
num(st, 'throttled', s[9], 0)
-- A Retry-After is honoured in full (not capped by backoff_max_ms), up to a day.
local RETRY_AFTER_MAX = 86400000
local now = now_ms()
-- Workers that fail in the same millisecond must not draw the same jitter (that would bring
-- their retries back together), so the seed mixes in each call's tokens and ids too.
local seed = now % 2147483648
for i = 1, #ARGV, 5 do
    local id = ARGV[i]
    seed = (seed * 31 + (tonumber(ARGV[i + 1]) or 0)) % 2147483648
    for k = 1, math.min(#id, 16) do
        seed = (seed * 31 + string.byte(id, k)) % 2147483648
    end
end
math.randomseed(seed)
-- Reads and decisions first; the writes they call for are collected.
local retrying, died, stale, throttled, failed = 0, 0, 0, 0, 0
local first, dead, undo, retry, errs, tries_del = {}, {}, {}, {}, {}, {}
-- The throttled answers the item had so far (its errors entry), and err with the new count.
local function throttles(id, err, add)
    local prev = rd('HGET', KEYS[K_ERRORS], id)
    local n = 0
    if prev and string.find(prev, '"throttled"', 1, true) then
        local ok, o = pcall(cjson.decode, prev)
        if ok and type(o) == 'table' then
            n = math.max(0, math.floor(tonumber(o.throttled) or 0))
        end
    end
    n = n + add
    if n == 0 then
        return 0, err
    end
    local ok, o = pcall(cjson.decode, err)
    if not ok or type(o) ~= 'table' then
        o = {error = err}
    end
    o.throttled = n
    if add > 0 and n > max_throttled then
        o.reason = 'max_throttled'
    end
    return n, cjson.encode(o)
end
-- The item dies (dead-lettered with err), or is retried after capped exponential backoff
-- with full jitter for its n-th try, never before floor_ms (its Retry-After).
local function dead_or_retry(id, err, dies, n, floor_ms)
    if dies then
        dead[#dead + 1] = id
        dead[#dead + 1] = err
        undo[#undo + 1] = id
        died = died + 1
        return
    end
    local d = math.floor(math.min(cap, base * 2 ^ (n - 1)) * math.random())
    d = math.max(d, math.min(floor_ms, RETRY_AFTER_MAX))
    retry[#retry + 1] = now + d
    retry[#retry + 1] = id
    errs[#errs + 1] = id
    errs[#errs + 1] = err
    retrying = retrying + 1
end

for i = 1, #ARGV, 5 do
    local id, token, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local floor_ms, err = tonumber(ARGV[i + 3]) or 0, ARGV[i + 4]
    if lease_drop(token, id) then
        local stored = rd('HGET', KEYS[K_TRIES], id)
        local attempt = num(KEYS[K_TRIES], string.sub(id, 1, 64), stored, 1)
        if done_has({id}, true)[1] == 1 then
            stale = stale + 1
        elseif kind == '2' then
            -- No attempt: the tries entry goes one down (an entry of 1 or none: gone).
            if stored then
                if attempt > 1 then
                    first[#first + 1] = id
                    first[#first + 1] = attempt - 1
                else
                    tries_del[#tries_del + 1] = id
                end
            end
            local n
            n, err = throttles(id, err, 1)
            throttled = throttled + 1
            dead_or_retry(id, err, n > max_throttled, n, floor_ms)
        else
            failed = failed + 1
            local _
            _, err = throttles(id, err, 0)
            if not stored then
                -- A first delivery has no entry while leased: its count is written now, so
                -- the retry's claim makes it attempt 2 and a late ack still knows the id.
                first[#first + 1] = id
                first[#first + 1] = 1
            end
            dead_or_retry(id, err, kind == '1' or attempt >= max_attempts, attempt, floor_ms)
        end
    else
        stale = stale + 1
    end
end
-- The keys written that nothing above read.
if #dead + #errs > 0 then
    has_type(KEYS[K_DEAD], 'hash')
    has_type(KEYS[K_ERRORS], 'hash')
end
if #retry > 0 then
    has_type(KEYS[K_RETRY], 'zset')
end
lease_check()
-- Each id once in a call (a lease holds an id once), so the batched writes do what one
-- write per id did.
if #first > 0 then
    redis.call('HSET', KEYS[K_TRIES], unpack(first))
end
if #tries_del > 0 then
    redis.call('HDEL', KEYS[K_TRIES], unpack(tries_del))
end
if #dead > 0 then
    redis.call('HSET', KEYS[K_DEAD], unpack(dead))
    redis.call('HDEL', KEYS[K_ERRORS], unpack(undo))
end
if #retry > 0 then
    redis.call('ZADD', KEYS[K_RETRY], unpack(retry))
    redis.call('HSET', KEYS[K_ERRORS], unpack(errs))
end
lease_flush()
if failed > 0 then
    redis.call('HINCRBY', KEYS[K_STATE], 'failed', failed)
end
if throttled > 0 then
    redis.call('HINCRBY', KEYS[K_STATE], 'throttled', throttled)
end
if died > 0 then
    redis.call('HINCRBY', KEYS[K_STATE], 'dead', died)
end
return {retrying, died, stale, throttled}
