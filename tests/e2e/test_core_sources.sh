#!/usr/bin/env bash
# Sources end to end: standard input (hash-partitioned, fed by submit), NDJSON with an id
# field ({item} is the JSON record), CSV with a header and quoted fields holding commas and
# newlines ({item} is a JSON object of header -> value).
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

# ---- stdin ---------------------------------------------------------------------------------------
bg coord "$DROVER" run s
# The coordinator may start before the job exists: it must then fail, not hang.
wait_exit 10 "$LAST_PID"
[ "$EXIT_CODE" -eq 1 ] || fail "run of a missing job exited $EXIT_CODE"
seq 1 5000 | "$DROVER" submit --id s --source - --partitions 4 --window 300 >"$TMP/id" 2>"$TMP/submit.log" &
submit=$!
PIDS+=("$submit")
wait_for "the job to exist" 10 grep -qx s "$TMP/id"
bg coord "$DROVER" run s
coord=$LAST_PID
bg w "$WORKER" --job s --handler noop --batch 50 --concurrency 50 --stats-ms 0 --exit-when-done
wait_exit 60 "$submit"
[ "$EXIT_CODE" -eq 0 ] || fail "stdin submit exited $EXIT_CODE: $(cat "$TMP/submit.log")"
wait_exit 60 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "stdin job coordinator exited $EXIT_CODE"
[ "$(status_num s total)" -eq 5000 ] || fail "stdin total is not 5000"
all_done_ids s 4 | sort -n | cmp -s - <(seq 1 5000) || fail "stdin job: done record differs"
for p in 0 1 2 3; do
    [ "$(done_count s "$p")" -gt 0 ] || fail "partition $p got nothing: not hash-partitioned"
done
say "stdin: 5000 ids fed through a window of 300 per partition, all done"

# ---- NDJSON -----------------------------------------------------------------------------------
printf '{"user_id": "u1", "name": "Ann"}\n{"user_id": 2, "name": "Bo \\"the\\" b"}\n\n{"name": "Cy", "user_id": "u3"}' >"$TMP/users.ndjson"
"$DROVER" submit --id nd --file "$TMP/users.ndjson" --format ndjson --id-field user_id \
    --partitions 2 --quiet >/dev/null
bg coord "$DROVER" run nd
coord=$LAST_PID
# Each item: its id as an argument, the record both as an argument and on stdin.
cat >"$TMP/show.sh" <<SH
#!/bin/sh
stdin=\$(cat)
printf '%s|%s|%s\n' "\$1" "\$2" "\$stdin" >>"$TMP/nd.out"
SH
bg w "$WORKER" --job nd --stats-ms 0 --exit-when-done -- sh "$TMP/show.sh" {id} {item}
wait_exit 30 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "ndjson job exited $EXIT_CODE"
sort "$TMP/nd.out" >"$TMP/nd.sorted"
grep -qxF '2|{"user_id": 2, "name": "Bo \"the\" b"}|{"user_id": 2, "name": "Bo \"the\" b"}' "$TMP/nd.sorted" ||
    fail "ndjson item 2: $(cat "$TMP/nd.sorted")"
grep -qxF 'u3|{"name": "Cy", "user_id": "u3"}|{"name": "Cy", "user_id": "u3"}' "$TMP/nd.sorted" ||
    fail "ndjson item u3: $(cat "$TMP/nd.sorted")"
[ "$(wc -l <"$TMP/nd.sorted")" -eq 3 ] || fail "ndjson: expected 3 items"
[ "$(R HLEN 'drover:{nd.0}:items')$(R HLEN 'drover:{nd.1}:items')" = 00 ] ||
    fail "payloads of done items were not removed"
say "ndjson: ids from the field (string and number), the record as {item} and on stdin"

# ---- CSV ----------------------------------------------------------------------------------------
printf 'id,name,note\r\n7,"Smith, Jo","line one\nline two"\r\n8,Lee,"say ""hi"""\r\n' >"$TMP/people.csv"
"$DROVER" submit --id csv --file "$TMP/people.csv" --format csv --id-field id --partitions 3 \
    --quiet >/dev/null
[ "$(status_num csv total)" -eq 2 ] || fail "csv: a quoted newline split a record"
bg coord "$DROVER" run csv
coord=$LAST_PID
bg w "$WORKER" --job csv --stats-ms 0 --exit-when-done --no-stdin \
    -- sh -c 'printf "%s\n" "$1" >>"$0/csv.out"' "$TMP" {item}
wait_exit 30 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "csv job exited $EXIT_CODE"
grep -qxF '{"id":"7","name":"Smith, Jo","note":"line one\nline two"}' "$TMP/csv.out" ||
    fail "csv item 7: $(cat "$TMP/csv.out")"
grep -qxF '{"id":"8","name":"Lee","note":"say \"hi\""}' "$TMP/csv.out" ||
    fail "csv item 8: $(cat "$TMP/csv.out")"
say "csv: quoted commas, newlines and quotes kept; the item is a JSON object"
echo "PASS: sources"
