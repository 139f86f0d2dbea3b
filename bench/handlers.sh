#!/usr/bin/env bash
# Handlers compared on this machine (issue 17). One table: the same Python no-op handler logic
# (bench/noop_handler.py under Debian's /usr/bin/python3) run per item, per --stdin-batch of
# 100, and as --serve processes with 1 and 16 items in flight each, against the built-in noop;
# 2 workers each; items/s from submit to the coordinator's exit, and CPU per item of the
# drover-workers themselves and of the handler processes they ran. Then a PostgreSQL row update
# (one UPDATE per item): --serve with examples/pg_handler.py (one connection per process)
# against --stdin-batch 250 with psql (bench/pg_batch.sh: one connection per batch), rows/s.
# Usage: bench/handlers.sh [ITEMS] [EXEC_ITEMS] [PG_ROWS]
#   ITEMS (default 200000) per case, EXEC_ITEMS (default 2000) for per-item exec (a process per
#   item is slow), PG_ROWS (default 100000) rows; no PostgreSQL: that part is left out.
#   BENCH_PROCS (default 4): handler processes per worker (--concurrency, --serve).
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-200000} exec_items=${2:-2000} pg_rows=${3:-100000} procs=${BENCH_PROCS:-4}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
. bench/lib.sh
. tests/support/postgres.sh
bench_bins
bench_redis_start
trap 'pg_stop; bench_cleanup' EXIT

# Runs a worker and writes "OWN TOTAL" CPU seconds to a file when it exits: TOTAL from wait4
# (the worker and every child it reaped), OWN sampled from /proc every 50 ms while it runs.
WRAP='import os, sys, time
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
tck, own = os.sysconf("SC_CLK_TCK"), 0.0
while True:
    p, st, ru = os.wait4(pid, os.WNOHANG)
    if p:
        break
    try:
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        own = (int(f[11]) + int(f[12])) / tck
    except (OSError, IndexError, ValueError):
        pass
    time.sleep(0.05)
open(sys.argv[1], "w").write("%f %f\n" % (own, ru.ru_utime + ru.ru_stime))
sys.exit(os.waitstatus_to_exitcode(st))'

# run_case LABEL ITEMS WORKER-ARGS...: one job of ITEMS ids through 2 workers; prints a row.
run_case() {
    local label=$1 n=$2 t0 t1 rc=0 i wp wpids=() done_n
    shift 2
    bench_reset
    "$B/drover" submit --id bench --range "1..$n" --partitions 8 --window 20000 --quiet >/dev/null
    t0=$(bench_now)
    for i in 1 2; do
        "$PY" -c "$WRAP" "$BENCH_TMP/cpu.$i" "$B/drover-worker" --job bench --exit-when-done \
            --stats-ms 0 --log-level warn "$@" &
        wpids+=($!)
        BENCH_PIDS+=($!)
    done
    timeout "${BENCH_DEADLINE:-1800}" "$B/drover" run bench --quiet --log-level warn || rc=$?
    t1=$(bench_now)
    [ "$rc" -eq 0 ] || bench_die "$label: drover run exited $rc"
    for wp in "${wpids[@]}"; do
        timeout 60 tail --pid="$wp" -s 0.05 -f /dev/null || bench_die "$label: a worker still runs"
        wait "$wp" || bench_die "$label: a worker exited with status $?"
    done
    BENCH_PIDS=()
    done_n=$("$B/drover" status bench --json | grep -o '"done":[0-9]*' | head -1 | cut -d: -f2)
    [ "$done_n" = "$n" ] || bench_die "$label: $done_n items done, expected $n"
    cat "$BENCH_TMP/cpu.1" "$BENCH_TMP/cpu.2" | awk -v l="$label" -v n="$n" -v t0="$t0" -v t1="$t1" \
        '{ own += $1; tot += $2 }
         END { printf "%-34s %8d %10.0f %14.1f %15.1f\n", l, n, n / (t1 - t0), own * 1e6 / n,
               (tot - own) * 1e6 / n }'
}

echo "Python no-op handler, 2 workers, $procs handler processes each (items/s end to end; CPU per item in us)"
printf '%-34s %8s %10s %14s %15s\n' "handler" "items" "items/s" "worker CPU" "handler CPU"
H=("$PY" bench/noop_handler.py)
run_case "per-item exec" "$exec_items" --concurrency "$procs" --no-stdin -- "${H[@]}" exec
run_case "--stdin-batch 100" "$items" --stdin-batch 100 --concurrency "$procs" -- "${H[@]}" batch
run_case "--serve $procs (inflight 1)" "$items" --serve "$procs" -- "${H[@]}" serve
run_case "--serve $procs --serve-inflight 16" "$items" --serve "$procs" --serve-inflight 16 \
    -- "${H[@]}" serve
run_case "built-in noop (batch 1000)" "$items" --handler noop --batch 1000 --concurrency 1000

if ! pg_bin || ! "$PY" -c 'import psycopg2' 2>/dev/null; then
    echo "(no PostgreSQL server or python3-psycopg2: the row update is left out)"
    exit 0
fi
pg_start "$BENCH_TMP/pg" >/dev/null || bench_die "PostgreSQL did not start"
export PGBIN
pg_q "CREATE TABLE items (id bigint PRIMARY KEY, done boolean NOT NULL DEFAULT false,
        updates int NOT NULL DEFAULT 0, attempt int, lease_token bigint);
      INSERT INTO items (id) SELECT generate_series(1, $pg_rows);"
pg_reset() { pg_q "UPDATE items SET done = false, updates = 0, attempt = NULL, lease_token = NULL"; }
pg_check() {
    [ "$(pg_q 'SELECT count(*) FROM items WHERE NOT done')" -eq 0 ] || bench_die "$1: rows not done"
}
echo
echo "PostgreSQL: one UPDATE per row, $pg_rows rows, 2 workers (rows/s is the items/s column)"
printf '%-34s %8s %10s %14s %15s\n' "handler" "rows" "rows/s" "worker CPU" "handler CPU"
run_case "--serve $procs, pg_handler.py" "$pg_rows" --serve "$procs" \
    -- "$PY" examples/pg_handler.py
pg_check "--serve"
pg_reset
run_case "--stdin-batch 250, psql per batch" "$pg_rows" --stdin-batch 250 --concurrency "$procs" \
    -- bench/pg_batch.sh
pg_check "--stdin-batch"
