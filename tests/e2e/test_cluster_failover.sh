#!/usr/bin/env bash
# Redis Cluster failover mid-run: 3 masters with a replica each; the master holding partition 0
# is killed (SIGKILL) while a job runs. Its replica takes over (cluster-node-timeout 1 s), the
# coordinator and workers lose that node, read the slot map again and go on; the job completes
# and its done record equals the source. Replication is asynchronous, so the last writes the
# dead master acknowledged may be gone: at worst an item runs again (a duplicate), none is lost.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_cluster 3 1
masters=$(master_ports)
[ "$(echo "$masters" | wc -l)" -eq 3 ] || fail "expected 3 masters, got: $masters"
wait_for "every master to have its replica" 30 bash -c \
    "[ \$(redis-cli -p $REDIS_PORT cluster nodes | grep -c slave) -eq 3 ]"

"$DROVER" submit --id fo --range 1..6000 --partitions 16 --quiet >/dev/null
slot=$(R cluster keyslot 'drover:{fo.0}:state')
victim=""
for p in $masters; do
    [ "$(redis-cli -p "$p" cluster countkeysinslot "$slot")" -gt 0 ] && victim=$p
done
[ -n "$victim" ] || fail "no master holds slot $slot"
vpid=""
for i in "${!NODE_PORTS[@]}"; do [ "${NODE_PORTS[$i]}" = "$victim" ] && vpid=${NODE_PIDS[$i]}; done
[ -n "$vpid" ] || fail "no PID for node $victim"

start_recording_fleet fo 20 4
coord=$FLEET_COORD
wait_for "work under way" 30 done_at_least fo 500
kill -9 "$vpid"
say "killed master $victim (PID $vpid) holding partition 0 at $(sort -u "$TMP/out" | wc -l) ids run"
# Ask a surviving node (REDIS_PORT may be the victim).
for p in "${NODE_PORTS[@]}"; do [ "$p" != "$victim" ] && REDIS_PORT=$p && break; done
promoted() { # three masters that are alive, the victim not among them
    [ "$(redis-cli -p "$REDIS_PORT" cluster nodes | grep -v fail | grep -v ":$victim@" |
        grep -c master)" -eq 3 ]
}
wait_for "a replica to take over" 30 promoted
wait_for "the cluster to be ok again" 30 bash -c "redis-cli -p $REDIS_PORT cluster info | grep -q cluster_state:ok"
say "a replica took over slot $slot"
wait_exit 180 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "coordinator exited $EXIT_CODE"
all_done_ids fo 16 >"$TMP/done"
seq 1 6000 | sort >"$TMP/want"
cmp -s "$TMP/done" "$TMP/want" || fail "the done record differs from the source: $(comm -3 "$TMP/done" "$TMP/want" | head -3)"
sort -u "$TMP/out" | cmp -s - "$TMP/want" || fail "the handlers did not see every id"
runs=$(wc -l <"$TMP/out")
say "failover: job completed, done record = source; $runs handler runs for 6000 ids ($((runs - 6000)) again)"
echo "PASS: drover across a Redis Cluster failover"
