# Sourced by end-to-end tests: a real redis-server on a free loopback port in a temp dir,
# polling with deadlines, and a cleanup that stops every process the test started by its PID.
set -euo pipefail

: "${DROVER_BIN_DIR:?run under ctest, or set DROVER_BIN_DIR to the build directory}"
DROVER="$DROVER_BIN_DIR/drover"
WORKER="$DROVER_BIN_DIR/drover-worker"
TMP=$(mktemp -d /tmp/drover-e2e-XXXXXX)
PIDS=()
REDIS_PID=""
SPAWN_PID="" # a redis-server spawn_redis is starting
NODE_PIDS=() # start_cluster's redis-server processes
RCLI_C=""    # "-c" once start_cluster ran: redis-cli follows MOVED/ASK
unset DROVER_PREFIX DROVER_REDIS_URL

cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for p in $REDIS_PID $SPAWN_PID; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    for p in "${NODE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${NODE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ $rc -ne 0 ] && [ -d "$TMP" ]; then
        echo "--- logs of the failed test ---" >&2
        for f in "$TMP"/*.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -20 "$f" >&2; }; done
    fi
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

say() {
    echo "--- $*" >&2
}

# spawn_redis DIR LOG [redis-server args...]: a redis-server on a free loopback port (20 tries),
# no persistence unless the args say so; "%p" in DIR and LOG stands for the port. With
# SPAWN_CONF=FILE set, each try starts from a fresh copy of FILE in DIR (a sentinel rewrites
# its config file). Sets SPAWN_PORT and SPAWN_PID (which cleanup stops, also while it starts),
# or fails the test.
spawn_redis() {
    local dir=$1 log=$2 try port i conf
    shift 2
    for try in $(seq 20); do
        port=$((20000 + RANDOM % 40000))
        mkdir -p "${dir//%p/$port}"
        conf=()
        if [ -n "${SPAWN_CONF:-}" ]; then
            cp "$SPAWN_CONF" "${dir//%p/$port}/server.conf"
            conf=("${dir//%p/$port}/server.conf")
        fi
        redis-server "${conf[@]}" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "${dir//%p/$port}" --logfile "${log//%p/$port}" "$@" &
        SPAWN_PID=$!
        for i in $(seq 200); do
            if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
                SPAWN_PORT=$port
                return 0
            fi
            kill -0 "$SPAWN_PID" 2>/dev/null || break
            sleep 0.05
        done
        kill "$SPAWN_PID" 2>/dev/null || true
        wait "$SPAWN_PID" 2>/dev/null || true
        SPAWN_PID=""
    done
    fail "could not start redis-server"
}

# start_redis [redis-server args...]: sets REDIS_PORT, REDIS_PID, DROVER_REDIS_URL (and
# REDIS_ARGS, for restart_redis).
start_redis() {
    REDIS_ARGS=("$@")
    spawn_redis "$TMP" "$TMP/redis.log" "$@"
    REDIS_PID=$SPAWN_PID REDIS_PORT=$SPAWN_PORT SPAWN_PID=""
    export DROVER_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
}

R() {
    redis-cli $RCLI_C -p "$REDIS_PORT" "$@"
}

# lease_ids KEYS [WORKER]: the ids the leases of one partition hold (KEYS: drover:{JOB.P}), of
# WORKER only when given, one a line. A lease is one claim: owner maps its token to
# {"worker":...,"ids":[...]} (lua/lib/lease.lua).
LEASE_IDS_LUA="local out = {}
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
    local l = cjson.decode(v)
    if ARGV[1] == '' or l.worker == ARGV[1] then
        for _, id in ipairs(l.ids) do out[#out + 1] = id end
    end
end
return out"
lease_ids() { R EVAL "$LEASE_IDS_LUA" 1 "$1:owner" "${2:-}"; }

# start_recording_fleet JOB BATCH CONCURRENCY: `drover run JOB` (its PID in FLEET_COORD) and
# two workers whose handler appends each id it runs to $TMP/out.
start_recording_fleet() {
    local i
    bg coord "$DROVER" run "$1"
    FLEET_COORD=$LAST_PID
    printf '#!/bin/sh\necho "$1" >>"%s/out"\n' "$TMP" >"$TMP/h.sh"
    for i in 1 2; do
        bg "w$i" "$WORKER" --job "$1" --batch "$2" --concurrency "$3" --stats-ms 0 \
            --exit-when-done --no-stdin -- sh "$TMP/h.sh" {id}
    done
}

# start_node PORTVAR [redis-server args...]: one cluster-enabled redis-server on a free port in
# its own dir $TMP/node-PORT; appends its PID to NODE_PIDS, stores the port in PORTVAR.
start_node() {
    local _var=$1
    shift
    spawn_redis "$TMP/node-%p" "$TMP/node-%p.log" "$@"
    NODE_PIDS+=("$SPAWN_PID")
    LAST_NODE_PID=$SPAWN_PID SPAWN_PID=""
    printf -v "$_var" '%s' "$SPAWN_PORT"
}

cluster_ok() { # cluster_ok PORT...: every node says cluster_state:ok
    local p
    for p in "$@"; do
        redis-cli -p "$p" cluster info | grep -q '^cluster_state:ok' || return 1
    done
}

cluster_known() { # cluster_known N MASTERS PORT...: every node sees N nodes, MASTERS masters
    local n=$1 m=$2 p
    shift 2
    for p in "$@"; do
        redis-cli -p "$p" cluster nodes >"$TMP/nodes.$p" || return 1
        [ "$(grep -c . "$TMP/nodes.$p")" -eq "$n" ] || return 1
        [ "$(awk '$3 ~ /master/ && $3 !~ /fail/' "$TMP/nodes.$p" | wc -l)" -eq "$m" ] || return 1
        grep -q 'handshake\|noaddr' "$TMP/nodes.$p" && return 1
    done
    return 0
}

replicas_synced() { # every node that is a replica has master_link_status:up
    local p
    for p in "$@"; do
        redis-cli -p "$p" info replication >"$TMP/repl.$p" || return 1
        grep -q '^role:slave' "$TMP/repl.$p" || continue
        grep -q '^master_link_status:up' "$TMP/repl.$p" || return 1
    done
}

# start_cluster MASTERS REPLICAS_PER_MASTER: a Redis Cluster on loopback (cluster-config-file
# in each node's temp dir), formed with redis-cli --cluster create; sets NODE_PORTS (all nodes,
# masters first as redis-cli assigns them), NODE_PIDS, REDIS_PORT (the first node, for R,
# which then follows redirections) and DROVER_REDIS_URL (redis+cluster:// with two seeds).
start_cluster() {
    local masters=$1 replicas=$2 n i port addrs=()
    n=$((masters * (1 + replicas)))
    NODE_PORTS=()
    for i in $(seq "$n"); do
        start_node port --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout "${CLUSTER_NODE_TIMEOUT:-1000}" --repl-diskless-sync-delay 0
        NODE_PORTS+=("$port")
        addrs+=("127.0.0.1:$port")
    done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes \
        >"$TMP/cluster-create.log" 2>&1 || fail "redis-cli --cluster create failed"
    wait_for "the cluster to form" 30 cluster_ok "${NODE_PORTS[@]}"
    wait_for "every node to know every other and its role" 30 cluster_known "$n" "$masters" \
        "${NODE_PORTS[@]}"
    # A replica that never finished its first sync cannot take over: wait for every link.
    wait_for "every replica to be in sync" 30 replicas_synced "${NODE_PORTS[@]}"
    REDIS_PORT=${NODE_PORTS[0]}
    RCLI_C=-c
    export DROVER_REDIS_URL="redis+cluster://127.0.0.1:${NODE_PORTS[0]},127.0.0.1:${NODE_PORTS[1]}"
}

# master_ports: the ports of the nodes that are masters now.
master_ports() {
    redis-cli -p "$REDIS_PORT" cluster nodes | awk '$3 ~ /master/ && $3 !~ /fail/ {split($2, a, "[:@]"); print a[2]}'
}

# stop_redis [shutdown|kill]: stops the test's redis-server by its PID. shutdown (the default)
# is SHUTDOWN NOSAVE: with appendonly yes the AOF is flushed and fsynced first, nothing is
# lost. kill is SIGKILL: with appendfsync everysec up to about a second of writes is lost.
stop_redis() {
    local how=${1:-shutdown} pid=$REDIS_PID
    [ -n "$pid" ] || fail "stop_redis: no redis-server running"
    if [ "$how" = kill ]; then
        kill -9 "$pid" 2>/dev/null || true
    else
        R SHUTDOWN NOSAVE >/dev/null 2>&1 || true
    fi
    wait_exit 30 "$pid"
    REDIS_PID=""
}

# restart_redis: starts redis-server again on REDIS_PORT with start_redis's arguments (its
# AOF, if any, is loaded again) and waits until it answers PING (not LOADING).
restart_redis() {
    local try i
    for try in $(seq 20); do
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
            --logfile "$TMP/redis.log" "${REDIS_ARGS[@]}" &
        REDIS_PID=$!
        for i in $(seq 600); do
            redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
            kill -0 "$REDIS_PID" 2>/dev/null || break
            sleep 0.05
        done
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=""
        sleep 0.2 # the port may not be free yet
    done
    fail "could not restart redis-server on port $REDIS_PORT"
}

# bg LOGNAME cmd...: starts cmd in the background, logging to $TMP/LOGNAME.log; sets LAST_PID.
bg() {
    local name=$1
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_for "what" SECONDS cmd...: polls cmd every 50 ms until it succeeds or time runs out.
wait_for() {
    local what=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || fail "timed out after ${secs}s waiting for: $what"
        sleep 0.05
    done
}

# wait_exit SECONDS PID: waits for PID (a child of this shell) to exit and sets EXIT_CODE. Not
# in $(...): a subshell cannot wait for its parent's children.
wait_exit() {
    local secs=$1 pid=$2 deadline=$((SECONDS + $1))
    while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || fail "process $pid still running after ${secs}s"
        sleep 0.05
    done
    EXIT_CODE=0
    wait "$pid" || EXIT_CODE=$?
}

# json_num FIELD: the first numeric FIELD in the JSON on stdin.
json_num() {
    grep -o "\"$1\":-\\?[0-9]*" | head -1 | cut -d: -f2
}

status_num() { # status_num JOB FIELD
    "$DROVER" status "$1" --json | json_num "$2"
}

done_at_least() { # done_at_least JOB N
    [ "$(status_num "$1" done)" -ge "$2" ]
}

# The ids one partition's done record holds, any kind (README "Keys": range partitions keep a
# bitmap whose bit 0 is the id in `done_base`, other sources `done_buckets` HASHes done:B, jobs
# from before buckets a SET). README's script.
DONE_IDS_LUA='local s = redis.call("HMGET", KEYS[1], "done_base", "done_buckets")
local b, n, out = tonumber(s[1] or ""), tonumber(s[2] or ""), {}
if n then
    for k = 0, n - 1 do
        for _, id in ipairs(redis.call("HKEYS", KEYS[2] .. ":" .. k)) do out[#out + 1] = id end
    end
    return out
end
if not b then return redis.call("SMEMBERS", KEYS[2]) end
local bits = redis.call("GET", KEYS[2]) or ""
for i = 1, #bits do
    local c = bits:byte(i)
    for k = 0, 7 do
        if c >= 2 ^ (7 - k) then
            c = c - 2 ^ (7 - k)
            out[#out + 1] = string.format("%d", b + (i - 1) * 8 + k)
        end
    end
end
return out'

# done_ids JOB P: the ids partition P of JOB records done, one a line.
done_ids() {
    R EVAL "$DONE_IDS_LUA" 2 "drover:{$1.$2}:state" "drover:{$1.$2}:done"
}

# done_count JOB P: how many ids partition P of JOB records done.
done_count() {
    if [ "$(R HEXISTS "drover:{$1.$2}:state" done_base)" = 1 ]; then
        R BITCOUNT "drover:{$1.$2}:done"
    else
        done_ids "$1" "$2" | grep -c . || true
    fi
}

# all_done_ids JOB P: every id in the job's done records, sorted.
all_done_ids() {
    local p
    for p in $(seq 0 $(($2 - 1))); do done_ids "$1" "$p"; done | sort
}

# start_httpd: the scripted HTTP server (tests/support/httpd.py) on a free loopback port;
# sets HTTP_PORT, HTTP_PID and HTTP (its base URL). Stopped by PID at cleanup.
start_httpd() {
    local pf="$TMP/httpd.port"
    python3 "$DROVER_SRC_DIR/tests/support/httpd.py" --port-file "$pf" --max-seconds 600 \
        >"$TMP/httpd.log" 2>&1 &
    HTTP_PID=$!
    PIDS+=("$HTTP_PID")
    wait_for "the HTTP fixture server to listen" 10 test -s "$pf"
    HTTP_PORT=$(cat "$pf")
    HTTP="http://127.0.0.1:$HTTP_PORT"
}

# hits PATH: how many requests the fixture server saw for PATH; hits_total: all of them.
hits() {
    curl -fsS "$HTTP/_stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["paths"].get(sys.argv[1], 0))' "$1"
}
hits_total() {
    curl -fsS "$HTTP/_stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'
}
