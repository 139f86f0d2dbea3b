-- ackclaim.lua: a worker's results for a partition and its next claim from it in one call
-- (one round trip per batch): ack.lua's ack, then claim.lua's claim, atomically.
--
-- KEYS:    the partition keys (see _lib.lua).
-- ARGV[1]  worker id
-- ARGV[2]  most items to lease (as claim.lua: capped at 1000; below 1 leases nothing)
-- ARGV[3]  n, the number of items acked (0 to 1000)
-- ARGV:    then the n ids, the runs of tokens and, for jobs that keep responses, n responses
--          (as ack.lua from its ARGV[1])
-- Returns: {acked, duplicates, unknown, status, now_ms, token, deadline_ms, count, lease,
--          ...}: the first three as ack.lua returns them, then status 0 and claim.lua's
--          reply; or status 1 (paused) or 2 (cancelled) and nothing more: the acks are
--          recorded either way (results of a paused or cancelled job are kept, as ack.lua
--          keeps them), only the claim is refused.
-- Errors:  DRV_NOJOB (nothing recorded).
if redis.call('EXISTS', KEYS[K_STATE]) == 0 then
    return nojob()
end
local ids, tokens, resp = ack_args(3)
local acked, dups, unknown = ack_items(ids, tokens, resp)
local out, err = claim_items(ARGV[1], ARGV[2], {acked, dups, unknown, 0})
if out then
    return out
end
local status = {PAUSED = 1, CANCELLED = 2}
if not status[err] then
    -- The state hash lost its 'state' field: as claim.lua, no such partition.
    return nojob()
end
return {acked, dups, unknown, status[err]}
