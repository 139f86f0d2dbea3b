#!/usr/bin/env bash
# bench/run keeps working: a tiny run without BullMQ (no node or npm needed) prints its table
# with every row, each drover row with all its figures; --write replaces its own dated section
# and leaves the rest of the file alone; bad arguments are refused with exit 2. Speed is not
# asserted (bench/ measures, tests do not).
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
RUN="$DROVER_SRC_DIR/bench/run"

# Bad arguments: exit 2 and a message, before anything starts.
for args in "--items x" "--items 0" "--only overhead,nope" "--frobnicate" "--items"; do
    rc=0
    # shellcheck disable=SC2086 # each case is a list of arguments
    "$RUN" $args >"$TMP/bad.out" 2>"$TMP/bad.err" || rc=$?
    [ "$rc" -eq 2 ] || fail "bench/run $args exited $rc, expected 2"
    [ -s "$TMP/bad.err" ] || fail "bench/run $args: no message"
    [ ! -s "$TMP/bad.out" ] || fail "bench/run $args printed a table: $(cat "$TMP/bad.out")"
done
"$RUN" --help | grep -q '^Usage: bench/run' || fail "bench/run --help"

say "the whole table, 2000 items, no BullMQ"
"$RUN" --quick --no-bullmq --items 2000 >"$TMP/table.md" 2>"$TMP/run.log" ||
    fail "bench/run --quick --no-bullmq exited $?: $(tail -5 "$TMP/run.log")"
cat "$TMP/table.md" >&2
grep -q '^| group | run | items | items/s | Redis CPU µs/item | Redis B/item | worker peak RSS MiB | note |$' \
    "$TMP/table.md" || fail "no table header"
grep -qx 'BullMQ: skipped (--no-bullmq).' "$TMP/table.md" || fail "no line saying BullMQ was skipped"
grep -q '^| bullmq ' "$TMP/table.md" && fail "BullMQ rows with --no-bullmq"

# A drover row: GROUP, RUN, ITEMS, then items/s, CPU and RSS numbers above zero, and bytes a
# number: a range job's bitmap holds an eighth of a byte per id, so on 2000 items the
# used_memory delta is noise and may be below zero.
drover_row() { # drover_row GROUP RUN-PREFIX ITEMS
    local line
    line=$(grep -F "| $1 | $2" "$TMP/table.md") || fail "no row \"$1 | $2\""
    [ "$(echo "$line" | wc -l)" -eq 1 ] || fail "several rows \"$1 | $2\": $line"
    echo "$line" | awk -F' [|] ' -v items="$3" '
        { if ($3 != items) exit 1
          for (i = 4; i <= 7; i++) { v = $i; gsub(",", "", v)
            if (i == 6 ? v !~ /^-?[0-9.]+$/ : v !~ /^[0-9.]+$/ || v + 0 <= 0) exit 1 } }' ||
        fail "row \"$1 | $2\" is not $3 items with its four figures: $line"
}
drover_row overhead "drover, 1 worker, noop, P=16, batch 1000" 2k
drover_row overhead "drover, 2 workers, noop, P=16, batch 1000" 2k
for b in 1 10 100 1000; do drover_row batch "drover, 2 workers, claim batch $b " 2k; done
drover_row workers "drover, 1 worker (" 2k
for w in 2 4 8; do drover_row workers "drover, $w workers (" 2k; done
drover_row memory "processed record, 2k range ids" 2k
drover_row memory "processed record, 20k range ids" 20k
drover_row memory "processed record, 2k string ids (36 chars, file" 2k
drover_row memory "processed record, 2k string ids (36 chars, stdin" 2k
drover_row memory "processed record, 2k string ids (12" 2k
# The 10x job's pending items were sampled; the window (20000 per partition, 16) bounds them.
pend=$(grep -F "| memory | processed record, 20k range ids" "$TMP/table.md" |
    grep -oE 'at most [0-9,]+ items pending at once' | tr -dc '0-9') ||
    fail "no pending sample on the 20k row"
[ "$pend" -le $((20000 * 16)) ] || fail "the 20k job had $pend items pending at once, over its window"
for t in LPOP SADD; do
    grep -E "^\| limit \| redis-benchmark $t, pipelined .* \| [0-9,]+ \|  \|  \|  \| drover \(2 workers\) runs at [0-9.]+% of it \|$" \
        "$TMP/table.md" >/dev/null || fail "no redis-benchmark $t row"
done
[ "$(grep -c '^| ' "$TMP/table.md")" -eq $((2 + 2 + 2 + 4 + 4 + 5)) ] || fail "not the rows expected"

say "--write: today's section replaced, the rest kept"
printf '# benchmarks\n\nintro\n\n## older\n\nkept\n' >"$TMP/B.md"
for _ in 1 2; do
    BENCH_MARKDOWN="$TMP/B.md" "$RUN" --quick --no-bullmq --items 2000 --only limit --write \
        >/dev/null 2>"$TMP/write.log" || fail "bench/run --write exited $?: $(tail -5 "$TMP/write.log")"
done
[ "$(grep -c '^## bench/run (' "$TMP/B.md")" -eq 1 ] || fail "--write twice: not one section: $(cat "$TMP/B.md")"
[ "$(grep -c '^| limit | redis-benchmark' "$TMP/B.md")" -eq 2 ] || fail "--write: not the table: $(cat "$TMP/B.md")"
head -7 "$TMP/B.md" | cmp -s - <(printf '# benchmarks\n\nintro\n\n## older\n\nkept\n') ||
    fail "--write changed what was there: $(cat "$TMP/B.md")"
grep -q "^Machine: $(nproc) cores" "$TMP/B.md" || fail "--write: no machine line"
grep -q '^- limit: `redis-benchmark -p PORT -P 64' "$TMP/B.md" || fail "--write: no commands"
echo "PASS"
