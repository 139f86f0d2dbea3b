#!/usr/bin/env bash
# Calling an API that pushes back (issue 18): nginx from Debian on loopback as the API.
#   limit_req at LIMIT r/s (burst LIMIT/20, limit_req_status 429), WORKERS workers x CONC, no
#   rate in the spec: the rate the server answered 200 over the steady part (after the first
#   5 s) and the share of 429s, for drover's adaptive limit, a fixed rate set to the true limit
#   ("adaptive": false), and (with BASE_BIN_DIR) the drover before this change.
#   20% of answers 503 without Retry-After (max_attempts 20), 10 ms each otherwise: the time to
#   finish ITEMS items, against the same job with no failures.
# Usage: bench/throttle.sh [SECONDS] [WORKERS] [CONC]    (BASE_BIN_DIR=... for the old drover)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20} nworkers=${2:-3} conc=${3:-64}
B=${DROVER_BIN_DIR:-build}
[ -x "$B/drover" ] || { echo "build drover first (DROVER_BIN_DIR)" >&2; exit 2; }
NGINX=${NGINX:-/usr/sbin/nginx}
[ -x "$NGINX" ] || { echo "SKIPPED: no nginx (apt-get install nginx)" >&2; exit 0; }

tmp=$(mktemp -d /tmp/drover-bench-XXXXXX)
pids=()
npid=
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "$npid" ] && kill "$npid" 2>/dev/null || true
    [ -n "${rpid:-}" ] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
    --logfile "$tmp/redis.log" &
rpid=$!
for _ in $(seq 200); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
export DROVER_REDIS_URL="redis://127.0.0.1:$rport/0"

# nginx: its own config, prefix and pid file in tmp; stopped by its PID.
start_nginx() { # start_nginx LIMIT (0: no limit_req) FAIL_PERCENT
    [ -n "$npid" ] && { kill "$npid"; while kill -0 "$npid" 2>/dev/null; do sleep 0.05; done; }
    nport=$(free_port)
    mkdir -p "$tmp/ng/logs" "$tmp/ng/www"
    echo ok >"$tmp/ng/www/ok.txt"
    chmod a+rx "$tmp" "$tmp/ng" "$tmp/ng/www" && chmod a+r "$tmp/ng/www/ok.txt" # nginx's workers
    : >"$tmp/ng/access.log"
    local lr="" split=""
    [ "$1" -gt 0 ] && lr="limit_req zone=api burst=$(( $1 / 20 > 1 ? $1 / 20 : 1 )) nodelay; limit_req_status 429;"
    if [ "$2" -gt 0 ]; then
        split="split_clients \"\${request_id}\" \$fail { $2% 1; * 0; }"
    else
        split="map \$request_id \$fail { default 0; }"
    fi
    cat >"$tmp/ng/nginx.conf" <<NG
daemon off;
worker_processes 1;
pid $tmp/ng/nginx.pid;
error_log $tmp/ng/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $tmp/ng/body;
    proxy_temp_path $tmp/ng/proxy;
    fastcgi_temp_path $tmp/ng/fcgi;
    uwsgi_temp_path $tmp/ng/uwsgi;
    scgi_temp_path $tmp/ng/scgi;
    limit_req_zone \$host zone=api:1m rate=$(( $1 > 0 ? $1 : 1 ))r/s;
    $split
    log_format t '\$msec \$status';
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$nport;
        access_log $tmp/ng/access.log t;
        location / {
            $lr
            # (return runs in the rewrite phase, before limit_req: the ok answer is a file)
            if (\$fail) { return 503 "busy"; }
            root $tmp/ng/www;
            try_files /ok.txt =404;
        }
    }
}
NG
    "$NGINX" -p "$tmp/ng" -c "$tmp/ng/nginx.conf" &
    npid=$!
    for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$nport/" && break; sleep 0.05; done
    : >"$tmp/ng/access.log"
}

run_job() { # run_job BIN_DIR ID ITEMS EXTRA_SPEC
    local bin=$1 id=$2 items=$3 extra=$4
    cat >"$tmp/$id.json" <<JSON
{"id": "$id", "partitions": 8, "max_attempts": 20, "backoff_ms": 100, "backoff_max_ms": 5000,
 "source": {"type": "range", "start": 1, "end": $items}$extra,
 "handler": {"type": "http", "url": "http://127.0.0.1:$nport/{id}"}}
JSON
    "$bin/drover" submit "$tmp/$id.json" --quiet >/dev/null
    local wp=()
    for i in $(seq "$nworkers"); do
        "$bin/drover-worker" --job "$id" --concurrency "$conc" --exit-when-done --stats-ms 0 \
            --log-level error --id "$id-$i" &
        wp+=($!)
    done
    local t0 rc=0
    t0=$(date +%s.%N)
    timeout $((secs * 6 + 60)) "$bin/drover" run "$id" --quiet --log-level error || rc=$?
    for p in "${wp[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    elapsed=$(python3 -c "import time; print('%.1f' % (time.time() - $t0))")
    dead=$("$B/drover" status "$id" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("dead"))' || echo "?")
    [ "$rc" -eq 0 ] || dead="$dead (run exited $rc)"
}

steady() { # the 200s per second after the first 5 s, and the 429 share
    python3 - "$tmp/ng/access.log" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
ts = [(float(t), s) for t, s in rows]
t0, t1 = ts[0][0] + 5, ts[-1][0] - 1
mid = [s for t, s in ts if t0 <= t <= t1]
ok = sum(1 for s in mid if s == "200")
thr = sum(1 for s in mid if s == "429")
span = max(0.001, t1 - t0)
allthr = sum(1 for t, s in ts if s == "429")
print("%.0f/s ok, 429 share %.1f%% over the steady part; %d requests in %.1f s, %d of them 429" %
      (ok / span, 100.0 * thr / max(1, len(mid)), len(ts), ts[-1][0] - ts[0][0], allthr))
PY
}

for limit in 200 1000; do
    items=$((limit * secs))
    for mode in adaptive fixed base; do
        bin=$B extra=""
        case $mode in
        fixed) extra=", \"adaptive\": false, \"rate\": {\"per_second\": $limit}" ;;
        base) [ -n "${BASE_BIN_DIR:-}" ] || continue; bin=$BASE_BIN_DIR ;;
        esac
        start_nginx "$limit" 0
        redis-cli -p "$rport" FLUSHALL >/dev/null
        run_job "$bin" "l$limit$mode" "$items" "$extra"
        echo "limit_req ${limit}r/s, $mode: $items items in ${elapsed}s, dead $dead; $(steady)"
    done
done
items=$((200 * secs))
for fail in 0 20; do
    for mode in adaptive base; do
        bin=$B
        [ $mode = base ] && { [ -n "${BASE_BIN_DIR:-}" ] || continue; bin=$BASE_BIN_DIR; }
        start_nginx 0 "$fail"
        redis-cli -p "$rport" FLUSHALL >/dev/null
        run_job "$bin" "f$fail$mode" "$items" ""
        echo "${fail}% 503 (no Retry-After), $mode: $items items in ${elapsed}s, dead $dead"
    done
done
