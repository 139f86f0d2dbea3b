#!/usr/bin/env bash
# The postgres source's feed rate (issue 19) against piping psql into a stdin job: ROWS rows of
# (id bigint primary key, email text) in a PostgreSQL server of the benchmark's own
# (tests/support/postgres.sh), fed into 8 partitions with a window big enough to hold them all,
# no workers, so only feeding is measured. Per case: rows/s into Redis (from the start of the
# feeding process until every row is fed), the feeder's CPU per row and peak RSS (the
# coordinator for the postgres source; submit, and psql beside it, for stdin), and Redis CPU per
# row. The stdin cases: ids only (no item), and the rows as NDJSON (the same items as the
# postgres source feeds).
# Usage: bench/pg_source.sh [ROWS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
. bench/lib.sh
. tests/support/postgres.sh
bench_bins
bench_redis_start
trap 'pg_stop; bench_cleanup' EXIT
pg_start "$BENCH_TMP/pg" >/dev/null || bench_die "could not start PostgreSQL"
pg_q "CREATE TABLE inv (id bigint PRIMARY KEY, email text NOT NULL);
      INSERT INTO inv SELECT i, 'user' || i || '@example.com' FROM generate_series(1, $rows) i;
"
pg_q "VACUUM ANALYZE inv"
export DATABASE_URL="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PGDATABASE"
P=8
window=$((rows / P + 1000))
tck=$(getconf CLK_TCK)

# proc_cpu PID: user+system seconds of a live process.
proc_cpu() { awk -v t="$tck" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }
# proc_hwm PID: its peak RSS in KiB.
proc_hwm() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$1/status"; }
fed() { "$B/drover" status bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["fed"])'; }

printf '%-34s %10s %14s %14s %12s\n' case rows/s "feeder us/row" "redis us/row" "feeder RSS"

# The postgres source: drover run feeds until every row is in Redis (no worker drains them).
bench_reset
"$B/drover" submit --id bench --postgres '${DATABASE_URL}' --table inv --key id \
    --partitions $P --window $window --quiet >/dev/null
c0=$(bench_cpu)
t0=$(bench_now)
"$B/drover" run bench --quiet --log-level warn --tick-ms 1 &
coord=$!
BENCH_PIDS+=($coord)
while [ "$(fed)" -lt "$rows" ]; do sleep 0.05; done
t1=$(bench_now)
cpu=$(proc_cpu $coord)
hwm=$(proc_hwm $coord)
c1=$(bench_cpu)
kill $coord
wait $coord 2>/dev/null || true
awk -v n="$rows" -v t="$(echo "$t1 - $t0" | bc)" -v c="$cpu" -v r="$(echo "$c1 - $c0" | bc)" \
    -v m="$hwm" 'BEGIN { printf "%-34s %10.0f %14.2f %14.2f %9.1f MiB\n", "postgres source (drover run)",
    n / t, c * 1e6 / n, r * 1e6 / n, m / 1024 }'

# psql piped into a stdin job: submit feeds as it reads. stdin_case LABEL SQL SUBMIT-FLAGS...
stdin_case() {
    local label=$1 sql=$2 u s m
    shift 2
    bench_reset
    c0=$(bench_cpu)
    t0=$(bench_now)
    /usr/bin/time -f '%U %S %M' -o "$BENCH_TMP/submit.time" \
        bash -c '"$1" -qAtX -c "$2" | "$3" submit --id bench --source - "${@:4}" --quiet >/dev/null' \
        sh "$PGBIN/psql" "$sql" "$B/drover" --partitions $P --window $window "$@"
    t1=$(bench_now)
    c1=$(bench_cpu)
    [ "$(fed)" -eq "$rows" ] || bench_die "$label: fed $(fed), not $rows"
    read -r u s m <"$BENCH_TMP/submit.time"
    awk -v n="$rows" -v t="$(echo "$t1 - $t0" | bc)" -v c="$(echo "$u + $s" | bc)" \
        -v r="$(echo "$c1 - $c0" | bc)" -v m="$m" -v l="$label" 'BEGIN {
        printf "%-34s %10.0f %14.2f %14.2f %9.1f MiB\n", l, n / t, c * 1e6 / n, r * 1e6 / n,
        m / 1024 }'
}
stdin_case "psql ids | submit --source -" "SELECT id FROM inv ORDER BY id"
stdin_case "psql rows | submit --source - ndjson" "SELECT row_to_json(t) FROM inv t ORDER BY id" \
    --format ndjson --id-field id
echo "(stdin: feeder CPU is psql's and submit's together; RSS the larger of the two)"
