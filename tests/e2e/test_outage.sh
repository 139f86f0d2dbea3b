#!/usr/bin/env bash
# A Redis outage mid-run: redis-server (appendonly yes) is shut down for 10 s and started again
# on the same port. The coordinator and both workers must keep running through it, each must
# log the outage exactly once ("redis lost" ... "redis reconnected"), not once per retry, and
# the job must then complete with the processed-id record equal to the source. The workers'
# --ack-log files must hold only ids of that record.
# Which worker reconnects first is a race (each has its own jittered backoff, up to 5 s): one
# may finish the job while the other still waits, so each worker's reconnect is waited for on
# its own (it keeps running: no --exit-when-done), never assumed to happen before the job ends.
# Log lines are matched loosely ("lost" / "reconnected"), so a line that also counts retries
# still matches.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis --appendonly yes --appendfsync everysec
J=outage
P=4
N=5000
seq 1 $N | sort >"$TMP/expected"
"$DROVER" submit --id $J --range 1..$N --partitions $P --lease-ms 5000 --quiet
RECORD="$DROVER_BIN_DIR/tests/record_calls"

# A worker refuses an ack log it cannot open, with exit 2 and a message naming the file.
rc=0
"$WORKER" --job $J --ack-log "$TMP/no/such/dir/acks" --handler noop >"$TMP/badlog.out" 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "an unopenable --ack-log exited $rc, expected 2"
grep -q "ack-log.*no/such/dir/acks" "$TMP/badlog.out" || fail "no clear message: $(cat "$TMP/badlog.out")"

LOST_RE='redis (connection )?lost'
BACK_RE='redis reconnected'
bg coord "$DROVER" run $J --lock-ttl-ms 2000 --progress-ms 60000
coord=$LAST_PID
for w in w1 w2; do
    bg "$w" "$WORKER" --job $J --id $w --concurrency 4 --stats-ms 0 --ack-log "$TMP/acks.$w" \
        --no-stdin -- "$RECORD" "$TMP/calls" {id}
    eval "pid_$w=\$LAST_PID"
done

running_and_done() { # the coordinator runs and at least $1 items are done
    kill -0 "$coord" 2>/dev/null || fail "the coordinator exited before the outage"
    done_at_least $J "$1"
}
wait_for "a fifth of the job done" 300 running_and_done $((N / 5))
stop_redis shutdown
say "Redis stopped at $(wc -l <"$TMP/calls") calls; 10 s outage"
t_end=$((SECONDS + 10))
while [ $SECONDS -lt $t_end ]; do
    for p in "$coord" "$pid_w1" "$pid_w2"; do
        kill -0 "$p" 2>/dev/null || fail "process $p exited during the outage"
    done
    sleep 0.2
done
for f in coord w1 w2; do
    wait_for "$f to log the outage" 10 grep -Eq "$LOST_RE" "$TMP/$f.log"
done
restart_redis
say "Redis restarted on port $REDIS_PORT"

wait_exit 480 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "the coordinator exited $EXIT_CODE, expected 0"
# The coordinator reconnected before it could mark the job done; a worker may still be in its
# backoff (at most 5 s): wait for each one's reconnect, whoever finished the job.
for w in w1 w2; do
    wait_for "$w to reconnect" 30 grep -Eq "$BACK_RE" "$TMP/$w.log"
done
for f in coord w1 w2; do
    lost=$(grep -Ec "$LOST_RE" "$TMP/$f.log" || true)
    back=$(grep -Ec "$BACK_RE" "$TMP/$f.log" || true)
    [ "$lost" -eq 1 ] && [ "$back" -eq 1 ] ||
        fail "$f logged 'redis lost' $lost times and 'redis reconnected' $back times, expected 1 and 1"
done
for w in w1 w2; do
    eval "pid=\$pid_$w"
    kill -0 "$pid" 2>/dev/null || fail "worker $w exited"
    grep -E "$BACK_RE" "$TMP/$w.log" | grep -q "flushed [0-9]* results" ||
        fail "$w did not say how many results it flushed"
done

all_done_ids $J $P >"$TMP/record"
diff -q "$TMP/expected" "$TMP/record" >/dev/null ||
    fail "the done record differs from the source ($(wc -l <"$TMP/record") ids)"
for f in pending leased retrying dead; do
    [ "$(status_num $J "$f")" -eq 0 ] || fail "$f is not 0 at the end"
done
cat "$TMP"/acks.w* | cut -d' ' -f2 | sort -u >"$TMP/acked"
[ -s "$TMP/acked" ] || fail "the ack logs are empty"
[ "$(comm -23 "$TMP/acked" "$TMP/record" | wc -l)" -eq 0 ] || fail "an acked id is not in the record"
grep -qv "^$J " "$TMP"/acks.w* && fail "an ack log line is not 'JOB ID'"
say "outage ok: $(wc -l <"$TMP/calls") calls for $N items, $(wc -l <"$TMP/acked") ids in the ack logs"
