-- _lib.lua: helpers shared by every drover script. The build prepends this file to each
-- lua/NAME.lua, so each script stays one atomic EVALSHA with no cross-script calls.
--
-- Partition scripts take the same KEYS, all with the hash tag {JOB.P} (DESIGN.md invariant 4):
--   KEYS[1] state    HASH  config, cursor and counters of the partition
--   KEYS[2] pending  LIST  ids waiting
--   KEYS[3] leased   ZSET  id -> lease deadline (ms, Redis TIME)
--   KEYS[4] owner    HASH  id -> "TOKEN:WORKER"
--   KEYS[5] done     processed ids: a STRING bitmap for range sources (bit id - done_base,
--                    done_base in the state hash), a SET of ids for the others; read and
--                    written only through done_has / done_add below
--   KEYS[6] tries    HASH  id -> deliveries so far
--   KEYS[7] retry    ZSET  id -> not-before time (ms, Redis TIME)
--   KEYS[8] dead     HASH  id -> last error (JSON)
--   KEYS[9] errors   HASH  id -> last error (JSON) while the id is still retrying
--   KEYS[10] items   HASH  id -> payload, for sources whose item is more than its id
--   KEYS[11] results HASH  id -> the handler's response, for jobs that keep it
-- Errors are raised as "DRV_<WORD> detail"; C matches the first word.

local K_STATE, K_PENDING, K_LEASED, K_OWNER, K_DONE = 1, 2, 3, 4, 5
local K_TRIES, K_RETRY, K_DEAD, K_ERRORS, K_ITEMS, K_RESULTS = 6, 7, 8, 9, 10, 11

-- Most members one script call handles; keeps unpack() far below Lua's stack limit.
local BATCH_MAX = 1000

-- The done record (invariant 2). Range partitions carry `done_base` (their first id) in the
-- state hash and keep a bitmap: bit id - done_base is 1 once id is done, so a dense range costs
-- an eighth of a byte per id instead of a SET member's ~50. Other sources keep a SET of ids.
-- A bitmap offset stays below 2^32 (a Redis string's limit): submit refuses wider partitions.
local DONE_BITS = 4294967296
local done_read, done_base_v = false, nil

-- done_base of this partition, or nil when its done record is a SET.
local function done_base()
    if not done_read then
        done_base_v = tonumber(redis.call('HGET', KEYS[K_STATE], 'done_base') or '')
        done_read = true
    end
    return done_base_v
end

-- The bit offset of id in a bitmap starting at base, or nil when id is not a whole number in
-- canonical form (no sign on 0, no leading zeros, at most 17 characters, so exact as a Lua
-- number) or falls outside 0..2^32-1: such an id was never fed to this partition.
local function done_offset(id, base)
    if #id > 17 or not (string.match(id, '^-?[1-9]%d*$') or id == '0') then
        return nil
    end
    local off = tonumber(id) - base
    if off < 0 or off >= DONE_BITS then
        return nil
    end
    return off
end

-- Flags (1 done, 0 not) for ids, like SMISMEMBER. ids: at most BATCH_MAX.
local function done_has(ids)
    if #ids == 0 then
        return {}
    end
    local base = done_base()
    if not base then
        return redis.call('SMISMEMBER', KEYS[K_DONE], unpack(ids))
    end
    local args, at = {}, {}
    for i, id in ipairs(ids) do
        local off = done_offset(id, base)
        if off then
            args[#args + 1] = 'GET'
            args[#args + 1] = 'u1'
            args[#args + 1] = string.format('%d', off)
            at[#at + 1] = i
        end
    end
    local flags = {}
    for i = 1, #ids do
        flags[i] = 0
    end
    if #args > 0 then
        local got = redis.call('BITFIELD_RO', KEYS[K_DONE], unpack(args))
        for k, i in ipairs(at) do
            flags[i] = got[k]
        end
    end
    return flags
end

-- Marks ids done; returns how many were not done before (like SADD; with the bitmap it is
-- BITFIELD SET's old bits, so "already done" needs no second command). ids: at most
-- BATCH_MAX, each fed to this partition (a range id outside the partition raises DRV_RANGE:
-- a caller's bug, never input, since only ids this partition leased reach here).
local function done_add(ids)
    if #ids == 0 then
        return 0
    end
    local base = done_base()
    if not base then
        return redis.call('SADD', KEYS[K_DONE], unpack(ids))
    end
    local args = {}
    for _, id in ipairs(ids) do
        local off = done_offset(id, base)
        if not off then
            error({err = 'DRV_RANGE ' .. KEYS[K_STATE] .. ' id ' .. id .. ' is outside its bitmap'})
        end
        args[#args + 1] = 'SET'
        args[#args + 1] = 'u1'
        args[#args + 1] = string.format('%d', off)
        args[#args + 1] = 1
    end
    local old = redis.call('BITFIELD', KEYS[K_DONE], unpack(args))
    local new = 0
    for i = 1, #old do
        new = new + 1 - old[i]
    end
    return new
end

-- Redis owns the clock (invariant 5): milliseconds from TIME, never from a client.
local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Reads the partition's state hash; raises DRV_NOJOB when the partition does not exist.
local function part_state(...)
    local s = redis.call('HMGET', KEYS[K_STATE], ...)
    if not s[1] then
        return nil
    end
    return s
end

local function nojob()
    return redis.error_reply('DRV_NOJOB ' .. KEYS[K_STATE])
end

-- Does "TOKEN:WORKER" in owner belong to the lease with this token?
local function holds(owner, token)
    if not owner then
        return false
    end
    local t = string.match(owner, '^(%d+):')
    return t == token
end

-- Moves expired leases back to pending (or to dead once an item has had max_attempts
-- deliveries: a lease that expires counts as an attempt, so an item that kills every worker
-- ends dead instead of looping), and due retries back to pending. An expired lease of an item
-- already done (a late ack from an earlier holder) is only dropped. Returns the number of
-- expired leases and of due retries moved.
local function recover(now, max_attempts)
    local expired = redis.call('ZRANGEBYSCORE', KEYS[K_LEASED], '-inf', now, 'LIMIT', 0, BATCH_MAX)
    if #expired > 0 then
        redis.call('ZREM', KEYS[K_LEASED], unpack(expired))
        redis.call('HDEL', KEYS[K_OWNER], unpack(expired))
        local tries = redis.call('HMGET', KEYS[K_TRIES], unpack(expired))
        local isdone = done_has(expired)
        local back, died = {}, 0
        for i, id in ipairs(expired) do
            local n = tonumber(tries[i] or '0')
            local err = '{"error":"lease expired","attempt":' .. n .. ',"at":' .. now .. '}'
            if isdone[i] == 1 then
                -- Done is final (invariant 2): nothing to hand out again, nothing failed.
            elseif n >= max_attempts then
                redis.call('HSET', KEYS[K_DEAD], id, err)
                redis.call('HDEL', KEYS[K_ERRORS], id)
                died = died + 1
            else
                redis.call('HSET', KEYS[K_ERRORS], id, err)
                back[#back + 1] = id
            end
        end
        -- Front of the list: an item that already waited a lease goes next.
        if #back > 0 then
            redis.call('LPUSH', KEYS[K_PENDING], unpack(back))
        end
        redis.call('HINCRBY', KEYS[K_STATE], 'expired', #expired)
        if died > 0 then
            redis.call('HINCRBY', KEYS[K_STATE], 'dead', died)
        end
    end
    local due = redis.call('ZRANGEBYSCORE', KEYS[K_RETRY], '-inf', now, 'LIMIT', 0, BATCH_MAX)
    if #due > 0 then
        redis.call('ZREM', KEYS[K_RETRY], unpack(due))
        redis.call('RPUSH', KEYS[K_PENDING], unpack(due))
    end
    return #expired, #due
end
