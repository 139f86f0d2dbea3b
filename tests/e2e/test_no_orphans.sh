#!/usr/bin/env bash
# A SIGKILLed worker leaves no handler running: its handler processes (one per item, a
# --stdin-batch's, and --serve's) get PR_SET_PDEATHSIG(SIGKILL), so they die with it instead of writing on while
# their items' leases expire and the items run again elsewhere. The handler records its pid and
# its DROVER_LEASE_TOKEN, then waits; the test kills the worker with SIGKILL and polls (with a
# deadline) until every recorded pid is gone. Processes are checked by the recorded pids only.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

printf '#!/bin/sh\necho "$$ $DROVER_LEASE_TOKEN" >>"%s/handlers.$DROVER_JOB"\nexec sleep 300\n' \
    "$TMP" >"$TMP/handler.sh"
chmod +x "$TMP/handler.sh"

# alive PID: the process exists and is not a zombie (one its new parent has not reaped yet).
alive() {
    [ -e "/proc/$1/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null
}

none_alive() {
    local p
    for p in "$@"; do if alive "$p"; then return 1; fi; done
    return 0
}


# run_and_kill JOB EXPECTED_HANDLERS WORKER_ARGS...: starts a worker on JOB, waits until
# EXPECTED_HANDLERS handler processes started, SIGKILLs it and waits for them all to be gone.
run_and_kill() {
    local job=$1 want=$2
    shift 2
    "$DROVER" submit --id "$job" --range 1..4 --partitions 1 --lease-ms 60000 --quiet >/dev/null
    bg "c-$job" "$DROVER" run "$job"
    bg "w-$job" "$WORKER" --job "$job" --stats-ms 0 "$@" -- "${HANDLER:-$TMP/handler.sh}"
    local w=$LAST_PID
    wait_for "$want handlers of $job to start" 30 bash -c "[ \$(wc -l <'$TMP/handlers.$job') -ge $want ]"
    local pids p
    pids=$(awk '{print $1}' "$TMP/handlers.$job")
    for p in $pids; do alive "$p" || fail "handler $p of $job is not running before the kill"; done
    kill -KILL "$w"
    wait_exit 10 "$w"
    # shellcheck disable=SC2086
    wait_for "the handlers of $job ($pids) to die with their worker" 10 none_alive $pids
    say "$job: $want handler processes died with the SIGKILLed worker"
}

# One process per item: 4 handlers, each with its item's lease token.
run_and_kill per 4 --concurrency 4
awk '$2 !~ /^[0-9]+$/ || NF != 2 { bad = 1 } END { exit bad }' "$TMP/handlers.per" ||
    fail "a handler without one numeric DROVER_LEASE_TOKEN: $(cat "$TMP/handlers.per")"

# --stdin-batch 4 --concurrency 1: one process holds the 4 items, with their 4 tokens in order.
run_and_kill batch 1 --stdin-batch 4 --concurrency 1
awk '{ for (i = 2; i <= NF; i++) if ($i !~ /^[0-9]+$/) bad = 1 } NF != 5 { bad = 1 }
     END { exit bad }' "$TMP/handlers.batch" ||
    fail "the batch's DROVER_LEASE_TOKEN is not 4 tokens: $(cat "$TMP/handlers.batch")"
[ "$(status_num batch leased)" -eq 4 ] || fail "the killed batch does not hold the 4 items"

# --serve 2: two long-lived processes (they see EOF on stdin too, but never read it here).
printf '#!/bin/sh\necho "$$" >>"%s/handlers.serve"\nexec sleep 300\n' "$TMP" >"$TMP/serve.sh"
chmod +x "$TMP/serve.sh"
HANDLER="$TMP/serve.sh" run_and_kill serve 2 --serve 2

echo "PASS: a SIGKILLed worker leaves no handler process running"
