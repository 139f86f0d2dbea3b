#!/usr/bin/env bash
# drover wait: blocks until the job ends; exit 0 done, 1 done with dead items, 3 timeout,
# 4 cancelled; a job that does not exist is an error. drover status --watch and its bar.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

"$DROVER" submit --id ok --range 1..200 --partitions 2 --quiet >/dev/null
# Nothing coordinates it yet: a timeout.
t0=$SECONDS
rc=0
"$DROVER" wait ok --timeout 1 --interval-ms 50 2>"$TMP/w.err" || rc=$?
[ "$rc" -eq 3 ] || fail "wait --timeout 1 on a job nobody runs exited $rc, expected 3"
[ $((SECONDS - t0)) -le 3 ] || fail "wait --timeout 1 took $((SECONDS - t0)) s"
grep -q "job ok still running after 1 s" "$TMP/w.err" || fail "timeout message: $(cat "$TMP/w.err")"

bg waiter "$DROVER" wait ok --json --progress-ms 0 --interval-ms 50
waiter=$LAST_PID
bg watch "$DROVER" status ok --watch --interval-ms 50 # not a terminal: one line per refresh
watcher=$LAST_PID
# Its first line before the job can end, so "a line per refresh" means at least two lines
# whatever the scheduling.
wait_for "status --watch's first line" 10 grep -q '^ok ' "$TMP/watch.log"
bg coord "$DROVER" run ok
bg worker "$WORKER" --job ok --concurrency 8 --exit-when-done -- true
wait_exit 60 "$waiter"
[ "$EXIT_CODE" -eq 0 ] || fail "wait on a job that finishes exited $EXIT_CODE"
grep -q '"state":"done"' "$TMP/waiter.log" || fail "wait --json: $(cat "$TMP/waiter.log")"
[ "$(grep -o '"done":[0-9]*' "$TMP/waiter.log" | cut -d: -f2)" -eq 200 ] || fail "wait --json: $(cat "$TMP/waiter.log")"
wait_exit 10 "$watcher"
[ "$EXIT_CODE" -eq 0 ] || fail "status --watch exited $EXIT_CODE"
tail -1 "$TMP/watch.log" | grep -q '^ok done \[#*\] 100.0% done 200/200 dead 0' ||
    fail "status --watch's last line: $(tail -1 "$TMP/watch.log")"
[ "$(grep -c '^ok ' "$TMP/watch.log")" -ge 2 ] || fail "status --watch printed one line only"
"$DROVER" status ok | grep -q '^  \[########################################\] 100.0%$' ||
    fail "no progress bar in drover status: $("$DROVER" status ok | head -6)"
say "wait: exit 3 on timeout, 0 once done (with the final status as JSON)"
say "status --watch: a line per refresh until the job ends; status shows a progress bar"

"$DROVER" submit --id bad --range 1..5 --max-attempts 1 --quiet >/dev/null
bg coord2 "$DROVER" run bad
bg worker2 "$WORKER" --job bad --exit-when-done -- false
rc=0
"$DROVER" wait bad --timeout 60 --interval-ms 50 2>"$TMP/bad.err" || rc=$?
[ "$rc" -eq 1 ] || fail "wait on a job with dead items exited $rc, expected 1"
grep -q "job bad: done: 0 done, 5 dead" "$TMP/bad.err" || fail "$(cat "$TMP/bad.err")"

"$DROVER" submit --id cx --range 1..5 --quiet >/dev/null
bg waiter3 "$DROVER" wait cx --interval-ms 50
w3=$LAST_PID
"$DROVER" cancel cx >/dev/null
wait_exit 10 "$w3"
[ "$EXIT_CODE" -eq 4 ] || fail "wait on a cancelled job exited $EXIT_CODE, expected 4"

rc=0
"$DROVER" wait nope 2>"$TMP/nope.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "no job nope" "$TMP/nope.err" || fail "wait nope: $rc $(cat "$TMP/nope.err")"
say "wait: 1 with dead items, 4 when cancelled, 1 for an unknown job"
echo "PASS: drover wait"
