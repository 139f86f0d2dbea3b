-- claim.lua: items leased to a worker (claim.lua, ackclaim.lua).
-- @include shared
-- @include core
-- @include done
-- @include recover
-- @include fields

-- Leases up to 'want' items (capped at BATCH_MAX) to 'worker' (claim.lua, ackclaim.lua; s:
-- claim_fields() or part_fields()), appending {now_ms, token, deadline_ms, count, lease, k,
-- index1, attempt1, ... indexk, attemptk, payload1, ... payloadcount} to 'out' (see
-- claim.lua). Returns out, or nil and 'PAUSED' or 'CANCELLED' with nothing leased. An id that
-- cannot be handled (see claim_popped) is dead with its reason instead, and never blocks the
-- rest. A refusal after the LPOP (a damaged key) puts the popped ids back, in their order,
-- before it is raised.
local function claim_items(s, worker, want, out)
    if s.state == 'paused' then
        return nil, 'PAUSED'
    elseif s.state == 'cancelled' then
        return nil, 'CANCELLED'
    end
    local now = now_ms()
    local function none(a, b)
        out[#out + 1] = now
        out[#out + 1] = a
        out[#out + 1] = b
        out[#out + 1] = 0
        return out
    end

    if s.state == 'done' then
        return none(0, 0)
    end
    if s.cooldown_until > now then
        return none(-1, s.cooldown_until)
    end
    recover(now, s.max_attempts)

    want = math.min(tonumber(want) or 1, BATCH_MAX)
    if want < 1 then
        -- LPOP refuses a count below 1 and pops nothing for 0: a caller asking for no items
        -- still recovers expired leases, and gets none.
        return none(0, 0)
    end
    local ids = rd('LPOP', KEYS[2], want)
    if not ids then
        return none(0, 0)
    end
    -- claim_items after the LPOP (made here, only when a claim pops: a closure costs each time
    -- it is made): everything read and checked first, then written (the lease
    -- record first: the one key nothing read before). A refusal raises before any write here.
    -- An id no handler can take is dead with the reason instead: one longer than max_item_bytes;
    -- in a range partition, one not a whole number in canonical form or outside start..end (the
    -- done record could not hold it either). The range check yields the bit offsets done_has
    -- needs, so it costs a pattern test per id over what done_has did before.
    local function claim_popped(s, worker, popped, now, out, none)
        if not s.more then
            part_more(s)
        end
        local ids, bad, badwhy = popped, {}, {}
        local maxb, base, start, stop = s.max_item_bytes, done_base_v, s.start, s.stop
        local pre
        if base and start and stop then
            -- Whether tonumber() of each id is enough to tell a whole number in canonical form,
            -- tested on them all at once with plain searches (a pattern test per id would cost
            -- more than the rest of the claim): no leading zero or "-0" (tonumber takes both; it
            -- refuses an empty id and the like by itself), nothing
            -- else tonumber() takes (a sign, a point, an exponent, hex, inf, nan, white space, a
            -- NUL). Else (a batch holding "0" too) each id gets the pattern test. Digits only, an
            -- id past 16 of them is beyond 2^53, so the bounds below refuse it.
            local all = ',' .. table.concat(popped, ',') .. ','
            local canonical = not (string.find(all, ',0', 1, true) or
                string.find(all, ',-0', 1, true))
            if canonical and #all <= 2048 then
                -- A short batch: one class test (it costs per byte what a plain search costs per
                -- call). Digits, commas and minus signs only: tonumber refuses the rest. Anchored,
                -- it is one match over the string instead of one attempt per position.
                canonical = string.find(all, '^[%d,%-]*$') ~= nil
            elseif canonical then
                -- What else tonumber takes (hex starts with 0; inf and nan hold an n).
                local NOT_PLAIN = {'+', '.', 'e', 'E', 'n', 'N', ' ', '\t', '\n', '\v', '\f', '\r',
                    '\0'}
                for k = 1, #NOT_PLAIN do
                    if string.find(all, NOT_PLAIN[k], 1, true) then
                        canonical = false
                        break
                    end
                end
            end
            local offs, lo, hi = {}, nil, nil
            for i = 1, #popped do
                local id = popped[i]
                local why, n
                if #id > maxb then
                    why = 'id longer than max_item_bytes (' .. maxb .. ')'
                else
                    -- (tonumber, strtod inside, costs more than all else here: once per id.)
                    if canonical or
                        #id <= 17 and (string.find(id, '^-?[1-9]%d*$') or id == '0') then
                        n = tonumber(id)
                        -- Past 2^53 a double rounds: 9007199254740993 must not pass as 2^53.
                        if n and (n >= 9007199254740992 or n <= -9007199254740992) and
                            string.format('%.0f', n) ~= id then
                            n = nil
                        end
                    end
                    if not n then
                        why = 'id is not a whole number in canonical form'
                    elseif n < start or n > stop or n - base < 0 or n - base >= DONE_BITS then
                        why = 'id outside the partition (' .. start .. '..' .. stop .. ')'
                    end
                end
                if why then
                    if ids == popped then
                        ids = {}
                        for k = 1, i - 1 do
                            ids[k] = popped[k]
                        end
                    end
                    bad[#bad + 1] = id
                    badwhy[#badwhy + 1] = why
                else
                    if ids ~= popped then
                        ids[#ids + 1] = id
                    end
                    local off = n - base
                    offs[#offs + 1] = off
                    if not lo or off < lo then
                        lo = off
                    end
                    if not hi or off > hi then
                        hi = off
                    end
                end
            end
            pre = {offs, lo, hi}
        else
            for i = 1, #popped do
                if #popped[i] > maxb then
                    if ids == popped then
                        ids = {}
                        for k = 1, i - 1 do
                            ids[k] = popped[k]
                        end
                    end
                    bad[#bad + 1] = popped[i]
                    badwhy[#badwhy + 1] = 'id longer than max_item_bytes (' .. maxb .. ')'
                elseif ids ~= popped then
                    ids[#ids + 1] = popped[i]
                end
            end
        end
        local isdone = done_has(ids, true, pre)
        local live, skipped = {}, {}
        -- An id popped twice in one call (a source that lists it twice) is leased once; the
        -- other copy counts as skipped, like a copy popped after the first was done.
        local seen, twice = {}, 0
        for i, id in ipairs(ids) do
            if isdone[i] == 1 then
                skipped[#skipped + 1] = id
            elseif seen[id] then
                twice = twice + 1
            else
                seen[id] = true
                live[#live + 1] = id
            end
        end
        -- No tries hash: every item is on its first delivery (the common case costs no reads).
        local tries = {}
        if #live > 0 and size_of(KEYS[6], 'hash') > 0 then
            tries = rd('HMGET', KEYS[6], unpack(live))
        end
        local payloads = {}
        if s.payloads and #live > 0 then
            payloads = rd('HMGET', KEYS[10], unpack(live))
        elseif s.payloads and #skipped > 0 then
            has_type(KEYS[10], 'hash')
        end
        local dead = {}
        if #bad > 0 then
            has_type(KEYS[8], 'hash')
            for i, id in ipairs(bad) do
                dead[#dead + 1] = id
                dead[#dead + 1] = refusal(badwhy[i], now)
            end
        end
        local token, lease, deadline = s.token + 1, nil, now + s.lease_ms
        -- The reply's (index, attempt) pairs and the tries entries of the items past their first
        -- delivery (the first writes no entry: absent reads as 1 while leased).
        local targs, pairs_ = {}, {}
        for i = 1, #live do
            if tries[i] then
                local attempt = num(KEYS[6], string.sub(live[i], 1, 64), tries[i], 1) + 1
                targs[#targs + 1] = live[i]
                targs[#targs + 1] = attempt
                pairs_[#pairs_ + 1] = i
                pairs_[#pairs_ + 1] = attempt
            end
        end

        if #live > 0 then
            -- The lease record doubles as the reply's list of ids: one JSON string instead of an
            -- element per id (each costs Redis more than the id's share of the string).
            lease = cjson.encode({worker = worker, ids = live})
            rd('HSET', KEYS[4], token, lease)
        end
        if #bad > 0 then
            local added = redis.call('HSET', KEYS[8], unpack(dead))
            redis.call('HINCRBY', KEYS[1], 'dead', added)
            twice = twice + #bad - added
        end
        if #skipped + twice > 0 then
            redis.call('HINCRBY', KEYS[1], 'skipped', #skipped + twice)
        end
        if #skipped > 0 and s.payloads then
            redis.call('HDEL', KEYS[10], unpack(skipped))
        end
        if #live == 0 then
            return none(0, 0)
        end
        redis.call('HINCRBY', KEYS[1], 'token', 1)
        redis.call('ZADD', KEYS[3], deadline, token)
        redis.call('HINCRBY', KEYS[1], 'leased', #live)
        if #targs > 0 then
            redis.call('HSET', KEYS[6], unpack(targs))
        end
        local o = #out
        out[o + 1] = now
        out[o + 2] = token
        out[o + 3] = deadline
        out[o + 4] = #live
        out[o + 5] = lease
        out[o + 6] = #pairs_ / 2
        o = o + 6
        for i = 1, #pairs_ do
            out[o + i] = pairs_[i]
        end
        o = o + #pairs_
        if s.payloads then
            for i = 1, #live do
                out[o + i] = payloads[i] or ''
            end
        end
        return out
    end
    local ok, r = pcall(claim_popped, s, worker, ids, now, out, none)
    if ok then
        return r
    end
    -- LPUSH reverses its arguments: push in reverse to keep the order.
    local rev = {}
    for i = #ids, 1, -1 do
        rev[#rev + 1] = ids[i]
    end
    redis.call('LPUSH', KEYS[2], unpack(rev))
    reraise(r)
end
