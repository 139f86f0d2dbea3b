-- @include shared
-- @include part
-- @include fields
-- @include claim
-- claim.lua: lease up to N items of one partition to a worker. Recovers expired leases and
-- due retries first, so a dead coordinator never stalls the fleet. Items already in the
-- done record are dropped, not handed out (docs/ARCHITECTURE.md, invariant 2).
--
-- KEYS:    the partition keys (see common/shared.def).
-- ARGV[1]  worker id
-- ARGV[2]  most items to lease (capped at BATCH_MAX; below 1 leases nothing)
-- Returns: {now_ms, token, deadline_ms, count, lease, k, index1, attempt1, ..., indexk,
--          attemptk, payload1, ..., payloadcount}: lease is the lease record as stored in
--          owner, {"worker":...,"ids":[id1, ..., idcount]} (JSON: one string, however many
--          items); the k pairs give the attempt of the items past their first (index into
--          ids, from 1), every other item is on attempt 1; the payloads come only for jobs
--          whose items carry them. count is 0 (and nothing follows it) when nothing is pending
--          (or the partition is done). One fencing token covers every lease of this call.
--          During a fleet cool-down (cooldown.lua) nothing is leased and the reply is
--          {now_ms, -1, cooldown_until_ms, 0}.
--          An id that cannot be handled (longer than max_item_bytes; in a range partition, not
--          a canonical whole number or outside start..end) is not handed out: it is dead with
--          the reason (counted in 'dead'), and the rest of the batch is leased.
-- Errors:  DRV_NOJOB, DRV_PAUSED, DRV_CANCELLED; DRV_CORRUPT KEY: WHAT (a key of the wrong
--          type, a field that is not a number, a lease record that is not JSON), with Redis
--          left as it was.
local s = claim_fields()
if not s then
    return nojob()
end
local out, err = claim_items(s, ARGV[1], ARGV[2], {})
if not out then
    return redis.error_reply('DRV_' .. err .. ' ' .. KEYS[K_STATE])
end
return out
