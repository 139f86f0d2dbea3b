#!/usr/bin/env bash
# A fleet of drover-workers against one Redis (issue 21, "fleet-scale bench"): for each
# PARTITIONS:WORKERS pair, one range job of ITEMS ids through WORKERS real drover-worker
# processes (--handler noop, --concurrency CONC, claim size left to adapt), from submit to the
# coordinator's exit. Columns: items/s, Redis CPU per item (INFO cpu), Redis CPU as a share of
# one core over the run, Redis used_memory_peak, and the round trip of a PING sent every 10 ms
# during the run, p50 and p99 (what any claim waits at Redis on top of its own run time; the
# worker does not export its claim latency).
# Usage: bench/fleet.sh [ITEMS] [PARTITIONS:WORKERS ...]
#   defaults: 1000000 and 16:2 16:50 64:100 256:200 256:500; CONC (default 4) per worker.
#   DROVER_BIN_DIR=/work/build-perf-rel bench/fleet.sh 300000 16:2 64:50 256:200
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-1000000}
shift || true
pairs=("$@")
[ ${#pairs[@]} -gt 0 ] || pairs=(16:2 16:50 64:100 256:200 256:500)
conc=${CONC:-4}
. bench/lib.sh
bench_bins
bench_redis_start

# Pings Redis every 10 ms until killed (SIGTERM), then prints p50 and p99 in ms.
PINGER='import signal, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
lat, stop = [], []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
while not stop:
    t = time.perf_counter()
    s.sendall(b"PING\r\n")
    buf = b""
    while not buf.endswith(b"\r\n"):
        buf += s.recv(64)
    lat.append((time.perf_counter() - t) * 1000)
    time.sleep(0.01)
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0
print("%.2f %.2f" % (pick(0.50), pick(0.99)))'

rows=()
for pw in "${pairs[@]}"; do
    p=${pw%%:*} w=${pw##*:}
    echo "bench: $p partitions, $w workers" >&2
    bench_redis CONFIG RESETSTAT >/dev/null
    python3 -c "$PINGER" "$BENCH_PORT" >"$BENCH_TMP/ping" &
    ppid=$!
    bench_drover "$items" "$p" "$w" auto "$conc" noop --range "1..$items"
    kill "$ppid"
    wait "$ppid" || true
    read -r p50 p99 <"$BENCH_TMP/ping"
    peak=$(bench_info memory used_memory_peak)
    core=$(awk -v c="$R_cpu" -v r="$R_rate" 'BEGIN { printf "%.0f", c * r / 1e4 }')
    rows+=("| $p | $w | $R_rate | $R_cpu | $core% | $((peak / 1048576)) MiB | $p50 | $p99 |")
    echo "${rows[-1]}" >&2
done
echo "| partitions | workers | items/s | Redis µs/item | Redis CPU (% of a core) | Redis peak memory | PING p50 ms | PING p99 ms |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
echo "($items range ids, noop, --concurrency $conc, claim size adapting; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
