#!/usr/bin/env bash
# drover-worker --serve on SIGTERM (docs/handler-protocol.md, "Drain"): no new items; the
# answers to the items in flight are awaited within --grace and count; the processes' stdin is
# closed (they see EOF and exit), and the worker exits 0 leaving no handler process. When the
# grace runs out first, the process groups are killed and the items they held are handed back
# without an attempt.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
H=(/usr/bin/python3 "$DROVER_SRC_DIR/tests/support/serve_handler.py")
[ -x /usr/bin/python3 ] || H=(python3 "$DROVER_SRC_DIR/tests/support/serve_handler.py")
start_redis
gone() { ! ps -o stat= -p "$1" | grep -qv '^Z'; } # exited (or a zombie nobody reaped yet)

# ---- answers within the grace ------------------------------------------------------------------
"$DROVER" submit --id d1 --range 1..100 --partitions 1 --quiet >/dev/null
bg coord1 "$DROVER" run d1
export SERVE_LOG="$TMP/d1.started"
: >"$SERVE_LOG"
bg w1 "$WORKER" --job d1 --serve 3 --stats-ms 0 --grace 30 -- "${H[@]}" sleep 1.5
w1=$LAST_PID
wait_for "3 items started" 30 bash -c "[ \$(grep -c started '$SERVE_LOG') -ge 3 ]"
kids=$(ps -o pid= --ppid "$w1" | tr '\n' ' ')
[ "$(echo $kids | wc -w)" -eq 3 ] || fail "expected 3 handler processes, got: $kids"
kill -TERM "$w1"
wait_exit 30 "$w1"
[ "$EXIT_CODE" -eq 0 ] || fail "worker exited $EXIT_CODE after SIGTERM"
started=$(grep -c started "$SERVE_LOG")
done_n=$(status_num d1 done)
[ "$done_n" -eq "$started" ] || fail "$started items started, $done_n done: answers were lost"
[ "$(grep -c EOF "$SERVE_LOG")" -eq 3 ] || fail "not every process saw EOF on stdin"
[ "$(status_num d1 failed_attempts)" -eq 0 ] || fail "a drained item failed"
[ "$(status_num d1 leased)" -eq 0 ] || fail "leases left after the drain"
for p in $kids; do wait_for "handler $p gone" 10 gone "$p"; done
say "drained: $done_n items answered during the grace, every process saw EOF"

# ---- the grace runs out ------------------------------------------------------------------------
"$DROVER" submit --id d2 --range 1..100 --partitions 1 --quiet >/dev/null
bg coord2 "$DROVER" run d2
export SERVE_LOG="$TMP/d2.started"
: >"$SERVE_LOG"
bg w2 "$WORKER" --job d2 --serve 2 --stats-ms 0 --grace 1 -- "${H[@]}" sleep 300
w2=$LAST_PID
wait_for "2 items started" 30 bash -c "[ \$(grep -c started '$SERVE_LOG') -ge 2 ]"
kids=$(ps -o pid= --ppid "$w2" | tr '\n' ' ')
kill -TERM "$w2"
wait_exit 30 "$w2"
[ "$EXIT_CODE" -eq 0 ] || fail "worker exited $EXIT_CODE after its grace"
for p in $kids; do wait_for "handler $p killed" 10 gone "$p"; done
[ "$(status_num d2 done)" -eq 0 ] || fail "an item is done that no handler answered"
[ "$(status_num d2 leased)" -eq 0 ] || fail "leases left after the grace"
[ "$(status_num d2 pending)" -eq 100 ] || fail "the held items are not pending again"
[ "$(status_num d2 failed_attempts)" -eq 0 ] || fail "a handed-back item counted as an attempt"
say "grace over: the processes killed, their items handed back"
echo "PASS: --serve drains on SIGTERM: answers within the grace count, then the processes go"
