-- @include shared
-- @include core

-- The done record (docs/ARCHITECTURE.md, invariant 2). Every script reads and writes it through
-- done_has and done_add, so its representation lives here. Range partitions carry `done_base`
-- (their first id) in the state hash and keep a bitmap: bit id - done_base is 1 once id is done, so
-- a dense range costs an eighth of a byte per id instead of a SET member's ~50. A bitmap offset
-- stays below 2^32 (a Redis string's limit): submit refuses wider partitions.
--
-- Other sources carry `done_buckets` (N) and keep their ids in N small HASHes, KEYS[5]
-- .. ':' .. B for B in 0..N-1, each field an id (value ''). A HASH of at most 128 fields of up
-- to 64 bytes is one listpack (hash-max-listpack-entries/-value), where an id costs its bytes
-- plus 4 (about 10 with its share of the bucket's key and allocation), and a SET member a
-- dictEntry and a rounded-up string (88 bytes for a 36-character id). The bucket of an id is linear hashing over h = the first 32 bits of its
-- SHA-1: B = h mod 2T, or h mod T when that is N or more, for T the power of two with T <= N <
-- 2T. When the ids reach DONE_LOAD per bucket, bucket N - T splits into itself and a new
-- bucket N (the ids with h mod 2T = N move), so buckets stay near DONE_LOAD ids (at most twice
-- that before their split) however many ids the job has. `done_ids` in the state hash counts
-- the ids recorded. The bucket keys share the partition's hash tag, so a script reaches them
-- in a cluster too, though it cannot declare them. Partitions of jobs from drover before
-- buckets have neither field and keep a SET at KEYS[5]; it still works.
local DONE_BITS = 4294967296
local done_read, done_base_v, done_nb, done_ids = false, nil, nil, 0

-- Takes the layout from the state hash's done_base, done_buckets and done_ids (as HMGET read
-- them: a script that reads the state hash anyway passes them along, saving a call).
local function done_set(base, nb, ids)
    done_base_v = num(KEYS[1], 'done_base', base, false) or nil
    done_nb = num(KEYS[1], 'done_buckets', nb, false, 1) or nil
    done_ids = num(KEYS[1], 'done_ids', ids, 0, 0)
    done_read = true
end

local function done_layout()
    if not done_read then
        local s = rd('HMGET', KEYS[1], 'done_base', 'done_buckets', 'done_ids')
        done_set(s[1], s[2], s[3])
    end
end

-- done_base of this partition, or nil when its done record is not a bitmap.
local function done_base()
    done_layout()
    return done_base_v
end

-- The helpers of the done buckets, made on a script call's first use of them: a range
-- partition never uses them, and each helper costs every script call that makes it.
local bucket_fns
local function buckets()
    if bucket_fns then
        return bucket_fns
    end
    -- The text of an error raised by redis.call (a table in Redis 7, a string before).
    local function err_text(e)
        if type(e) == 'table' then
            return e.err or ''
        end
        return tostring(e)
    end

    -- 2T for N buckets: the power of two with T <= N < 2T.
    local function bucket_top(nb)
        local top = 2
        while top <= nb do
            top = top * 2
        end
        return top
    end

    -- h of an id: the first 32 bits of its SHA-1.
    local function id_hash(id)
        return tonumber(string.sub(redis.sha1hex(id), 1, 8), 16)
    end

    -- The bucket key of id among nb buckets (top = bucket_top(nb)).
    local function bucket_key(id, nb, top)
        local b = id_hash(id) % top
        if b >= nb then
            b = b - top / 2
        end
        return KEYS[5] .. ':' .. b
    end

    -- Adds bucket nb to nb buckets: the ids of bucket nb - T whose h mod 2T is nb move to it.
    -- Both are written whole (DEL and HSET: a listpack built in one pass, where HDEL of half its
    -- fields would scan it once per field).
    local function bucket_split(nb)
        local top = bucket_top(nb)
        local src, dst = KEYS[5] .. ':' .. (nb - top / 2), KEYS[5] .. ':' .. nb
        local ids = rd('HKEYS', src)
        local stay, move = {}, {}
        for i = 1, #ids do
            local t = stay
            if id_hash(ids[i]) % top == nb then
                t = move
            end
            t[#t + 1] = ids[i]
            t[#t + 1] = ''
        end
        if #move == 0 then
            return
        end
        has_type(dst, 'hash')
        redis.call('DEL', src)
        for _, w in ipairs({{src, stay}, {dst, move}}) do
            local t = w[2]
            for k = 1, #t, 2 * BATCH_MAX do
                redis.call('HSET', w[1], unpack(t, k, math.min(k + 2 * BATCH_MAX - 1, #t)))
            end
        end
    end

    -- Flags for ids (done_has) from the buckets, one HEXISTS each.
    local function bucket_has(ids)
        local nb, flags = done_nb, {}
        local top = bucket_top(nb)
        for i = 1, #ids do
            flags[i] = rd('HEXISTS', bucket_key(ids[i], nb, top), ids[i])
        end
        return flags
    end

    -- done_add for buckets: the splits the new count may ask for first (a bucket that passes 128
    -- fields turns into a hashtable for good, so none may take a batch before it splits), then one
    -- HSETNX per id (a repeated id finds the field its first copy set). Ids done already count
    -- as new for the splits, so a batch of them may split a bucket early: at most a batch's worth.
    local function bucket_add(ids)
        local nb, fresh, new = done_nb, {}, 0
        while done_ids + #ids > DONE_LOAD * nb do
            bucket_split(nb)
            nb = nb + 1
        end
        if nb ~= done_nb then
            redis.call('HSET', KEYS[1], 'done_buckets', nb)
            done_nb = nb
        end
        local top = bucket_top(nb)
        for i = 1, #ids do
            local key = bucket_key(ids[i], nb, top)
            local ok, r = pcall(redis.call, 'HSETNX', key, ids[i], '')
            if not ok then
                -- A bucket of another type: the ids this call added go again, so the done record
                -- is as it was (a split before stays: it moves ids, the record says the same).
                for k = i - 1, 1, -1 do
                    if fresh[k] == 1 then
                        redis.call('HDEL', bucket_key(ids[k], nb, top), ids[k])
                    end
                end
                if string.find(err_text(r), 'WRONGTYPE', 1, true) then
                    corrupt(key, 'WRONGTYPE')
                end
                reraise(r)
            end
            fresh[i] = r
            new = new + r
        end
        if new > 0 then
            done_ids = redis.call('HINCRBY', KEYS[1], 'done_ids', new)
        end
        return new, fresh
    end

    bucket_fns = {has = bucket_has, add = bucket_add}
    return bucket_fns
end

-- The bit offset of id in a bitmap starting at base, or false when id is not a whole number
-- in canonical form (no sign on 0, no leading zeros, at most 17 characters, so exact as a Lua
-- number) or falls outside 0..2^32-1: such an id was never fed to this partition. A trusted id
-- came out of this partition's own keys (popped from pending, held by a lease), where only
-- feed.lua's canonical ids go: the pattern test, a third of the cost, is skipped for it. The
-- pattern test's answers are memoised for the script call (a late ack reads the bits of its
-- ids, then sets them); a trusted id's offset is looked up once, so it is not stored.
local done_memo = {}
local function done_offset(id, base, trusted)
    local off = done_memo[id]
    if off ~= nil then
        return off
    end
    off = false
    if trusted or (#id <= 17 and (string.find(id, '^-?[1-9]%d*$') or id == '0')) then
        off = tonumber(id)
        if off then
            off = off - base
            if off < 0 or off >= DONE_BITS or off % 1 ~= 0 then
                off = false
            end
        end
    end
    if not trusted then
        done_memo[id] = off
    end
    return off
end

-- The helpers of the done bitmap (done_has, done_add), made on a script call's first use of
-- them, as the buckets' (a script that does not touch the done record makes none of them).
local bitmap_fns
local function bitmap()
    if not bitmap_fns then
        -- The bit offsets of ids (false for an id outside the bitmap) and the least and greatest of
        -- them (nil when none is inside). trusted: true for all ids, or a table of flags by index.
        local function done_offsets(ids, base, trusted)
            local offs, lo, hi = {}, nil, nil
            local all = trusted == true
            for i = 1, #ids do
                local off = done_offset(ids[i], base, all or (trusted and trusted[i]))
                offs[i] = off
                if off then
                    if not lo or off < lo then
                        lo = off
                    end
                    if not hi or off > hi then
                        hi = off
                    end
                end
            end
            return offs, lo, hi
        end

        -- The bytes b0..b1 of the bitmap as numbers (0 past its end), from one GETRANGE;
        -- string.byte in chunks, as each call's results go on Lua's C stack.
        local function done_bytes(b0, b1)
            local span = rd('GETRANGE', KEYS[5], b0, b1)
            local bytes, n = {}, b1 - b0 + 1
            for k = 1, math.min(#span, n), 4096 do
                local chunk = {string.byte(span, k, math.min(k + 4095, #span, n))}
                for j = 1, #chunk do
                    bytes[k + j - 1] = chunk[j]
                end
            end
            for k = #span + 1, n do
                bytes[k] = 0
            end
            return bytes
        end

        -- A batch whose ids lie within this many bytes (plus 64) per id of the bitmap is read and
        -- written as one byte span (GETRANGE, SETRANGE: two arguments, whatever the batch); a
        -- sparser one (retries spread over a wide partition) goes offset by offset through
        -- BITFIELD. Bit offset 0 is the high bit of byte 0, as SETBIT and BITFIELD number them.
        local SPAN_PER_ID = 16

        local function span_ok(lo, hi, n)
            return (hi - hi % 8) / 8 - (lo - lo % 8) / 8 <= 64 + SPAN_PER_ID * n
        end

        -- BIT[r]: the mask of bit r of a byte, counted from its high bit.
        local BIT = {[0] = 128, 64, 32, 16, 8, 4, 2, 1}

        -- BITFIELD arguments OP u1 OFFSET [VALUE] for the offsets given.
        local function bitfield_args(offs, op, value)
            local args = {}
            for i = 1, #offs do
                if offs[i] then
                    args[#args + 1] = op
                    args[#args + 1] = 'u1'
                    args[#args + 1] = string.format('%d', offs[i])
                    if value then
                        args[#args + 1] = value
                    end
                end
            end
            return args
        end

        bitmap_fns = {done_offsets, done_bytes, span_ok, bitfield_args, BIT}
    end
    local t = bitmap_fns
    return t[1], t[2], t[3], t[4], t[5]
end

-- Flags (1 done, 0 not) for ids, like SMISMEMBER. ids: at most BATCH_MAX; trusted as for
-- done_offsets; pre: {offs, lo, hi} as done_offsets returns them, when the caller has them.
local function done_has(ids, trusted, pre)
    if #ids == 0 then
        return {}
    end
    local base = done_base()
    if not base then
        if done_nb then
            return buckets().has(ids)
        end
        return rd('SMISMEMBER', KEYS[5], unpack(ids))
    end
    local done_offsets, done_bytes, span_ok, bitfield_args, BIT = bitmap()
    local offs, lo, hi
    if pre then
        offs, lo, hi = pre[1], pre[2], pre[3]
    else
        offs, lo, hi = done_offsets(ids, base, trusted)
    end
    local flags = {}
    for i = 1, #ids do
        flags[i] = 0
    end
    if not lo then
        return flags
    end
    if span_ok(lo, hi, #ids) then
        -- Bit r of byte b is set when b mod 2m >= m, m = BIT[r]: arithmetic, no C calls.
        local b0 = (lo - lo % 8) / 8
        local bytes = done_bytes(b0, (hi - hi % 8) / 8)
        for i = 1, #ids do
            local off = offs[i]
            if off then
                local r = off % 8
                local m = BIT[r]
                if bytes[(off - r) / 8 - b0 + 1] % (m + m) >= m then
                    flags[i] = 1
                end
            end
        end
        return flags
    end
    local got = rd('BITFIELD_RO', KEYS[5], unpack(bitfield_args(offs, 'GET')))
    local k = 0
    for i = 1, #ids do
        if offs[i] then
            k = k + 1
            flags[i] = got[k]
        end
    end
    return flags
end

-- Marks ids done; returns how many were not done before (like SADD), a flag per id (1:
-- this call marked it; 0: it was done already, or came earlier in ids, or lies outside the
-- bitmap) and the ids outside a range partition's bitmap (never marked: a lease taken before
-- claims refused such ids may hold one). ids: at most BATCH_MAX; trusted as for done_offsets.
local function done_add(ids, trusted)
    local fresh = {}
    if #ids == 0 then
        return 0, fresh
    end
    local base = done_base()
    if not base then
        if done_nb then
            return buckets().add(ids)
        end
        local had = rd('SMISMEMBER', KEYS[5], unpack(ids))
        local add, seen = {}, {}
        for i = 1, #ids do
            local id = ids[i]
            fresh[i] = 0
            if had[i] == 0 and not seen[id] then
                seen[id] = true
                add[#add + 1] = id
                fresh[i] = 1
            end
        end
        if #add > 0 then
            redis.call('SADD', KEYS[5], unpack(add))
        end
        return #add, fresh
    end
    local done_offsets, done_bytes, span_ok, bitfield_args, BIT = bitmap()
    local offs, lo, hi = done_offsets(ids, base, trusted)
    local outside = {}
    for i = 1, #ids do
        fresh[i] = 0
        if not offs[i] then
            outside[#outside + 1] = ids[i]
        end
    end
    if not lo then
        return 0, fresh, outside
    end
    local new = 0
    if span_ok(lo, hi, #ids) then
        local b0, b1 = (lo - lo % 8) / 8, (hi - hi % 8) / 8
        local bytes = done_bytes(b0, b1)
        for i = 1, #ids do
            local off = offs[i]
            if off then
                local r = off % 8
                local k = (off - r) / 8 - b0 + 1
                local m = BIT[r]
                if bytes[k] % (m + m) < m then
                    bytes[k] = bytes[k] + m
                    new = new + 1
                    fresh[i] = 1
                end
            end
        end
        if new > 0 then
            -- string.char in chunks: each call's arguments go on Lua's C stack.
            local parts = {}
            for k = 1, #bytes, 4096 do
                parts[#parts + 1] = string.char(unpack(bytes, k, math.min(k + 4095, #bytes)))
            end
            redis.call('SETRANGE', KEYS[5], b0, table.concat(parts))
        end
        return new, fresh, outside
    end
    -- BITFIELD runs its SETs in order: a repeated id sees the bit its first copy set.
    local old = rd('BITFIELD', KEYS[5], unpack(bitfield_args(offs, 'SET', 1)))
    local k = 0
    for i = 1, #ids do
        if offs[i] then
            k = k + 1
            fresh[i] = 1 - old[k]
            new = new + fresh[i]
        end
    end
    return new, fresh, outside
end
