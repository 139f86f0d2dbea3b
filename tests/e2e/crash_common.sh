# The crash-recovery scenario of the foundation issue, for a range or a file source:
# 3 workers run a real command that records every id it sees; mid-run one worker is SIGKILLed
# and the coordinator is SIGKILLed while it is feeding, then both are replaced. At the end the
# processed-id record must equal the source exactly, nothing may be pending or leased, every id
# must have run at least once, and ids run twice are bounded by the items whose lease expired:
# what the killed worker held, and any lease a worker starved of CPU failed to extend in time
# (its item then runs again elsewhere, the at-least-once case). On a healthy run the two agree.
# Sourced by test_core_crash_range.sh (MODE=range) and test_core_crash_file.sh (MODE=file).
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis
J=crash
P=8
if [ "$MODE" = range ]; then
    N=100000
    seq 1 $N | sort >"$TMP/expected"
    "$DROVER" submit --id $J --range 1..$N --partitions $P --lease-ms 2000 --window 1000 --quiet
else
    N=50000
    # String ids, CRLF on some lines, an empty line, no newline at the end.
    awk -v n=$N 'BEGIN { for (i = 1; i <= n; i++) {
        printf "user-%05d%s", i, (i % 7 == 0 ? "\r\n" : "\n"); if (i == 100) printf "\n" } }' \
        | head -c -1 >"$TMP/ids.txt"
    tr -d '\r' <"$TMP/ids.txt" | grep -v '^$' | sort >"$TMP/expected"
    [ "$(wc -l <"$TMP/expected")" -eq $N ] || fail "test input has the wrong size"
    "$DROVER" submit --id $J --file "$TMP/ids.txt" --partitions $P --lease-ms 2000 --window 1000 \
        --quiet
fi
[ "$(status_num $J total)" -eq $N ] || fail "total is not $N"

printf '#!/bin/sh\nprintf "%%s\\n" "$1" >>"$2"\n' >"$TMP/record.sh"
start_worker() { # start_worker NAME
    bg "$1" "$WORKER" --job $J --id "$1" --concurrency 8 --batch 8 --stats-ms 0 --exit-when-done \
        --no-stdin -- sh "$TMP/record.sh" {id} "$TMP/seen.$1"
}
t0=$SECONDS
bg coord1 "$DROVER" run $J --lock-ttl-ms 1000
coord1=$LAST_PID
for w in w1 w2 w3; do start_worker $w; eval "pid_$w=\$LAST_PID"; done

wait_for "a fifth of the job done" 120 done_at_least $J $((N / 5))
kill -9 "$pid_w2"
# What w2 held when it died, read after the kill (its leases stay until they expire, unless
# reading takes longer than the lease on a loaded machine: then fewer are seen).
held=0
for p in $(seq 0 $((P - 1))); do
    held=$((held + $(lease_ids "drover:{$J.$p}" w2 | grep -c . || true)))
done
say "SIGKILLed worker w2 holding $held items"

wait_for "two fifths of the job done" 120 done_at_least $J $((2 * N / 5))
fed_before=$(status_num $J fed)
kill -9 "$coord1"
say "SIGKILLed the coordinator while feeding (fed $fed_before of $N)"
[ "$fed_before" -lt $N ] || fail "the coordinator was not mid-feed when killed"
bg coord2 "$DROVER" run $J --lock-ttl-ms 1000
coord2=$LAST_PID
start_worker w4
pid_w4=$LAST_PID

wait_exit 300 "$coord2"
[ "$EXIT_CODE" -eq 0 ] || fail "the restarted coordinator exited $EXIT_CODE, expected 0"
for w in w1 w3 w4; do :; done
for w in w1 w3 w4; do
    wait_exit 30 "$(eval echo \$pid_$w)"
    [ "$EXIT_CODE" -eq 0 ] || fail "worker $w exited $EXIT_CODE, expected 0 (--exit-when-done)"
done
secs=$((SECONDS - t0))

# Rebalancing may have split partitions off (README: Rebalancing): read them all.
Pn=$(R HGET "drover:{$J}:job" partitions)
all_done_ids $J "$Pn" >"$TMP/done"
cmp -s "$TMP/done" "$TMP/expected" || fail "the processed-id record differs from the source \
($(wc -l <"$TMP/done") ids recorded, $N expected)"
json=$("$DROVER" status $J --json)
for f in pending leased retrying dead; do
    [ "$(echo "$json" | json_num $f)" -eq 0 ] || fail "$f is not 0 at the end: $json"
done
[ "$(echo "$json" | json_num done)" -eq $N ] || fail "done is not $N: $json"
[ "$(echo "$json" | json_num fed)" -eq $N ] || fail "fed is not $N (something was fed twice?)"
for p in $(seq 0 $((Pn - 1))); do
    [ "$(R LLEN "drover:{$J.$p}:pending")" -eq 0 ] || fail "partition $p has pending items"
    [ "$(R ZCARD "drover:{$J.$p}:leased")" -eq 0 ] || fail "partition $p has leased items"
done
cat "$TMP"/seen.* | sort -u >"$TMP/seen"
cmp -s "$TMP/seen" "$TMP/expected" || fail "some ids never ran"
twice=$(cat "$TMP"/seen.* | sort | uniq -d | wc -l)
dups=$(echo "$json" | json_num duplicates)
expired=$(echo "$json" | json_num expired_leases)
say "$N items in ${secs}s; ids run twice: $twice; duplicates reported: $dups; held by the killed worker: $held; items whose lease expired: $expired"
# Every lease the killed worker held expires; an item runs again only after its lease expired.
[ "$expired" -ge "$held" ] || fail "$expired leases expired, fewer than the $held the killed worker held"
[ "$twice" -le "$expired" ] || fail "$twice ids ran twice, more than the $expired whose lease expired (the killed worker held $held)"
[ "$dups" -le "$expired" ] || fail "$dups duplicates reported, more than the $expired whose lease expired"
echo "PASS: $MODE source: record equals the source after a worker and the coordinator were killed"
