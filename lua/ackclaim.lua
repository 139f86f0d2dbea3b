-- @include shared
-- @include core
-- @include part
-- @include fields
-- @include ack
-- @include claim
-- ackclaim.lua: a worker's results for a partition and its next claim from it in one call
-- (one round trip per batch): ack.lua's ack, then claim.lua's claim, atomically.
--
-- KEYS:    the partition keys (see common/shared.def).
-- ARGV[1]  worker id
-- ARGV[2]  most items to lease (as claim.lua: capped at BATCH_MAX; below 1 leases nothing)
-- ARGV[3]  n, the number of items acked (0 to BATCH_MAX)
-- ARGV:    then the n ids, the runs of tokens and, for jobs that keep responses, n responses
--          (as ack.lua from its ARGV[1])
-- Returns: {acked, duplicates, unknown, status, now_ms, token, deadline_ms, count, lease,
--          ...}: the first three as ack.lua returns them, then status 0 and claim.lua's
--          reply; or status 1 (paused) or 2 (cancelled) and nothing more: the acks are
--          recorded either way (results of a paused or cancelled job are kept, as ack.lua
--          keeps them), only the claim is refused.
-- Errors:  DRV_NOJOB (nothing recorded); DRV_CORRUPT KEY: WHAT as claim.lua, nothing
--          recorded: the keys the claim reads after the acks' writes are checked before them
--          (the state hash, leased, pending, and those the acks read), except a done bucket
--          only the claim reads: then the acks are recorded and the claim is not.
local s = part_fields()
if not s then
    return nojob()
end
local ids, tokens, resp = ack_args(3)
if #ids > 0 then
    has_type(KEYS[K_LEASED], 'zset')
    has_type(KEYS[K_PENDING], 'list')
end
local acked, dups, unknown = ack_items(ids, tokens, resp)
local out, err = claim_items(s, ARGV[1], ARGV[2], {acked, dups, unknown, 0})
if out then
    return out
end
local status = {PAUSED = 1, CANCELLED = 2}
return {acked, dups, unknown, status[err]}
