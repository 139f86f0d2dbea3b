#!/usr/bin/env bash
# drover-worker --health-file / --health: the container health check. The worker rewrites the
# file each second Redis answers its heartbeat; --health turns unhealthy once Redis has been
# gone for longer than --max-age, and healthy again once the worker reconnected.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

H="$TMP/health"
check() { "$WORKER" --health --health-file "$H" --max-age 3; }
unhealthy() { ! check; }
now_ms() { date +%s%3N; }

# Bad input: --health without a file is a usage error; a missing file is unhealthy.
rc=0
"$WORKER" --health >"$TMP/out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q "needs --health-file" "$TMP/out" || fail "--health alone: $rc $(cat "$TMP/out")"
rc=0
check >"$TMP/out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q "unhealthy: cannot read" "$TMP/out" || fail "no file yet: $rc $(cat "$TMP/out")"
echo garbage >"$TMP/bad"
rc=0
"$WORKER" --health --health-file "$TMP/bad" >"$TMP/out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q "does not hold" "$TMP/out" || fail "a bad file: $rc $(cat "$TMP/out")"
rc=0
"$WORKER" --health-file "" --handler noop >"$TMP/out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "--health-file '': exit $rc"
say "bad input: --health alone exits 2, a missing or foreign file is unhealthy (1)"

bg w "$WORKER" --handler noop --id hw --health-file "$H" --idle-ms 50
w=$LAST_PID
wait_for "the worker to turn healthy" 10 check
check | grep -q "^healthy: last Redis contact" || fail "check says: $(check)"
DROVER_HEALTH_FILE="$H" DROVER_HEALTH_MAX_AGE=3 "$WORKER" --health >/dev/null ||
    fail "--health from DROVER_HEALTH_FILE and DROVER_HEALTH_MAX_AGE"
grep -q " hw$" "$H" || fail "the file names the worker: $(cat "$H")"
say "a connected worker is healthy, by flags or DROVER_* variables"

# Redis goes away: healthy at first (the limit is 3 s), unhealthy once it passed.
kill "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
REDIS_PID=""
down=$(now_ms)
last_contact() { cut -d' ' -f1 "$H"; }
# Measured from the last contact the file records (a heartbeat each second, later on a loaded
# machine), not from the kill: no assumption about how long ago that heartbeat was.
[ $((down - $(last_contact))) -le 5000 ] || fail "the health file was stale while connected: $(cat "$H")"
if ! check >/dev/null && [ $(($(now_ms) - $(last_contact))) -lt 3000 ]; then
    fail "unhealthy before the 3 s limit: $(check)"
fi
wait_for "the check to turn unhealthy" 15 unhealthy
took=$(($(now_ms) - down))
age=$(($(now_ms) - $(last_contact)))
[ "$age" -ge 3000 ] || fail "unhealthy with the last contact ${age} ms ago, before the 3 s limit"
{ check || true; } | grep -q "^unhealthy: last Redis contact .* (limit 3 s)" || fail "check says: $(check)"
kill -0 "$w" || fail "the worker exited while Redis was gone"
say "Redis stopped: healthy until the limit, unhealthy after ${took} ms; the worker keeps waiting"

# Redis comes back on the same port: the worker reconnects and the check is healthy again.
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
    --logfile "$TMP/redis2.log" &
REDIS_PID=$!
wait_for "redis to come back" 10 R ping
wait_for "the check to turn healthy again" 20 check
grep -q "redis reconnected after" "$TMP/w.log" || fail "the worker did not log its reconnect"
say "Redis back: healthy again"

kill -TERM "$w"
wait_exit 15 "$w"
[ "$EXIT_CODE" -eq 0 ] || fail "SIGTERM: exit $EXIT_CODE"
echo "PASS: the worker health file and --health check"
