#!/usr/bin/env bash
# The HTTP handler against a loopback server that answers every request after 20 ms (nginx with
# the echo module, one worker process), beside `xargs -P curl` and GNU parallel making the same
# calls, and the bound that concurrency and latency set (concurrency / 0.020 s).
# Usage: bench/http.sh [ITEMS] [BASE_ITEMS]
#   ITEMS (default 100000) for drover; BASE_ITEMS (default 10000) for xargs and parallel, which
#   start one curl process per item. CONCS="64 256" and WORKERS="1 2" choose the drover runs;
#   with 2 workers each gets half the concurrency, so the total in flight is the same.
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-100000} base_items=${2:-10000}
concs=${CONCS:-64 256} workers=${WORKERS:-1 2}
B=${DROVER_BIN_DIR:-build}
[ -x "$B/drover-worker" ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j >/dev/null; B=build; }

# nginx-light + its echo module, and GNU parallel, only when missing (as scripts/deps does).
missing=()
for p in nginx-light libnginx-mod-http-echo parallel curl redis-server; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

tmp=$(mktemp -d /tmp/drover-bench-http-XXXXXX)
npid="" rpid=""
cleanup() {
    [ -n "$npid" ] && kill "$npid" 2>/dev/null && wait "$npid" 2>/dev/null || true
    [ -n "$rpid" ] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

hport=$(free_port)
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path $tmp/nginx;
    server {
        listen 127.0.0.1:$hport;
        location /item/ { echo_sleep 0.02; echo ok; }
    }
}
CONF
nginx -p "$tmp/nginx" -c "$tmp/nginx.conf" -g 'daemon off;' &
npid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$hport/item/0" >/dev/null 2>&1 && break; sleep 0.05; done
url="http://127.0.0.1:$hport/item"

results=()
row() { # row NAME N SECONDS CONC
    local rate bound
    rate=$(echo "$2 / $3" | bc -l)
    bound=$(echo "$4 / 0.020" | bc -l)
    results+=("$(printf '| %s | %d | %.2f | %.0f | %.0f | %.0f%% |' "$1" "$2" "$3" "$rate" "$bound" "$(echo "100 * $rate / $bound" | bc -l)")")
    echo "${results[-1]}" >&2
}

for conc in $concs; do
    for nw in $workers; do
        rport=$(free_port)
        redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
            --logfile "$tmp/redis.log" &
        rpid=$!
        for _ in $(seq 200); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
        export DROVER_REDIS_URL="redis://127.0.0.1:$rport/0"
        cat >"$tmp/spec.json" <<JSON
{"id": "hb", "partitions": 8, "window": 20000, "source": {"type": "range", "start": 1, "end": $items},
 "handler": {"type": "http", "url": "$url/{id}", "timeout_ms": 10000}}
JSON
        "$B/drover" submit "$tmp/spec.json" --quiet >/dev/null
        t0=$(date +%s.%N)
        "$B/drover" run hb --quiet --log-level warn &
        cpid=$!
        wpids=()
        for _ in $(seq "$nw"); do
            /usr/bin/time -f %M -o "$tmp/rss.$_" "$B/drover-worker" --job hb --concurrency $((conc / nw)) \
                --exit-when-done --stats-ms 0 --log-level warn &
            wpids+=($!)
        done
        wait "$cpid" || { echo "drover run failed" >&2; exit 1; }
        t1=$(date +%s.%N)
        for p in "${wpids[@]}"; do wait "$p"; done
        st=$("$B/drover" status hb --json)
        done_n=$(echo "$st" | grep -o '"done":[0-9]*' | head -1 | cut -d: -f2)
        dead_n=$(echo "$st" | grep -o '"dead":[0-9]*' | head -1 | cut -d: -f2)
        [ "$done_n" -eq "$items" ] && [ "$dead_n" -eq 0 ] || { echo "done $done_n dead $dead_n" >&2; exit 1; }
        rss=$(cat "$tmp"/rss.* | sort -n | tail -1)
        row "drover, $nw worker(s) x $((conc / nw)) in flight (peak worker RSS $((rss / 1024)) MiB)" "$items" "$(echo "$t1 - $t0" | bc -l)" "$conc"
        rm -f "$tmp"/rss.*
        kill "$rpid"; wait "$rpid" 2>/dev/null || true; rpid=""
    done
done

t0=$(date +%s.%N)
seq 1 "$base_items" | xargs -P 64 -I{} curl -s -o /dev/null "$url/{}"
row "xargs -P 64 curl, a process per item" "$base_items" "$(echo "$(date +%s.%N) - $t0" | bc -l)" 64
t0=$(date +%s.%N)
seq 1 "$base_items" | parallel -j 64 curl -s -o /dev/null "$url/{}"
row "GNU parallel -j 64 curl, a process per item" "$base_items" "$(echo "$(date +%s.%N) - $t0" | bc -l)" 64

echo
echo "| run | items | seconds | items/s | bound (conc / 20 ms) | of bound |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${results[@]}"
echo "(2 cores shared by nginx, redis-server, drover and the workers; nginx runs 1 worker process)"
