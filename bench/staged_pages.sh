#!/usr/bin/env bash
# The Redis memory of staged HTTP pages (README "An HTTP listing", key PREFIX{J}:page) while a
# listing is walked: ITEMS items listed PER a page by tests/support/httpd.py's /store (cursor
# form, ?after=ID), 8 partitions, 2 no-op workers draining them. Samples every 20 ms: the size
# of the staged page key (MEMORY USAGE), the most pages staged at once, and used_memory.
# Usage: bench/staged_pages.sh [ITEMS] [PER]      (default 100000 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-100000} per=${2:-1000}
source bench/lib.sh
bench_bins
bench_redis_start
python3 tests/support/httpd.py --port-file "$BENCH_TMP/http.port" --max-seconds 3600 &
BENCH_PIDS+=($!)
for _ in $(seq 200); do [ -s "$BENCH_TMP/http.port" ] && break; sleep 0.05; done
http="http://127.0.0.1:$(cat "$BENCH_TMP/http.port")"

cat >"$BENCH_TMP/job.json" <<JSON
{"id": "sp", "partitions": 8, "window": 5000,
 "source": {"type": "http", "url": "$http/store/$items/$per", "items": "items", "next": "next",
            "next_param": "after", "id_field": "id"}}
JSON
base=$(bench_info memory used_memory)
"$B/drover" submit "$BENCH_TMP/job.json" --quiet >/dev/null
for i in 1 2; do
    "$B/drover-worker" --job sp --handler noop --concurrency 64 --exit-when-done --stats-ms 0 \
        --log-level warn --id "bench-$i" &
    BENCH_PIDS+=($!)
done
"$B/drover" run sp --quiet --log-level warn &
coord=$!
BENCH_PIDS+=("$coord")
max_page=0 max_used=0 staged=0 samples=0
while kill -0 "$coord" 2>/dev/null; do
    sz=$(bench_redis MEMORY USAGE 'drover:{sp}:page' | tr -d '\r')
    used=$(bench_info memory used_memory)
    [ -n "$sz" ] && { staged=$((staged + 1)); [ "$sz" -gt "$max_page" ] && max_page=$sz; }
    [ "$used" -gt "$max_used" ] && max_used=$used
    samples=$((samples + 1))
    sleep 0.02
done
wait "$coord" || bench_die "drover run exited $?"
left=$(bench_redis EXISTS 'drover:{sp}:page' | tr -d '\r')
echo "listing: $items items, $per a page, 8 partitions, 2 noop workers"
echo "staged page key: largest $max_page bytes (MEMORY USAGE), seen in $staged of $samples samples; after the job: $left keys"
echo "used_memory: $base bytes before submit, peak $max_used bytes during the walk"
