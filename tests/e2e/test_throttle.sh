#!/usr/bin/env bash
# An API that pushes back (tests/support/httpd.py on loopback): throttled answers (429, or a
# retry status with Retry-After) use no attempt, so a server that throttles everything for a
# while leaves nothing dead; an item throttled past max_throttled is dead with that reason;
# a Retry-After pauses the fleet once per episode, for that long, not longer.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis
start_httpd

# ---- (a) everything throttled for 3 s: nothing dead --------------------------------------------
# 40 items, max_attempts 2: every request in the first 3 s is a 503 with Retry-After: 1, so the
# items sent then are answered that way up to three times, more than max_attempts (the adaptive
# limit, 16 to start, halves at the first: not every item is sent in those 3 s). None may die,
# and the
# fleet pauses once per episode: a burst of 503s (up to 16 at once) starts one pause, never one
# that grows with their count (the old cool-down doubled per answer, up to backoff_max_ms).
cat >"$TMP/all.json" <<JSON
{"id": "all", "partitions": 2, "max_attempts": 2, "backoff_ms": 50, "backoff_max_ms": 60000,
 "source": {"type": "range", "start": 1, "end": 40},
 "handler": {"type": "http", "url": "$HTTP/throttle-all/3/1/{id}"}}
JSON
"$DROVER" submit "$TMP/all.json" --quiet >/dev/null
bg coord_all "$DROVER" run all --progress-ms 500
c=$LAST_PID
bg wa1 "$WORKER" --job all --concurrency 8 --exit-when-done --id wa1 --stats-ms 0
bg wa2 "$WORKER" --job all --concurrency 8 --exit-when-done --id wa2 --stats-ms 0
wait_exit 60 "$c"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run all exited $EXIT_CODE (an item died of throttling?)"
[ "$(status_num all dead)" -eq 0 ] || fail "$(status_num all dead) items dead after 3 s of throttling"
[ "$(status_num all done)" -eq 40 ] || fail "done is $(status_num all done), not 40"
thr=$(status_num all throttled)
[ "$thr" -ge 16 ] || fail "throttled is $thr: the first 16 requests at least were answered 503 + Retry-After"
[ "$(R HGET 'drover:{all}:limits' a_steady)" = 1 ] || fail "the adaptive limit never decreased"
[ "$(status_num all failed_attempts)" -eq 0 ] || fail "throttled answers counted as failed attempts"
cool=$(status_num all cooldowns)
# 3 s of throttling with 1 s pauses: about 3 episodes (each worker may start one for an episode
# before it sees the other's), never one per answer.
[ "$cool" -ge 1 ] && [ "$cool" -le 8 ] || fail "$cool fleet cool-downs for $thr throttled answers"
"$DROVER" status all | grep -q "throttled: $thr answers" || fail "status does not show the throttled answers"
# No item was sent again before its Retry-After (1 s) was over.
curl -fsS "$HTTP/_log" | python3 -c '
import json, sys, collections
by = collections.defaultdict(list)
for t, p, s in json.load(sys.stdin):
    by[p].append((t, s))
worst = min((b[0] - a[0] for v in by.values() for a, b in zip(v, v[1:]) if a[1] == 503), default=9)
print("shortest gap after a 503 + Retry-After: %.3f s" % worst, file=sys.stderr)
sys.exit(0 if worst >= 0.95 else 1)' || fail "an item was retried before its Retry-After"
say "3 s of 503 + Retry-After: 40 done, none dead, $thr throttled, 0 failed attempts, $cool cool-downs"

# ---- (b) max_throttled dead-letters ------------------------------------------------------------
# 429 without Retry-After for ever, max_throttled 3: each item is dead after its 4th answer, with
# the reason; the 429s used no attempt (max_attempts 1 would have killed it on the first).
cat >"$TMP/mt.json" <<JSON
{"id": "mt", "partitions": 1, "max_attempts": 1, "max_throttled": 3, "backoff_ms": 20,
 "backoff_max_ms": 100, "source": {"type": "range", "start": 1, "end": 5},
 "handler": {"type": "http", "url": "$HTTP/status/429/{id}"}}
JSON
"$DROVER" submit "$TMP/mt.json" --quiet >/dev/null
bg coord_mt "$DROVER" run mt --progress-ms 500
c=$LAST_PID
bg wm "$WORKER" --job mt --concurrency 4 --exit-when-done --id wm --stats-ms 0
wait_exit 60 "$c"
[ "$EXIT_CODE" -eq 1 ] || fail "drover run mt exited $EXIT_CODE, expected 1 (dead items)"
[ "$(status_num mt dead)" -eq 5 ] || fail "dead is $(status_num mt dead), not 5"
[ "$(status_num mt throttled)" -eq 20 ] || fail "throttled is $(status_num mt throttled), not 5 x 4"
for i in 1 2 3 4 5; do
    [ "$(hits /status/429/$i)" -eq 4 ] || fail "item $i was sent $(hits /status/429/$i) times, not 4"
done
"$DROVER" dead mt | grep -c '"reason":"max_throttled"' | grep -qx 5 || fail "dead errors lack the reason: $("$DROVER" dead mt | head -2)"
say "max_throttled 3: every item dead after 4 answers of 429, reason max_throttled"

# ---- (c) the halt threshold ---------------------------------------------------------------------
# A handler broken for every item (500): halt at more than 50% of the last 20 finished attempts.
# The job pauses itself after about 20 attempts of its 1000 items, says why, and goes on after
# drover resume (until it halts again).
cat >"$TMP/halt.json" <<JSON
{"id": "halt", "partitions": 2, "max_attempts": 1, "halt": {"failed_percent": 50, "min_items": 20},
 "source": {"type": "range", "start": 1, "end": 1000},
 "handler": {"type": "http", "url": "$HTTP/status/500/{id}"}}
JSON
"$DROVER" submit "$TMP/halt.json" --quiet >/dev/null
bg coord_halt "$DROVER" run halt --progress-ms 500 --tick-ms 50
ch=$LAST_PID
bg wh "$WORKER" --job halt --concurrency 2 --id wh --stats-ms 0
wh=$LAST_PID
halted() { [ "$("$DROVER" status halt --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = paused ]; }
wait_for "the job to pause itself" 30 halted
"$DROVER" status halt | grep -q "halted: .* of the last .* finished attempts failed" ||
    fail "status does not say why the job paused: $("$DROVER" status halt | head -5)"
grep -q "job halt paused: halted" "$TMP/coord_halt.log" || fail "no log line says the job halted"
d1=$(status_num halt dead)
[ "$d1" -ge 20 ] && [ "$d1" -lt 200 ] || fail "$d1 items dead at the halt: expected about 20 (M), far fewer than 1000"
"$DROVER" resume halt >/dev/null
more_dead() { [ "$(status_num halt dead)" -gt "$d1" ]; }
wait_for "items to run after drover resume" 30 more_dead
wait_for "the job to halt again after the resume" 30 halted
say "halt: paused itself after $d1 dead of 1000; resumed, went on, halted again at $(status_num halt dead)"
# The halt's reason goes with its pause: with the coordinator and worker stopped (so nothing
# halts the job again), resume empties it and a later pause by hand does not show it.
kill "$wh" 2>/dev/null || true
kill "$ch"
wait_exit 30 "$ch"
"$DROVER" resume halt >/dev/null
[ -z "$(R HGET 'drover:{halt}:job' halted)" ] || fail "drover resume left the halt's reason"
"$DROVER" pause halt >/dev/null
! "$DROVER" status halt | grep -q "halted:" || fail "a pause by hand shows the old halt's reason"
"$DROVER" cancel halt >/dev/null
say "halt: resume empties its reason; a later pause by hand shows none"

echo "PASS: throttled answers use no attempt, max_throttled, Retry-After per item and per episode, halt"
