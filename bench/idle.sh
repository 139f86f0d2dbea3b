#!/usr/bin/env bash
# What an idle fleet costs Redis (issue 21, "idle fleets cost nothing"): N drover-workers
# (--concurrency 1, --handler noop) on a running job with nothing pending (a stdin job whose
# stdin is a FIFO kept open and empty, 16 partitions) and its coordinator; Redis CPU (INFO cpu
# used_cpu_sys + used_cpu_user) over SECONDS as a percentage of one core, with the coordinator
# alone first. Then one item is written to the job's stdin and the time until it is done is
# printed (the fleet is idle: how long a new item waits). Output: one Markdown row, | workers |
# coordinator alone % | with the workers % | seconds to the item done | load average |.
# Usage: bench/idle.sh [WORKERS] [SECONDS]     (default 500 and 20)
#   DROVER_BIN_DIR=/work/build-perf-base bench/idle.sh 500 20
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-500} secs=${2:-20}
. bench/lib.sh
bench_bins
bench_redis_start
mkfifo "$BENCH_TMP/in"
exec 3<>"$BENCH_TMP/in" # held open for writing: the job's source never ends
"$B/drover" submit --id idle --source - --partitions 16 --quiet <"$BENCH_TMP/in" >/dev/null &
BENCH_PIDS+=($!)
until [ "$(bench_redis EXISTS 'drover:{idle}:job')" = 1 ]; do sleep 0.05; done
"$B/drover" run idle --quiet --log-level warn &
BENCH_PIDS+=($!)
cpu_pct() { # cpu_pct SECONDS: Redis CPU over that long, % of one core
    local c0 c1
    c0=$(bench_cpu)
    sleep "$1"
    c1=$(bench_cpu)
    awk -v a="$c0" -v b="$c1" -v s="$1" 'BEGIN { printf "%.2f", (b - a) * 100 / s }'
}
sleep 2
coord=$(cpu_pct "$secs")
echo "bench: coordinator alone: $coord% of a core" >&2
for i in $(seq "$n"); do
    "$B/drover-worker" --job idle --handler noop --concurrency 1 --stats-ms 0 --log-level warn \
        --id "idle-$i" 2>>"$BENCH_TMP/workers.log" &
    BENCH_PIDS+=($!)
done
until [ "$(bench_redis ZCARD 'drover:{workers}')" -ge "$n" ]; do sleep 0.5; done
sleep 5 # every worker past its first claims, its partitions idle
fleet=$(cpu_pct "$secs")
echo "bench: coordinator + $n idle workers: $fleet% of a core" >&2
bench_redis CONFIG RESETSTAT >/dev/null
sleep "$secs"
bench_redis INFO commandstats | tr -d '\r' | grep -v '^#' | sort -t= -k3 -rn | head -8 >&2
# An item appears in partition 0's pending list, as a feed would put it (the stdin reader feeds
# whole chunks, so one line on the FIFO would wait): how long until an idle worker has done it.
t0=$(bench_now)
bench_redis RPUSH 'drover:{idle.0}:pending' item-1 >/dev/null
until "$B/drover" status idle --json | grep -q '"done":1[,}]'; do sleep 0.02; done
t1=$(bench_now)
echo "| $n | $coord | $fleet | $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') | $(cut -d' ' -f1-3 /proc/loadavg) |"
