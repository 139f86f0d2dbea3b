#!/usr/bin/env bash
# Steering a job: pause and resume (by command and by a plain HSET), cancel, dead + retry,
# a standby coordinator taking over, list, and the status --json fields.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

done_n() { status_num "$1" done; }
leased_is() { [ "$(status_num "$1" leased)" -eq "$2" ]; }
state_is() { "$DROVER" status "$1" --json | grep -q "\"state\":\"$2\""; }
part_state_is() { [ "$(R HGET "drover:{$1.0}:state" state)" = "$2" ]; }

# ---- pause / resume ------------------------------------------------------------------------
"$DROVER" submit --id steer --range 1..3000 --partitions 2 --quiet >/dev/null
bg coord "$DROVER" run steer --lock-ttl-ms 1000
coord=$LAST_PID
bg w1 "$WORKER" --job steer --concurrency 4 --stats-ms 0 --no-stdin -- sleep 0.02
wait_for "some progress" 30 bash -c "[ \$('$DROVER' status steer --json | grep -o '\"done\":[0-9]*' | head -1 | cut -d: -f2) -ge 100 ]"
"$DROVER" pause steer | grep -q "job steer: paused" || fail "pause did not say so"
part_state_is steer paused || fail "pause did not reach the partitions"
wait_for "running items to finish while paused" 10 leased_is steer 0
d1=$(done_n steer)
sleep 1 # a span of time with nothing allowed to happen: done must not move
[ "$(done_n steer)" -eq "$d1" ] || fail "items were processed while paused"
[ "$(status_num steer pending)" -gt 0 ] || fail "nothing pending while paused"
"$DROVER" resume steer >/dev/null
wait_for "progress after resume" 10 bash -c "[ \$('$DROVER' status steer --json | grep -o '\"done\":[0-9]*' | head -1 | cut -d: -f2) -gt $d1 ]"
say "pause stops claims (done held at $d1 for 1 s), resume restarts them"

# An operator's plain HSET on the job hash pauses the fleet too (the coordinator mirrors it).
R HSET 'drover:{steer}:job' state paused >/dev/null
wait_for "the coordinator to mirror a plain HSET pause" 5 part_state_is steer paused
wait_for "running items to finish" 10 leased_is steer 0
R HSET 'drover:{steer}:job' state running >/dev/null
wait_for "the mirror of a plain HSET resume" 5 part_state_is steer running
say "a plain redis-cli HSET pauses and resumes"

# ---- standby takeover ----------------------------------------------------------------------
bg standby "$DROVER" run steer --lock-ttl-ms 1000
standby=$LAST_PID
wait_for "the standby to say it waits" 10 grep -q "standing by" "$TMP/standby.log"
kill -9 "$coord"
wait_for "the standby to take over" 10 grep -q "took over" "$TMP/standby.log"
wait_exit 120 "$standby"
[ "$EXIT_CODE" -eq 0 ] || fail "the standby exited $EXIT_CODE after finishing the job"
[ "$(done_n steer)" -eq 3000 ] || fail "job not complete after takeover"
say "standby took over after the active coordinator was SIGKILLed and finished the job"

# ---- cancel ------------------------------------------------------------------------------------
"$DROVER" submit --id gone --range 1..100000 --partitions 2 --quiet >/dev/null
bg coord "$DROVER" run gone
coord=$LAST_PID
wait_for "the job to be fed" 10 bash -c "[ \$('$DROVER' status gone --json | grep -o '\"fed\":[0-9]*' | head -1 | cut -d: -f2) -gt 0 ]"
"$DROVER" cancel gone >/dev/null
wait_exit 10 "$coord"
[ "$EXIT_CODE" -eq 4 ] || fail "the coordinator of a cancelled job exited $EXIT_CODE, expected 4"
part_state_is gone cancelled || fail "cancel did not reach the partitions"
"$WORKER" --job gone --handler noop --exit-when-done --stats-ms 0 2>"$TMP/wc.log"
[ "$(done_n gone)" -eq 0 ] || fail "a worker processed items of a cancelled job"
out=$("$DROVER" resume gone 2>&1) && fail "resume of a cancelled job succeeded"
grep -q "is cancelled" <<<"$out" || fail "resume of a cancelled job: $out"
say "cancel: coordinator exits 4, workers claim nothing, resume refused"

# ---- dead + retry ------------------------------------------------------------------------------
"$DROVER" submit --id fix --range 1..50 --partitions 2 --max-attempts 2 --backoff-ms 10 \
    --backoff-max-ms 20 --quiet >/dev/null
bg coord "$DROVER" run fix
coord=$LAST_PID
# Ids divisible by 10 fail until the marker file exists (a bug fixed between two runs).
cat >"$TMP/fixable.sh" <<SH
#!/bin/sh
[ \$((\$1 % 10)) -ne 0 ] || [ -e "$TMP/fixed" ] || { echo "not fixed yet" >&2; exit 1; }
SH
bg w "$WORKER" --job fix --concurrency 4 --stats-ms 0 --no-stdin -- sh "$TMP/fixable.sh" {id}
wait_exit 60 "$coord"
[ "$EXIT_CODE" -eq 1 ] || fail "done with dead items should exit 1, got $EXIT_CODE"
"$DROVER" dead fix | cut -f1 | sort -n | tr '\n' ' ' | grep -qx "10 20 30 40 50 " ||
    fail "dead items: $("$DROVER" dead fix | cut -f1 | tr '\n' ' ')"
[ "$(status_num fix dead)" -eq 5 ] || fail "dead count is not 5"
touch "$TMP/fixed"
"$DROVER" retry fix | grep -q "5 dead items back to pending" || fail "retry did not report 5"
state_is fix running || fail "retry did not set the done job running again"
bg coord "$DROVER" run fix
coord=$LAST_PID
wait_exit 60 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "after retry the coordinator exited $EXIT_CODE"
[ "$(done_n fix)" -eq 50 ] && [ "$(status_num fix dead)" -eq 0 ] || fail "not all done after retry"
say "dead + retry: 5 dead items listed, revived, all 50 done"

# ---- a job replaced under a running worker -------------------------------------------------------
"$DROVER" submit --id re --range 1..100 --partitions 2 --quiet >/dev/null
bg wr "$WORKER" --job re --handler noop --stats-ms 0
bg coord "$DROVER" run re
wait_exit 30 "$LAST_PID"
[ "$EXIT_CODE" -eq 0 ] || fail "first run of re exited $EXIT_CODE"
"$DROVER" submit --id re --range 1..300 --partitions 6 --replace --quiet >/dev/null
bg coord "$DROVER" run re
wait_exit 30 "$LAST_PID"
[ "$EXIT_CODE" -eq 0 ] || fail "the replaced job (6 partitions) did not finish: $EXIT_CODE"
[ "$(done_n re)" -eq 300 ] || fail "replaced job: done is $(done_n re), not 300"
say "a worker serving a job replaced with more partitions serves all of them"

# The same under a running coordinator: it notices the replacement and coordinates the new job.
"$DROVER" submit --id re2 --range 1..100 --partitions 2 --quiet >/dev/null
bg coord "$DROVER" run re2
coord=$LAST_PID
wait_for "the coordinator to feed" 10 bash -c "[ \$('$DROVER' status re2 --json | grep -o '\"fed\":[0-9]*' | head -1 | cut -d: -f2) -eq 100 ]"
"$DROVER" submit --id re2 --range 1..300 --partitions 6 --replace --quiet >/dev/null
bg wr2 "$WORKER" --job re2 --handler noop --stats-ms 0
wait_exit 30 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "the coordinator of a replaced job exited $EXIT_CODE"
grep -q "was replaced (6 partitions)" "$TMP/coord.log" || fail "the coordinator did not reload"
[ "$(done_n re2)" -eq 300 ] || fail "replaced under a coordinator: done is $(done_n re2), not 300"
say "a coordinator running while its job is replaced reloads it and finishes the new one"

# ---- list and status --json --------------------------------------------------------------------
"$DROVER" list | grep -qE '^steer +done' || fail "drover list lacks steer"
"$DROVER" list --json | grep -q '"id":"gone","state":"cancelled"' || fail "drover list --json"
json=$("$DROVER" status fix --json)
for f in id state total fed done dead duplicates pending leased retrying rate partitions; do
    grep -q "\"$f\":" <<<"$json" || fail "status --json lacks $f: $json"
done
grep -q '"partitions":\[{"partition":0,' <<<"$json" || fail "partitions is not an array of objects"
"$DROVER" status fix | grep -q "^job fix: done" || fail "human status"
# ---- a stop signal during a Redis outage is answered at once -------------------------------------
"$DROVER" submit --id outage --range 1..10 --partitions 1 --quiet >/dev/null
bg coord "$DROVER" run outage
coord=$LAST_PID
wait_for "the coordinator to start" 10 grep -q "coordinating 1 partitions" "$TMP/coord.log"
kill "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
REDIS_PID=""
wait_for "the coordinator to notice the outage" 10 grep -q "redis lost" "$TMP/coord.log"
sleep 1 # let it reach a long reconnect backoff; that wait is what is being tested
kill -TERM "$coord"
wait_exit 2 "$coord"
[ "$EXIT_CODE" -eq 143 ] || fail "SIGTERM during an outage: exit $EXIT_CODE, expected 143"
say "SIGTERM during a Redis outage: exit 143 within 2 s"
echo "PASS: steering"
