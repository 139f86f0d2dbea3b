#!/usr/bin/env bash
# Resumable standard input: the feeding `drover submit --source -` is SIGKILLed at two points
# (after the first K records of a pipe this test writes), and the same input piped again into
# the same command resumes: records fed before are read again, checked and skipped. The done
# record equals the input exactly, and nothing is fed twice. Input that differs from what was
# fed (a record changed, or the input cut short) is refused with exit 2 naming where. While the
# feeder is gone, status and run say "feeder lost N s ago", and progress without a total shows
# counts and the rate, not a percentage.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

N=30000 P=3 CHUNK=1000
for i in $(seq 1 $N); do printf 'u%06d\n' "$i"; done >"$TMP/input"

# fed_after K: what the feeder has fed once the first K records are in its pipe. The reader
# takes its input 64 KiB at a time (READ_CHUNK, common/source.c: fread waits for a whole one),
# and each partition's records go in chunks of CHUNK (DRV_FEED_CHUNK): a partial one waits.
fed_after() {
    python3 - "$TMP/input" "$1" "$P" "$CHUNK" <<'PY'
import sys
path, k, parts, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def part(s):  # drv_partition_of (common/hash.c): FNV-1a 64 with drover's offset basis
    h = 1469598103934665603
    for c in s.encode():
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h % parts
lines = open(path).read().split("\n")[:k]
edge = sum(len(x) + 1 for x in lines) // 65536 * 65536
n, at = [0] * parts, 0
for line in lines:
    at += len(line) + 1
    if at > edge:  # its newline is past what the reader has
        break
    n[part(line)] += 1
print(sum(c // chunk * chunk for c in n))
PY
}

# feed_then_kill JOB INPUT K: pipes the first K records of INPUT into a submit through a FIFO
# kept open (no end of input), waits until what those records fill is fed, and SIGKILLs it.
feed_then_kill() {
    local job=$1 input=$2 k=$3 want
    want=$(fed_after "$k")
    rm -f "$TMP/fifo" && mkfifo "$TMP/fifo"
    exec 3<>"$TMP/fifo"
    # (not bg: a background command without its own redirection reads /dev/null)
    "$DROVER" submit --id "$job" --source - --partitions $P --window 100000 <"$TMP/fifo" \
        >"$TMP/feed-$job-$k.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    head -n "$k" "$input" >&3
    fed_is() { [ "$(status_num "$job" fed 2>/dev/null)" = "$1" ]; }
    wait_for "job $job: $want records fed" 30 fed_is "$want"
    kill -9 "$pid"
    wait_exit 10 "$pid"
    exec 3>&-
    say "feeder of $job killed after $k records were piped ($want fed)"
}

feed_then_kill sj "$TMP/input" 12000
[ "$(R HGET 'drover:{sj}:job' feeder)" = running ] || fail "no feeder heartbeat in the job hash"
# The feeder is gone: its last beat made 30 s old (the threshold is 10 s) instead of waiting.
now=$(R TIME | head -1)
R HSET 'drover:{sj}:job' feeder_beat_ms $(((now - 30) * 1000)) >/dev/null
"$DROVER" status sj >"$TMP/status.txt"
grep -q 'feeder lost 3[0-9] s ago' "$TMP/status.txt" || { cat "$TMP/status.txt" >&2; fail "status does not say the feeder is lost"; }
grep -q '0\.0%' "$TMP/status.txt" && fail "status shows a percentage without a total"
grep -q 'done, 0 dead of [0-9]* fed so far' "$TMP/status.txt" || fail "status shows no counts without a total"
"$DROVER" status sj --json | grep -q '"feeder":{"state":"lost"' || fail "status --json: feeder not lost"
bg coord "$DROVER" run sj --progress-ms 100
c=$LAST_PID
lines() { [ "$(grep -c 'job sj: done' "$TMP/coord.log")" -ge "$1" ]; }
wait_for "4 progress lines" 20 lines 4
kill "$c"
wait_exit 10 "$c"
[ "$(grep -c 'feeder lost' "$TMP/coord.log")" -eq 1 ] || fail "drover run did not say 'feeder lost' exactly once"
grep 'job sj: done' "$TMP/coord.log" | grep -q '%' && fail "drover run shows a percentage without a total"
say "status and run: feeder lost, counts and rate without a percentage"

feed_then_kill sj "$TMP/input" 24000
"$DROVER" submit --id sj --source - --partitions $P --window 100000 <"$TMP/input" 2>"$TMP/feed3.log" ||
    { cat "$TMP/feed3.log" >&2; fail "the third feed (the whole input) exited $?"; }
grep -q "fed before, skipped" "$TMP/feed3.log" || fail "the resumed feed does not say what it skipped"
[ "$(status_num sj fed)" -eq $N ] || fail "fed $(status_num sj fed), expected each of $N once"
[ "$(status_num sj total)" -eq $N ] || fail "total $(status_num sj total)"
[ "$(R HGET 'drover:{sj}:job' feeder)" = done ] || fail "the feeder did not say done"

bg w "$WORKER" --job sj --handler noop --concurrency 32 --exit-when-done --stats-ms 0
w=$LAST_PID
bg coord2 "$DROVER" run sj --progress-ms 200
c2=$LAST_PID
wait_exit 60 "$c2"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run sj exited $EXIT_CODE"
wait_exit 30 "$w"
all_done_ids sj $P | grep -v '^$' >"$TMP/got"
sort "$TMP/input" | diff - "$TMP/got" >&2 || fail "the done record differs from the input"
[ "$(status_num sj skipped_done)" -eq 0 ] || fail "records were fed twice (skipped_done)"
say "killed twice, fed again: the done record equals the $N records, none fed twice"

# Another input at a fed position: refused, naming it; and an input cut short.
feed_then_kill sc "$TMP/input" 12000
sed '10s/.*/changed/' "$TMP/input" >"$TMP/changed"
rc=0
"$DROVER" submit --id sc --source - --partitions $P --window 100000 <"$TMP/changed" 2>"$TMP/ch.log" || rc=$?
[ $rc -eq 2 ] || fail "a changed input exited $rc, not 2"
grep -q "is not what was fed to job sc before.*record [0-9]*, byte [0-9]*, id" "$TMP/ch.log" ||
    { cat "$TMP/ch.log" >&2; fail "the refusal does not name the record"; }
rc=0
head -n 1500 "$TMP/input" | "$DROVER" submit --id sc --source - --partitions $P --window 100000 2>"$TMP/short.log" || rc=$?
[ $rc -eq 2 ] || fail "an input cut short exited $rc, not 2"
grep -q "it ended after 1500 records" "$TMP/short.log" || { cat "$TMP/short.log" >&2; fail "the refusal of a short input"; }
rc=0
"$DROVER" submit --id sc --source - --partitions 4 <"$TMP/input" 2>"$TMP/parts.log" || rc=$?
[ $rc -eq 2 ] && grep -q "already exists with another source" "$TMP/parts.log" || fail "another partition count was not refused"
[ "$(status_num sc fed)" -eq "$(fed_after 12000)" ] || fail "a refused feed fed something"
say "a changed input, a short one and another partition count: refused (exit 2), nothing fed"
