#!/usr/bin/env bash
# The end of --grace with a --serve process that answered item A and hangs on item B: A's
# answer, already written to the pipe, counts (A is done and does not run again), and only B is
# handed back. To have the answer waiting unread when the grace ends, the worker is stopped
# (SIGSTOP) while it sleeps in poll(), the handler answers, and SIGTERM arrives with SIGCONT:
# the signal interrupts the poll, so with --grace 0 the next thing the worker does is end the
# grace period with the answer still in the pipe.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

cat >"$TMP/h.py" <<EOF
import json, os, sys, time
sys.stdin.readline()  # the protocol version
ids = [json.loads(sys.stdin.readline())["id"] for _ in range(2)]
open("$TMP/got", "w").close()
while not os.path.exists("$TMP/go"):  # the test says when
    time.sleep(0.01)
print(json.dumps({"id": sorted(ids)[0], "ok": True}), flush=True)
open("$TMP/answered", "w").close()
time.sleep(3600)  # hangs on the other item
EOF

"$DROVER" submit --id g --range 1..2 --partitions 1 --quiet >/dev/null
bg coord "$DROVER" run g
bg w "$WORKER" --job g --serve 1 --serve-inflight 2 --grace 0 --stats-ms 0 -- python3 "$TMP/h.py"
w=$LAST_PID
wait_for "the handler to hold both items" 30 test -e "$TMP/got"
hpid=$(ps -o pid= --ppid "$w" | tr -d ' ')
in_poll() { grep -q poll "/proc/$w/wchan"; }
wait_for "the worker to wait in poll()" 30 in_poll
kill -STOP "$w"
touch "$TMP/go"
wait_for "the handler's answer" 30 test -e "$TMP/answered"
kill -TERM "$w"
kill -CONT "$w"
wait_exit 30 "$w"
[ "$EXIT_CODE" -eq 0 ] || fail "worker exited $EXIT_CODE: $(cat "$TMP/w.log")"
done_now=$(done_ids g 0 | tr '\n' ' ')
[ "$done_now" = "1 " ] || fail "done after the grace: '$done_now', expected item 1 only: $(cat "$TMP/w.log")"
[ "$(status_num g failed_attempts)" -eq 0 ] || fail "the handed-back item counted an attempt"
! kill -0 "$hpid" 2>/dev/null || fail "the handler process $hpid survived the worker"
say "an answer written before the grace ended counts; the hanging item is handed back"
