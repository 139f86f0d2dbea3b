#!/usr/bin/env bash
# examples/pg_handler.py against a real PostgreSQL server (Debian postgresql: own data dir,
# free loopback port, socket in the temp dir, stopped by its PID): 100,000 rows, two workers
# with --serve 4 (one connection per process), one SIGKILLed midway. Every row ends updated;
# a row updated twice is one the killed worker held (leased) when it died, so the doubles are
# bounded by what it had in flight; none of its handler processes survive it (PDEATHSIG), and
# the other worker's are gone once it exits.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
source "$DROVER_SRC_DIR/tests/support/postgres.sh"
if ! pg_bin; then
    echo "SKIPPED: PostgreSQL is not installed (scripts/deps test installs it)"
    exit 0
fi
/usr/bin/python3 -c 'import psycopg2' 2>/dev/null ||
    { echo "SKIPPED: Debian's python3-psycopg2 is not installed"; exit 0; }
trap 'rc=$?; pg_stop; (exit $rc); cleanup' EXIT
pg_start "$TMP/pg" || fail "could not start PostgreSQL"
Q() { pg_q "$1"; }
N=100000
Q "CREATE TABLE items (id bigint PRIMARY KEY, done boolean NOT NULL DEFAULT false,
     updates int NOT NULL DEFAULT 0, attempt int, lease_token bigint);
   INSERT INTO items (id) SELECT generate_series(1, $N);"

start_redis
"$DROVER" submit --id pg --range 1..$N --partitions 4 --lease-ms 5000 --max-attempts 5 \
    --backoff-ms 10 --backoff-max-ms 100 --quiet >/dev/null
bg coord "$DROVER" run pg
coord=$LAST_PID
HANDLER=(/usr/bin/python3 "$DROVER_SRC_DIR/examples/pg_handler.py")
bg w1 "$WORKER" --job pg --id w1 --serve 4 --stats-ms 0 -- "${HANDLER[@]}"
w1=$LAST_PID
bg w2 "$WORKER" --job pg --id w2 --serve 4 --stats-ms 0 --exit-when-done -- "${HANDLER[@]}"
w2=$LAST_PID
wait_for "w1's 4 handler processes" 30 bash -c "[ \$(ps -o pid= --ppid $w1 | wc -l) -eq 4 ]"
w1_handlers=$(ps -o pid= --ppid "$w1" | tr '\n' ' ')
wait_for "a third of the rows" 300 done_at_least pg $((N / 3))
kill -9 "$w1"
wait_exit 10 "$w1"
# What w1 held when it died: its leases stay in Redis until they expire.
for p in 0 1 2 3; do lease_ids "drover:{pg.$p}" w1; done | sort >"$TMP/w1-held"
say "w1 killed holding $(wc -l <"$TMP/w1-held") items"
for p in $w1_handlers; do
    wait_for "w1's handler $p to die with it" 10 bash -c "! ps -o stat= -p $p | grep -qv '^Z'"
done
wait_for "w2's handler processes" 30 bash -c "[ \$(ps -o pid= --ppid $w2 | wc -l) -ge 1 ]"
w2_handlers=$(ps -o pid= --ppid "$w2" | tr '\n' ' ')

wait_exit 300 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "coordinator exited $EXIT_CODE"
wait_exit 60 "$w2"
[ "$EXIT_CODE" -eq 0 ] || fail "w2 exited $EXIT_CODE"
[ "$(status_num pg done)" -eq $N ] || fail "done is not $N: $("$DROVER" status pg --json)"
[ "$(Q 'SELECT count(*) FROM items WHERE NOT done')" -eq 0 ] || fail "rows left not done"
[ "$(Q 'SELECT count(*) FROM items WHERE updates = 0')" -eq 0 ] || fail "rows never updated"
Q "SELECT id FROM items WHERE updates > 1" | sort >"$TMP/twice"
twice=$(wc -l <"$TMP/twice")
held=$(wc -l <"$TMP/w1-held")
[ "$twice" -le "$held" ] || fail "$twice rows updated twice, more than the $held w1 held"
extra=$(comm -23 "$TMP/twice" "$TMP/w1-held" | head -5)
[ -z "$extra" ] || fail "rows updated twice that w1 did not hold: $extra"
for p in $w2_handlers; do
    wait_for "w2's handler $p to end" 10 bash -c "! ps -o stat= -p $p | grep -qv '^Z'"
done
say "$N rows updated; $twice updated twice, of the $held w1 held when killed"
pg_stop
echo "PASS: --serve with one PostgreSQL connection per process survives a SIGKILLed worker"
