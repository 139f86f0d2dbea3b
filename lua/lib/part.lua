-- part.lua: a partition script's first read: its state hash, or DRV_NOJOB without one.
-- @include core

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
