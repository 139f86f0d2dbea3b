# shellcheck shell=bash disable=SC2034 # R_* are read by the scripts that source this
# Sourced by bench/core.sh and bench/run: one redis-server of the benchmark's own (loopback, a
# free port, a temp dir, no persistence, stopped by its PID) and one drover job measured from
# submit to the coordinator's exit. Only drover's command line and Redis INFO are used, so the
# measurement does not depend on how drover lays out its keys.
# The caller sets `set -euo pipefail` and runs from the top of the source tree.

BENCH_TMP=$(mktemp -d /tmp/drover-bench-XXXXXX)
BENCH_PIDS=()
BENCH_RPID=""
BENCH_PORT=""
BENCH_WATCHERS=() # bench_watch_max's background samplers
unset DROVER_PREFIX

bench_cleanup() {
    local p
    for p in "${BENCH_WATCHERS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${BENCH_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "$BENCH_RPID" ]; then
        kill "$BENCH_RPID" 2>/dev/null || true
        wait "$BENCH_RPID" 2>/dev/null || true
    fi
    rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT
trap 'exit 143' TERM INT

bench_die() {
    echo "bench: $*" >&2
    exit 1
}

# bench_bins: sets B, the directory of drover and drover-worker (DROVER_BIN_DIR, else build/,
# configured and built as RelWithDebInfo when it has no drover yet).
bench_bins() {
    B=${DROVER_BIN_DIR:-build}
    if [ ! -x "$B/drover" ] || [ ! -x "$B/drover-worker" ]; then
        [ -z "${DROVER_BIN_DIR:-}" ] || bench_die "no drover in DROVER_BIN_DIR=$DROVER_BIN_DIR"
        echo "bench: building drover in build/ (RelWithDebInfo)" >&2
        cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
        cmake --build build -j"$(nproc)" >/dev/null
        B=build
    fi
}

# bench_redis_start: sets BENCH_PORT, BENCH_RPID and DROVER_REDIS_URL (and BENCH_TLS_PORT,
# BENCH_PORT + 1, with BENCH_TLS_DIR).
bench_redis_start() {
    local port i tls
    for _ in $(seq 20); do
        port=$((20000 + RANDOM % 40000))
        tls=()
        # BENCH_TLS_DIR (bench/tls.sh): a TLS port beside the plain one, its certificates there.
        [ -z "${BENCH_TLS_DIR:-}" ] ||
            tls=(--tls-port $((port + 1)) --tls-cert-file "$BENCH_TLS_DIR/server.crt"
                --tls-key-file "$BENCH_TLS_DIR/server.key" --tls-ca-cert-file "$BENCH_TLS_DIR/ca.crt"
                --tls-auth-clients no)
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "$BENCH_TMP" --logfile "$BENCH_TMP/redis.log" "${tls[@]}" &
        BENCH_RPID=$!
        for i in $(seq 200); do
            if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
                BENCH_PORT=$port BENCH_TLS_PORT=$((port + 1))
                export DROVER_REDIS_URL="redis://127.0.0.1:$port/0"
                return 0
            fi
            kill -0 "$BENCH_RPID" 2>/dev/null || break
            sleep 0.05
        done
        kill "$BENCH_RPID" 2>/dev/null || true
        wait "$BENCH_RPID" 2>/dev/null || true
        BENCH_RPID=""
    done
    bench_die "redis-server did not start (see $BENCH_TMP/redis.log)"
}

bench_redis() { redis-cli -p "$BENCH_PORT" "$@"; }

# bench_info SECTION FIELD: one field of INFO.
bench_info() { bench_redis INFO "$1" | tr -d '\r' | awk -F: -v k="$2" '$1 == k {print $2}'; }

# bench_cpu: Redis CPU seconds so far (used_cpu_sys + used_cpu_user).
bench_cpu() {
    bench_redis INFO cpu | tr -d '\r' |
        awk -F: '$1 == "used_cpu_sys" || $1 == "used_cpu_user" {s += $2} END {printf "%.6f", s}'
}

# bench_mem: used_memory without the script cache, which is not part of a job's record (the
# scripts are loaded again on their next call).
bench_mem() {
    bench_redis SCRIPT FLUSH >/dev/null
    bench_info memory used_memory
}

# bench_reset: an empty Redis before each measurement.
bench_reset() { bench_redis FLUSHALL >/dev/null; }

bench_now() { date +%s.%N; }

# bench_watch_max OUT SECONDS SAMPLER [ARGS...]: in the background, every SECONDS runs
# `SAMPLER ARGS...` (whole numbers, one a line; nothing when there is nothing to read) and
# keeps in OUT the highest number seen so far (0 before any). bench_watch_stop stops them all.
bench_watch_max() {
    local out=$1 every=$2
    shift 2
    echo 0 >"$out"
    (
        most=0
        while :; do
            while read -r n; do
                if [[ $n =~ ^[0-9]+$ ]] && [ "$n" -gt "$most" ]; then
                    most=$n
                    echo "$most" >"$out"
                fi
            done < <("$@" 2>/dev/null || true)
            sleep "$every"
        done
    ) &
    BENCH_WATCHERS+=($!)
}

bench_watch_stop() {
    local p
    for p in "${BENCH_WATCHERS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${BENCH_WATCHERS[@]}"; do wait "$p" 2>/dev/null || true; done
    BENCH_WATCHERS=()
}

# bench_rss_sample PID...: the VmHWM (KiB) of each PID still running. The high-water mark only
# rises, so sampling every 0.2 s misses nothing but the last 0.2 s before an exit; a process
# that has exited has no status file (or one without VmHWM).
bench_rss_sample() {
    local p k v
    for p in "$@"; do
        { while read -r k v _; do
            [ "$k" != VmHWM: ] || echo "$v"
        done <"/proc/$p/status"; } 2>/dev/null || true
    done
}

# bench_pending_sample JOB: the items `drover status` shows pending in JOB.
bench_pending_sample() {
    "$B/drover" status "$1" --json | grep -o '"pending":[0-9]*' | head -1 | cut -d: -f2
}


# bench_drover EXPECTED PARTITIONS WORKERS BATCH CONCURRENCY HANDLER SOURCE-FLAG...
#   (BATCH or CONCURRENCY "auto" leaves that flag out: the worker's defaults, untuned; HANDLER
#   http: the workers run no command, the job's spec has the HTTP handler, given in SOURCE-FLAG)
#   One job on an empty Redis: drover submit (with the given source flags, e.g. --range 1..N or
#   --file PATH) and `drover run` in the foreground, WORKERS drover-workers with
#   --exit-when-done. HANDLER is noop (drover-worker --handler noop: coordination alone) or a
#   command run per item (e.g. true). BENCH_WINDOW (default 20000) is the job's --window and
#   BENCH_DEADLINE (seconds, default 1800) bounds the coordinator.
#   Sets R_done (items done; anything but EXPECTED is an error), R_secs (submit to the
#   coordinator's exit), R_rate (items/s), R_cpu (Redis CPU µs per item), R_mem (Redis
#   used_memory after the job minus before it, per item: the done record and counters) and
#   R_rss (the highest peak RSS of one worker, KiB). With BENCH_SAMPLE_PENDING set, R_pending:
#   the most items `drover status` saw pending at once (sampled every 0.5 s).
bench_drover() {
    local expected=$1 parts=$2 nworkers=$3 batch=$4 conc=$5 handler=$6
    shift 6
    local mem0 cpu0 t0 t1 cpu1 mem1 rc=0 wpids=() wp spid=""
    bench_reset
    mem0=$(bench_mem)
    cpu0=$(bench_cpu)
    t0=$(bench_now)
    if [ -n "${BENCH_STDIN:-}" ]; then
        # A stdin job: submit feeds it while the coordinator and workers run (the window holds
        # it back), so it goes to the background once the job exists.
        "$B/drover" submit --id bench "$@" --partitions "$parts" --window "${BENCH_WINDOW:-20000}" \
            --quiet <"$BENCH_STDIN" >/dev/null &
        spid=$!
        BENCH_PIDS+=("$spid")
        until [ "$(bench_redis EXISTS 'drover:{bench}:job')" = 1 ]; do
            kill -0 "$spid" 2>/dev/null || bench_die "drover submit of $BENCH_STDIN exited early"
            sleep 0.05
        done
    else
        "$B/drover" submit --id bench "$@" --partitions "$parts" --window "${BENCH_WINDOW:-20000}" \
            --quiet >/dev/null
    fi
    local tune=() # BATCH or CONCURRENCY "auto": the worker's default (the claim size adapts)
    [ "$batch" = auto ] || tune+=(--batch "$batch")
    [ "$conc" = auto ] || tune+=(--concurrency "$conc")
    for _ in $(seq "$nworkers"); do
        if [ "$handler" = http ]; then # the job's own HTTP handler (submit --handler JSON)
            "$B/drover-worker" --job bench "${tune[@]}" \
                --exit-when-done --stats-ms 0 --log-level warn &
        elif [ "$handler" = noop ]; then
            "$B/drover-worker" --job bench --handler noop "${tune[@]}" \
                --exit-when-done --stats-ms 0 --log-level warn &
        else
            # shellcheck disable=SC2086 # HANDLER is a command line split on spaces
            "$B/drover-worker" --job bench "${tune[@]}" \
                --exit-when-done --stats-ms 0 --log-level warn -- $handler &
        fi
        wpids+=($!)
        BENCH_PIDS+=($!)
    done
    bench_watch_max "$BENCH_TMP/rss" 0.2 bench_rss_sample "${wpids[@]}"
    [ -z "${BENCH_SAMPLE_PENDING:-}" ] ||
        bench_watch_max "$BENCH_TMP/pending" 0.5 bench_pending_sample bench
    timeout "${BENCH_DEADLINE:-1800}" "$B/drover" run bench --quiet --log-level warn || rc=$?
    t1=$(bench_now)
    [ "$rc" -eq 0 ] || bench_die "drover run exited $rc (124: over the ${BENCH_DEADLINE:-1800} s deadline)"
    for wp in "${wpids[@]}"; do
        timeout 60 tail --pid="$wp" -s 0.05 -f /dev/null || bench_die "worker $wp still running 60 s after the job ended"
        wait "$wp" || bench_die "a worker exited with status $?"
    done
    if [ -n "$spid" ]; then
        wait "$spid" || bench_die "drover submit of $BENCH_STDIN exited with status $?"
    fi
    BENCH_PIDS=()
    bench_watch_stop
    R_pending=""
    [ -z "${BENCH_SAMPLE_PENDING:-}" ] || R_pending=$(cat "$BENCH_TMP/pending")
    cpu1=$(bench_cpu)
    mem1=$(bench_mem)
    R_done=$("$B/drover" status bench --json | grep -o '"done":[0-9]*' | head -1 | cut -d: -f2)
    [ "$R_done" = "$expected" ] || bench_die "job done with $R_done items, expected $expected"
    R_rss=$(cat "$BENCH_TMP/rss")
    read -r R_secs R_rate R_cpu R_mem < <(awk -v t0="$t0" -v t1="$t1" -v n="$R_done" \
        -v c0="$cpu0" -v c1="$cpu1" -v m0="$mem0" -v m1="$mem1" \
        'BEGIN {s = t1 - t0; printf "%.3f %.0f %.2f %.1f\n", s, n / s, (c1 - c0) * 1e6 / n, (m1 - m0) / n}')
}
