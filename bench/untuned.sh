#!/usr/bin/env bash
# Untuned workers beside hand-tuned ones (issue 21, "claim size that adapts"): 2 drover-workers
# with no --batch and no --concurrency against the same with the flags a user would tune, for
# three handler kinds: the built-in no-op (coordination alone), a command per item (`true`:
# fork and exec bound), and an HTTP handler answering after 20 ms (tests/support/httpd.py on
# loopback, /delay/20/{id}). items/s from submit to the coordinator's exit and Redis CPU per
# item, as bench/core.sh measures them (bench/lib.sh).
# Usage: bench/untuned.sh [NOOP_ITEMS] [EXEC_ITEMS] [HTTP_ITEMS]
#   defaults 1000000, 20000, 50000; DROVER_BIN_DIR chooses the build (compare two builds by
#   running this once with each).
#   DROVER_BIN_DIR=build bench/untuned.sh 300000 10000 20000
set -euo pipefail
cd "$(dirname "$0")/.."
nitems=${1:-1000000} eitems=${2:-20000} hitems=${3:-50000}
. bench/lib.sh
bench_bins
bench_redis_start
hpid=""
trap '[ -z "$hpid" ] || { kill "$hpid" 2>/dev/null; wait "$hpid" 2>/dev/null; }; bench_cleanup' EXIT
python3 tests/support/httpd.py --port-file "$BENCH_TMP/hport" --max-seconds 3600 &
hpid=$!
for _ in $(seq 100); do [ -s "$BENCH_TMP/hport" ] && break; sleep 0.05; done
[ -s "$BENCH_TMP/hport" ] || bench_die "tests/support/httpd.py did not start"
url="http://127.0.0.1:$(cat "$BENCH_TMP/hport")/delay/20/{id}"

rows=()
# pair LABEL ITEMS HANDLER TUNED-BATCH TUNED-CONC SOURCE-FLAG...: one untuned run, one tuned.
pair() {
    local label=$1 n=$2 h=$3 tb=$4 tc=$5 ur uc
    shift 5
    echo "bench: $label, untuned" >&2
    bench_drover "$n" 16 2 auto auto "$h" --range "1..$n" "$@"
    ur=$R_rate uc=$R_cpu
    echo "bench: $label, --batch $tb --concurrency $tc" >&2
    bench_drover "$n" 16 2 "$tb" "$tc" "$h" --range "1..$n" "$@"
    rows+=("$(printf '| %s | %d | %s | %s | --batch %s --concurrency %s: %s | %s | %.0f%% |' \
        "$label" "$n" "$ur" "$uc" "$tb" "$tc" "$R_rate" "$R_cpu" "$(echo "100 * $ur / $R_rate" | bc -l)")")
    echo "${rows[-1]}" >&2
}
pair "no-op" "$nitems" noop 1000 1000
pair "\`true\` per item" "$eitems" true 64 4
pair "HTTP, 20 ms answers" "$hitems" http 100 100 \
    --handler "{\"type\": \"http\", \"url\": \"$url\", \"timeout_ms\": 10000}"
echo "| handler | items | untuned items/s | Redis µs/item | tuned items/s | Redis µs/item | untuned / tuned |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
echo "(2 workers, 16 partitions, window 20000; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
