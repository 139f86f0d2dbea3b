#!/usr/bin/env bash
# Callbacks and cleanup (issue 7): on_complete is POSTed once when a job ends (retried until a
# 2xx, the sent mark in Redis, so a killed and restarted coordinator sends exactly one accepted
# POST and a later one none), on_dead once when the dead count exceeds alert_dead_over, a
# cancelled job reports "cancelled", ttl_after_done lets every key of a done job expire, and
# bad spec values exit 2 naming the field.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis
start_httpd
export HTTP

# bodies PATH PYEXPR: evaluates PYEXPR over d, the list of requests /hook* recorded for PATH.
bodies() {
    curl -fsS "$HTTP/_bodies?path=$1" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$2"
}
nbodies() { bodies "$1" 'len(d)'; }
nbodies_at_least() { [ "$(nbodies "$1")" -ge "$2" ]; }
# spec FILE ID EXTRA_JSON: a range spec with the given extra fields.
spec() {
    echo "{\"id\": \"$2\", \"source\": {\"type\": \"range\", \"start\": 1, \"end\": ${4:-300}}, \"partitions\": 2 $3}" >"$1"
}
run() { # run NAME JOB [args]: drover run in the background with fast callback retries
    local name=$1 job=$2
    shift 2
    bg "$name" "$DROVER" run "$job" --callback-backoff-ms 100 --callback-backoff-max-ms 400 \
        --lock-ttl-ms 500 "$@"
}

# ---- on_complete: retried until accepted, exactly one accepted, the body matches status ------
spec "$TMP/cb.json" cb ', "on_complete": {"url": "'"$HTTP"'/hook/2/cb", "headers": {"X-Token": "${CB_TOKEN}"}}'
"$DROVER" submit "$TMP/cb.json" --quiet >/dev/null
CB_TOKEN=s3cret run run-cb cb
c=$LAST_PID
bg w-cb "$WORKER" --job cb --handler noop --exit-when-done
wait_exit 60 "$c"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run cb exited $EXIT_CODE"
[ "$(bodies /hook/2/cb '[r["status"] for r in d]')" = "[500, 500, 200]" ] ||
    fail "on_complete attempts: $(bodies /hook/2/cb '[r["status"] for r in d]')"
"$DROVER" status cb --json >"$TMP/cb.status"
created=$(R HGET 'drover:{cb}:job' created_ms)
python3 - "$TMP/cb.status" "$created" <<'EOF' || fail "the on_complete body does not match drover status"
import json, sys, urllib.request
st = json.load(open(sys.argv[1]))
created = int(sys.argv[2])
import os
reqs = json.load(urllib.request.urlopen(os.environ["HTTP"] + "/_bodies?path=/hook/2/cb"))
keys = {r["headers"].get("idempotency-key") for r in reqs}
assert keys == {"drover-cb-%d-complete" % created}, keys
for r in reqs:
    assert r["method"] == "POST"
    assert r["headers"]["content-type"] == "application/json", r["headers"]
    assert r["headers"]["x-token"] == "s3cret", r["headers"]
b = json.loads(reqs[-1]["body"])
want = {"job": "cb", "event": "complete", "state": "done", "total": 300, "processed": st["done"],
        "dead": st["dead"], "duplicates": st["duplicates"],
        "failed_attempts": st["failed_attempts"], "started_ms": st["created_ms"],
        "finished_ms": st["finished_ms"], "duration_ms": st["finished_ms"] - st["created_ms"],
        "first_errors": []}
assert b == want, (b, want)
assert st["done"] == 300 and st["created_ms"] == created
assert isinstance(st["complete_sent_ms"], int) and st["complete_sent_ms"] >= st["finished_ms"], st
assert st["dead_alert_sent_ms"] is None and st["expires_ms"] is None, st
EOF
R HGET 'drover:{cb}:job' spec | grep -qF '${CB_TOKEN}' || fail "the header reference is not in the spec"
R --scan | while read -r k; do R DUMP "$k"; done | grep -qa s3cret && fail "the secret reached Redis"
# A coordinator started again on the done job: exit 0 at once, nothing sent.
CB_TOKEN=s3cret run run-cb2 cb
wait_exit 30 "$LAST_PID"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run on a done job exited $EXIT_CODE"
[ "$(nbodies /hook/2/cb)" -eq 3 ] || fail "a restart after the mark sent again"
say "on_complete: 2 failures retried, 1 accepted, body = status, secret from the environment only"

# ---- killed after done, before the endpoint accepts: one accepted POST in all ----------------
# The endpoint fails until the test says otherwise (/_hookmode), so the kill lands before any 2xx.
curl -fsS -X POST "$HTTP/_hookmode?path=/hook/0/k&fail=1" >/dev/null
spec "$TMP/k.json" k ', "on_complete": {"url": "'"$HTTP"'/hook/0/k"}' 50
"$DROVER" submit "$TMP/k.json" --quiet >/dev/null
bg w-k "$WORKER" --job k --handler noop --exit-when-done
run run-k k
c=$LAST_PID
wait_for "two failed callback attempts" 60 nbodies_at_least /hook/0/k 2
kill -9 "$c"
wait "$c" 2>/dev/null || true
[ "$(R HGET 'drover:{k}:job' state)" = done ] || fail "job k is not done"
[ -z "$(R HGET 'drover:{k}:job' complete_sent)" ] || fail "k was marked sent before it was accepted"
before=$(nbodies /hook/0/k)
run run-k2 k
c=$LAST_PID
wait_for "the restarted coordinator to retry" 60 nbodies_at_least /hook/0/k $((before + 1))
curl -fsS -X POST "$HTTP/_hookmode?path=/hook/0/k&fail=0" >/dev/null
wait_exit 60 "$c"
[ "$EXIT_CODE" -eq 0 ] || fail "the restarted coordinator of k exited $EXIT_CODE"
[ "$(bodies /hook/0/k '[r["status"] for r in d].count(200)')" -eq 1 ] ||
    fail "accepted POSTs for k: $(bodies /hook/0/k '[r["status"] for r in d]')"
[ "$(bodies /hook/0/k '[r["status"] for r in d][-1]')" -eq 200 ] || fail "a POST after the accepted one"
[ -n "$(R HGET 'drover:{k}:job' complete_sent)" ] || fail "k has no sent mark"
n=$(nbodies /hook/0/k)
run run-k3 k
wait_exit 30 "$LAST_PID"
[ "$EXIT_CODE" -eq 0 ] && [ "$(nbodies /hook/0/k)" -eq "$n" ] || fail "a third coordinator sent again"
say "kill -9 during the retries ($before attempts), restart: exactly one accepted POST, then none"

# ---- while retrying, the coordinator keeps its lock and stops on SIGTERM ---------------------
spec "$TMP/s.json" s ', "on_complete": {"url": "'"$HTTP"'/hook/100000/s"}' 10
"$DROVER" submit "$TMP/s.json" --quiet >/dev/null
bg w-s "$WORKER" --job s --handler noop --exit-when-done
run run-s s --callback-backoff-ms 200 --callback-backoff-max-ms 200
c1=$LAST_PID
wait_for "retries of s past the lock TTL (500 ms)" 30 nbodies_at_least /hook/100000/s 5
run run-s2 s
c2=$LAST_PID
wait_for "a second coordinator of s to stand by" 30 grep -q "standing by" "$TMP/run-s2.log"
[ "$(nbodies /hook/100000/s)" -ge 5 ] && kill -0 "$c1" || fail "the first coordinator of s is gone"
n=$(nbodies /hook/100000/s)
t0=$(date +%s%N)
kill -TERM "$c1"
wait_exit 10 "$c1"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$EXIT_CODE" -eq 143 ] || fail "SIGTERM while retrying a callback: exit $EXIT_CODE, expected 143"
wait_for "the standby of s to take over the retries" 30 nbodies_at_least /hook/100000/s $((n + 2))
kill -TERM "$c2"
wait_exit 10 "$c2"
[ "$EXIT_CODE" -eq 143 ] || fail "the standby exited $EXIT_CODE after SIGTERM"
[ -z "$(R HGET 'drover:{s}:job' complete_sent)" ] || fail "s marked sent without a 2xx"
say "retrying: lock kept (a standby waited), SIGTERM -> 143 in $ms ms (incl. wait polling), standby took over"

# ---- Retry-After is the floor of the delay -------------------------------------------------
spec "$TMP/ra.json" ra ', "on_complete": {"url": "'"$HTTP"'/hook-ra/1/1/ra"}' 10
"$DROVER" submit "$TMP/ra.json" --quiet >/dev/null
bg w-ra "$WORKER" --job ra --handler noop --exit-when-done
run run-ra ra
wait_exit 30 "$LAST_PID"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run ra exited $EXIT_CODE"
gap=$(bodies /hook-ra/1/1/ra 'int((d[1]["t"] - d[0]["t"]) * 1000) if len(d) == 2 else -1')
[ "$gap" -ge 950 ] || fail "the retry after a Retry-After: 1 came after $gap ms"
say "Retry-After: 1 honoured (next attempt after $gap ms, backoff 100 ms)"

# ---- on_dead: once, when dead > alert_dead_over; first_errors carry the errors ----------------
spec "$TMP/d.json" d ', "max_attempts": 1, "alert_dead_over": 3,
  "on_dead": {"url": "'"$HTTP"'/hook/0/d"}, "on_complete": {"url": "'"$HTTP"'/hook/0/dc"}' 40
"$DROVER" submit "$TMP/d.json" --quiet >/dev/null
run run-d d
c=$LAST_PID
bg w-d "$WORKER" --job d --exit-when-done -- sh -c 'test "$1" -gt 6' sh '{id}'
wait_exit 60 "$c"
[ "$EXIT_CODE" -eq 1 ] || fail "drover run d (dead items) exited $EXIT_CODE, expected 1"
[ "$(nbodies /hook/0/d)" -eq 1 ] || fail "on_dead sent $(nbodies /hook/0/d) times"
[ "$(bodies /hook/0/d 'json.loads(d[0]["body"])["event"], json.loads(d[0]["body"])["threshold"]')" = "('dead_over', 3)" ] ||
    fail "on_dead body: $(bodies /hook/0/d 'd[0]["body"]')"
[ "$(bodies /hook/0/d 'json.loads(d[0]["body"])["dead"] > 3 and all(1 <= int(e["id"]) <= 6 and "error" in e["error"] for e in json.loads(d[0]["body"])["first_errors"])')" = True ] ||
    fail "on_dead body: $(bodies /hook/0/d 'd[0]["body"]')"
[ "$(bodies /hook/0/d 'd[0]["headers"]["idempotency-key"].endswith("-dead")')" = True ] || fail "on_dead key"
[ "$(bodies /hook/0/dc 'sorted(int(e["id"]) for e in json.loads(d[0]["body"])["first_errors"])')" = "[1, 2, 3, 4, 5, 6]" ] ||
    fail "on_complete first_errors: $(bodies /hook/0/dc 'd[0]["body"]')"
[ "$(bodies /hook/0/dc 'json.loads(d[0]["body"])["dead"]')" -eq "$(status_num d dead)" ] || fail "dead count"
"$DROVER" status d --json | grep -q '"dead_alert_sent_ms":[0-9]' || fail "status has no dead_alert_sent_ms"
say "on_dead: one alert with dead > 3 and the first errors; on_complete lists the 6 dead ids"

# ---- cancelled: on_complete with state cancelled -------------------------------------------
spec "$TMP/c.json" c ', "on_complete": {"url": "'"$HTTP"'/hook/0/c"}' 1000000
"$DROVER" submit "$TMP/c.json" --quiet >/dev/null
run run-c c
c=$LAST_PID
fed_some() { [ "$(status_num c fed)" -gt 0 ]; }
wait_for "job c to be fed" 30 fed_some
"$DROVER" cancel c >/dev/null
wait_exit 30 "$c"
[ "$EXIT_CODE" -eq 4 ] || fail "the coordinator of a cancelled job exited $EXIT_CODE"
[ "$(bodies /hook/0/c 'len(d), json.loads(d[0]["body"])["state"]')" = "(1, 'cancelled')" ] ||
    fail "cancel callback: $(bodies /hook/0/c 'd')"
say "cancelled: one on_complete with state cancelled, exit 4 as before"

# ---- a missing ${NAME}: exit 2 naming it, nothing sent ---------------------------------------
spec "$TMP/e.json" e ', "on_complete": {"url": "'"$HTTP"'/hook/0/e", "headers": {"A": "${DROVER_TEST_UNSET_VAR}"}}' 5
"$DROVER" submit "$TMP/e.json" --quiet >/dev/null
rc=0
"$DROVER" run e 2>"$TMP/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "DROVER_TEST_UNSET_VAR" "$TMP/err" || fail "missing variable: rc $rc: $(cat "$TMP/err")"
[ "$(nbodies /hook/0/e)" -eq 0 ] || fail "sent without its header"

# ---- ttl_after_done: every key of the job expires; the list entry goes when read --------------
spec "$TMP/t.json" t ', "ttl_after_done": 3, "on_complete": {"url": "'"$HTTP"'/hook/0/t"}' 100
"$DROVER" submit "$TMP/t.json" --quiet >/dev/null
run run-t t
c=$LAST_PID
bg w-t "$WORKER" --job t --handler noop --exit-when-done
wait_exit 60 "$c"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run t exited $EXIT_CODE"
[ "$(nbodies /hook/0/t)" -eq 1 ] || fail "t: no callback before the expiry"
"$DROVER" status t --json >"$TMP/t.status"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["finished_ms"] + 3000 <= s["expires_ms"] <= s["complete_sent_ms"] + 3000 + 1000, s' "$TMP/t.status" ||
    fail "status t: expires_ms is not 3 s after the callback: $(cat "$TMP/t.status")"
gone() { [ -z "$(R --scan --pattern 'drover:{t*')" ]; }
wait_for "the keys of t to expire" 20 gone
"$DROVER" list | grep -q '^t ' && fail "t is still listed"
[ -z "$(R ZSCORE drover:jobs t)" ] || fail "the jobs entry of t stayed after a list"
[ "$(R PTTL 'drover:{cb}:job')" -eq -1 ] || fail "a job without ttl_after_done got a TTL"
[ "$(status_num cb done)" -eq 300 ] || fail "cb lost its counts"
say "ttl_after_done 3: every key of t gone, list entry dropped, other jobs untouched"

# ---- bad values: exit 2 naming the field, nothing written ----------------------------------
before=$(R DBSIZE)
bad() { # bad PATTERN EXTRA_JSON
    spec "$TMP/bad.json" bad "$2" 5
    local rc=0
    "$DROVER" submit "$TMP/bad.json" 2>"$TMP/err" >/dev/null || rc=$?
    [ "$rc" -eq 2 ] && grep -qF -- "$1" "$TMP/err" || fail "bad spec ($2): rc $rc: $(cat "$TMP/err")"
}
bad "on_complete.url: expected an http:// or https:// URL" ', "on_complete": {"url": "ftp://x/y"}'
bad "on_complete.retries: unknown field" ', "on_complete": {"url": "http://x/", "retries": 3}'
bad "on_complete.headers.A: expected" ', "on_complete": {"url": "http://x/", "headers": {"A": 1}}'
bad "on_dead.timeout_ms: expected 100 to 600000" ', "alert_dead_over": 1, "on_dead": {"url": "http://x/", "timeout_ms": 0}'
bad 'alert_dead_over: needs "on_dead"' ', "alert_dead_over": 5'
bad 'on_dead: needs "alert_dead_over"' ', "on_dead": {"url": "http://x/"}'
bad "ttl_after_done: expected 0 (keep) to 31536000 seconds, got -5" ', "ttl_after_done": -5'
bad "ttl_after_done: expected a whole number" ', "ttl_after_done": "1h"'
[ "$(R DBSIZE)" -eq "$before" ] || fail "a refused spec wrote something"
say "bad callback and ttl values: exit 2 naming the field, nothing written"
echo "PASS: callbacks and ttl_after_done"
