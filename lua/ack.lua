-- @include part
-- @include fields
-- @include ack
-- ack.lua: record items as processed in the done record (the idempotency record): an item is
-- marked done once, whoever acks it.
--
-- KEYS:    the partition keys (see common/shared.def).
-- ARGV[1]  n, the number of items (at most BATCH_MAX, common/shared.def)
-- ARGV:    then the n ids; r; r runs of a token and a count (the next count ids were leased
--          under that token); then, for jobs that keep responses, n responses, kept in the
--          results hash for the items this call marks done
-- Returns: {acked, duplicates, unknown}
--   acked       newly marked done
--   duplicates  acks from a worker that no longer held the lease (it expired, so the item was
--               or will be handed out again): the handler may have run twice. Counted once
--               per late ack; the item is still marked done once.
--   unknown     ids this partition never handed out; ignored.
-- Errors:  DRV_NOJOB; DRV_CORRUPT KEY: WHAT (a key of the wrong type, a field that is not a
--          number, a lease record that is not JSON), with Redis left as it was.
if not part_fields() then
    return nojob()
end
local ids, tokens, resp = ack_args(1)
if #ids == 0 then
    return {0, 0, 0}
end
local acked, dups, unknown = ack_items(ids, tokens, resp)
return {acked, dups, unknown}
