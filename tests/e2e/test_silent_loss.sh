#!/usr/bin/env bash
# Never a silent done (issue 15): a file changed after submit, hand-edited job or state fields,
# counts that disagree at the end, a Redis that refuses writes (OOM) and a job deleted under its
# coordinator. Each either completes with everything handled, or stops naming what is wrong;
# never done with items missing, never a key of a deleted job written back.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis
export DROVER_TICK_MS=10

# run_expect CODE PATTERN JOB [args]: drover run JOB exits CODE with PATTERN in its log.
run_expect() {
    local code=$1 pattern=$2 job=$3
    shift 3
    bg "run-$job" "$DROVER" run "$job" "$@"
    wait_exit 20 "$LAST_PID"
    [ "$EXIT_CODE" -eq "$code" ] || fail "drover run $job exited $EXIT_CODE, expected $code: $(cat "$TMP/run-$job.log")"
    grep -qE -- "$pattern" "$TMP/run-$job.log" || fail "drover run $job: no /$pattern/ in: $(cat "$TMP/run-$job.log")"
}
still_running() { # still_running JOB: not marked done, nothing fed
    [ "$(R HGET "drover:{$1}:job" state)" = running ] || fail "job $1 is $(R HGET "drover:{$1}:job" state)"
}

say "a file truncated after submit is refused, naming what changed"
seq 1 1000 >"$TMP/f"
"$DROVER" submit --id ft --file "$TMP/f" --partitions 2 --quiet >/dev/null
seq 1 500 >"$TMP/f"
run_expect 1 "file $TMP/f changed since submit: size 3893 -> 1892" ft
still_running ft
[ "$(status_num ft fed)" -eq 0 ] || fail "ft was fed from the changed file"

say "a same-size rewrite is refused (by mtime, and by the records' hash with mtime restored)"
seq 1 1000 >"$TMP/g"
cp -p "$TMP/g" "$TMP/g.orig"
"$DROVER" submit --id fs --file "$TMP/g" --partitions 2 --quiet >/dev/null
seq 1 1000 | tr 0-9 1-90 >"$TMP/g"
[ "$(stat -c %s "$TMP/g")" -eq "$(stat -c %s "$TMP/g.orig")" ] || fail "the rewrite changed the size"
run_expect 1 "file $TMP/g changed since submit: modified" fs
touch -r "$TMP/g.orig" "$TMP/g"
run_expect 1 "file $TMP/g changed since submit: the records of partition 0 .* differ" fs
still_running fs
cp -p "$TMP/g.orig" "$TMP/g" # the original back: the job runs to the end
bg w-fs "$WORKER" --job fs --handler noop --exit-when-done
run_expect 0 "done: 1000 processed" fs

say "hand-edited job fields refuse the job, naming the field, writing nothing"
"$DROVER" submit --id pa --range 1..500 --partitions 2 --window 20 --quiet >/dev/null
for bad in abc 100000 0; do
    R HSET 'drover:{pa}:job' partitions "$bad" >/dev/null
    keys=$(R --scan --pattern 'drover:{pa*' | sort)
    run_expect 1 "drover:\{pa\}:job: field partitions: expected a whole number from 1 to 1024, got \"$bad\"" pa
    [ "$(R --scan --pattern 'drover:{pa*' | sort)" = "$keys" ] || fail "partitions $bad: keys were written: $(R --scan --pattern 'drover:{pa*' | sort | head -5)"
    still_running pa
done
R HSET 'drover:{pa}:job' partitions 2 >/dev/null

say "cursor=abc: refused at the start; waited out while running, said once, until repaired"
R HSET 'drover:{pa.1}:state' cursor abc >/dev/null
run_expect 1 "drover:\{pa.1\}:state: field cursor: expected a whole number from 251 to 501, got \"abc\"" pa
still_running pa
R HSET 'drover:{pa.1}:state' cursor 251 >/dev/null
bg run-pa2 "$DROVER" run pa --progress-ms 100000
coord=$LAST_PID
wait_for "partition 1 fed" 10 sh -c "[ \"\$(redis-cli -p $REDIS_PORT LLEN 'drover:{pa.1}:pending')\" -ge 20 ]"
cur=$(R HGET 'drover:{pa.1}:state' cursor)
R HSET 'drover:{pa.1}:state' cursor abc >/dev/null
bg w-pa "$WORKER" --job pa --handler noop --exit-when-done
wait_for "the corrupt cursor noticed" 10 grep -q "field cursor" "$TMP/run-pa2.log"
sleep 1.5 # a hot loop would log many lines by now
[ "$(grep -c "field cursor" "$TMP/run-pa2.log")" -eq 1 ] || fail "the corrupt cursor was logged more than once: $(grep -c "field cursor" "$TMP/run-pa2.log")"
kill -0 "$coord" || fail "the coordinator exited on corrupt state while running"
R HSET 'drover:{pa.1}:state' cursor "$cur" >/dev/null
wait_exit 30 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "pa after the repair exited $EXIT_CODE: $(cat "$TMP/run-pa2.log")"
grep -qE "cleared after [0-9]+ tries" "$TMP/run-pa2.log" || fail "no line when it cleared: $(cat "$TMP/run-pa2.log")"
[ "$(status_num pa done)" -eq 500 ] || fail "pa: $(status_num pa done) of 500 done"

# pending_deleted_refuses ID SOURCE_ARGS...: a one-partition job of 20 items whose pending list
# is deleted once fed: its coordinator refuses to mark it done (exit 1), and it stays running.
pending_deleted_refuses() {
    local id=$1
    shift
    "$DROVER" submit --id "$id" "$@" --partitions 1 --quiet >/dev/null
    bg "run-$id" "$DROVER" run "$id"
    local coord=$LAST_PID log="$TMP/run-$id.log"
    wait_for "$id fed" 10 sh -c "[ \"\$(redis-cli -p $REDIS_PORT LLEN 'drover:{$id.0}:pending')\" -eq 20 ]"
    R DEL "drover:{$id.0}:pending" >/dev/null
    wait_exit 20 "$coord"
    [ "$EXIT_CODE" -eq 1 ] || fail "$id exited $EXIT_CODE: $(cat "$log")"
    grep -q "20 items fed, but only 0 settled" "$log" || fail "$id: $(cat "$log")"
    grep -q "not marking it done" "$log" || fail "$id: $(cat "$log")"
    still_running "$id"
}

say "the final check: fed items that are neither done nor dead keep the job from done"
pending_deleted_refuses fc --range 1..20

say "the final check: a file job's fed items that are neither done nor dead keep it from done"
seq 1 20 | sed 's/^/u-/' >"$TMP/fcf.txt"
pending_deleted_refuses fcf --file "$TMP/fcf.txt"

say "the final check: an id missing from a range partition's done record keeps the job from done"
"$DROVER" submit --id fb --range 1..20 --partitions 1 --quiet >/dev/null
bg run-fb "$DROVER" run fb
coord=$LAST_PID
wait_for "fb fed" 10 sh -c "[ \"\$(redis-cli -p $REDIS_PORT LLEN 'drover:{fb.0}:pending')\" -eq 20 ]"
kill -TERM "$coord"
wait_exit 10 "$coord"
bg w-fb "$WORKER" --job fb --handler noop
wait_for "fb handled" 10 done_at_least fb 20
kill -TERM "$LAST_PID"
wait_exit 10 "$LAST_PID"
R SETBIT 'drover:{fb.0}:done' 4 0 >/dev/null # id 5 (done_base 1)
run_expect 1 "of its 20 ids \(1..20\), 19 are in its done record and 0 dead: 1 neither done nor dead" fb
still_running fb

say "out of memory: the coordinator backs off, says so once, and goes on"
"$DROVER" submit --id om --range 1..300 --partitions 2 --quiet >/dev/null
bg run-om "$DROVER" run om --lock-ttl-ms 300 --progress-ms 100000
coord=$LAST_PID
wait_for "om fed" 10 sh -c "[ \"\$(redis-cli -p $REDIS_PORT LLEN 'drover:{om.1}:pending')\" -gt 0 ]"
R CONFIG SET maxmemory 1 >/dev/null
wait_for "the refusal logged" 10 grep -q "OOM" "$TMP/run-om.log"
sleep 1 # several lock renewals refused by now
kill -0 "$coord" || fail "the coordinator exited on OOM: $(cat "$TMP/run-om.log")"
R CONFIG SET maxmemory 0 >/dev/null
bg w-om "$WORKER" --job om --handler noop --exit-when-done
wait_exit 30 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "om exited $EXIT_CODE: $(cat "$TMP/run-om.log")"
[ "$(grep -c "OOM" "$TMP/run-om.log")" -eq 1 ] || fail "OOM was logged $(grep -c OOM "$TMP/run-om.log") times"
grep -qE "cleared after [0-9]+ tries" "$TMP/run-om.log" || fail "om: no line when it cleared"
[ "$(status_num om done)" -eq 300 ] || fail "om: $(status_num om done) of 300 done"

say "FLUSHALL, or cancel + purge, under a running coordinator: nothing written back"
"$DROVER" submit --id fl --range 1..100 --quiet >/dev/null
bg run-fl "$DROVER" run fl --lock-ttl-ms 300 --progress-ms 100
coord=$LAST_PID
wait_for "fl locked" 10 sh -c "[ \"\$(redis-cli -p $REDIS_PORT EXISTS 'drover:{fl}:lock')\" -eq 1 ]"
R FLUSHALL >/dev/null
wait_exit 20 "$coord"
[ "$EXIT_CODE" -eq 1 ] || fail "fl exited $EXIT_CODE"
grep -q "job fl was deleted" "$TMP/run-fl.log" || fail "fl: $(cat "$TMP/run-fl.log")"
[ -z "$(R --scan --pattern 'drover:{fl*')" ] && [ "$(R EXISTS drover:jobs)" = 0 ] ||
    fail "keys written back after FLUSHALL: $(R --scan | head -5)"

"$DROVER" submit --id cp --range 1..100 --quiet >/dev/null
bg run-cp "$DROVER" run cp --lock-ttl-ms 300 --progress-ms 100
coord=$LAST_PID
wait_for "cp locked" 10 sh -c "[ \"\$(redis-cli -p $REDIS_PORT EXISTS 'drover:{cp}:lock')\" -eq 1 ]"
"$DROVER" cancel cp >/dev/null
"$DROVER" purge cp --force >/dev/null
wait_exit 20 "$coord"
# Whether it saw the cancel (4) or the job gone (1) first, it wrote nothing back.
[ "$EXIT_CODE" -eq 4 ] || [ "$EXIT_CODE" -eq 1 ] || fail "cp exited $EXIT_CODE"
[ -z "$(R --scan --pattern 'drover:{cp*')" ] || fail "keys of cp written back: $(R --scan --pattern 'drover:{cp*')"
