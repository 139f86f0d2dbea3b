-- _lib.lua: helpers shared by every drover script. The build prepends this file to each
-- lua/NAME.lua, so each script stays one atomic EVALSHA with no cross-script calls.
--
-- Partition scripts take the same KEYS, all with one hash tag {JOB.P} (docs/ARCHITECTURE.md,
-- invariant 4):
--   KEYS[1] state    HASH  config, cursor and counters of the partition
--   KEYS[2] pending  LIST  ids waiting
--   KEYS[3] leased   ZSET  lease token -> deadline (ms, Redis TIME): one lease per claim
--   KEYS[4] owner    HASH  lease token -> {"worker":"WORKER","ids":[ids still held]} (JSON)
--   KEYS[5] done     processed ids: a STRING bitmap for range sources (bit id - done_base,
--                    done_base in the state hash); for the others, small HASHes KEYS[5]:B
--                    (done_buckets in the state hash); read and written only through
--                    done_has / done_add below
--   KEYS[6] tries    HASH  id -> deliveries so far, written from the second delivery on: an
--                          id without an entry that is leased is on its first delivery
--   KEYS[7] retry    ZSET  id -> not-before time (ms, Redis TIME)
--   KEYS[8] dead     HASH  id -> last error (JSON)
--   KEYS[9] errors   HASH  id -> last error (JSON) while the id is still retrying
--   KEYS[10] items   HASH  id -> payload, for sources whose item is more than its id
--   KEYS[11] results HASH  id -> the handler's response, for jobs that keep it
-- Errors are raised as "DRV_<WORD> detail"; C matches the first word.

-- The scripts name the keys by these; the helpers below write the numbers instead. Every
-- script call runs this file and makes each helper anew, and a local a helper uses costs at
-- each making (Lua 5.1 looks it up in a list as long as the locals helpers use above it), so
-- helpers capture as few locals as they can.
local K_STATE, K_PENDING, K_LEASED, K_OWNER, K_DONE = 1, 2, 3, 4, 5
local K_TRIES, K_RETRY, K_DEAD, K_ERRORS, K_ITEMS, K_RESULTS = 6, 7, 8, 9, 10, 11

-- Most members one script call handles; keeps unpack() far below Lua's stack limit.
local BATCH_MAX = 1000

-- Checks (README "Faults and bad input"). A script reads and checks what it needs before its first
-- write, so an error leaves Redis as it was: a key of the wrong type, a field that is not a
-- number, a lease record that is not JSON is refused as DRV_CORRUPT KEY: WHAT (C maps it to
-- DRV_ECORRUPT), never half applied. Reads go through rd, which names the key Redis refused;
-- a key written without being read first is checked with has_type (one cheap command, only
-- on the paths that write it).
local function corrupt(key, what)
    error({err = 'DRV_CORRUPT ' .. key .. ': ' .. what})
end

-- Raises again an error pcall caught, as it was (Redis 7.0 hands pcall the error's text: it
-- goes back in a table, so the reply is that text, not a Lua error with a position).
local function reraise(e)
    if type(e) == 'table' then
        error(e)
    end
    error({err = e})
end

-- redis.call(cmd, key, ...), with a refusal for the key's type raised as DRV_CORRUPT.
local function rd(cmd, key, ...)
    -- redis.pcall costs less than pcall(redis.call): an error comes back as {err = TEXT}.
    local r = redis.pcall(cmd, key, ...)
    if type(r) == 'table' and r.err then
        if string.find(r.err, 'WRONGTYPE', 1, true) then
            corrupt(key, 'WRONGTYPE')
        end
        error(r)
    end
    return r
end

-- The size of key (0 when absent), checking that it is of kind 'hash', 'zset' or 'list', with
-- commands the worker's ACL allows: a caller skips work on an empty key.
local checked = {}
local function size_of(key, kind)
    checked[key] = true
    -- (No table of the commands: a table made here would be made by every script call.)
    return rd(kind == 'hash' and 'HLEN' or kind == 'zset' and 'ZCARD' or 'LLEN', key)
end

-- Checks that key is absent or of kind (as size_of; once a call: a key keeps its type).
local function has_type(key, kind)
    if not checked[key] then
        size_of(key, kind)
    end
end

-- The whole number in field f of key (v as HMGET read it), or dflt when it is absent (dflt
-- nil: the field is required). Refuses anything else, or a number below min.
local function num(key, f, v, dflt, min)
    if not v then
        if dflt == nil then
            corrupt(key, f .. ' is missing')
        end
        return dflt
    end
    -- Only the form Redis's own integer parsing takes (HINCRBY refuses 05, 1e3, 0x10, " 5",
    -- -0, 5.0, which tonumber would take): a field it refuses would fail after other writes.
    local n = (v == '0' or string.find(v, '^%-?[1-9]%d*$')) and tonumber(v)
    if not n or n < -9007199254740992 or n > 9007199254740992 or (min and n < min) then
        corrupt(key, f .. ' is not a whole number' .. (min and ' >= ' .. min or '') .. ': ' ..
            string.sub(v, 1, 40))
    end
    return n
end

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
local DONE_LOAD = 48
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

-- Redis owns the clock (docs/ARCHITECTURE.md, invariant 5): milliseconds from TIME, never from
-- a client.
local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Reads the partition's state hash; raises DRV_NOJOB when the partition does not exist.
local function part_state(...)
    local s = rd('HMGET', KEYS[1], ...)
    if not s[1] then
        return nil
    end
    return s
end

local function nojob()
    return redis.error_reply('DRV_NOJOB ' .. KEYS[1])
end

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
                -- Done is final (docs/ARCHITECTURE.md, invariant 2): nothing to hand out
                -- again, nothing failed.
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
