#!/usr/bin/env bash
# keep_results: a --serve handler's "result" is kept per item when its job asks for it
# (drover submit --keep-results BYTES) and drover results prints it; a job without it keeps
# nothing and drover results refuses it. Run with examples/handler.py as a user copies it: its
# result for item iK is {"length": len("iK")}, kept as JSON text; the item it refuses for good
# (bad1) is dead and has no result.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
start_redis

N=60
for i in $(seq 1 $N); do printf '{"id":"i%d","n":%d}\n' "$i" "$i"; done >"$TMP/items.ndjson"
printf '{"id":"bad1","n":0}\n' >>"$TMP/items.ndjson"

# run_job JOB SUBMIT_FLAGS...: one job to its end through one --serve worker (2 processes, 4
# items in flight each, so acks go with claims and with the final flush).
run_job() {
    local job=$1 coord w
    shift
    "$DROVER" submit --id "$job" --file "$TMP/items.ndjson" --format ndjson --id-field id \
        --partitions 2 --max-attempts 3 --backoff-ms 10 --backoff-max-ms 50 --quiet "$@" >/dev/null
    bg "coord-$job" "$DROVER" run "$job"
    coord=$LAST_PID
    bg "w-$job" "$WORKER" --job "$job" --stats-ms 0 --exit-when-done --batch 4 \
        --serve 2 --serve-inflight 4 -- "$PY" "$DROVER_SRC_DIR/examples/handler.py"
    w=$LAST_PID
    wait_exit 120 "$coord"
    [ "$EXIT_CODE" -eq 1 ] || fail "$job: coordinator exited $EXIT_CODE, expected 1 (bad1 dead)"
    wait_exit 60 "$w"
    [ "$EXIT_CODE" -eq 0 ] || fail "$job: worker exited $EXIT_CODE"
    [ "$(status_num "$job" done)" -eq $N ] || fail "$job: not $N done"
}

# A job that keeps results: every done item's, none for the dead one.
run_job kept --keep-results 100
"$DROVER" results kept >"$TMP/kept.tsv" || fail "drover results kept failed"
for i in $(seq 1 $N); do id="i$i" && printf '%s\t{"length":%d}\n' "$id" "${#id}"; done |
    sort >"$TMP/kept.want"
sort "$TMP/kept.tsv" | diff "$TMP/kept.want" - >&2 || fail "drover results kept: not every result"
grep -q '^bad1' "$TMP/kept.tsv" && fail "the dead item has a result"
"$DROVER" results kept --json | grep -c '"response":"{\\"length\\":' | grep -qx $N ||
    fail "drover results kept --json: not $N results"
say "kept: $N results"

# The same bytes, cut: 9 bytes of {"length":2} are {"length".
run_job cut --keep-results 9
"$DROVER" results cut | cut -f2 | sort -u | grep -qx '{"length"' ||
    fail "drover results cut: not cut to 9 bytes: $("$DROVER" results cut | head -3)"

# A job without --keep-results keeps none, and drover results says so.
run_job none
for p in 0 1; do
    [ "$(R HLEN "drover:{none.$p}:results")" -eq 0 ] || fail "job none kept results in partition $p"
done
if "$DROVER" results none >"$TMP/none.out" 2>"$TMP/none.err"; then
    fail "drover results none succeeded for a job that keeps nothing"
fi
grep -q "keeps no responses" "$TMP/none.err" || fail "drover results none: $(cat "$TMP/none.err")"
echo "PASS: --keep-results keeps a --serve handler's results, cut to its bytes; without it none"
