#!/usr/bin/env bash
# Redis Sentinel: one master, one replica and three sentinels on loopback (redis-server
# --sentinel). drover finds the master through redis+sentinel://; the master is killed mid-run,
# the sentinels promote the replica, drover asks them again and the job completes with its done
# record equal to the source. An unknown master name is a clear error.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_node master --repl-diskless-sync-delay 0
mpid=$LAST_NODE_PID
start_node replica --replicaof 127.0.0.1 "$master"
wait_for "the replica to sync" 30 replicas_synced "$replica"
cat >"$TMP/sentinel.conf" <<CONF
sentinel monitor mm 127.0.0.1 $master 2
sentinel down-after-milliseconds mm 1000
sentinel failover-timeout mm 10000
CONF
sports=()
for i in 1 2 3; do
    SPAWN_CONF="$TMP/sentinel.conf" spawn_redis "$TMP/sentinel-%p" "$TMP/sentinel-%p.log" --sentinel
    NODE_PIDS+=("$SPAWN_PID")
    sports+=("$SPAWN_PORT")
    SPAWN_PID=""
done
sentinels_ready() {
    local p
    for p in "${sports[@]}"; do
        [ "$(redis-cli -p "$p" sentinel replicas mm 2>/dev/null | grep -c "^name$")" -ge 1 ] || return 1
        [ "$(redis-cli -p "$p" sentinel sentinels mm 2>/dev/null | grep -c "^name$")" -eq 2 ] || return 1
    done
}
wait_for "the sentinels to see the replica and each other" 60 sentinels_ready
REDIS_PORT=$master
export DROVER_REDIS_URL="redis+sentinel://127.0.0.1:${sports[0]},127.0.0.1:${sports[1]},127.0.0.1:${sports[2]}/mm"

rc=0
DROVER_REDIS_URL="redis+sentinel://127.0.0.1:${sports[0]}/nosuch" "$DROVER" list 2>"$TMP/err" || rc=$?
[ "$rc" -ne 0 ] && grep -q 'cannot find the Redis master "nosuch"' "$TMP/err" ||
    fail "unknown master name: exit $rc, $(cat "$TMP/err")"

"$DROVER" submit --id st --range 1..4000 --partitions 4 --quiet >/dev/null
[ "$(R EXISTS 'drover:{st}:job')" -eq 1 ] || fail "the job is not on the master"
start_recording_fleet st 20 4
coord=$FLEET_COORD
wait_for "work under way" 30 done_at_least st 300
kill -9 "$mpid"
say "killed the master ($master) at $(sort -u "$TMP/out" | wc -l) ids run"
REDIS_PORT=$replica
promoted() { redis-cli -p "${sports[0]}" sentinel get-master-addr-by-name mm | grep -qx "$replica"; }
wait_for "the sentinels to promote the replica" 60 promoted
say "sentinels promoted $replica"
wait_exit 180 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "coordinator exited $EXIT_CODE"
all_done_ids st 4 >"$TMP/done"
seq 1 4000 | sort >"$TMP/want"
cmp -s "$TMP/done" "$TMP/want" || fail "the done record differs from the source"
sort -u "$TMP/out" | cmp -s - "$TMP/want" || fail "the handlers did not see every id"
grep -h "redis reconnected" "$TMP"/coord.log | grep -q ":$replica/" ||
    fail "no reconnect to the new master logged"
say "sentinel failover: job completed on the new master, done record = source"
echo "PASS: drover with Redis Sentinel"
