#!/usr/bin/env bash
# drover web: what one refresh of a page costs with 1, 100 and 1000 jobs: Redis commands (INFO
# commandstats, less INFO itself), the server's CPU (utime + stime of its process from
# /proc/PID/stat), the answer's time and size; then what 100 viewers cost within one second
# (the one-second cache). Run from the top of the source tree:
#   bench/web.sh            (DROVER_BIN_DIR: the build to measure, default build/)
set -euo pipefail
source bench/lib.sh
bench_bins
bench_redis_start

calls() { # the calls Redis served so far, INFO's own left out
    redis-cli -p "$BENCH_PORT" INFO commandstats |
        awk -F'[=,:]' '/^cmdstat_/ && !/^cmdstat_info:/ {n += $3} END {print n}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

port=$((20000 + RANDOM % 40000))
"$B/drover" web --addr "127.0.0.1:$port" \
    --log-level warn >"$BENCH_TMP/web.log" 2>&1 &
WEB=$!
BENCH_PIDS+=("$WEB")
U="http://127.0.0.1:$port"
for i in $(seq 100); do curl -sf -o /dev/null "$U/static/app.css" && break; sleep 0.05; done

have=0
printf '| jobs | page | Redis commands per refresh | server CPU per refresh (ms) | answer (ms) | bytes | 100 viewers within 1 s: Redis commands |\n'
printf '| ---: | --- | ---: | ---: | ---: | ---: | ---: |\n'
for n in 1 100 1000; do
    while [ $have -lt $n ]; do # 8 partitions each, as drover submit makes by default
        have=$((have + 1))
        "$B/drover" submit --id "j$have" \
            --range 1..100000 --quiet >/dev/null
    done
    for page in / /jobs/j1 /api/jobs /api/jobs/j1; do
        # Median of 5 refreshes, each after the cache has expired.
        rows=()
        for k in 1 2 3 4 5; do
            sleep 1.05
            c0=$(calls) t0=$(cpu_ticks "$WEB")
            out=$(curl -s -o "$BENCH_TMP/page" -w '%{time_total} %{size_download}' "$U$page")
            c1=$(calls) t1=$(cpu_ticks "$WEB")
            rows+=("$((c1 - c0)) $(( (t1 - t0) * 1000 / HZ )) $out")
        done
        med=$(printf '%s\n' "${rows[@]}" | sort -n -k4 | sed -n 3p)
        read -r cmds cpu secs bytes <<<"$med"
        sleep 1.05
        c0=$(calls)
        python3 - "$U$page" <<'PY'
import sys, threading, urllib.request
ts = [threading.Thread(target=lambda: urllib.request.urlopen(sys.argv[1], timeout=60).read()) for _ in range(100)]
for t in ts: t.start()
for t in ts: t.join()
PY
        hundred=$(($(calls) - c0))
        printf '| %d | `%s` | %d | %d | %.1f | %d | %d |\n' "$n" "$page" "$cmds" "$cpu" \
            "$(echo "$secs * 1000" | bc)" "$bytes" "$hundred"
    done
done
echo
echo "Assets (embedded, cached by the browser 5 min): app.js $(curl -s "$U/static/app.js" | wc -c) B, app.css $(curl -s "$U/static/app.css" | wc -c) B, favicon.svg $(curl -s "$U/static/favicon.svg" | wc -c) B"
