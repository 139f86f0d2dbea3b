-- ack.lua: record items as processed. The done set is the idempotency record: an item is
-- marked done once, whoever acks it.
--
-- KEYS:    the partition keys (see _lib.lua).
-- ARGV[1]  n, the number of items (at most 1000)
-- ARGV:    then n pairs id, token; then, for jobs that keep responses, n responses, kept in
--          the results hash for the items this call marks done
-- Returns: {acked, duplicates, unknown}
--   acked       newly marked done
--   duplicates  acks from a worker that no longer held the lease (it expired, so the item was
--               or will be handed out again): the handler may have run twice. Counted once
--               per late ack; the item is still marked done once.
--   unknown     ids this partition never handed out; ignored.
-- Errors:  DRV_NOJOB.
if redis.call('EXISTS', KEYS[K_STATE]) == 0 then
    return nojob()
end
local n = tonumber(ARGV[1]) or 0
if n < 1 then
    return {0, 0, 0}
end
local ids, tokens, resp = {}, {}, {}
for i = 1, n do
    ids[i] = ARGV[2 * i]
    tokens[i] = ARGV[2 * i + 1]
    resp[i] = ARGV[2 * n + 1 + i]
end
local owners = redis.call('HMGET', KEYS[K_OWNER], unpack(ids))
local isdone = done_has(ids)
local tries = redis.call('HMGET', KEYS[K_TRIES], unpack(ids))
local acked, dups, unknown = {}, 0, 0
local kept = {}
local unlease = {}
local seen = {}
for i, id in ipairs(ids) do
    local holder = holds(owners[i], tokens[i])
    if holder then
        unlease[#unlease + 1] = id
    end
    if isdone[i] == 1 or seen[id] then
        -- Already done: a late ack from a worker whose lease was lost counts a duplicate; the
        -- current holder's ack after that only releases its lease.
        if not holder then
            dups = dups + 1
        end
    elseif not holder and not tries[i] then
        unknown = unknown + 1
    else
        if not holder then
            dups = dups + 1
        end
        acked[#acked + 1] = id
        seen[id] = true
        if resp[i] then
            kept[#kept + 1] = id
            kept[#kept + 1] = resp[i]
        end
    end
end
if #unlease > 0 then
    redis.call('ZREM', KEYS[K_LEASED], unpack(unlease))
    redis.call('HDEL', KEYS[K_OWNER], unpack(unlease))
end
if #acked > 0 then
    done_add(acked)
    redis.call('HDEL', KEYS[K_TRIES], unpack(acked))
    redis.call('HDEL', KEYS[K_ERRORS], unpack(acked))
    redis.call('HDEL', KEYS[K_ITEMS], unpack(acked))
    -- A late ack can beat a scheduled retry or a dead-lettering of the expired lease: the
    -- handler did succeed, so the item leaves those places.
    redis.call('ZREM', KEYS[K_RETRY], unpack(acked))
    local undead = redis.call('HDEL', KEYS[K_DEAD], unpack(acked))
    if undead > 0 then
        redis.call('HINCRBY', KEYS[K_STATE], 'dead', -undead)
    end
    redis.call('HINCRBY', KEYS[K_STATE], 'done', #acked)
end
if #kept > 0 then
    redis.call('HSET', KEYS[K_RESULTS], unpack(kept))
end
if dups > 0 then
    redis.call('HINCRBY', KEYS[K_STATE], 'duplicates', dups)
end
return {#acked, dups, unknown}
