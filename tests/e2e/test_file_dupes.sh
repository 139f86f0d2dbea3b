#!/usr/bin/env bash
# One id, one item: repeated ids in a file source are found at submit, exactly (an external
# sort of id hashes, then the colliding records compared), within and across partitions, in
# lines, NDJSON and CSV. Refused by default (exit 2, the count and the first repeats with their
# record and line numbers, nothing written), or kept first-wins with --dedupe first: the
# repeats are passed over at feed, so each id is handled once, with the first record's item.
# A 1M-id file is checked too (runs spilled to temporary files and merged).
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

# lines: "a" three times (records 1, 4, 7), "b" twice (2, 6), an empty line (skipped, but a line).
printf 'a\nb\nc\na\n\nd\nb\na\n' >"$TMP/l.txt"
rc=0
"$DROVER" submit --id l --file "$TMP/l.txt" --partitions 3 2>"$TMP/l.err" || rc=$?
[ $rc -eq 2 ] || fail "repeats in a lines file: exit $rc, not 2"
grep -q '3 records repeat an id of an earlier record' "$TMP/l.err" || fail "no count: $(cat "$TMP/l.err")"
grep -q 'id "a": record 4 (line 4) repeats record 1 (line 1)' "$TMP/l.err" || fail "first repeat not named: $(cat "$TMP/l.err")"
grep -q 'id "b": record 6 (line 7) repeats record 2 (line 2)' "$TMP/l.err" || fail "line numbers: $(cat "$TMP/l.err")"
[ "$(R KEYS 'drover:*' | grep -c .)" -eq 0 ] || fail "a refused submit wrote to Redis"
say "lines: refused, naming the repeats with record and line numbers"

# NDJSON, first-wins: each id handled once, with the first record's payload.
cat >"$TMP/n.ndjson" <<'EOF'
{"id": "u1", "v": "first"}
{"id": "u2", "v": "first"}
{"id": "u1", "v": "second"}
{"id": "u3", "v": "first"}
{"id": 7, "v": "first"}
{"id": "7", "v": "second"}
{"id": "u2", "v": "second"}
{"id": "u4", "v": "first"}
EOF
rc=0
"$DROVER" submit --id n --file "$TMP/n.ndjson" --format ndjson --id-field id --partitions 1 2>"$TMP/n.err" || rc=$?
[ $rc -eq 2 ] && grep -q '3 records repeat' "$TMP/n.err" && grep -q 'id "7": record 6 (line 6) repeats record 5 (line 5)' "$TMP/n.err" ||
    fail "NDJSON repeats (one partition) not refused as expected: $(cat "$TMP/n.err")"
"$DROVER" submit --id n --file "$TMP/n.ndjson" --format ndjson --id-field id --partitions 3 --dedupe first --quiet >/dev/null
[ "$(status_num n total)" -eq 5 ] || fail "total $(status_num n total), expected the 5 distinct ids"
: >"$TMP/handled"
bg wn "$WORKER" --job n --concurrency 2 --exit-when-done --stats-ms 0 -- sh -c 'printf "%s\n" "$1" >>"$2"' _ '{item}' "$TMP/handled"
w=$LAST_PID
bg cn "$DROVER" run n --progress-ms 200
c=$LAST_PID
wait_exit 30 "$c"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run n exited $EXIT_CODE"
wait_exit 30 "$w"
[ "$(grep -c . "$TMP/handled")" -eq 5 ] || fail "handled $(grep -c . "$TMP/handled") items, expected 5: $(cat "$TMP/handled")"
grep -q second "$TMP/handled" && fail "a repeat's record was handled: $(cat "$TMP/handled")"
[ "$(status_num n fed)" -eq 5 ] || fail "fed $(status_num n fed), expected 5"
say "NDJSON: --dedupe first handles each id once, with its first record"

# CSV: the header is line 1; a quoted field with a newline makes a record two lines.
printf 'id,name\n1,"x\ny"\n2,b\n1,c\n' >"$TMP/c.csv"
rc=0
"$DROVER" submit --id c --file "$TMP/c.csv" --format csv --id-field id 2>"$TMP/c.err" || rc=$?
[ $rc -eq 2 ] && grep -q 'id "1": record 3 (line 5) repeats record 1 (line 2)' "$TMP/c.err" ||
    fail "CSV repeat not named: $(cat "$TMP/c.err")"
say "CSV: refused, with the line of each record"

# 1M ids, three repeats far apart: exact, through the spilled runs.
python3 - "$TMP/m.txt" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("".join("id%07d\n" % i for i in range(1000000)))
    f.write("id0000000\nid0500000\nid0999999\n")
PY
rc=0
"$DROVER" submit --id m --file "$TMP/m.txt" --partitions 8 --quiet 2>"$TMP/m.err" || rc=$?
[ $rc -eq 2 ] && grep -q '^error: .*: 3 records repeat' "$TMP/m.err" &&
    grep -q 'id "id0500000": record 1000002 (line 1000002) repeats record 500001 (line 500001)' "$TMP/m.err" ||
    fail "1M ids: $(cat "$TMP/m.err")"
head -n 1000000 "$TMP/m.txt" >"$TMP/m1.txt"
"$DROVER" submit --id m1 --file "$TMP/m1.txt" --partitions 8 --quiet >/dev/null || fail "1M distinct ids refused"
say "1M ids: the 3 repeats found, none in the distinct file"
