#!/usr/bin/env bash
# A worker facing a hostile Redis (issue 15, items 6, 7, 8, 12), one redis-server for all cases:
#  - out of memory mid-job (maxmemory 1mb, noeviction): the worker says so once with the
#    server's message, backs off, and once writes are taken again finishes the job: every id
#    handled once and in the done record;
#  - a field of a partition's state hash that is not a number: said once, backed off (not a
#    line per claim), the other partition goes on, and after the repair the job completes;
#  - a spec in the job hash that is not JSON: a --job worker exits 1 naming the field, a worker
#    serving every job skips it with one line;
#  - submit --replace while a --job J --exit-when-done worker runs: it serves the new job to
#    the end and exits 0, also when it saw the job missing between the two halves of the
#    replace;
#  - FLUSHALL under a --job worker: it says the job vanished and exits 1.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis
RECORD="$DROVER_BIN_DIR/tests/record_calls"
printf '#!/bin/sh\nsleep 0.01\necho "$1" >>"%s/calls.slow"\n' "$TMP" >"$TMP/slow.sh"

# lines FILE PATTERN: how many lines of FILE match PATTERN.
lines() { grep -c -- "$2" "$1" || true; }

# exactly_once CALLS N: the handler ran for each of 1..N exactly once.
exactly_once() {
    [ "$(wc -l <"$1")" -eq "$2" ] || fail "$1: $(wc -l <"$1") calls for $2 items"
    sort -n "$1" | cmp -s - <(seq 1 "$2") || fail "$1: an id ran twice or never"
}

# ---- out of memory mid-job ---------------------------------------------------------------------
N=1000
seq 1 $N | "$DROVER" submit --id oom --source - --partitions 2 --quiet >/dev/null
bg oom "$WORKER" --job oom --id woom --concurrency 4 --stats-ms 0 --no-stdin \
    -- "$RECORD" "$TMP/calls.oom" {id}
woom=$LAST_PID
wait_for "some items done" 60 done_at_least oom 200
R CONFIG SET maxmemory 1mb >/dev/null
wait_for "the worker to say Redis refuses writes" 10 grep -q "refuses writes" "$TMP/oom.log"
# The refusal lasts 2 s: the worker keeps running and says nothing more about it.
t_end=$((SECONDS + 2))
while [ $SECONDS -lt $t_end ]; do
    kill -0 "$woom" 2>/dev/null || fail "the worker exited under OOM"
    sleep 0.1
done
R CONFIG SET maxmemory 0 >/dev/null
wait_for "the job to complete after the refusal" 120 done_at_least oom $N
wait_for "the worker to say writes are taken again" 10 grep -q "takes writes again" "$TMP/oom.log"
kill -TERM "$woom"
wait_exit 30 "$woom"
[ "$EXIT_CODE" -eq 0 ] || fail "the OOM worker exited $EXIT_CODE after SIGTERM"
grep "refuses writes" "$TMP/oom.log" | grep -q "OOM" || fail "the refusal line lacks the server's message"
# Said once per episode: a second "refuses writes" only after Redis took a write in between
# and the worker said so ("takes writes again").
python3 - "$TMP/oom.log" <<'PY' || fail "the refusal was said twice in one episode: $(grep -E 'refuses writes|takes writes again' "$TMP/oom.log")"
import sys
open_ = False
for line in open(sys.argv[1]):
    if "refuses writes" in line:
        if open_:
            sys.exit(1)
        open_ = True
    elif "takes writes again" in line:
        open_ = False
PY
[ "$(lines "$TMP/oom.log" OOM)" -le 2 ] || fail "OOM said $(lines "$TMP/oom.log" OOM) times"
[ "$(wc -l <"$TMP/oom.log")" -lt 15 ] || fail "the OOM worker logged $(wc -l <"$TMP/oom.log") lines"
exactly_once "$TMP/calls.oom" $N
[ "$(all_done_ids oom 2 | wc -l)" -eq $N ] || fail "the done record is not the source"
say "OOM: one line out, one line back, $N ids handled once"

# ---- a spec that is not JSON -------------------------------------------------------------------
"$DROVER" submit --id broken --range 1..10 --partitions 1 --quiet >/dev/null
R HSET "drover:{broken}:job" spec '{"id": "broken", oops' >/dev/null
rc=0
timeout 20 "$WORKER" --job broken --handler noop --exit-when-done --stats-ms 0 \
    >"$TMP/broken.log" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "a --job worker of a job with a broken spec exited $rc, expected 1"
grep -q "job broken is broken.*spec" "$TMP/broken.log" || fail "no line naming the spec field"
# Serving every job (another prefix: nothing else there), it skips the job and does not call
# that done: --exit-when-done exits 1.
DROVER_PREFIX=alone: "$DROVER" submit --id b2 --range 1..10 --partitions 1 --quiet >/dev/null
R HSET "alone:{b2}:job" spec 'oops' >/dev/null
rc=0
DROVER_PREFIX=alone: timeout 20 "$WORKER" --handler noop --exit-when-done --stats-ms 0 \
    >"$TMP/broken2.log" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "a worker that skipped a broken job exited $rc when done, expected 1"
grep -q "job b2 is broken, skipping it.*spec" "$TMP/broken2.log" || fail "no line naming the spec field"
grep -q "1 jobs could not be read" "$TMP/broken2.log" || fail "the exit does not say why"
say "broken spec: a --job worker exits 1 naming the field, a worker of every job skips it"

# ---- a state field that is not a number ---------------------------------------------------------
# cooldown_until is read by every claim of the partition before anything is written. lease_ms
# of another job too (only once the scripts check before they write is nothing lost there:
# this case checks the worker's side, one line and a backoff). A worker serving every job also
# meets the broken one above: one line for it.
M=400
seq 1 $M | "$DROVER" submit --id bad --source - --partitions 2 --quiet >/dev/null
R HSET "drover:{bad.0}:state" cooldown_until abc >/dev/null
seq 5001 5100 | "$DROVER" submit --id lease --source - --partitions 1 --quiet >/dev/null
R HSET "drover:{lease.0}:state" lease_ms abc >/dev/null
bg bad "$WORKER" --id wbad --concurrency 4 --stats-ms 0 --no-stdin \
    -- "$RECORD" "$TMP/calls.bad" {id}
wbad=$LAST_PID
fed1=$(R HGET "drover:{bad.1}:state" fed)
p1_done() { [ "$(done_count bad 1)" -eq "$fed1" ]; }
wait_for "partition 1 to be done" 120 p1_done
wait_for "the worker to name the failing partition" 10 grep -q "job bad partition 0.*failing" "$TMP/bad.log"
wait_for "the worker to name lease_ms" 10 grep -q "job lease partition 0.*failing.*lease_ms" "$TMP/bad.log"
t_end=$((SECONDS + 2))
while [ $SECONDS -lt $t_end ]; do
    kill -0 "$wbad" 2>/dev/null || fail "the worker exited on a corrupt field"
    sleep 0.1
done
for j in bad lease; do
    [ "$(lines "$TMP/bad.log" "job $j partition 0")" -eq 1 ] ||
        fail "the corrupt partition of $j was logged $(lines "$TMP/bad.log" "job $j partition 0") times"
done
[ "$(lines "$TMP/bad.log" "job broken")" -eq 1 ] ||
    fail "the broken job was logged $(lines "$TMP/bad.log" "job broken") times, expected once"
R HDEL "drover:{bad.0}:state" cooldown_until >/dev/null
R HSET "drover:{lease.0}:state" lease_ms 30000 >/dev/null
wait_for "the job to complete after the repair" 120 done_at_least bad $M
wait_for "the worker to say the partition is ok again" 10 grep -q "job bad partition 0 ok again" "$TMP/bad.log"
wait_for "the worker to say lease_ms is ok again" 10 grep -q "job lease partition 0 ok again" "$TMP/bad.log"
kill -TERM "$wbad"
wait_exit 30 "$wbad"
awk -v m=$M '$1 <= m' "$TMP/calls.bad" >"$TMP/calls.bad1" # lease's ids are 5001..5100
exactly_once "$TMP/calls.bad1" $M
say "corrupt field: said once, the rest went on, completed after the repair"

# ---- submit --replace under a --job J --exit-when-done worker ----------------------------------
"$DROVER" submit --id rep --range 1..400 --partitions 2 --quiet >/dev/null
bg rcoord "$DROVER" run rep --progress-ms 60000
rcoord=$LAST_PID
bg rep "$WORKER" --job rep --id wrep --concurrency 2 --stats-ms 0 --vanish-ms 60000 \
    --exit-when-done --no-stdin \
    -- sh "$TMP/slow.sh" {id}
wrep=$LAST_PID
wait_for "some items of the first job done" 30 done_at_least rep 20
# The first half of a replace (the job leaves the list first) seen by the worker: its heartbeat
# then names no job. It must wait for the second half, not exit.
R ZREM drover:jobs rep >/dev/null
serves_nothing() { [ -z "$(R HGET "drover:{workers}:wrep" jobs)" ]; }
wait_for "the worker to see the job missing" 10 serves_nothing
"$DROVER" submit --id rep --range 1..300 --partitions 3 --replace --quiet >/dev/null
wait_exit 120 "$wrep"
[ "$EXIT_CODE" -eq 0 ] || fail "the --exit-when-done worker exited $EXIT_CODE after the replace"
[ "$(status_num rep done)" -eq 300 ] || fail "the new job has $(status_num rep done) of 300 done"
"$DROVER" status rep | grep -q done || fail "the new job is not done"
grep -q "replaced" "$TMP/rep.log" || fail "the worker did not say the job was replaced"
wait_exit 30 "$rcoord"
say "replace: the worker followed the new job to its end and exited 0"

# ---- FLUSHALL under a --job worker -------------------------------------------------------------
"$DROVER" submit --id gone --range 1..100000 --partitions 2 --quiet >/dev/null
bg gcoord "$DROVER" run gone --progress-ms 60000
gcoord=$LAST_PID
bg gone "$WORKER" --job gone --id wgone --concurrency 2 --stats-ms 0 --no-stdin \
    -- sh "$TMP/slow.sh" {id}
wgone=$LAST_PID
wait_for "some items done" 30 done_at_least gone 10
R FLUSHALL >/dev/null
wait_exit 30 "$wgone"
[ "$EXIT_CODE" -ne 0 ] || fail "the worker of a flushed job exited 0"
grep -q "job gone vanished" "$TMP/gone.log" || fail "the worker did not say its job vanished"
kill "$gcoord" 2>/dev/null || true
say "FLUSHALL: the worker said the job vanished and exited $EXIT_CODE"
