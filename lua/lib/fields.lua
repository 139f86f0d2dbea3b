-- fields.lua: the state hash's fields the claim and ack scripts read, checked, and the record
-- of an item refused without a delivery.
-- @include core
-- @include done

-- The state hash's fields a claim needs before it pops, read in one HMGET and checked (an
-- empty poll reads no more); nil when the partition does not exist.
local function claim_fields()
    local v = rd('HMGET', KEYS[1], 'state', 'lease_ms', 'max_attempts', 'payloads',
        'cooldown_until')
    if not v[1] then
        return nil
    end
    local k = KEYS[1]
    return {
        state = v[1],
        lease_ms = num(k, 'lease_ms', v[2], nil, 1),
        max_attempts = num(k, 'max_attempts', v[3], nil, 1),
        payloads = v[4] == '1',
        cooldown_until = num(k, 'cooldown_until', v[5], 0),
    }
end

-- The rest, into s: the done layout, a range's bounds, max_item_bytes and the counters the
-- scripts add to, checked (a counter that is not a whole number would fail HINCRBY after
-- other writes).
local function part_more(s)
    local v = rd('HMGET', KEYS[1], 'start', 'end', 'max_item_bytes', 'done_base',
        'done_buckets', 'done_ids', 'token', 'leased', 'skipped', 'done', 'dead', 'duplicates',
        'copies')
    local k = KEYS[1]
    done_set(v[4], v[5], v[6])
    -- The counters in one pattern test (tonumber, strtod inside, costs more per field); the
    -- one that fails it is named by num.
    local c = (v[8] or '0') .. ',' .. (v[9] or '0') .. ',' .. (v[10] or '0') .. ',' ..
        (v[11] or '0') .. ',' .. (v[12] or '0') .. ',' .. (v[13] or '0')
    -- (No leading zero, no -0, at most 16 digits: what num takes.)
    if #c > 64 or not string.find(c, '^%-?%d+,%-?%d+,%-?%d+,%-?%d+,%-?%d+,%-?%d+$') or
        string.find(c, '%f[%d]0%d') or string.find(c, '-0', 1, true) or
        string.find(c, '%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d') then
        local names = {'leased', 'skipped', 'done', 'dead', 'duplicates', 'copies'}
        for i = 1, #names do
            num(k, names[i], v[7 + i], 0)
        end
    end
    s.start = num(k, 'start', v[1], false)
    s.stop = num(k, 'end', v[2], false)
    s.max_item_bytes = num(k, 'max_item_bytes', v[3], 1048576, 1)
    s.token = num(k, 'token', v[7], 0)
    s.more = true
end

-- Every field the partition scripts read (ack.lua, ackclaim.lua), checked; nil when the
-- partition does not exist.
local function part_fields()
    local s = claim_fields()
    if s then
        part_more(s)
    end
    return s
end

-- The dead-letter record of an item refused without a delivery (README "Keys", dead).
local function refusal(why, now)
    return '{"error":' .. cjson.encode(why) .. ',"attempt":0,"at":' .. now .. '}'
end
