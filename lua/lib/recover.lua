-- recover.lua: expired leases and due retries back to pending (claim.lua, ackclaim.lua,
-- reap.lua).
-- @include shared
-- @include core
-- @include done
-- @include lease

-- Moves expired leases back to pending (or to dead once an item has had max_attempts
-- deliveries: a lease that expires counts as an attempt, so an item that kills every worker
-- ends dead instead of looping), and due retries back to pending. An expired lease of an item
-- already done (a late ack from an earlier holder) is only dropped. A leased item without a
-- tries entry was on its first delivery; its count (1) is written now, so the next claim
-- makes it attempt 2 and a late ack of the expired lease is still known. Returns the number
-- of expired leases and of due retries moved.
local function recover(now, max_attempts)
    -- Everything it reads first, checked, so a damaged key stops it before its first write.
    local expired, taken, held = lease_take_expired(now)
    local tries, isdone
    if #expired > 0 then
        tries = rd('HMGET', KEYS[6], unpack(expired))
        isdone = done_has(expired, true)
    end
    local due = rd('ZRANGEBYSCORE', KEYS[7], '-inf', now, 'LIMIT', 0, BATCH_MAX)
    if #taken + #due == 0 then
        return 0, 0
    end
    local c = rd('HMGET', KEYS[1], 'leased', 'expired', 'dead')
    num(KEYS[1], 'leased', c[1], 0)
    num(KEYS[1], 'expired', c[2], 0)
    num(KEYS[1], 'dead', c[3], 0)
    has_type(KEYS[2], 'list')
    has_type(KEYS[8], 'hash') -- reap.lua reads its size after these writes
    local back, died, first, dead, errs = {}, {}, {}, {}, {}
    if #expired > 0 then
        has_type(KEYS[9], 'hash')
        for i, id in ipairs(expired) do
            local n = num(KEYS[6], string.sub(id, 1, 64), tries[i], 1)
            local err = '{"error":"lease expired","attempt":' .. n .. ',"at":' .. now .. '}'
            if isdone[i] == 1 then
                -- Done is final (docs/ARCHITECTURE.md, invariant 2): nothing to hand out again,
                -- nothing failed.
            else
                if not tries[i] then
                    first[#first + 1] = id
                    first[#first + 1] = 1
                end
                if n >= max_attempts then
                    dead[#dead + 1] = id
                    dead[#dead + 1] = err
                    died[#died + 1] = id
                else
                    errs[#errs + 1] = id
                    errs[#errs + 1] = err
                    back[#back + 1] = id
                end
            end
        end
    end
    lease_forget(taken, held)
    if #dead > 0 then
        redis.call('HSET', KEYS[8], unpack(dead))
        redis.call('HDEL', KEYS[9], unpack(died))
    end
    if #errs > 0 then
        redis.call('HSET', KEYS[9], unpack(errs))
    end
    if #first > 0 then
        redis.call('HSET', KEYS[6], unpack(first))
    end
    -- Front of the list: an item that already waited a lease goes next.
    if #back > 0 then
        redis.call('LPUSH', KEYS[2], unpack(back))
    end
    if #expired > 0 then
        redis.call('HINCRBY', KEYS[1], 'expired', #expired)
    end
    if #died > 0 then
        redis.call('HINCRBY', KEYS[1], 'dead', #died)
    end
    if #due > 0 then
        redis.call('ZREM', KEYS[7], unpack(due))
        redis.call('RPUSH', KEYS[2], unpack(due))
    end
    return #expired, #due
end
