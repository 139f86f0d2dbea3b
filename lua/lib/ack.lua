-- ack.lua: acks read from ARGV and recorded (ack.lua, ackclaim.lua).
-- @include core
-- @include done
-- @include lease
-- @include fields

-- The acks in ARGV from index f on (ack.lua, ackclaim.lua): n; n ids; r; r runs of a token
-- and a count (the next count ids were leased under that token: an ack mostly covers one
-- claim, so one run instead of a token per id); then, for jobs that keep responses, n
-- responses. Returns ids, tokens (by index; nil past the runs: held by no lease) and resp.
local function ack_args(f)
    local n = math.max(tonumber(ARGV[f]) or 0, 0)
    local ids, tokens, resp = {}, {}, {}
    for i = 1, n do
        ids[i] = ARGV[f + i]
    end
    local r = tonumber(ARGV[f + n + 1]) or 0
    local i = 0
    for x = 1, r do
        local t = ARGV[f + n + 2 * x]
        for _ = 1, tonumber(ARGV[f + n + 2 * x + 1]) or 0 do
            i = i + 1
            tokens[i] = t
        end
    end
    local p = f + n + 2 * r + 1
    for k = 1, n do
        resp[k] = ARGV[p + k]
    end
    return ids, tokens, resp
end

-- Marks items done (ack.lua, ackclaim.lua). ids[i] was acked with tokens[i]; resp[i] (nil:
-- none) is kept in the results hash when this call marks the item done. Returns acked (newly
-- marked done), duplicates (acks from a worker that no longer held the lease: the handler may
-- have run twice; counted once per late ack, the item is marked done once) and unknown (ids
-- this partition never handed out; ignored). A held id done already (another delivery of it
-- was acked first: a copy of an id the source lists twice, leased while the first was, or a
-- re-delivery after a late ack) adds to the `copies` counter once, so the coordinator's final
-- check finds every item fed settled. A held id a range partition's done record
-- cannot hold (leased by a drover that did not check ids at claim) is dead with the reason.
-- Reads and checks everything first; the done record is its first write.
local function ack_items(ids, tokens, resp)
    local n = #ids
    if n == 0 then
        return 0, 0, 0
    end
    local base = done_base()
    -- Whose lease holds each id (the ids of one ack mostly share a token).
    local held, lt, ll = {}, nil, false
    local all, trusted, idx, others = {}, {}, {}, {}
    for i = 1, n do
        local t = tokens[i]
        if t ~= lt then
            lt, ll = t, lease_get(t)
        end
        if ll and ll.at[ids[i]] then
            held[i] = true
            -- A held id came from this partition's pending list: its offset is trusted.
            all[#all + 1] = ids[i]
            trusted[#trusted + 1] = true
            idx[#idx + 1] = i
        else
            others[#others + 1] = i
        end
    end
    local nheld = #all
    -- The others acked without the lease (late, after it expired; or never handed out): a
    -- duplicate when the item is done (now or before) or was handed out (it has a tries entry
    -- once its first lease ended), else unknown; each one done now counts as acked too.
    local dups, unknown = 0, 0
    if #others > 0 then
        local oids = {}
        for k = 1, #others do
            oids[k] = ids[others[k]]
        end
        local isdone = done_has(oids)
        local ask = {}
        for k = 1, #oids do
            if isdone[k] ~= 1 then
                ask[#ask + 1] = oids[k]
            end
        end
        local delivered = {}
        if #ask > 0 then
            local t = rd('HMGET', KEYS[6], unpack(ask))
            for k, id in ipairs(ask) do
                delivered[id] = t[k]
            end
        end
        for k = 1, #oids do
            local id = oids[k]
            -- (An id the bitmap cannot hold was never handed out: unknown, never marked.)
            local inside = not base or done_offset(id, base, false)
            if isdone[k] == 1 or (delivered[id] and inside) then
                dups = dups + 1
                if isdone[k] ~= 1 then
                    all[#all + 1] = id
                    trusted[#trusted + 1] = false
                    idx[#idx + 1] = others[k]
                end
            else
                unknown = unknown + 1
            end
        end
    end
    for i = 1, n do
        if held[i] then
            lease_drop(tokens[i], ids[i])
        end
    end
    -- The keys written below that nothing above read: their sizes, with their types checked
    -- (an empty one is skipped: from Lua every argument costs an allocation).
    local size = {}
    if #all > 0 then
        for _, k in ipairs({6, 9, 10, 8}) do
            size[k] = size_of(KEYS[k], 'hash')
        end
        size[7] = size_of(KEYS[7], 'zset')
        if next(resp) then
            has_type(KEYS[11], 'hash')
        end
    end
    lease_check()

    local fresh = {}
    if #all == nheld then
        trusted = true -- held ids only (the common case): the fast path of done_offsets
    end
    local _, f, outside = done_add(all, trusted)
    outside = outside or {}
    local copies, seen = 0, nil
    for k = 1, #idx do
        fresh[idx[k]] = f[k] == 1
        if k <= nheld and f[k] ~= 1 then
            -- (Not an id the bitmap cannot hold, dead below; not one lease's entry acked twice
            -- in this call: keyed by token and id.)
            if not seen then
                seen = {}
                for _, id in ipairs(outside) do
                    seen[id] = true
                end
                for j = 1, nheld do
                    if f[j] == 1 then
                        seen[tokens[idx[j]] .. ' ' .. all[j]] = true
                    end
                end
            end
            local key = tokens[idx[k]] .. ' ' .. all[k]
            if not seen[all[k]] and not seen[key] then
                seen[key] = true
                copies = copies + 1
            end
        end
    end
    local acked, kept = {}, {}
    for i = 1, n do
        if fresh[i] then
            acked[#acked + 1] = ids[i]
            if resp[i] then
                kept[#kept + 1] = ids[i]
                kept[#kept + 1] = resp[i]
            end
        end
    end
    lease_flush()
    local function del(cmd, k, list)
        if #list > 0 and size[k] > 0 then
            return redis.call(cmd, KEYS[k], unpack(list))
        end
        return 0
    end
    local undead = 0
    if #acked > 0 then
        del('HDEL', 6, acked)
        del('HDEL', 9, acked)
        del('HDEL', 10, acked)
        -- A late ack can beat a scheduled retry or a dead-lettering of the expired lease: the
        -- handler did succeed, so the item leaves those places.
        del('ZREM', 7, acked)
        undead = del('HDEL', 8, acked)
        redis.call('HINCRBY', KEYS[1], 'done', #acked)
    end
    if #outside > 0 then
        local rec, now = {}, now_ms()
        for _, id in ipairs(outside) do
            rec[#rec + 1] = id
            rec[#rec + 1] = refusal('id outside the partition', now)
        end
        undead = undead - redis.call('HSET', KEYS[8], unpack(rec))
    end
    if undead ~= 0 then
        redis.call('HINCRBY', KEYS[1], 'dead', -undead)
    end
    if #kept > 0 then
        redis.call('HSET', KEYS[11], unpack(kept))
    end
    if dups > 0 then
        redis.call('HINCRBY', KEYS[1], 'duplicates', dups)
    end
    if copies > 0 then
        redis.call('HINCRBY', KEYS[1], 'copies', copies)
    end
    return #acked, dups, unknown
end
