#!/usr/bin/env bash
# Rebalancing (README "Rebalancing"): a drained partition makes the coordinator split the rest
# of a partition with much left into a new one; workers take the new partition up; nothing is
# lost or fed twice. Then the two states a coordinator killed mid-split leaves (after step 1,
# after step 2), built with redis-cli, are finished by a restarted coordinator, and a run with
# the coordinator SIGKILLed at random moments while it splits ends with the same checks.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

N=2000
seq 1 $N | sort >"$TMP/expected"

# end_check JOB: the done sets of all partitions together are the source, each id in exactly
# one; nothing pending, leased or retrying anywhere; fed == total.
end_check() {
    local j=$1 P p
    P=$(R HGET "drover:{$j}:job" partitions)
    all_done_ids "$j" "$P" >"$TMP/done.$j"
    [ -z "$(uniq -d "$TMP/done.$j")" ] || fail "$j: ids in more than one done set"
    cmp -s "$TMP/done.$j" "$TMP/expected" || fail "$j: the done sets differ from the source \
($(wc -l <"$TMP/done.$j") ids, $N expected)"
    for p in $(seq 0 $((P - 1))); do
        [ "$(R LLEN "drover:{$j.$p}:pending")" -eq 0 ] || fail "$j: partition $p has pending items"
        [ "$(R ZCARD "drover:{$j.$p}:leased")" -eq 0 ] || fail "$j: partition $p has leased items"
        [ "$(R ZCARD "drover:{$j.$p}:retry")" -eq 0 ] || fail "$j: partition $p has retries"
    done
    [ "$(R EXISTS "drover:{$j.$P}:state")" -eq 0 ] || fail "$j: a partition beyond the count is left"
    local json
    json=$("$DROVER" status "$j" --json)
    [ "$(echo "$json" | json_num fed)" -eq $N ] || fail "$j: fed is not $N: $json"
    [ "$(echo "$json" | json_num total)" -eq $N ] || fail "$j: total is not $N: $json"
}

# finished J P FROM TO: partition P (ids FROM..TO) as an earlier run that processed all of it
# left it: every id fed and done (bits FROM - done_base .. TO - done_base), the cursor past the
# end, exhausted.
finished() {
    R EVAL "local b = tonumber(redis.call('HGET', KEYS[1], 'done_base'))
        for id = tonumber(ARGV[1]), tonumber(ARGV[2]) do redis.call('SETBIT', KEYS[2], id - b, 1) end" \
        2 "drover:{$1.$2}:state" "drover:{$1.$2}:done" "$3" "$4" >/dev/null
    R HSET "drover:{$1.$2}:state" cursor $(($4 + 1)) exhausted 1 fed $(($4 - $3 + 1)) \
        done $(($4 - $3 + 1)) >/dev/null
}

# ---- 1. a natural split ------------------------------------------------------------------------
# Partition 1 (1001..2000) was processed by an earlier run: it is drained from the start. Partition 0's ids are slow (20 ms each). The worker
# runs commands with execvp, hence the explicit sh -c.
J=rb
"$DROVER" submit --id $J --range 1..$N --partitions 2 --window 100 --quiet
finished $J 1 1001 2000
bg coord "$DROVER" run $J --tick-ms 10
coord=$LAST_PID
bg worker "$WORKER" --job $J --concurrency 8 --exit-when-done --stats-ms 0 --no-stdin -- \
    sh -c 'if [ "$1" -le 1000 ]; then sleep 0.02; fi; echo "$1" >>"$2"' _ {id} "$TMP/seen"
worker=$LAST_PID
wait_exit 120 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "the coordinator exited $EXIT_CODE"
wait_exit 30 "$worker"
[ "$EXIT_CODE" -eq 0 ] || fail "the worker exited $EXIT_CODE"
grep -q "job $J: split partition 0 at [0-9]*: partition 2 takes [0-9]*\.\.1000" "$TMP/coord.log" ||
    fail "no split of partition 0 logged"
P=$(R HGET "drover:{$J}:job" partitions)
[ "$P" -ge 3 ] || fail "the partition count did not grow ($P)"
[ "$(R HGET "drover:{$J}:job" splits)" -eq $((P - 2)) ] || fail "splits is not $((P - 2))"
[ "$(R HGET "drover:{$J.2}:state" split_from)" = 0 ] || fail "partition 2 has no split_from 0"
[ "$(done_count "$J" 2)" -gt 0 ] || fail "no worker took up partition 2"
"$DROVER" status $J | grep -q "(split from 0)" || fail "drover status shows no split partition"
end_check $J
# Only partition 0's ids ran, each once (no lease expired: nothing ran twice).
sort "$TMP/seen" | uniq -d | grep -q . && fail "an id ran twice"
[ "$(sort -u "$TMP/seen" | wc -l)" -eq 1000 ] || fail "not every id of 1..1000 ran once"
say "natural split: $P partitions, $(R HGET "drover:{$J}:job" splits) splits"

# ---- 2. killed after step 1, after step 2 ------------------------------------------------------
# copy_config J: the config fields of partition 0, for a hand-made partition 2.
new_part() { # new_part J START END
    local cfg
    cfg=$(R HMGET "drover:{$1.0}:state" lease_ms max_attempts backoff_ms backoff_max_ms payloads)
    set -- "$1" "$2" "$3" $cfg
    R HSET "drover:{$1.2}:state" state running lease_ms "$4" max_attempts "$5" backoff_ms "$6" \
        backoff_max_ms "$7" payloads "$8" start "$2" end "$3" cursor "$2" exhausted 0 \
        split_from 0 fed 0 done 0 failed 0 dead 0 duplicates 0 expired 0 >/dev/null
}
for step in 1 2; do
    J=cut$step
    "$DROVER" submit --id $J --range 1..$N --partitions 2 --window 100 --quiet
    # Partition 0 (1..1000) had fed 1..100 when the split began at 501.
    feed_ids=$(seq 1 100)
    R RPUSH "drover:{$J.0}:pending" $feed_ids >/dev/null
    R HSET "drover:{$J.0}:state" cursor 101 fed 100 >/dev/null
    new_part $J 501 1000
    [ $step = 2 ] && R HSET "drover:{$J.0}:state" end 500 cursor_max 501 >/dev/null
    bg coord$J "$DROVER" run $J --tick-ms 10
    c=$LAST_PID
    bg worker$J "$WORKER" --job $J --handler noop --concurrency 8 --exit-when-done --stats-ms 0
    w=$LAST_PID
    wait_exit 60 "$c"
    [ "$EXIT_CODE" -eq 0 ] || fail "$J: the coordinator exited $EXIT_CODE"
    wait_exit 30 "$w"
    if [ $step = 1 ]; then
        grep -q "undid an interrupted split of partition 0" "$TMP/coord$J.log" ||
            fail "$J: the half-made split was not undone"
    else
        grep -q "finished an interrupted split: partition 2 takes 501\.\.1000" \
            "$TMP/coord$J.log" || fail "$J: the half-made split was not finished"
        [ "$(R HGET "drover:{$J}:job" partitions)" -ge 3 ] || fail "$J: partitions not raised"
        # Later splits may move part of 501..1000 on again, so only its start is certain.
        [ "$(R HGET "drover:{$J.2}:state" start)" = 501 ] || fail "$J: partition 2 moved"
        [ "$(done_count "$J" 2)" -gt 0 ] || fail "$J: partition 2 did nothing"
    fi
    end_check $J
    say "$J: a split cut short after step $step was completed"
done

# ---- 3. the coordinator SIGKILLed at random moments while it splits ----------------------------
J=kill
"$DROVER" submit --id $J --range 1..$N --partitions 4 --window 20 --quiet
finished $J 3 1501 2000
bg workerk "$WORKER" --job $J --concurrency 4 --exit-when-done --stats-ms 0 --no-stdin -- \
    sh -c 'if [ "$1" -le 1500 ]; then sleep 0.01; fi' _ {id}
wk=$LAST_PID
for i in $(seq 1 8); do
    bg coordk$i "$DROVER" run $J --tick-ms 5 --lock-ttl-ms 200
    c=$LAST_PID
    sleep "0.$((RANDOM % 5 + 1))" # a random moment, not a synchronisation
    kill -9 "$c" 2>/dev/null || true
    wait "$c" 2>/dev/null || true
done
bg coordk "$DROVER" run $J --lock-ttl-ms 200
wait_exit 120 "$LAST_PID"
[ "$EXIT_CODE" -eq 0 ] || fail "$J: the last coordinator exited $EXIT_CODE"
wait_exit 30 "$wk"
end_check $J
say "$J: $(R HGET "drover:{$J}:job" partitions) partitions after 8 SIGKILLs"
