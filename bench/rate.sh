#!/usr/bin/env bash
# Measures the fleet-wide rate limit: WORKERS workers share one job limited to RATE items/s
# (burst RATE/10) against the loopback HTTP fixture server (tests/support/httpd.py, answering
# at once); prints the rate the server saw in each 10-s window and over the whole run.
# Usage: bench/rate.sh [RATE] [SECONDS] [WORKERS] [CONCURRENCY]
#   bench/rate.sh 500 60 4 16
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-500} secs=${2:-60} nworkers=${3:-4} conc=${4:-16}
items=$((rate * secs))
B=${DROVER_BIN_DIR:-build}
[ -x "$B/drover" ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j >/dev/null; B=build; }

tmp=$(mktemp -d /tmp/drover-bench-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
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
python3 tests/support/httpd.py --port-file "$tmp/http.port" --max-seconds $((secs * 3 + 60)) &
pids+=($!)
for _ in $(seq 200); do [ -s "$tmp/http.port" ] && break; sleep 0.05; done
http="http://127.0.0.1:$(cat "$tmp/http.port")"

cat >"$tmp/job.json" <<JSON
{"id": "rate", "partitions": 8, "source": {"type": "range", "start": 1, "end": $items},
 "rate": {"per_second": $rate}, "handler": {"type": "http", "url": "$http/ok/{id}"}}
JSON
"$B/drover" submit "$tmp/job.json" --quiet >/dev/null
for i in $(seq "$nworkers"); do
    "$B/drover-worker" --job rate --concurrency "$conc" --exit-when-done --stats-ms 0 \
        --log-level warn --id "bench-$i" &
    pids+=($!)
done
"$B/drover" run rate --quiet --log-level warn
curl -fsS "$http/_log" >"$tmp/log.json"
python3 - "$tmp/log.json" "$rate" "$secs" "$nworkers" "$conc" <<'PY'
import json, sys
log = json.load(open(sys.argv[1]))
rate, secs, nw, conc = (int(x) for x in sys.argv[2:])
ts = sorted(t for t, p, s in log)
t0 = ts[0]
print(f"{len(ts)} requests, {nw} workers x {conc} in flight, rate {rate}/s (burst {max(1, rate // 10)})")
for w in range(0, secs, 10):
    n = sum(1 for t in ts if t0 + w <= t < t0 + w + 10)
    print(f"  {w:3d}-{w + 10:3d} s: {n / 10:8.1f}/s  ({(n / 10 - rate) / rate * 100:+.2f}%)")
span = ts[-1] - t0
print(f"  overall: {len(ts)} in {span:.2f} s = {len(ts) / span:.1f}/s "
      f"({(len(ts) / span - rate) / rate * 100:+.2f}%)")
PY
