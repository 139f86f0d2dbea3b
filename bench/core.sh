#!/usr/bin/env bash
# Measures drover end to end on this machine with its own redis-server:
#   items/s from submit to the coordinator's exit, Redis CPU per item (INFO cpu),
#   Redis used_memory per processed id, and the workers' peak RSS.
# One configuration; bench/run measures the whole table of the benchmarks with the same code.
# Usage: bench/core.sh [ITEMS] [PARTITIONS] [WORKERS] [HANDLER] [BATCH] [CONCURRENCY]
#   HANDLER: noop (coordination alone) or a command, e.g. true
#   bench/core.sh 1000000 16 2 noop 1000 1000
#   bench/core.sh 100000 16 2 true 16 16
#   bench/core.sh 1000000 16 2 noop auto auto   # untuned: the worker's defaults
# BENCH_FILE=PATH submits that file of ids (one a line; a regular file, the coordinator reads it
# again to feed) instead of the range 1..ITEMS, to measure the done buckets of string ids:
#   awk 'BEGIN { for (i = 1; i <= 1000000; i++) printf "user-%07d\n", i }' >/tmp/ids.txt
#   BENCH_FILE=/tmp/ids.txt bench/core.sh 1000000 16 2 noop 1000 1000
# BENCH_STDIN=PATH pipes that file to `drover submit --source -` instead (the total unknown until
# its end, so the done buckets grow as ids come rather than being sized at submit).
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-1000000} parts=${2:-16} nworkers=${3:-2} handler=${4:-noop} batch=${5:-1000}
conc=${6:-$batch}
. bench/lib.sh
bench_bins
bench_redis_start
if [ -n "${BENCH_FILE:-}" ]; then
    src=(--file "$BENCH_FILE")
elif [ -n "${BENCH_STDIN:-}" ]; then
    src=(--source -)
else
    src=(--range "1..$items")
fi
bench_drover "$items" "$parts" "$nworkers" "$batch" "$conc" "$handler" "${src[@]}"
printf '%-28s %s\n' "items" "$R_done" \
    "partitions / workers" "$parts / $nworkers" \
    "handler / batch / conc" "$handler / $batch / $conc" \
    "wall time (s)" "$(printf %.2f "$R_secs")" \
    "items/s end to end" "$R_rate" \
    "Redis CPU per item (us)" "$R_cpu" \
    "Redis memory per id (B)" "$R_mem" \
    "worker peak RSS (KiB)" "$R_rss"
