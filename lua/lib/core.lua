-- core.lua: what most scripts use: reads that name the key Redis refused, type and number
-- checks, and Redis's clock. Errors are raised as "DRV_<WORD> detail"; C matches the first word.
--
-- Each script is its @include lines' files followed by the script (cmake/embed_lua.cmake), so
-- it stays one atomic EVALSHA with no cross-script calls. Every script call runs those files
-- and makes each helper anew, and a local a helper uses costs at each making (Lua 5.1 looks it
-- up in a list as long as the locals helpers use above it), so helpers capture as few locals
-- as they can: they write the key numbers (KEYS[1]) rather than shared's K_* names.

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

-- Redis owns the clock (docs/ARCHITECTURE.md, invariant 5): milliseconds from TIME, never from a
-- client.
local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
