#!/usr/bin/env bash
# drover purge: a finished job's keys go (the job list entry first), other jobs stay, stray keys
# under its tags are swept; an unfinished job needs --force.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

"$DROVER" submit --id keep --range 1..10 --partitions 2 --quiet >/dev/null
"$DROVER" submit --id big --range 1..20000 --partitions 4 --quiet >/dev/null
# String ids: each partition's done record is done_buckets HASHes (done:0 ...), many here.
seq -f 'user-%05g' 1 6000 >"$TMP/users.txt"
"$DROVER" submit --id strs --file "$TMP/users.txt" --partitions 2 --quiet >/dev/null
for j in keep big strs; do
    bg "run-$j" "$DROVER" run "$j"
    c=$LAST_PID
    bg "w-$j" "$WORKER" --job "$j" --handler noop --exit-when-done
    w=$LAST_PID
    wait_exit 60 "$c"
    [ "$EXIT_CODE" -eq 0 ] || fail "drover run $j exited $EXIT_CODE"
    # The worker too: on its way out it unregisters ({workers}), which would change DBSIZE
    # between the two reads below.
    wait_exit 60 "$w"
    [ "$EXIT_CODE" -eq 0 ] || fail "worker of $j exited $EXIT_CODE"
done
[ "$(done_count big 0)" -gt 1000 ] || fail "big has no done set to purge"
keep_keys=$(R --scan --pattern 'drover:{keep*' | sort)

"$DROVER" submit --id live --range 1..5 --quiet >/dev/null
before=$(R DBSIZE)
rc=0
"$DROVER" purge live 2>"$TMP/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "job live is running; purge a job once it is done or cancelled" "$TMP/err" ||
    fail "purge of a running job: $rc $(cat "$TMP/err")"
[ "$(R DBSIZE)" -eq "$before" ] || fail "a refused purge deleted something"

"$DROVER" purge big | grep -q "^job big: purged$" || fail "drover purge big"
[ -z "$(R --scan --pattern 'drover:{big*')" ] || fail "keys of big are left: $(R --scan --pattern 'drover:{big*' | head -3)"
"$DROVER" list | grep -q '^big ' && fail "big is still listed"
[ "$(R --scan --pattern 'drover:{keep*' | sort)" = "$keep_keys" ] || fail "purging big touched keep"
[ "$(status_num keep done)" -eq 10 ] || fail "keep lost its counts"

# Every bucket goes with its partition, none is left for the sweep to find.
nb=$(R HGET 'drover:{strs.0}:state' done_buckets)
[ "$nb" -gt 10 ] || fail "strs has $nb buckets in partition 0, expected more than 10"
[ "$(R --scan --pattern 'drover:{strs.0}:done:*' | wc -l)" -eq "$nb" ] || fail "bucket keys differ from done_buckets"
"$DROVER" purge strs >"$TMP/out" || fail "drover purge strs"
grep -qx "job strs: purged" "$TMP/out" || fail "purge strs: $(cat "$TMP/out")"
[ -z "$(R --scan --pattern 'drover:{strs*')" ] || fail "keys of strs are left"

# Keys left under the job's tags (an earlier partition count, a hand-written key) are swept.
R SET 'drover:{big.99}:pending' x >/dev/null
R SET 'drover:{big}:note' x >/dev/null
"$DROVER" purge big | grep -q "2 stray keys swept" || fail "stray keys were not swept"
[ -z "$(R --scan --pattern 'drover:{big*')" ] || fail "stray keys are left"
rc=0
"$DROVER" purge big 2>"$TMP/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "no job big" "$TMP/err" || fail "purge of a purged job: $rc $(cat "$TMP/err")"
"$DROVER" purge live --force | grep -q "purged" || fail "purge --force"
[ -z "$(R --scan --pattern 'drover:{live*')" ] || fail "live is left after --force"
say "purge: finished job gone (list entry, partitions, job hash, strays); others untouched"
echo "PASS: drover purge"
