#!/usr/bin/env bash
# drover-worker --serve N -- CMD: the handlers in examples/ (Python, Ruby, Node.js) run end to
# end as a user copies them: long-lived processes fed an NDJSON job over the line protocol
# (docs/handler-protocol.md). Every item ends done except the two the examples refuse for
# good ("bad..." ids: retry false, dead at once after one attempt), the worker's log holds no
# handler process failure, and no handler process outlives its worker. Two processes per
# worker; Python's are replaced every 50 items (--serve-max-items), Node.js holds four items
# in flight each.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
EX="$DROVER_SRC_DIR/examples"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
command -v ruby >/dev/null || fail "ruby is not installed (scripts/deps test installs it)"
command -v node >/dev/null || fail "node is not installed (scripts/deps test installs it)"
start_redis

N=300
for i in $(seq 1 $N); do printf '{"id":"i%d","n":%d}\n' "$i" "$i"; done >"$TMP/items.ndjson"
printf '{"id":"bad1","n":0}\n{"id":"bad2","n":0}\n' >>"$TMP/items.ndjson"

# run_example NAME SERVE_FLAGS... -- CMD...: one job through one worker; checks its outcome.
run_example() {
    local name=$1 job="ex-$1" coord w pids p json
    shift
    "$DROVER" submit --id "$job" --file "$TMP/items.ndjson" --format ndjson --id-field id \
        --partitions 2 --max-attempts 3 --backoff-ms 10 --backoff-max-ms 50 --quiet >/dev/null
    bg "coord-$name" "$DROVER" run "$job"
    coord=$LAST_PID
    bg "w-$name" "$WORKER" --job "$job" --stats-ms 0 --exit-when-done --log-level debug "$@"
    w=$LAST_PID
    # Its handler processes, while it runs (children of the worker).
    wait_for "$name's handler processes" 30 bash -c "[ \$(ps -o pid= --ppid $w | wc -l) -ge 2 ]"
    pids=$(ps -o pid= --ppid "$w" | tr '\n' ' ')
    wait_exit 120 "$coord"
    [ "$EXIT_CODE" -eq 1 ] || fail "$name: coordinator exited $EXIT_CODE, expected 1 (dead items)"
    wait_exit 60 "$w"
    [ "$EXIT_CODE" -eq 0 ] || fail "$name: worker exited $EXIT_CODE"
    json=$("$DROVER" status "$job" --json)
    [ "$(echo "$json" | json_num done)" -eq $N ] || fail "$name: done is not $N: $json"
    [ "$(echo "$json" | json_num dead)" -eq 2 ] || fail "$name: dead is not 2: $json"
    [ "$(echo "$json" | json_num failed_attempts)" -eq 2 ] ||
        fail "$name: the refused items were tried more than once: $json"
    all_done_ids "$job" 2 | sort >"$TMP/done-$name"
    seq 1 $N | sed 's/^/i/' | sort | cmp -s - "$TMP/done-$name" || fail "$name: done ids differ"
    dead=$(for p in 0 1; do R HGET "drover:{$job.$p}:dead" bad1; done)
    echo "$dead" | grep -q 'refusing bad1' || fail "$name: bad1's error is not the handler's: $dead"
    # A handler process that crashed, wrote a bad line or timed out is a warning of the pool.
    if grep -E '^[^ ]+ [WE] .*serve\[' "$TMP/w-$name.log"; then
        fail "$name: the worker's log reports a handler process failure"
    fi
    for p in $pids; do
        wait_for "$name's handler $p to end" 10 bash -c \
            "! ps -o stat= -p $p | grep -qv '^Z'"
    done
    say "$name: $N done, 2 dead, $(echo $pids | wc -w) processes"
}

run_example python --serve 2 --serve-max-items 50 -- "$PY" "$EX/handler.py"
started=$(grep -c 'started pid' "$TMP/w-python.log")
[ "$started" -ge 6 ] || fail "python: $started processes for 302 items at 50 each: not recycled"
run_example ruby --serve 2 -- ruby "$EX/handler.rb"
run_example node --serve 2 --serve-inflight 4 -- node "$EX/handler.js"
echo "PASS: --serve runs the Python, Ruby and Node.js examples end to end"
