#!/usr/bin/env bash
# Measures drover end to end on this machine with its own redis-server:
#   items/s from submit to the coordinator's exit, Redis CPU per item (INFO cpu),
#   Redis used_memory per processed id, and the workers' peak RSS.
# Usage: bench/core.sh [ITEMS] [PARTITIONS] [WORKERS] [HANDLER] [BATCH] [CONCURRENCY]
#   HANDLER: noop (coordination alone) or a command, e.g. true
#   bench/core.sh 1000000 16 2 noop 1000 1000
#   bench/core.sh 100000 16 2 true 16 16
# BENCH_FILE=PATH submits that file of ids (one a line; a regular file, the coordinator reads it
# again to feed) instead of the range 1..ITEMS, to measure the done SET of string ids:
#   awk 'BEGIN { for (i = 1; i <= 1000000; i++) printf "user-%07d\n", i }' >/tmp/ids.txt
#   BENCH_FILE=/tmp/ids.txt bench/core.sh 1000000 16 2 noop 1000 1000
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-1000000} parts=${2:-16} nworkers=${3:-2} handler=${4:-noop} batch=${5:-1000}
conc=${6:-$batch}
B=${DROVER_BIN_DIR:-build}
[ -x "$B/drover" ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j >/dev/null; B=build; }

tmp=$(mktemp -d /tmp/drover-bench-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${rpid:-}" ] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$((20000 + RANDOM % 40000))
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
    --logfile "$tmp/redis.log" &
rpid=$!
for _ in $(seq 200); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
export DROVER_REDIS_URL="redis://127.0.0.1:$port/0"
R() { redis-cli -p "$port" "$@"; }
info() { R INFO "$1" | tr -d '\r' | awk -F: -v k="$2" '$1 == k {print $2}'; }
cpu() { echo "$(info cpu used_cpu_sys) + $(info cpu used_cpu_user)" | bc -l; }

mem0=$(info memory used_memory)
cpu0=$(cpu)
t0=$(date +%s.%N)
if [ -n "${BENCH_FILE:-}" ]; then
    "$B/drover" submit --id bench --file "$BENCH_FILE" --partitions "$parts" --window 20000 \
        --quiet >/dev/null
else
    "$B/drover" submit --id bench --range "1..$items" --partitions "$parts" --window 20000 \
        --quiet >/dev/null
fi
for i in $(seq "$nworkers"); do
    if [ "$handler" = noop ]; then
        "$B/drover-worker" --job bench --handler noop --batch "$batch" --concurrency "$conc" \
            --exit-when-done --stats-ms 0 --log-level warn &
    else
        "$B/drover-worker" --job bench --batch "$batch" --concurrency "$conc" --exit-when-done \
            --stats-ms 0 --log-level warn -- $handler &
    fi
    pids+=($!)
done
# Peak RSS of each worker, read while they run.
( peak=0; while sleep 0.2; do
    for p in "${pids[@]}"; do
        v=$(awk '/VmHWM/ {print $2}' /proc/"$p"/status 2>/dev/null || echo 0)
        [ "${v:-0}" -gt "$peak" ] && peak=$v && echo "$peak" >"$tmp/rss"
    done
  done ) &
watcher=$!
"$B/drover" run bench --quiet --log-level warn
t1=$(date +%s.%N)
for p in "${pids[@]}"; do wait "$p"; done
pids=()
kill "$watcher" 2>/dev/null || true
cpu1=$(cpu)
mem1=$(info memory used_memory)
done_n=$("$B/drover" status bench --json | grep -o '"done":[0-9]*' | head -1 | cut -d: -f2)
secs=$(echo "$t1 - $t0" | bc -l)
printf '%-28s %s\n' "items" "$done_n" \
    "partitions / workers" "$parts / $nworkers" \
    "handler / batch / conc" "$handler / $batch / $conc" \
    "wall time (s)" "$(printf %.2f "$secs")" \
    "items/s end to end" "$(printf %.0f "$(echo "$done_n / $secs" | bc -l)")" \
    "Redis CPU per item (us)" "$(printf %.2f "$(echo "($cpu1 - $cpu0) * 1000000 / $done_n" | bc -l)")" \
    "Redis memory per id (B)" "$(printf %.1f "$(echo "($mem1 - $mem0) / $done_n" | bc -l)")" \
    "worker peak RSS (KiB)" "$(cat "$tmp/rss" 2>/dev/null || echo ?)"
