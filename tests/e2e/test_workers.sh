#!/usr/bin/env bash
# The worker registry: drover workers lists live workers with what they report, drover drain
# makes one finish and exit while the others go on, and a SIGKILLed one shows as lost.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

"$DROVER" submit --id wj --range 1..3000 --partitions 4 --lease-ms 1000 --quiet >/dev/null
bg coord "$DROVER" run wj
c=$LAST_PID
bg w1 "$WORKER" --job wj --id w1 --concurrency 4 --grace 10 -- sleep 0.02
w1=$LAST_PID
bg w2 "$WORKER" --job wj --id w2 --concurrency 4 -- sleep 0.02
w2=$LAST_PID

listed() { # listed ID STATE
    "$DROVER" workers --json | python3 -c '
import json, sys
ws = {w["id"]: w for w in map(json.loads, sys.stdin)}
w = ws.get(sys.argv[1])
sys.exit(0 if w and w["state"] == sys.argv[2] else 1)' "$1" "$2"
}
busy() { # busy ID: reported work in flight and done
    "$DROVER" workers --json | python3 -c '
import json, sys
w = {w["id"]: w for w in map(json.loads, sys.stdin)}.get(sys.argv[1])
sys.exit(0 if w and w["done"] > 0 and w["jobs"] == "wj" and w["pid"] > 0 and w["version"] else 1)' "$1"
}
wait_for "w1 and w2 running" 15 listed w1 running
wait_for "w2 running" 15 listed w2 running
wait_for "w1 reporting work" 15 busy w1
"$DROVER" workers | grep -q "^w1 .* running" || fail "the table: $("$DROVER" workers)"
say "drover workers: both listed as running, with jobs, pid, version and counts"

# drain w1: it exits 0, leaves the list; w2 goes on.
"$DROVER" drain w1 | grep -q "asked to drain" || fail "drover drain w1"
wait_exit 15 "$w1"
[ "$EXIT_CODE" -eq 0 ] || fail "a drained worker exited $EXIT_CODE"
grep -q "drover drain asked this worker to finish and exit" "$TMP/w1.log" || fail "w1 did not say why it stopped"
gone() { ! "$DROVER" workers --json | grep -q '"id":"w1"'; }
wait_for "w1 to leave the list" 5 gone
kill -0 "$w2" || fail "w2 stopped too"
rc=0
"$DROVER" drain nobody 2>"$TMP/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "no worker nobody" "$TMP/err" || fail "drain of an unknown worker: $rc $(cat "$TMP/err")"
say "drover drain: w1 finished and exited 0, w2 carries on; an unknown worker is an error"

# SIGKILL w2: it stays listed, as lost once silent for longer than the lease (1 s).
kill -9 "$w2"
wait_exit 5 "$w2"
wait_for "w2 shown as lost" 10 listed w2 lost
bg w3 "$WORKER" --job wj --id w3 --concurrency 8 --exit-when-done -- sleep 0.01
wait_exit 120 "$c"
[ "$EXIT_CODE" -eq 0 ] || fail "the job did not finish after w2 was lost"
[ "$(status_num wj done)" -eq 3000 ] || fail "done $(status_num wj done)"
say "a SIGKILLed worker shows as lost; the job finishes on the others"
echo "PASS: drover workers, drover drain, lost workers"
