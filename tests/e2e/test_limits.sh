#!/usr/bin/env bash
# Fleet-wide limits: a rate shared by every worker, a cap on items in flight across workers,
# both changed while the job runs (drover set), and a worker sharing itself between jobs.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis
start_httpd

# span_of_log: seconds from the first to the last request the fixture server logged.
span_of_log() {
    curl -fsS "$HTTP/_log" | python3 -c '
import json, sys
ts = [t for t, p, s in json.load(sys.stdin)]
print("%d %.3f" % (len(ts), max(ts) - min(ts)))'
}

# ---- (a) the rate holds across workers ---------------------------------------------------------
# 300 items at 100/s with a burst of 10, two workers with 16 in flight each: the bucket lets the
# fleet start at most 10 + 100/s, so the requests span at least (300 - 10) / 100 = 2.9 s (less
# 0.2 s for the time from the first grant to the first request). Only this bound is asserted.
cat >"$TMP/rate.json" <<JSON
{"id": "rate", "partitions": 4, "source": {"type": "range", "start": 1, "end": 300},
 "rate": {"per_second": 100, "burst": 10}, "handler": {"type": "http", "url": "$HTTP/ok/{id}"}}
JSON
"$DROVER" submit "$TMP/rate.json" --quiet >/dev/null
"$DROVER" status rate | grep -q "limits: rate 100/s (burst 10)" || fail "status does not show the rate"
# The same limits from drover submit's flags (the burst defaulting to a tenth of the rate).
"$DROVER" submit --id flags --range 1..10 --rate 100 --max-in-flight 5 --weight 3 --quiet >/dev/null
got=$(R HMGET 'drover:{flags}:limits' per_second burst max_in_flight weight | tr '\n' ' ')
[ "$got" = "100 10 5 3 " ] || fail "submit --rate/--max-in-flight/--weight wrote limits: $got"
"$DROVER" purge flags --force >/dev/null
bg coord_rate "$DROVER" run rate --progress-ms 500
c=$LAST_PID
bg wr1 "$WORKER" --job rate --concurrency 16 --exit-when-done --id wr1
bg wr2 "$WORKER" --job rate --concurrency 16 --exit-when-done --id wr2
wait_exit 60 "$c"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run rate exited $EXIT_CODE"
read -r n span < <(span_of_log)
say "rate: $n requests over $span s (at 100/s, burst 10: at least 2.7 s)"
[ "$n" -eq 300 ] || fail "the server saw $n requests, not 300"
python3 -c "import sys; sys.exit(0 if $span >= 2.7 else 1)" || fail "300 requests in $span s: faster than 100/s"

# ---- (b) max_in_flight across three workers ----------------------------------------------------
# Each answer takes 100 ms; three workers could have 24 requests in flight, the cap is 5.
curl -fsS -X POST "$HTTP/_reset" >/dev/null
cat >"$TMP/cap.json" <<JSON
{"id": "cap", "partitions": 3, "source": {"type": "range", "start": 1, "end": 150},
 "max_in_flight": 5, "handler": {"type": "http", "url": "$HTTP/delay/100/{id}"}}
JSON
"$DROVER" submit "$TMP/cap.json" --quiet >/dev/null
bg coord_cap "$DROVER" run cap --progress-ms 500
c=$LAST_PID
for w in wc1 wc2 wc3; do bg "$w" "$WORKER" --job cap --concurrency 8 --exit-when-done --id "$w"; done
wait_exit 60 "$c"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run cap exited $EXIT_CODE"
peak=$(curl -fsS "$HTTP/_stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["peak"])')
say "max_in_flight 5: the server saw at most $peak requests at once"
[ "$peak" -le 5 ] || fail "$peak requests in flight at once, the cap is 5"
[ "$peak" -ge 2 ] || fail "never more than one request in flight: the test did not exercise the cap"
[ "$(hits_total)" -eq 150 ] || fail "the server saw $(hits_total) requests, not 150"

# ---- (c) drover set changes the rate while the job runs -----------------------------------------
# 400 items at 20/s (burst 1): at that rate the job needs 20 s. After 20 requests the rate goes
# to 400/s, so the rest may finish in about a second; the job must end within 12 s of the
# change, which 20/s cannot do (380 / 20 = 19 s).
curl -fsS -X POST "$HTTP/_reset" >/dev/null
cat >"$TMP/live.json" <<JSON
{"id": "live", "partitions": 2, "source": {"type": "range", "start": 1, "end": 400},
 "rate": {"per_second": 20, "burst": 1}, "handler": {"type": "http", "url": "$HTTP/ok/{id}"}}
JSON
"$DROVER" submit "$TMP/live.json" --quiet >/dev/null
bg coord_live "$DROVER" run live --progress-ms 500
c=$LAST_PID
bg wl1 "$WORKER" --job live --concurrency 8 --exit-when-done --id wl1
bg wl2 "$WORKER" --job live --concurrency 8 --exit-when-done --id wl2
hits_at_least() { [ "$(hits_total)" -ge "$1" ]; }
wait_for "20 requests at the first rate" 30 hits_at_least 20
# Bad input is refused with exit 2 and nothing written.
for bad in "rate=-1" "rate=fast" "speed=5" "burst=0" "weight=0" "max_in_flight=1000001" "rate=0 burst=5"; do
    rc=0
    # shellcheck disable=SC2086
    "$DROVER" set live $bad 2>"$TMP/set_err.log" || rc=$?
    [ "$rc" -eq 2 ] || fail "drover set live $bad exited $rc, not 2"
done
"$DROVER" set live 2>/dev/null && fail "drover set without KEY=VALUE succeeded"
[ "$(R HGET 'drover:{live}:limits' per_second)" = 20 ] || fail "a refused drover set wrote the limits"
"$DROVER" set nosuchjob rate=5 2>/dev/null && fail "drover set on a missing job succeeded"
"$DROVER" set live --help | grep -q "drover set backfill rate=200" || fail "drover set --help has no example"
"$DROVER" set live rate=400 burst=1 >"$TMP/set.out" || fail "drover set live rate=400 failed"
grep -q "rate 400/s (burst 1)" "$TMP/set.out" || fail "drover set said: $(cat "$TMP/set.out")"
t_set=$SECONDS
"$DROVER" status live --json | grep -q '"rate_per_second":400' || fail "status --json does not show the new rate"
wait_exit 40 "$c"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run live exited $EXIT_CODE"
took=$((SECONDS - t_set))
say "live: the rest of the job took ${took} s after drover set rate=400"
[ "$took" -le 12 ] || fail "the job took $took s after the rate went to 400/s: the change was not applied"
# The later part ran at the new bound: the last 300 requests span at least 299 / 400 s.
curl -fsS "$HTTP/_log" | python3 -c '
import json, sys
ts = sorted(t for t, p, s in json.load(sys.stdin))
assert len(ts) == 400, len(ts)
span = ts[-1] - ts[-300]
print("last 300 requests over %.3f s" % span, file=sys.stderr)
assert span >= 299 / 400 - 0.2, span' || fail "the requests after drover set went faster than 400/s"

# ---- (d) fairness: a small job is not starved by a big one ---------------------------------------
# One worker, 8 at a time, each request 20 ms. The big job (20000 items) runs first; once it
# has 200 done, a small job (200 items) arrives. Sharing the worker evenly, the small job ends
# after about 400 more items; the big one is then far from done (at most a quarter).
curl -fsS -X POST "$HTTP/_reset" >/dev/null
cat >"$TMP/big.json" <<JSON
{"id": "big", "partitions": 4, "source": {"type": "range", "start": 1, "end": 20000},
 "handler": {"type": "http", "url": "$HTTP/delay/20/big-{id}"}}
JSON
cat >"$TMP/small.json" <<JSON
{"id": "small", "partitions": 2, "source": {"type": "range", "start": 1, "end": 200},
 "handler": {"type": "http", "url": "$HTTP/delay/20/small-{id}"}}
JSON
"$DROVER" submit "$TMP/big.json" --quiet >/dev/null
bg coord_big "$DROVER" run big --progress-ms 500
cb=$LAST_PID
bg wf "$WORKER" --concurrency 8 --id wf
wait_for "the big job to get going" 30 done_at_least big 200
"$DROVER" submit "$TMP/small.json" --quiet >/dev/null
bg coord_small "$DROVER" run small --progress-ms 500
cs=$LAST_PID
wait_exit 60 "$cs"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run small exited $EXIT_CODE"
big_done=$(status_num big done)
say "fairness: the small job (200) finished when the big one had $big_done of 20000 done"
[ "$big_done" -lt 5000 ] || fail "the big job had $big_done done before the small one finished"
"$DROVER" cancel big >/dev/null
wait_exit 30 "$cb"
