#!/usr/bin/env bash
# A fleet of hosts on one machine: Redis, the coordinator and three workers each in a network
# namespace of their own, joined by veth pairs to a bridge in a sixth ("hub") namespace, with
# addresses in 10.200.0.0/24. Mid-run one worker's link is cut (on the hub side: its packets
# vanish, as in a real partition) for longer than the job's lease, then restored. Asserted:
# the items it held were run again by the other workers (their leases expired), its late acks
# count as duplicates (not failures, no dead items), it reconnects by itself and works again,
# the done record equals the source, nothing is left pending or leased.
#
# Network safety: a blackhole route for 10.200.0.0/16 in the root namespace comes first (so a
# mistake can never send that traffic off the machine), the root namespace gets no 10.200
# address, every name carries this test's PID, and the namespaces are deleted at exit after
# every process started here is killed by its PID. Without the privilege to make namespaces
# the test prints SKIPPED and passes.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"

NS="drvfl$$"
NAMES=(hub rd co w1 w2 w3)
MADE=()
netns_cleanup() {
    local p n
    for p in "${PIDS[@]}" $REDIS_PID; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}" $REDIS_PID; do wait "$p" 2>/dev/null || true; done
    for n in "${MADE[@]}"; do ip netns del "$n" 2>/dev/null || true; done
}
# set +e: under errexit '(exit $rc)' would end the trap before cleanup (which reads $?) runs.
trap 'rc=$?; set +e; netns_cleanup; (exit $rc); cleanup' EXIT

skip() {
    echo "SKIPPED: $*" >&2
    exit 0
}

command -v ip >/dev/null || skip "no ip command (iproute2)"
if ! ip netns add "$NS-hub" 2>"$TMP/netns.err"; then
    skip "cannot make network namespaces here: $(cat "$TMP/netns.err")"
fi
MADE+=("$NS-hub")
# The blackhole first: before any 10.200 address exists anywhere.
out=$(ip route add blackhole 10.200.0.0/16 2>&1) || grep -q "File exists" <<<"$out" ||
    fail "cannot add the blackhole route for 10.200.0.0/16: $out"
[ -n "$(ip route show exact 10.200.0.0/16 type blackhole)" ] || fail "no blackhole route for 10.200.0.0/16"

# ---- the network: a bridge in the hub, one veth pair per host ------------------------------------
declare -A ADDR=([rd]=10.200.0.10 [co]=10.200.0.20 [w1]=10.200.0.31 [w2]=10.200.0.32 [w3]=10.200.0.33)
ip -n "$NS-hub" link set lo up
ip -n "$NS-hub" link add br0 type bridge
ip -n "$NS-hub" link set br0 up
for n in rd co w1 w2 w3; do
    ip netns add "$NS-$n" || fail "ip netns add $NS-$n"
    MADE+=("$NS-$n")
    ip -n "$NS-$n" link set lo up
    # Made inside the hub with its far end moved straight into the host: the root namespace
    # never holds either end.
    ip -n "$NS-hub" link add "v$n" type veth peer name eth0 netns "$NS-$n"
    ip -n "$NS-hub" link set "v$n" master br0 up
    ip -n "$NS-$n" addr add "${ADDR[$n]}/24" dev eth0
    ip -n "$NS-$n" link set eth0 up
done
[ -z "$(ip -4 addr show to 10.200.0.0/16)" ] || fail "the root namespace got a 10.200 address"
in_ns() { # in_ns HOST cmd...: runs cmd on that host
    local n=$1
    shift
    ip netns exec "$NS-$n" "$@"
}

# ---- Redis on its host; drover and redis-cli from the coordinator's ------------------------------
# Not through in_ns: a backgrounded function would be a subshell, and its PID not Redis's.
# Protected mode off: it refuses clients from other hosts without a password, and this server
# is reachable only from the test's namespaces.
ip netns exec "$NS-rd" redis-server --port 6379 --bind "${ADDR[rd]}" --protected-mode no \
    --save '' --appendonly no --dir "$TMP" --logfile "$TMP/redis.log" &
REDIS_PID=$!
export DROVER_REDIS_URL="redis://${ADDR[rd]}:6379/0"
R() {
    in_ns co redis-cli -h "${ADDR[rd]}" -p 6379 "$@"
}
deadline=$((SECONDS + 20))
until R ping 2>/dev/null | grep -q PONG; do
    [ $SECONDS -lt $deadline ] || fail "Redis at ${ADDR[rd]} did not answer from $NS-co"
    kill -0 "$REDIS_PID" 2>/dev/null || fail "redis-server exited: $(tail -5 "$TMP/redis.log")"
    sleep 0.05
done
printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$NS-co" "$DROVER_BIN_DIR/drover" >"$TMP/drover-co"
chmod +x "$TMP/drover-co"
DROVER="$TMP/drover-co"
say "namespaces up: redis ${ADDR[rd]}, coordinator ${ADDR[co]}, workers ${ADDR[w1]} ${ADDR[w2]} ${ADDR[w3]}"

# ---- the job: 3000 ids, each a 50 ms command, leases of 2 s ---------------------------------------
N=3000
"$DROVER" submit --id fl --range "1..$N" --partitions 6 --lease-ms 2000 --window 200 --quiet \
    >/dev/null || fail "submit from the coordinator's namespace"
bg coord "$DROVER" run fl --progress-ms 500
coord=$LAST_PID
declare -A WPID
for n in w1 w2 w3; do
    : >"$TMP/ran.$n"
    # Each run appends the id to this worker's own file, then takes 50 ms. Short socket
    # timeouts, so the cut-off worker notices within a second.
    bg "$n" ip netns exec "$NS-$n" env DROVER_COMMAND_TIMEOUT_MS=1000 DROVER_CONNECT_TIMEOUT_MS=1000 \
        "$WORKER" --job fl --id "$n" --concurrency 4 --stats-ms 1000 --exit-when-done -- \
        sh -c 'echo "$1" >>"$2"; sleep 0.05' sh {id} "$TMP/ran.$n"
    WPID[$n]=$LAST_PID
done
wait_for "300 items done" 60 done_at_least fl 300
from_ns=$(R CLIENT LIST | grep -c "addr=10\.200\.0\.3[123]:" || true)
[ "$from_ns" -ge 3 ] || fail "the workers are not connected from their namespaces: $(R CLIENT LIST)"

# ---- the partition -------------------------------------------------------------------------------
# Cut w3 while it holds leases; note which items those are, read after the cut (w3 can no
# longer ack or claim then, and its leases last 2 s more).
w3_holds() {
    local p
    for p in $(seq 0 5); do lease_ids "drover:{fl.$p}" w3; done
}
# Between its acks and its next claim w3 may hold nothing: then the link goes back up at once
# (a blip far shorter than a lease) and the cut is tried again.
deadline=$((SECONDS + 30))
while :; do
    [ $SECONDS -lt $deadline ] || fail "w3 never held a lease right after a cut"
    w3_holds >"$TMP/held.w3"
    [ -s "$TMP/held.w3" ] || { sleep 0.02; continue; }
    ip -n "$NS-hub" link set vw3 down
    w3_holds | sort -u >"$TMP/held.w3"
    [ -s "$TMP/held.w3" ] && break
    ip -n "$NS-hub" link set vw3 up
    sleep 0.2
done
cut_at=$SECONDS
done_at_cut=$(status_num fl done)
say "cut w3 off holding $(wc -l <"$TMP/held.w3") items, at $done_at_cut done"
# Its leases expire after 2 s; the others run its items again. The link stays down until
# every item w3 held has run on w1 or w2 (polled, not a fixed wait), so its late acks are
# duplicates whatever the timing.
wait_for "w3 to notice the partition" 10 grep -Eq "redis (connection )?lost" "$TMP/w3.log"
ran_elsewhere() {
    sort -u "$TMP/ran.w1" "$TMP/ran.w2" >"$TMP/ran.others"
    [ -z "$(comm -23 "$TMP/held.w3" "$TMP/ran.others")" ] || return 1
    [ "$(status_num fl expired_leases)" -ge 1 ]
}
wait_for "the items w3 held to run on w1 or w2 (its leases expired)" 30 ran_elsewhere
expired=$(status_num fl expired_leases)
ip -n "$NS-hub" link set vw3 up
ran_at_heal=$(wc -l <"$TMP/ran.w3")
say "link back after $((SECONDS - cut_at)) s; $expired leases expired meanwhile"

# It comes back by itself (reconnect with backoff) and claims again.
wait_for "w3 to reconnect" 30 grep -q "redis reconnected" "$TMP/w3.log"
w3_ran_more() { [ "$(wc -l <"$TMP/ran.w3")" -gt "$ran_at_heal" ]; }
wait_for "w3 to run items again" 30 w3_ran_more

wait_exit 120 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run fl exited $EXIT_CODE"
for n in w1 w2 w3; do
    wait_exit 30 "${WPID[$n]}"
    [ "$EXIT_CODE" -eq 0 ] || fail "worker $n exited $EXIT_CODE"
done

# ---- what the partition left behind ------------------------------------------------------------
# Every item w3 held at the cut ran on w1 or w2 too: its lease expired and it was handed out again.
sort -u "$TMP/ran.w1" "$TMP/ran.w2" >"$TMP/ran.others"
missing=$(comm -23 "$TMP/held.w3" "$TMP/ran.others" | head -5)
[ -z "$missing" ] || fail "items w3 held were not run again by another worker: $missing"
# Its late acks are duplicates, not failures or dead items.
dups=$(status_num fl duplicates)
[ "$dups" -ge 1 ] || fail "no duplicates counted after the partition"
grep -q "counted as duplicates" "$TMP/w3.log" || fail "w3 did not report its late acks as duplicates"
[ "$(status_num fl failed_attempts)" -eq 0 ] || fail "failed attempts: $(status_num fl failed_attempts)"
[ "$(status_num fl dead)" -eq 0 ] || fail "dead items: $(status_num fl dead)"
# The done record is the source, once each; nothing pending, leased or retrying.
[ "$(status_num fl done)" -eq "$N" ] || fail "done $(status_num fl done), not $N"
all_done_ids fl 6 >"$TMP/done.ids"
seq 1 "$N" | sort >"$TMP/source.ids"
cmp -s "$TMP/done.ids" "$TMP/source.ids" || fail "the done record differs from the source"
for f in pending leased retrying; do
    [ "$(status_num fl "$f")" -eq 0 ] || fail "$f: $(status_num fl "$f")"
done
runs=$(cat "$TMP/ran.w1" "$TMP/ran.w2" "$TMP/ran.w3" | wc -l)
say "held $(wc -l <"$TMP/held.w3") at the cut, all run again elsewhere; $expired leases expired," \
    "$dups duplicates, 0 failed, 0 dead; $N done once each over $runs runs"
