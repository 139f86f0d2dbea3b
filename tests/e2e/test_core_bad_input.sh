#!/usr/bin/env bash
# Bad input gets a clear error and loses nothing: usage and spec errors exit 2 with a message
# naming the problem and write nothing to Redis; runtime errors exit 1 and name what failed.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

# expect CODE PATTERN cmd...: runs cmd, checks its exit code and that stderr matches PATTERN.
expect() {
    local code=$1 pattern=$2
    shift 2
    local rc=0
    "$@" >"$TMP/out" 2>"$TMP/err" </dev/null || rc=$?
    [ "$rc" -eq "$code" ] || fail "'$*' exited $rc, expected $code; stderr: $(cat "$TMP/err")"
    grep -qiE -- "$pattern" "$TMP/err" || fail "'$*': stderr does not match /$pattern/: $(cat "$TMP/err")"
}
nothing_written() {
    [ "$(R DBSIZE)" -eq 0 ] || fail "something was written to Redis: $(R KEYS '*' | head -5)"
}

echo '{"source": {"type": "range", "start": 1, "end": 10}' >"$TMP/truncated.json"
expect 2 "malformed JSON at line 1" "$DROVER" submit "$TMP/truncated.json"
echo '{"source": {"type": "range", "start": 1, "end": 10}, "partitons": 4}' >"$TMP/typo.json"
expect 2 "partitons: unknown field" "$DROVER" submit "$TMP/typo.json"
echo '{"source": {"type": "range", "start": 1, "end": 10, "step": 2}}' >"$TMP/typo2.json"
expect 2 "source.step: unknown field" "$DROVER" submit "$TMP/typo2.json"
echo '{"source": {"type": "range", "start": 1, "end": 10}, "partitions": "8"}' >"$TMP/str.json"
expect 2 "partitions: expected a whole number" "$DROVER" submit "$TMP/str.json"
expect 2 "cannot read the spec" "$DROVER" submit "$TMP/no-such-spec.json"
expect 2 "range start 5 is greater than its end 1" "$DROVER" submit --range 5..1
expect 2 "--range: expected A..B" "$DROVER" submit --range 1-5
expect 2 "partitions: expected 1 to 1024, got 0" "$DROVER" submit --range 1..10 --partitions 0
# A range partition's done bitmap holds at most 2^32 ids.
expect 2 "partitions of 4294967297 ids; a partition holds at most 2\^32 \(4294967296\): use at least 2 partitions" \
    "$DROVER" submit --range 0..4294967296 --partitions 1
expect 2 "at most 2\^32 \(4294967296\) per partition.*narrower range" \
    "$DROVER" submit --range -9007199254740992..9007199254740992 --partitions 1024
expect 2 "partitions: expected a whole number|--partitions" "$DROVER" submit --range 1..10 --partitions x
expect 2 "no-such-file.txt: No such file" "$DROVER" submit --file "$TMP/no-such-file.txt"
: >"$TMP/empty.txt"
expect 2 "no items in the file" "$DROVER" submit --file "$TMP/empty.txt"
printf '\n\n  \n' >"$TMP/blank.txt"
expect 2 "no items in the file" "$DROVER" submit --file "$TMP/blank.txt"
expect 2 "not a regular file" "$DROVER" submit --file "$TMP"
printf '{"id": 1}\n{"id": 2\n' >"$TMP/bad.ndjson"
expect 2 "record 2 .*not a JSON object" "$DROVER" submit --file "$TMP/bad.ndjson" --format ndjson --id-field id
printf 'a\0b\n' >"$TMP/binary.txt"
expect 2 "NUL byte" "$DROVER" submit --file "$TMP/binary.txt"
# Bytes that are not UTF-8 (a Latin-1 file, binary ids) are refused with their offset, in
# lines and NDJSON files alike, never passed on to be mangled in JSON output or HTTP bodies.
printf 'ok\ncaf\xe9\n' >"$TMP/latin1.txt"
expect 2 "record at byte 3 is not valid UTF-8 \(byte 6 of the file: 0xE9\).*iconv" \
    "$DROVER" submit --file "$TMP/latin1.txt"
printf '{"id": 1}\n{"id": 2, "name": "\xff\xfe"}\n' >"$TMP/latin1.ndjson"
expect 2 "record at byte 10 is not valid UTF-8" \
    "$DROVER" submit --file "$TMP/latin1.ndjson" --format ndjson --id-field id
head -c 2000 /dev/zero | tr '\0' 'x' >"$TMP/long.txt"
expect 2 "longer than 1000 bytes" "$DROVER" submit --file "$TMP/long.txt" --max-item-bytes 1000
expect 2 "needs the field" "$DROVER" submit --file "$TMP/bad.ndjson" --format ndjson
expect 2 "--format: expected lines, ndjson or csv" "$DROVER" submit --file "$TMP/bad.ndjson" --format xml
expect 2 "id: expected 1 to 64" "$DROVER" submit --range 1..10 --id 'bad id'
expect 2 'unknown flag "--bogus"' "$DROVER" submit --range 1..10 --bogus
expect 2 "no source" "$DROVER" submit
expect 2 "give one source" "$DROVER" submit --range 1..2 --file "$TMP/blank.txt"
expect 2 'unknown command "frobnicate"' "$DROVER" frobnicate
expect 2 "needs a JOB" "$DROVER" run
expect 2 "needs a JOB" "$DROVER" status
for c in run status wait pause dead purge; do
    expect 2 "not a valid job id: \"a\{b\}\"" "$DROVER" $c 'a{b}'
done
expect 2 "drover purge needs a JOB \(see drover purge --help\)" "$DROVER" purge
expect 2 "--redis: expected redis://" "$DROVER" status j --redis http://x
expect 2 "--redis: bad port" "$DROVER" status j --redis redis://127.0.0.1:99999
expect 2 "--log-level" "$DROVER" status j --log-level loud
expect 2 "DROVER_REDIS_URL|expected redis://" env DROVER_REDIS_URL=nope "$DROVER" list
expect 2 "command not found" "$WORKER" -- no-such-command-drover {id}
expect 2 "--concurrency: expected a whole number from 1 to 4096" "$WORKER" --concurrency 0 -- true
expect 2 "--concurrency: expected a whole number" "$WORKER" --concurrency lots -- true
expect 2 "--handler: expected auto or noop" "$WORKER" --handler magic
expect 2 "--http-allow: expected HOST, HOST:PORT or HOST:\\*" "$WORKER" --http-allow https://api.example.com
expect 2 "--http-allow: expected HOST" "$WORKER" --http-allow a,,b
echo '{"source": {"type": "range", "start": 1, "end": 9}, "handler": {"type": "http", "url": "ftp://x/{id}"}}' >"$TMP/h1.json"
expect 2 "handler.url: expected http:// or https://" "$DROVER" submit "$TMP/h1.json"
echo '{"source": {"type": "range", "start": 1, "end": 9}, "handler": {"type": "http", "url": "http://x/", "retry_status": [200]}}' >"$TMP/h2.json"
expect 2 "status 200 is in both ok_status and retry_status" "$DROVER" submit "$TMP/h2.json"
echo '{"source": {"type": "range", "start": 1, "end": 9}, "handler": {"type": "exec", "url": "http://x/"}}' >"$TMP/h3.json"
expect 2 "handler.type: expected \"http\"" "$DROVER" submit "$TMP/h3.json"
echo '{"source": {"type": "http", "items": "data"}}' >"$TMP/s1.json"
expect 2 "source.url: missing" "$DROVER" submit "$TMP/s1.json"
echo '{"source": {"type": "http", "url": "http://x/", "path": "/tmp"}}' >"$TMP/s2.json"
expect 2 "source.path: not a field of an http source" "$DROVER" submit "$TMP/s2.json"
expect 2 "--job: not a valid job id" "$WORKER" --job 'a{b}' -- true
expect 2 'unknown flag "--bogus"' "$WORKER" --bogus -- true
expect 2 "rate.per_second: expected 1 to 1000000, got -1" "$DROVER" submit --range 1..10 --rate -1
expect 2 "--burst: only with --rate" "$DROVER" submit --range 1..10 --burst 5
expect 2 "max_in_flight: expected 1 to 1000000, got -3" "$DROVER" submit --range 1..10 --max-in-flight -3
expect 2 "weight: expected 1 to 1000, got 0" "$DROVER" submit --range 1..10 --weight 0
expect 2 "--rate: expected a whole number" "$DROVER" submit --range 1..10 --rate fast
nothing_written
say "usage and spec errors: exit 2, a message naming the problem, nothing written"

# Unreachable Redis: exit 1 within a few seconds, naming the address.
for cmd in "submit --range 1..10" "status j" "list" "run j"; do
    t0=$SECONDS
    # shellcheck disable=SC2086
    expect 1 "127\.0\.0\.1:1\b.*refused|cannot connect to Redis at redis://127.0.0.1:1/0" \
        "$DROVER" $cmd --redis redis://127.0.0.1:1
    [ $((SECONDS - t0)) -le 5 ] || fail "drover $cmd took $((SECONDS - t0))s to report an unreachable Redis"
done
expect 1 "cannot connect to Redis at redis://127.0.0.1:1/0" "$WORKER" --redis redis://127.0.0.1:1 -- true
say "unreachable Redis: exit 1 within 5 s naming the address"

# Runtime errors on a healthy Redis.
expect 1 "no job nope" "$DROVER" status nope
expect 1 "no job nope|no such job" "$DROVER" run nope
expect 1 "no job nope" "$DROVER" pause nope
nothing_written

# An existing id is refused without --replace and left untouched; --replace starts it over.
id=$("$DROVER" submit --id dup --range 1..10 --partitions 2 --quiet)
[ "$id" = dup ] || fail "submit did not print the id alone: '$id'"
R SADD 'drover:{dup.0}:done' 1 >/dev/null
expect 2 "job dup already exists" "$DROVER" submit --id dup --range 1..99 --partitions 2
[ "$(R SISMEMBER 'drover:{dup.0}:done' 1)" -eq 1 ] || fail "the refused submit touched the job"
[ "$(status_num dup total)" -eq 10 ] || fail "the refused submit changed the job"
"$DROVER" submit --id dup --range 1..99 --partitions 3 --replace --quiet >/dev/null
[ "$(status_num dup total)" -eq 99 ] || fail "--replace did not start the job over"
[ "$(R EXISTS 'drover:{dup.0}:done')" -eq 0 ] || fail "--replace kept the old done set"
expect 1 "is running; resume applies" "$DROVER" resume dup
say "existing ids: refused without --replace, started over with it"

# A worker without a command cannot serve a job without an HTTP handler: with --job that is a
# configuration mistake, said at once.
expect 2 "cannot serve job dup: its spec has no \"handler\" and this worker was started without a command" \
    "$WORKER" --job dup
expect 1 "keeps no responses" "$DROVER" results dup

# --help on every command: exit 0, usage and an example on stdout.
for c in submit run status list wait pause resume cancel dead retry results workers drain purge metrics; do
    out=$("$DROVER" $c --help) || fail "drover $c --help failed"
    grep -q "^Usage: drover $c" <<<"$out" || fail "drover $c --help has no usage line"
    grep -q "^Example" <<<"$out" || fail "drover $c --help has no example"
done
grep -q "^Usage: drover COMMAND" <<<"$("$DROVER" --help)" || fail "drover --help"
out=$("$WORKER" --help) || fail "drover-worker --help failed"
grep -q "^Usage: drover-worker" <<<"$out" || fail "drover-worker --help has no usage"
grep -q "^Example" <<<"$out" || fail "drover-worker --help has no example"
echo "PASS: bad input gets a clear error and loses nothing"
