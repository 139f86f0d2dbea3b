#!/usr/bin/env bash
# An idle worker still takes work (issue 21, "idle fleets cost nothing"): a worker whose job's
# partitions have all come up empty only probes their pending lists (worker/loop.c,
# probe_idle), and must still take retries that come due while it idles, and a job submitted
# while it serves nothing. Each is polled against a generous deadline; no speed is asserted
# (bench/idle.sh measures the latency and what the idle fleet costs Redis).
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

# Each item fails its first attempt (a marker file per id), so it waits in the retry set for up
# to --backoff-ms while the worker finds every partition empty and turns to probing.
mkdir -p "$TMP/m"
FAIL_ONCE='[ -e "$0/$DROVER_ITEM_ID" ] && exit 0; : >"$0/$DROVER_ITEM_ID"; exit 1'
bg w "$WORKER" --id w --idle-ms 20 -- sh -c "$FAIL_ONCE" "$TMP/m"
"$DROVER" submit --id a --range 1..4 --partitions 4 --backoff-ms 2500 --quiet >/dev/null
bg coord_a "$DROVER" run a
ca=$LAST_PID
wait_for "the first attempts" 15 sh -c '[ "$(ls "$1" | wc -l)" -eq 4 ]' _ "$TMP/m"
wait_for "the retries done by the idle worker" 20 done_at_least a 4
wait_exit 15 "$ca"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run a exited $EXIT_CODE"
[ "$(status_num a dead)" -eq 0 ] || fail "items dead: $("$DROVER" status a)"
grep -q "attempt 1 failed" "$TMP/w.log" || fail "no first attempt failed: the test did not test retries"
say "retries that came due while the worker idled were taken and done"

# The worker now serves no running job; a new one is found and done.
rm -rf "$TMP/m" && mkdir -p "$TMP/m" && touch "$TMP/m/1" "$TMP/m/2"
"$DROVER" submit --id b --range 1..2 --partitions 2 --quiet >/dev/null
bg coord_b "$DROVER" run b
wait_exit 20 "$LAST_PID"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run b exited $EXIT_CODE"
[ "$(status_num b done)" -eq 2 ] || fail "job b: $("$DROVER" status b)"
say "a job submitted while the worker idled was found and done"
