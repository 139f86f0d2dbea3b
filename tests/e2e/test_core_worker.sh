#!/usr/bin/env bash
# The worker under signals and bad handlers: SIGTERM drains (unstarted items handed back at
# once, running ones finish and are acked, exit 0), a second signal exits at once, a hung
# handler is killed with its whole process group, a crashing handler ends dead with the signal
# in its error, a handler that fails once then succeeds ends done.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

leased() { status_num "$1" leased; }
pending() { status_num "$1" pending; }
# Conditions for wait_for: evaluated on every poll (a $(...) argument would be evaluated once).
leased_eq() { [ "$(leased "$1")" -eq "$2" ]; }
leased_le() { [ "$(leased "$1")" -le "$2" ]; }
leased_ge() { [ "$(leased "$1")" -ge "$2" ]; }

# ---- SIGTERM drains ----------------------------------------------------------------------------
"$DROVER" submit --id drain --range 1..40 --partitions 1 --quiet >/dev/null
bg coord "$DROVER" run drain
coord=$LAST_PID
# 2 run at once, 20 claimed: 18 wait unstarted in the worker when the signal comes. The two
# running ones wait for $TMP/go (made after the signal), so none can finish before it and let
# a third start, however slow the machine.
printf '#!/bin/sh\nwhile [ ! -e "%s/go" ]; do sleep 0.05; done\necho "$1" >>"%s/ran"\n' \
    "$TMP" "$TMP" >"$TMP/slow.sh"
bg w1 "$WORKER" --job drain --concurrency 2 --batch 20 --grace 30 --stats-ms 0 --no-stdin \
    -- sh "$TMP/slow.sh" {id}
w1=$LAST_PID
wait_for "the worker to hold 20 items" 20 leased_eq drain 20
kill -TERM "$w1"
wait_for "unstarted items handed back at once" 5 leased_le drain 2
touch "$TMP/go"
wait_exit 20 "$w1"
[ "$EXIT_CODE" -eq 0 ] || fail "a draining worker exited $EXIT_CODE, expected 0"
[ "$(status_num drain done)" -eq 2 ] || fail "the 2 running items were not acked: $(status_num drain done)"
[ "$(leased drain)" -eq 0 ] || fail "leases left after the drain"
[ "$(pending drain)" -eq 38 ] || fail "expected 38 pending after the drain, got $(pending drain)"
[ "$(R HGET 'drover:{drain.0}:state' released)" -eq 18 ] || fail "expected 18 released"
# Released items were never started, so their next delivery is their first attempt.
bg w2 "$WORKER" --job drain --concurrency 20 --stats-ms 0 --exit-when-done --no-stdin \
    -- sh -c 'echo "$1 $DROVER_ATTEMPT" >>"$0/attempts"' "$TMP" {id}
wait_exit 60 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "coordinator exited $EXIT_CODE"
grep -qv ' 1$' "$TMP/attempts" && fail "a released item came back as a second attempt"
[ "$(all_done_ids drain 1 | wc -l)" -eq 40 ] || fail "items lost in the drain"
say "SIGTERM: 18 unstarted items handed back at once, 2 running finished, exit 0, nothing lost"

# ---- a second signal exits at once -------------------------------------------------------------
"$DROVER" submit --id twice --range 1..4 --partitions 1 --quiet >/dev/null
bg coord "$DROVER" run twice
bg w3 "$WORKER" --job twice --concurrency 2 --grace 60 --stats-ms 0 --no-stdin -- sleep 30
w3=$LAST_PID
wait_for "two items running" 20 leased_ge twice 2
kill -TERM "$w3"
sleep 0.2 # a signal-handling gap, not a condition: the second signal must arrive separately
kill -TERM "$w3"
wait_exit 5 "$w3"
[ "$EXIT_CODE" -eq 130 ] || fail "second signal: exit $EXIT_CODE, expected 130"
say "second signal: exit 130 at once"

# ---- a hung handler is killed with its process group -------------------------------------------
"$DROVER" submit --id hang --range 1..1 --partitions 1 --max-attempts 1 --quiet >/dev/null
bg coord "$DROVER" run hang
coord=$LAST_PID
# The command starts a grandchild that would outlive a kill of the command alone.
printf '#!/bin/sh\nsleep 300 &\necho $! >"%s/grandchild"\nwait\n' "$TMP" >"$TMP/hang.sh"
bg w4 "$WORKER" --job hang --timeout-ms 500 --stats-ms 0 --exit-when-done --no-stdin \
    -- sh "$TMP/hang.sh" {id}
wait_exit 30 "$coord"
[ "$EXIT_CODE" -eq 1 ] || fail "coordinator of a dead item exited $EXIT_CODE, expected 1"
gc=$(cat "$TMP/grandchild")
wait_for "the grandchild to be killed with its group" 5 bash -c "! kill -0 $gc"
"$DROVER" dead hang | grep -q 'timed out after 0.5 s' || fail "dead error lacks the timeout"
say "hung handler: killed after 0.5 s with its process group, dead-lettered"

# ---- a crashing handler ends dead with the signal; failing once then succeeding ends done -------
"$DROVER" submit --id crash --range 1..6 --partitions 2 --max-attempts 3 --backoff-ms 10 \
    --backoff-max-ms 50 --quiet >/dev/null
bg coord "$DROVER" run crash
coord=$LAST_PID
cat >"$TMP/flaky.sh" <<'SH'
#!/bin/sh
case "$1" in
  1) echo "about to crash" >&2; kill -SEGV $$ ;;
  2) [ "$DROVER_ATTEMPT" -ge 2 ] || { echo "first try fails" >&2; exit 7; } ;;
esac
exit 0
SH
bg w5 "$WORKER" --job crash --concurrency 3 --stats-ms 0 --exit-when-done --no-stdin \
    -- sh "$TMP/flaky.sh" {id}
wait_exit 60 "$coord"
[ "$EXIT_CODE" -eq 1 ] || fail "coordinator exited $EXIT_CODE, expected 1 (one dead item)"
"$DROVER" dead crash >"$TMP/dead"
[ "$(wc -l <"$TMP/dead")" -eq 1 ] || fail "expected exactly one dead item: $(cat "$TMP/dead")"
grep -q '^1	.*killed by signal 11.*"attempt":3.*about to crash' "$TMP/dead" ||
    fail "dead item 1 lacks the signal, attempt or stderr: $(cat "$TMP/dead")"
[ "$(status_num crash done)" -eq 5 ] || fail "expected 5 done (2 after one failure)"
all_done_ids crash 2 | grep -qx 2 ||
    fail "item 2 did not end done after failing once"
"$DROVER" dead crash --json | grep -q '"id":"1","error":{"error":"killed by signal 11' ||
    fail "drover dead --json"
say "crashing handler: dead after 3 attempts with signal 11 and its stderr; failing once: done"
echo "PASS: worker signals and bad handlers"
