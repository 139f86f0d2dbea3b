#!/usr/bin/env bash
# The Redis ACL of README.md ("Redis ACL"), run as it stands: jobs run end to end with the
# workers as the restricted worker user and everything else as the operator user, with no
# command denied on the way (ACL LOG stays empty); the worker user is then refused what it
# must not do (FLUSHALL, other prefixes, rewriting a job, the same from a script), and bad
# credentials give a clear message without the password, exit 1.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

# The ACL SETUSER lines between the README's acl markers, run against this server.
sed -n '/<!-- acl:begin -->/,/<!-- acl:end -->/p' "$DROVER_SRC_DIR/README.md" | grep -v '^<!--\|^```' \
    >"$TMP/acl.sh"
grep -q 'ACL SETUSER drover-worker' "$TMP/acl.sh" || fail "no worker ACL in the README"
grep -q 'ACL SETUSER drover-operator' "$TMP/acl.sh" || fail "no operator ACL in the README"
redis-cli() { command redis-cli -p "$REDIS_PORT" "$@"; }
# shellcheck disable=SC1091
source "$TMP/acl.sh" >"$TMP/acl.out"
unset -f redis-cli
[ "$(grep -c '^OK$' "$TMP/acl.out")" -eq 2 ] || fail "the README's ACL lines failed: $(cat "$TMP/acl.out")"
R ACL LOG RESET >/dev/null

WURL="redis://drover-worker:worker-secret@127.0.0.1:$REDIS_PORT/0"
OURL="redis://drover-operator:operator-secret@127.0.0.1:$REDIS_PORT/0"
export DROVER_REDIS_URL=$OURL
[ "$(R ACL WHOAMI)" = default ] || fail "the test's own client is not the default user"

# ---- a job end to end: NDJSON items, limits, retries, dead items, a drain ------------------------
# 400 records; ids ending in 3 fail both attempts (40 dead); the others succeed. A rate and a
# cap make the workers call admit.lua; the retries fail.lua; the drain release.lua.
for i in $(seq 1 400); do printf '{"id": %d, "n": "x%d"}\n' "$i" "$i"; done >"$TMP/items.ndjson"
cat >"$TMP/aj.json" <<JSON
{"id": "aj", "partitions": 3, "max_attempts": 2, "backoff_ms": 10, "backoff_max_ms": 20,
 "source": {"type": "file", "path": "$TMP/items.ndjson", "format": "ndjson", "id_field": "id"},
 "rate": {"per_second": 4000, "burst": 100}, "max_in_flight": 20}
JSON
"$DROVER" submit "$TMP/aj.json" --quiet >/dev/null || fail "submit as the operator user"
bg coord "$DROVER" run aj --progress-ms 200
c=$LAST_PID
cmd=(sh -c 'case "$1" in *3) exit 1;; esac; sleep 0.002' sh {id})
DROVER_REDIS_URL=$WURL bg w1 "$WORKER" --job aj --id w1 --concurrency 4 --exit-when-done -- "${cmd[@]}"
w1=$LAST_PID
DROVER_REDIS_URL=$WURL bg w2 "$WORKER" --id w2 --concurrency 4 --batch 8 -- "${cmd[@]}"
w2=$LAST_PID
wait_for "some items done" 30 done_at_least aj 50
# w2 drains: unstarted items go back (release.lua), running ones finish.
kill -TERM "$w2"
wait_exit 30 "$w2"
[ "$EXIT_CODE" -eq 0 ] || fail "the worker user's drained worker exited $EXIT_CODE"
"$DROVER" status aj >/dev/null || fail "status as the operator user"
"$DROVER" workers >/dev/null || fail "workers as the operator user"
"$DROVER" metrics >/dev/null || fail "metrics as the operator user"
wait_exit 60 "$c"
[ "$EXIT_CODE" -eq 1 ] || fail "drover run aj exited $EXIT_CODE, not 1 (done with dead items)"
wait_exit 30 "$w1"
[ "$EXIT_CODE" -eq 0 ] || fail "the worker user's worker exited $EXIT_CODE"
[ "$(status_num aj done)" -eq 360 ] || fail "done $(status_num aj done), not 360"
[ "$(status_num aj dead)" -eq 40 ] || fail "dead $(status_num aj dead), not 40"
[ "$("$DROVER" dead aj | grep -c 'exit status 1')" -eq 40 ] || fail "drover dead aj: $("$DROVER" dead aj)"
# A range job: its done record is a bitmap (BITFIELD, BITFIELD_RO in the scripts).
"$DROVER" submit --id rj --range 1..200 --partitions 2 --quiet >/dev/null || fail "submit rj"
bg coord-rj "$DROVER" run rj
c=$LAST_PID
DROVER_REDIS_URL=$WURL bg w3 "$WORKER" --job rj --id w3 --handler noop --exit-when-done
w3=$LAST_PID
wait_exit 60 "$c"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run rj exited $EXIT_CODE"
wait_exit 30 "$w3"
[ "$EXIT_CODE" -eq 0 ] || fail "the worker user's range worker exited $EXIT_CODE"
all_done_ids rj 2 | sort -n | cmp -s - <(seq 1 200) || fail "rj: the done record differs from the source"
# Operator steering: set, pause, resume, retry, cancel, list, purge.
"$DROVER" submit --id steer --range 1..100 --partitions 2 --quiet >/dev/null
"$DROVER" set steer rate=50 max_in_flight=5 >/dev/null || fail "set as the operator user"
"$DROVER" pause steer >/dev/null || fail "pause as the operator user"
"$DROVER" resume steer >/dev/null || fail "resume as the operator user"
"$DROVER" retry aj >/dev/null || fail "retry as the operator user"
"$DROVER" cancel steer >/dev/null || fail "cancel as the operator user"
"$DROVER" list >/dev/null || fail "list as the operator user"
"$DROVER" purge steer >/dev/null || fail "purge as the operator user"
denied=$(R ACL LOG | grep -c . || true)
[ "$denied" -eq 0 ] || fail "the README's ACL denied something drover needed: $(R ACL LOG)"
say "a job ran end to end with the worker and operator users; nothing denied"

# ---- what the worker user may not do -------------------------------------------------------------
R SET other:secret s3 >/dev/null
wcli() { command redis-cli -p "$REDIS_PORT" --no-auth-warning --user drover-worker --pass worker-secret "$@"; }
refused() { # refused WHAT CMD...: the worker user's command is refused (NOPERM, or inside a
    # script Redis 7.0's "can't run this command")
    local what=$1 out
    shift
    out=$(wcli "$@" 2>&1)
    grep -q "NOPERM\|user executing the script can't run" <<<"$out" ||
        fail "the worker user could $what: $out"
}
# Scripts the worker user loads itself and runs with EVALSHA (it has no EVAL): the commands they
# call are checked against its ACL too.
flush_sha=$(wcli SCRIPT LOAD "return redis.call('FLUSHALL')")
get_sha=$(wcli SCRIPT LOAD "return redis.call('GET', KEYS[1])")
[ ${#flush_sha} -eq 40 ] && [ ${#get_sha} -eq 40 ] || fail "SCRIPT LOAD as the worker user: $flush_sha"
refused "FLUSHALL" FLUSHALL
refused "read another prefix" GET other:secret
refused "list every key" KEYS '*'
refused "rewrite a job's spec" HSET 'drover:{aj}:job' spec '{}'
refused "drop a job from the job list" ZREM drover:jobs aj
refused "EVAL" EVAL "return 1" 0
refused "FLUSHALL from a script" EVALSHA "$flush_sha" 0
refused "read another prefix from a script" EVALSHA "$get_sha" 1 other:secret
refused "CONFIG" CONFIG SET dir /tmp
[ "$(R EXISTS 'drover:{aj}:job')" -eq 1 ] && [ "$(R GET other:secret)" = s3 ] ||
    fail "a refused command changed something"
# A worker user running operator commands: exit 1 with the NOPERM reply, the job untouched.
code=0
DROVER_REDIS_URL=$WURL "$DROVER" pause aj >"$TMP/wpause.out" 2>&1 || code=$?
[ "$code" -eq 1 ] || fail "drover pause as the worker user exited $code"
grep -q NOPERM "$TMP/wpause.out" || fail "drover pause as the worker user said: $(cat "$TMP/wpause.out")"
[ "$(R HGET 'drover:{aj}:job' state)" != paused ] || fail "the worker user paused the job"
say "the worker user is refused FLUSHALL, CONFIG, KEYS, other prefixes, job rewrites, also in scripts"

# ---- bad credentials ---------------------------------------------------------------------------
code=0
"$WORKER" --redis "redis://drover-worker:not-the-one@127.0.0.1:$REDIS_PORT/0" --handler noop \
    >"$TMP/wrongpass.out" 2>&1 || code=$?
[ "$code" -eq 1 ] || fail "a wrong password: drover-worker exited $code"
grep -q "Redis at redis://drover-worker@127.0.0.1:$REDIS_PORT/0 refused AUTH: WRONGPASS" \
    "$TMP/wrongpass.out" || fail "a wrong password said: $(cat "$TMP/wrongpass.out")"
! grep -q not-the-one "$TMP/wrongpass.out" || fail "the password appears in the message"
code=0
"$DROVER" status aj --redis "redis://nobody:x@127.0.0.1:$REDIS_PORT/0" >"$TMP/nouser.out" 2>&1 ||
    code=$?
[ "$code" -eq 1 ] && grep -q "refused AUTH" "$TMP/nouser.out" ||
    fail "an unknown user: exit $code, $(cat "$TMP/nouser.out")"
# A user without SCRIPT LOAD (the first command after AUTH) is told which user and where to look.
R ACL SETUSER lame reset on '>lame-pw' '~drover:*' +zrange >/dev/null
code=0
"$WORKER" --redis "redis://lame:lame-pw@127.0.0.1:$REDIS_PORT/0" --handler noop \
    >"$TMP/lame.out" 2>&1 || code=$?
[ "$code" -eq 1 ] && grep -q "user 'lame' may not run what drover needs (see \"Redis ACL\"" "$TMP/lame.out" ||
    fail "a user without permissions: exit $code, $(cat "$TMP/lame.out")"
say "wrong password, unknown user, a user without permissions: exit 1, clear, no password shown"
