-- @include shared
-- @include core

-- Leases (docs/ARCHITECTURE.md, invariants 1 and 2). One lease per claim call, whatever its size:
-- the leased ZSET maps its token to its deadline and the owner HASH maps the token to
-- {"worker":"WORKER","ids":[...]} (JSON, so HGET shows it), the ids of that claim not yet acked,
-- failed or released. The state field 'leased' counts those ids over all leases. Per-lease rather
-- than per-id records make a claim of 1000 items two writes instead of 2000 members and fields, and
-- an ack one read; an ack, a fail or a release of some of a lease's ids rewrites its list. Scripts
-- go through lease_get / lease_drop / lease_flush, so this representation lives here.
local leases = {} -- token -> decoded lease (with at: id -> true while held), or false
local per_item = {} -- field -> true: an owner entry of the per-item layout (lease_take_expired)
local leased_delta = 0

-- The lease with this token, or false when there is none (acked, expired, or never given).
local function lease_get(token)
    if not token then
        return false
    end
    local l = leases[token]
    if l == nil then
        l = false
        local raw = rd('HGET', KEYS[4], token)
        -- '{': a lease; "TOKEN:WORKER" an entry of the per-item layout (see lease_take_expired).
        if raw and string.byte(raw, 1) == 123 then
            local ok
            ok, l = pcall(cjson.decode, raw)
            if not ok or type(l) ~= 'table' or type(l.ids) ~= 'table' or
                (l.ids[1] ~= nil and type(l.ids[1]) ~= 'string') then
                corrupt(KEYS[4], token .. ': not a lease record (JSON with ids)')
            end
            -- (The first id's type is checked here, each one's where it could do harm:
            -- lease_take_expired. A repeated
            -- id only keeps the lease from emptying until it expires: not checked, as a check
            -- per id would cost every ack.)
            local at, ids = {}, l.ids
            for i = 1, #ids do
                local id = ids[i]
                at[id] = true
            end
            l.at, l.left = at, #ids
        elseif raw and string.find(raw, '^%d+:') then
            per_item[token] = true
        elseif raw then
            corrupt(KEYS[4], token .. ': not a lease record (JSON with ids)')
        end
        leases[token] = l
    end
    return l
end

-- Drops id from the lease with this token (recorded by lease_flush); returns whether it held it.
local function lease_drop(token, id)
    local l = lease_get(token)
    if not (l and l.at[id]) then
        return false
    end
    l.at[id] = nil
    l.left = l.left - 1
    l.dirty = true
    leased_delta = leased_delta - 1
    return true
end

-- Writes the leases lease_drop changed: an emptied one is deleted, another keeps its ids left.
local function lease_flush()
    for token, l in pairs(leases) do
        if l and l.dirty then
            if l.left == 0 then
                redis.call('ZREM', KEYS[3], token)
                redis.call('HDEL', KEYS[4], token)
            else
                local ids = {}
                for _, id in ipairs(l.ids) do
                    if l.at[id] then
                        ids[#ids + 1] = id
                    end
                end
                local rec = cjson.encode({worker = l.worker, ids = ids})
                redis.call('HSET', KEYS[4], token, rec)
            end
            leases[token] = nil
        end
    end
    if leased_delta ~= 0 then
        redis.call('HINCRBY', KEYS[1], 'leased', leased_delta)
        leased_delta = 0
    end
end

-- Checks the keys lease_flush will write that lease_get did not read: leased, when a lease
-- is emptied (its deadline goes).
local function lease_check()
    for _, l in pairs(leases) do
        if l and l.dirty and l.left == 0 then
            has_type(KEYS[3], 'zset')
            return
        end
    end
end

-- Takes the leases expired at 'now' (whole leases, at most BATCH_MAX ids together, at least
-- one lease); returns their ids, their tokens and how many ids they held, for lease_forget to
-- take them out of leased and owner once the caller has read everything it needs. A job
-- leased by a drover from before leases were per claim has per-item entries (leased: id ->
-- deadline, owner: id -> "TOKEN:WORKER"); each comes back as its id when it expires, so an
-- upgrade loses nothing.
local function lease_take_expired(now)
    local tokens = rd('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 64)
    if #tokens == 0 then
        return tokens, tokens, 0 -- (none expired, the common case: no tables made)
    end
    local ids, taken, held = {}, {}, 0
    for _, token in ipairs(tokens) do
        local l = lease_get(token)
        if l and #ids > 0 and #ids + l.left > BATCH_MAX then
            break
        end
        taken[#taken + 1] = token
        if l then
            for _, id in ipairs(l.ids) do
                if l.at[id] then
                    if type(id) ~= 'string' then
                        corrupt(KEYS[4], token .. ': not a lease record (ids: strings)')
                    end
                    l.at[id] = nil
                    ids[#ids + 1] = id
                    held = held + 1
                end
            end
        elseif per_item[token] then
            ids[#ids + 1] = token -- a per-item entry: the member is the id
        end
        leases[token] = false
    end
    return ids, taken, held
end

-- The writes of lease_take_expired: the leases taken go from leased and owner.
local function lease_forget(taken, held)
    if #taken > 0 then
        redis.call('ZREM', KEYS[3], unpack(taken))
        redis.call('HDEL', KEYS[4], unpack(taken))
    end
    if held > 0 then
        redis.call('HINCRBY', KEYS[1], 'leased', -held)
    end
end
