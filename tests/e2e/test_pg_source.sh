#!/usr/bin/env bash
# The postgres source against a real PostgreSQL server (Debian postgresql: own data dir, free
# loopback port, stopped by its PID).
# 1. submit refuses, exit 2 naming it: a DSN that does not connect, a literal password in the
#    DSN, a missing table, key or column, a key without an index or without a unique one, a
#    condition that does not plan; and writes nothing.
# 2. An integer key, 200k rows with gaps, 4 partitions, --where and --columns: while the
#    coordinator holds a window of each partition, rows are inserted ahead of the cursors (in
#    the gaps and past the max at submit, into the open last partition) and deleted ahead of
#    them; the coordinator is SIGKILLed mid-feed three times. The done record equals the rows
#    of the table that meet the condition at the end, id for id, and an item is the row's JSON.
# 3. The server stopped mid-feed: the coordinator says so once, backs off, and feeds every row
#    once after it is back.
# 4. A uuid key (hash partitions, keyset within each): the done record equals the table.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
source "$DROVER_SRC_DIR/tests/support/postgres.sh"
if ! pg_bin; then
    echo "SKIPPED: PostgreSQL is not installed (scripts/deps test installs it)"
    exit 0
fi
trap 'rc=$?; pg_stop; (exit $rc); cleanup' EXIT
pg_start "$TMP/pg" || fail "could not start PostgreSQL"
Q() { pg_q "$1"; }
N=200000
# Even ids only (the odd ones are the gaps inserted later); every 10th row has fee_fixed.
Q "CREATE TABLE inv (id bigint PRIMARY KEY, email text NOT NULL, fee_fixed boolean NOT NULL);
   INSERT INTO inv SELECT 2 * i, 'u' || i || '@example.com', i % 10 = 0
     FROM generate_series(1, $N) i;
   CREATE TABLE noidx (id int, x int); INSERT INTO noidx VALUES (1, 1);
   CREATE TABLE dup (id int, x int); CREATE INDEX ON dup (id); INSERT INTO dup VALUES (1, 1);
   CREATE TABLE money (id numeric PRIMARY KEY);
   ANALYZE;"
export DATABASE_URL="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PGDATABASE"
start_redis

# --- 1. refused at submit, naming what is wrong --------------------------------------------
refused() { # refused WORDS -- SUBMIT ARGS: exit 2 and stderr holds WORDS
    local words=$1
    shift 2
    set +e
    "$DROVER" submit --id bad "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    set -e
    [ $rc -eq 2 ] || fail "submit $* exited $rc, not 2: $(cat "$TMP/err")"
    grep -qF -- "$words" "$TMP/err" || fail "submit $*: no \"$words\" in: $(cat "$TMP/err")"
    say "refused: $(head -1 "$TMP/err")"
}
PG='${DATABASE_URL}'
# fed_at_least JOB PARTITIONS N: the partitions' fed counters add up to N or more (redis-cli:
# cheap enough to poll on a loaded machine).
fed_at_least() {
    local sum=0 p
    for p in $(seq 0 $(($2 - 1))); do sum=$((sum + $(R HGET "drover:{$1.$p}:state" fed))); done
    [ "$sum" -ge "$3" ]
}
refused "source.dsn: cannot connect" -- --postgres "host=127.0.0.1 port=1 dbname=x" \
    --table inv --key id
refused "source.dsn: holds a password" -- --postgres "host=$PGHOST password=hunter2" \
    --table inv --key id
# A ${NAME} glued to literal text must not hide a password from the check.
refused "source.dsn: holds a password" -- --postgres '${DATABASE_URL}password=hunter2' \
    --table inv --key id
refused "source.dsn: holds a password" -- --postgres 'postgresql://u:hunter2@${PGHOST}/x' \
    --table inv --key id
refused 'source.dsn: ${NOPE} is not set' -- --postgres '${NOPE}' --table inv --key id
refused 'source.table: no table "nosuch"' -- --postgres "$PG" --table nosuch --key id
refused 'source.key: no column "nokey"' -- --postgres "$PG" --table inv --key nokey
refused 'source.key: column "id" of money is numeric' -- --postgres "$PG" --table money --key id
refused 'source.columns: no column "emial"' -- --postgres "$PG" --table inv --key id \
    --columns id,emial
refused 'source.key: no btree index on noidx(id)' -- --postgres "$PG" --table noidx --key id
refused 'is indexed but not unique' -- --postgres "$PG" --table dup --key id
refused 'source.where: ' -- --postgres "$PG" --table inv --key id --where 'no_such_col = 1'
refused 'source.query: its first column "id" (the key) is of type' -- --postgres "$PG" \
    --query 'SELECT id FROM money'
refused 'source.query: a page would scan a whole table (Seq Scan on noidx' -- \
    --postgres "$PG" --query 'SELECT id, x FROM noidx'
refused 'source.query: ' -- --postgres "$PG" --query 'SELECT FROM nothing here'
[ -z "$(R KEYS 'drover:*')" ] || fail "a refused submit wrote to Redis: $(R KEYS 'drover:*')"
"$DROVER" submit --id seq --postgres "$PG" --table noidx --key id --allow-seqscan --quiet \
    >/dev/null || fail "--allow-seqscan was refused"
R GET "drover:{seq}:job" >/dev/null
grep -q 'allow_seqscan' <<<"$(R HGET 'drover:{seq}:job' spec)" || fail "allow_seqscan not kept"

# --- 2. an integer key: inserts and deletes ahead of the cursors, coordinator SIGKILLed -------
J=inv
P=4
"$DROVER" submit --id $J --postgres "$PG" --table inv --key id --where 'fee_fixed = false' \
    --columns id,email --partitions $P --window 2000 --lease-ms 5000 --rate 15000 --quiet >/dev/null
spec=$(R HGET "drover:{$J}:job" spec)
grep -qF '"dsn":"${DATABASE_URL}"' <<<"$spec" || fail "the DSN is not kept as given: $spec"
grep -q "$PGPORT" <<<"$spec" && fail "the resolved DSN reached Redis: $spec"
# Each partition holds a window before any worker runs: the rows changed below are ahead of
# every cursor.
bg coord1 "$DROVER" run $J --lock-ttl-ms 1000 --progress-ms 100000
coord=$LAST_PID
wait_for "a window in each partition" 30 fed_at_least $J $P $((P * 2000))
# Partition k covers about 100000k..100000(k+1) and has fed its first ~4000 ids: the second
# half of each is ahead of its cursor.
Q "INSERT INTO inv SELECT 2 * i + 1, 'gap' || i || '@example.com', false
     FROM generate_series(1, $N, 97) i WHERE (2 * i + 1) % 100000 > 50000;
   INSERT INTO inv SELECT i, 'new' || i || '@example.com', i % 2 = 0
     FROM generate_series(2 * $N + 1, 2 * $N + 300) i;
   DELETE FROM inv WHERE id % 1000 = 14 AND id % 100000 > 50000;
   UPDATE inv SET fee_fixed = true WHERE id BETWEEN 350000 AND 350100;"
bg w1 "$WORKER" --job $J --id w1 --handler noop --concurrency 64 --batch 200 --stats-ms 0 \
    --exit-when-done
w1=$LAST_PID
# Killed mid-feed three times, each a fifth further on (the rate limit keeps the job from
# ending between two polls: a fifth of it takes 2.4 s at least).
for k in 1 2 3; do
    wait_for "fed $((k * N / 5))" 60 fed_at_least $J $P $((k * N / 5))
    kill -9 "$coord" 2>/dev/null || fail "coordinator $k exited early: $(tail -3 "$TMP/coord$k.log")"
    wait "$coord" 2>/dev/null || true
    say "SIGKILLed the coordinator at fed $(status_num $J fed)"
    bg "coord$((k + 1))" "$DROVER" run $J --lock-ttl-ms 1000 --progress-ms 100000
    coord=$LAST_PID
done
wait_exit 120 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "the coordinator exited $EXIT_CODE"
wait_exit 30 "$w1"
Q "SELECT id FROM inv WHERE fee_fixed = false" | sort >"$TMP/expected"
all_done_ids $J $P >"$TMP/done"
want=$(wc -l <"$TMP/expected")
if ! cmp -s "$TMP/expected" "$TMP/done"; then
    diff "$TMP/expected" "$TMP/done" | head -20 >&2
    fail "the done record ($(wc -l <"$TMP/done")) is not the table's $want rows"
fi
[ "$(status_num $J fed)" -eq "$want" ] || fail "fed $(status_num $J fed), not $want (a row twice?)"
[ "$(status_num $J total)" -eq "$want" ] || fail "total is not $want"
grep -q '^400299$' "$TMP/done" || fail "a row inserted past the max at submit was not fed"
grep -q '^151014$' "$TMP/done" && fail "a deleted row was fed"
grep -q '^150159$' "$TMP/done" || fail "a row inserted ahead of a cursor was not fed"
say "done record = the table's $want rows (inserted ahead fed, deleted not)"

# An item is the row's JSON with the columns asked for (so {item.email} works in an HTTP
# handler's templates; the command handler gets the whole of it as {item}).
"$DROVER" submit --id one --postgres "$PG" --table inv --key id --where 'id < 7' \
    --columns id,email --partitions 1 --quiet >/dev/null
bg c1 "$DROVER" run one
c1=$LAST_PID
"$WORKER" --job one --id w2 --concurrency 1 --stats-ms 0 --exit-when-done --no-stdin -- \
    sh -c 'printf "%s %s\n" "$1" "$2" >>"$3"' sh {id} {item} "$TMP/items" \
    >/dev/null 2>&1
wait_exit 30 "$c1"
sort "$TMP/items" >"$TMP/items.sorted"
printf '%s\n' '2 {"id" : 2, "email" : "u1@example.com"}' '4 {"id" : 4, "email" : "u2@example.com"}' \
    '6 {"id" : 6, "email" : "u3@example.com"}' | cmp - "$TMP/items.sorted" ||
    fail "the items are not the rows: $(cat "$TMP/items")"

# --- 3. the database goes away mid-feed: said once, waited out with backoff, resumed ------
"$DROVER" submit --id out --postgres "$PG" --table inv --key id --where 'id <= 20000' \
    --partitions 2 --window 500 --quiet >/dev/null
bg c4 "$DROVER" run out --lock-ttl-ms 1000 --progress-ms 100000
c4=$LAST_PID
# (Its rows are all in partition 0: the keys' slices were cut at submit of a 400k-key table.)
wait_for "a window of out fed" 30 fed_at_least out 2 500
pg_stop
bg w4 "$WORKER" --job out --id w4 --handler noop --stats-ms 0 --exit-when-done
w4=$LAST_PID
wait_for "the coordinator to say the source fails" 30 grep -q 'postgres source failing' \
    "$TMP/c4.log"
sleep 2 # several retries (50 ms to 5 s apart) go by: still one line
[ "$(grep -c 'postgres source failing' "$TMP/c4.log")" -eq 1 ] ||
    fail "the outage was not said exactly once: $(grep -c 'failing' "$TMP/c4.log")"
kill -0 "$c4" || fail "the coordinator died with the database"
pg_restart || fail "PostgreSQL did not come back"
wait_exit 60 "$c4"
[ "$EXIT_CODE" -eq 0 ] || fail "the out coordinator exited $EXIT_CODE"
wait_exit 30 "$w4"
grep -q 'postgres source ok again' "$TMP/c4.log" || fail "the recovery was not said"
[ "$(status_num out done)" -eq 10000 ] || fail "out: done $(status_num out done), not 10000"
[ "$(status_num out fed)" -eq 10000 ] || fail "out: fed $(status_num out fed), not 10000"
say "the database stopped mid-feed: said once, every row fed once after it came back"

# A query instead of a table: its first column is the key.
"$DROVER" submit --id q --postgres "$PG" --query 'SELECT id, email FROM inv WHERE id < 1000' \
    --partitions 2 --quiet >/dev/null
grep -q '"key":"id"' <<<"$(R HGET 'drover:{q}:job' spec)" || fail "the query's key is not noted"
bg c5 "$DROVER" run q
c5=$LAST_PID
"$WORKER" --job q --id w5 --handler noop --stats-ms 0 --exit-when-done >/dev/null 2>&1
wait_exit 30 "$c5"
[ "$EXIT_CODE" -eq 0 ] || fail "the q coordinator exited $EXIT_CODE"
Q "SELECT id FROM inv WHERE id < 1000" | sort >"$TMP/q.expected"
all_done_ids q 2 | cmp -s - "$TMP/q.expected" || fail "q: the done record is not the query's rows"
say "a query source: every row of the query fed once"

# --- 4. a uuid key: hash partitions ----------------------------------------------------------
Q "CREATE TABLE acct (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), n int);
   INSERT INTO acct (n) SELECT generate_series(1, 5000); ANALYZE acct;"
"$DROVER" submit --id acct --postgres "$PG" --table acct --key id --partitions 3 --window 500 \
    --quiet >/dev/null
[ "$(R HGET 'drover:{acct.0}:state' cursor)" = "" ] || fail "a text key's first cursor is not empty"
bg c2 "$DROVER" run acct --lock-ttl-ms 1000 --progress-ms 100000
c2=$LAST_PID
wait_for "some of acct fed" 30 fed_at_least acct 3 1500
kill -9 "$c2"
wait "$c2" 2>/dev/null || true
bg c3 "$DROVER" run acct --lock-ttl-ms 1000 --progress-ms 100000
c3=$LAST_PID
bg w3 "$WORKER" --job acct --id w3 --handler noop --stats-ms 0 --exit-when-done
wait_exit 60 "$c3"
[ "$EXIT_CODE" -eq 0 ] || fail "the acct coordinator exited $EXIT_CODE"
Q "SELECT id FROM acct" | sort >"$TMP/acct.expected"
all_done_ids acct 3 >"$TMP/acct.done"
cmp -s "$TMP/acct.expected" "$TMP/acct.done" ||
    fail "acct: the done record ($(wc -l <"$TMP/acct.done")) is not the table's 5000 rows"
[ "$(status_num acct fed)" -eq 5000 ] || fail "acct: fed $(status_num acct fed), not 5000"
say "uuid keys: every row fed once"
echo "PASS: the postgres source feeds each row once across crashes, inserts and deletes"
