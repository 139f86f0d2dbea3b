#!/usr/bin/env bash
# drover-worker --stdin-batch K: one process per K items, given on stdin one per line, one
# result line per item on stdout ("ok", anything else is the failure's message). A real shell
# script handler: an item it reports failed ends dead with its line as the error; a crash in
# the middle of a batch fails the items without a result line (with the signal), a batch that
# stops early fails the rest with "no result"; both succeed on their retry. --concurrency counts
# processes: --concurrency 1 --stdin-batch 3 holds 3 items in one process. Bad flag
# combinations are refused with exit 2.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

# ---- bad input ---------------------------------------------------------------------------------
set +e
"$WORKER" --job x --stdin-batch 4 --no-stdin -- cat >"$TMP/bad1.out" 2>&1
rc=$?
set -e
[ $rc -eq 2 ] || fail "--stdin-batch with --no-stdin exited $rc, expected 2"
grep -q "drop --no-stdin" "$TMP/bad1.out" || fail "no clear error: $(cat "$TMP/bad1.out")"
set +e
"$WORKER" --job x --stdin-batch 4 -- echo {id} >"$TMP/bad2.out" 2>&1
rc=$?
set -e
[ $rc -eq 2 ] || fail "--stdin-batch with {id} in CMD exited $rc, expected 2"
grep -q "cannot hold {id}" "$TMP/bad2.out" || fail "no clear error: $(cat "$TMP/bad2.out")"
set +e
"$WORKER" --job x --stdin-batch -1 -- cat >"$TMP/bad3.out" 2>&1
rc=$?
set -e
[ $rc -eq 2 ] || fail "--stdin-batch -1 exited $rc, expected 2"
"$WORKER" --help >"$TMP/help.txt"
grep -q -- "--stdin-batch" "$TMP/help.txt" || fail "--stdin-batch is not in --help"

# ---- a real batch handler ----------------------------------------------------------------------
N=60
"$DROVER" submit --id sb --range 1..$N --partitions 2 --max-attempts 3 --backoff-ms 10 \
    --backoff-max-ms 50 --quiet >/dev/null
# Item 7 always fails with a message. Item 13 crashes its process (SIGSEGV) the first time it
# is seen, item 20 ends its process early (exit 0) the first time: the items after them in
# their batch get no result line. Every process logs its batch size and the ids it read.
cat >"$TMP/batch.sh" <<EOF
#!/bin/sh
echo "batch \$DROVER_BATCH_SIZE" >>"$TMP/batches"
while IFS= read -r id; do
    echo "\$id" >>"$TMP/seen"
    case \$id in
    7) echo "item 7 is bad" ;;
    13) if mkdir "$TMP/crashed" 2>/dev/null; then kill -SEGV \$\$; fi; echo ok ;;
    20) if mkdir "$TMP/stopped" 2>/dev/null; then exit 0; fi; echo ok ;;
    *) echo ok ;;
    esac
done
EOF
chmod +x "$TMP/batch.sh"
bg coord "$DROVER" run sb
coord=$LAST_PID
bg w1 "$WORKER" --job sb --stdin-batch 5 --concurrency 2 --batch 10 --stats-ms 0 \
    --exit-when-done -- "$TMP/batch.sh"
w1=$LAST_PID
wait_exit 120 "$coord"
[ "$EXIT_CODE" -eq 1 ] || fail "coordinator exited $EXIT_CODE, expected 1 (done with a dead item)"
wait_exit 30 "$w1"
[ "$EXIT_CODE" -eq 0 ] || fail "worker exited $EXIT_CODE"

json=$("$DROVER" status sb --json)
[ "$(echo "$json" | json_num done)" -eq $((N - 1)) ] || fail "done is not $((N - 1)): $json"
[ "$(echo "$json" | json_num dead)" -eq 1 ] || fail "dead is not 1: $json"
dead7=$(for p in 0 1; do R HGET "drover:{sb.$p}:dead" 7; done)
echo "$dead7" | grep -q '"error":"item 7 is bad"' || fail "item 7's error is not its line: $dead7"
all_done_ids sb 2 | sort -n >"$TMP/done"
seq 1 $N | grep -vx 7 | cmp -s - "$TMP/done" || fail "the done record is not 1..$N without 7"
# The crash and the early stop each failed an attempt, with what happened.
grep -q "killed by signal 11" "$TMP/w1.log" || fail "no failure with the signal in the log"
grep -q '"error":"no result"' "$TMP/w1.log" || fail "no 'no result' failure in the log"
# Processes got several items each (never more than 5).
sort -u "$TMP/batches" | awk '{ if ($2 > 5 || $2 < 1) bad = 1 } END { exit bad }' ||
    fail "a batch outside 1..5: $(sort -u "$TMP/batches" | tr '\n' ' ')"
grep -q "batch [2-5]" "$TMP/batches" || fail "no process got more than one item"
procs=$(wc -l <"$TMP/batches")
[ "$procs" -lt $N ] || fail "$procs processes for $N items: not batched"
say "$N items in $procs processes"

# ---- a hung batch is killed with its process group at --timeout-ms ------------------------------
"$DROVER" submit --id hang --range 1..3 --partitions 1 --max-attempts 1 --quiet >/dev/null
printf '#!/bin/sh\nsleep 300 &\necho $! >"%s/grandchild"\nwait\n' "$TMP" >"$TMP/hang.sh"
chmod +x "$TMP/hang.sh"
bg coord2 "$DROVER" run hang
coord2=$LAST_PID
bg w2 "$WORKER" --job hang --stdin-batch 3 --concurrency 1 --timeout-ms 500 --stats-ms 0 \
    --exit-when-done -- "$TMP/hang.sh"
w2=$LAST_PID
wait_exit 60 "$coord2"
[ "$EXIT_CODE" -eq 1 ] || fail "coordinator of the hung job exited $EXIT_CODE, expected 1"
wait_exit 30 "$w2"
[ "$(status_num hang dead)" -eq 3 ] || fail "the hung batch's 3 items are not dead"
R HGET 'drover:{hang.0}:dead' 2 | grep -q "timed out" || fail "no timeout in the error"
gc=$(cat "$TMP/grandchild")
wait_for "the grandchild killed with the group" 10 bash -c "! kill -0 $gc 2>/dev/null"

# ---- a batch still running when --grace ends: killed, each of its items handed back -------------
"$DROVER" submit --id grace --range 1..3 --partitions 1 --quiet >/dev/null
printf '#!/bin/sh\necho started >"%s/grace-started"\nexec sleep 300\n' "$TMP" >"$TMP/grace.sh"
chmod +x "$TMP/grace.sh"
bg coord3 "$DROVER" run grace
bg w3 "$WORKER" --job grace --stdin-batch 3 --concurrency 1 --grace 1 --stats-ms 0 \
    -- "$TMP/grace.sh"
w3=$LAST_PID
wait_for "the batch to start" 20 test -s "$TMP/grace-started"
[ "$(status_num grace leased)" -eq 3 ] ||
    fail "the batch does not hold the 3 items: $(status_num grace leased) leased"
kill -TERM "$w3"
wait_exit 20 "$w3"
[ "$EXIT_CODE" -eq 0 ] || fail "the worker exited $EXIT_CODE after its grace, expected 0"
[ "$(status_num grace leased)" -eq 0 ] || fail "leases left after the grace"
[ "$(status_num grace pending)" -eq 3 ] ||
    fail "expected the 3 items pending again, got $(status_num grace pending)"
[ "$(status_num grace dead)" -eq 0 ] || fail "a handed-back item was dead-lettered"
say "grace over: the batch process killed, its 3 items handed back"
echo "PASS: --stdin-batch: results per line, crash and short batches retried, timeouts kill the group"
