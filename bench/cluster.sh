#!/usr/bin/env bash
# No-op items/s on one Redis against a 3-master Redis Cluster on the same machine, and the
# commands each cluster master ran (INFO commandstats) and its CPU, per item.
# Usage: bench/cluster.sh [ITEMS] [PARTITIONS] [WORKERS] [BATCH]
#   bench/cluster.sh 200000 16 2 1000
# Every Redis here shares the machine's cores with drover: on a small machine a cluster adds
# round trips and processes, not capacity; the figure that matters is ops spread per shard.
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-200000} parts=${2:-16} nworkers=${3:-2} batch=${4:-1000}
B=${DROVER_BIN_DIR:-build}
[ -x "$B/drover" ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j >/dev/null; B=build; }

tmp=$(mktemp -d /tmp/drover-bench-XXXXXX)
pids=() rpids=()
cleanup() {
    for p in "${pids[@]}" "${rpids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${rpids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

start() { # start PORT [args...]: a redis-server in its own dir
    local port=$1
    shift
    mkdir -p "$tmp/$port"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp/$port" \
        --logfile "$tmp/$port.log" "$@" &
    rpids+=($!)
    for _ in $(seq 200); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.05; done
    echo "redis-server on $port did not start" >&2
    exit 1
}
cpu_of() { redis-cli -p "$1" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {print s}'; }
calls_of() { redis-cli -p "$1" info commandstats | tr -d '\r' | awk -F'[=,]' '/^cmdstat_/ {s += $2} END {print s + 0}'; }

run() { # run LABEL: one job to the end against $DROVER_REDIS_URL; prints items/s
    local t0 t1
    t0=$(date +%s.%N)
    "$B/drover" submit --id bench --range "1..$items" --partitions "$parts" --window 20000 --quiet >/dev/null
    for _ in $(seq "$nworkers"); do
        "$B/drover-worker" --job bench --handler noop --batch "$batch" --concurrency "$batch" \
            --exit-when-done --stats-ms 0 --log-level warn &
        pids+=($!)
    done
    "$B/drover" run bench --quiet --log-level warn
    t1=$(date +%s.%N)
    for p in "${pids[@]}"; do wait "$p"; done
    pids=()
    printf '%-34s %s items/s (%.2f s)\n' "$1" \
        "$(printf %.0f "$(echo "$items / ($t1 - $t0)" | bc -l)")" "$(echo "$t1 - $t0" | bc -l)"
}

base=$((20000 + RANDOM % 30000))
echo "machine: $(nproc) cores; $items no-op items, $parts partitions, $nworkers workers, batch $batch"
start "$base"
export DROVER_REDIS_URL="redis://127.0.0.1:$base/0"
c0=$(cpu_of "$base") n0=$(calls_of "$base")
run "one Redis"
c=$(( $(calls_of "$base") - n0 ))
cpu=$(echo "$(cpu_of "$base") - $c0" | bc -l)
printf '  redis  %-6s %9d commands (%.2f per item)  CPU %.2f s (%.2f us per item)\n' "$base" "$c" \
    "$(echo "$c / $items" | bc -l)" "$cpu" "$(echo "$cpu * 1000000 / $items" | bc -l)"

ports=($((base + 1)) $((base + 2)) $((base + 3)))
for p in "${ports[@]}"; do start "$p" --cluster-enabled yes --cluster-config-file nodes.conf; done
redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-yes >"$tmp/create.log" 2>&1
for _ in $(seq 600); do
    ok=1
    for p in "${ports[@]}"; do redis-cli -p "$p" cluster info | grep -q cluster_state:ok || ok=0; done
    [ "$ok" = 1 ] && break
    sleep 0.05
done
declare -A cpu0 calls0
for p in "${ports[@]}"; do
    redis-cli -p "$p" config resetstat >/dev/null
    cpu0[$p]=$(cpu_of "$p")
    calls0[$p]=$(calls_of "$p")
done
export DROVER_REDIS_URL="redis+cluster://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}"
run "3-master cluster"
for p in "${ports[@]}"; do
    c=$(( $(calls_of "$p") - ${calls0[$p]} ))
    cpu=$(echo "$(cpu_of "$p") - ${cpu0[$p]}" | bc -l)
    printf '  master %-6s %9d commands (%.2f per item)  CPU %.2f s (%.2f us per item)\n' "$p" "$c" \
        "$(echo "$c / $items" | bc -l)" "$cpu" "$(echo "$cpu * 1000000 / $items" | bc -l)"
done
