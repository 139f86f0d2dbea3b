#!/usr/bin/env bash
# Issue 15, items 9 to 12: a handler's child gets no Redis settings of the worker (unless
# --pass-env), a --redis password does not show in ps, --http-allow checks ports, ${NAME}
# resolves only what --allow-env allows, a spec number JSON would round and an escaped NUL in
# an NDJSON id are refused, common options go before the command, and a job whose spec is
# not JSON shows as broken.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
PW=s3cretpw-e2e
start_redis
redis-cli -p "$REDIS_PORT" CONFIG SET requirepass "$PW" >/dev/null
URL="redis://:$PW@127.0.0.1:$REDIS_PORT/0"
export DROVER_REDIS_URL=$URL DROVER_COMMAND_TIMEOUT_MS=7000
R() { REDISCLI_AUTH=$PW redis-cli -p "$REDIS_PORT" "$@" 2>/dev/null; }
start_httpd

# ---- 9: the child's environment --------------------------------------------------------------
printf '#!/bin/sh\nenv >"%s/env.$1"\n' "$TMP" >"$TMP/h.sh"
chmod +x "$TMP/h.sh"
"$DROVER" submit --id e --range 1..1 --quiet >/dev/null
"$DROVER" submit --id e2 --range 1..1 --quiet >/dev/null
bg coord_e "$DROVER" run e
ce=$LAST_PID
bg coord_e2 "$DROVER" run e2
ce2=$LAST_PID
bg w_e "$WORKER" --job e --exit-when-done -- "$TMP/h.sh" e{id}
bg w_e2 "$WORKER" --job e2 --exit-when-done --pass-env DROVER_REDIS_URL -- "$TMP/h.sh" e2{id}
wait_exit 30 "$ce"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run e exited $EXIT_CODE"
wait_exit 30 "$ce2"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run e2 exited $EXIT_CODE"
grep -q '^DROVER_ITEM_ID=1$' "$TMP/env.e1" || fail "the handler's environment lacks DROVER_ITEM_ID"
grep -q '^PATH=' "$TMP/env.e1" || fail "the handler's environment lost PATH"
grep -q '^DROVER_REDIS_URL=' "$TMP/env.e1" && fail "a handler inherited DROVER_REDIS_URL"
grep -q '^DROVER_COMMAND_TIMEOUT_MS=' "$TMP/env.e1" && fail "a handler inherited DROVER_COMMAND_TIMEOUT_MS"
grep -q "$PW" "$TMP/env.e1" && fail "the Redis password reached a handler"
grep -qxF "DROVER_REDIS_URL=$URL" "$TMP/env.e21" || fail "--pass-env did not give DROVER_REDIS_URL back"
grep -q '^DROVER_COMMAND_TIMEOUT_MS=' "$TMP/env.e21" && fail "--pass-env gave back more than it named"
rc=0
"$WORKER" --pass-env HOME -- true 2>"$TMP/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q 'pass-env: "HOME"' "$TMP/err" || fail "--pass-env HOME: rc $rc: $(cat "$TMP/err")"
say "handlers run without the worker's Redis settings; --pass-env gives one back"

# A password given with --redis is gone from ps once parsed (drover-worker and drover).
"$DROVER" submit --id pw --range 1..1 --quiet >/dev/null
bg w_pw env -u DROVER_REDIS_URL "$WORKER" --redis "$URL" --handler noop --id wpw
wpw=$LAST_PID
bg d_pw env -u DROVER_REDIS_URL "$DROVER" wait pw --redis="$URL" --timeout 60 --progress-ms 0
dpw=$LAST_PID
args_hidden() { ps -o args= -p "$1" | grep -qF ":$(printf '%*s' ${#PW} '' | tr ' ' '*')@"; }
wait_for "the worker to hide its password" 10 args_hidden "$wpw"
wait_for "drover wait to hide its password" 10 args_hidden "$dpw"
ps -o args= -p "$wpw" -p "$dpw" | grep -qF "$PW" && fail "ps shows the password: $(ps -o args= -p "$wpw")"
wait_for "the worker to serve with the password it read" 10 \
    sh -c "REDISCLI_AUTH=$PW redis-cli -p $REDIS_PORT --raw ZSCORE drover:{workers} wpw | grep -q ."
kill "$wpw" "$dpw"
wait_exit 30 "$wpw"
wait_exit 30 "$dpw"
say "a --redis password shows as stars in ps, for drover-worker and drover"

# ---- 10: --http-allow ports ------------------------------------------------------------------
cat >"$TMP/port.json" <<JSON
{"id": "hp", "partitions": 1, "max_attempts": 1,
 "source": {"type": "range", "start": 1, "end": 3},
 "handler": {"type": "http", "url": "http://127.0.0.1:$HTTP_PORT/ok/hp/{id}"}}
JSON
"$DROVER" submit "$TMP/port.json" --quiet >/dev/null
for allow in 127.0.0.1 "127.0.0.1:1" "localhost:*"; do
    rc=0
    out=$("$WORKER" --job hp --http-allow "$allow" 2>&1) || rc=$?
    [ "$rc" -eq 2 ] || fail "--http-allow $allow: a job on port $HTTP_PORT exited $rc, expected 2"
    case $allow in
    localhost*) want="host 127.0.0.1 is not in" ;;
    *) want="port $HTTP_PORT of host 127.0.0.1 is not in" ;;
    esac
    grep -qF "$want" <<<"$out" || fail "--http-allow $allow: not refused by name: $out"
done
[ "$(hits_total)" -eq 0 ] || fail "a refused job sent requests"
bg coord_hp "$DROVER" run hp
chp=$LAST_PID
bg w_hp "$WORKER" --job hp --http-allow "example.invalid,127.0.0.1:*" --exit-when-done
wait_exit 30 "$chp"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run hp with host:* exited $EXIT_CODE"
[ "$(hits_total)" -eq 3 ] || fail "host:* sent $(hits_total) requests, expected 3"
say "--http-allow: a bare host is its default port only, HOST:PORT that port, HOST:* any"

# ---- 10: ${NAME} only from --allow-env -------------------------------------------------------
export DRV_T_AWS=aws-leak DROVER_SECRET_TOK=tok-ok
cat >"$TMP/env1.json" <<JSON
{"id": "ev1", "partitions": 1, "source": {"type": "range", "start": 1, "end": 2},
 "handler": {"type": "http", "url": "http://127.0.0.1:$HTTP_PORT/ok/ev1/{id}?o=\${DRV_T_AWS}"}}
JSON
cat >"$TMP/env2.json" <<JSON
{"id": "ev2", "partitions": 1, "source": {"type": "range", "start": 1, "end": 2},
 "handler": {"type": "http", "url": "http://127.0.0.1:$HTTP_PORT/ok/ev2/{id}",
             "headers": {"X-Key": "\${DROVER_SECRET_TOK}"}}}
JSON
"$DROVER" submit "$TMP/env1.json" --quiet >/dev/null
"$DROVER" submit "$TMP/env2.json" --quiet >/dev/null
for args in "" "--allow-env DROVER_SECRET_*" "--allow-env DRV_T_AWSX,DRV_S*"; do
    rc=0
    # shellcheck disable=SC2086
    out=$("$WORKER" --job ev1 $args 2>&1) || rc=$?
    [ "$rc" -eq 2 ] || fail "\${DRV_T_AWS} not allowed ($args): exited $rc, expected 2"
    grep -qF 'uses ${DRV_T_AWS}, which this worker does not allow' <<<"$out" ||
        fail "the variable is not named ($args): $out"
done
[ "$(hits_total)" -eq 3 ] || fail "a job with a variable not allowed sent requests"
bg coord_ev1 "$DROVER" run ev1
c1=$LAST_PID
bg w_ev1 "$WORKER" --job ev1 --allow-env DRV_T_AWS --exit-when-done
bg coord_ev2 "$DROVER" run ev2
c2=$LAST_PID
bg w_ev2 env DROVER_ALLOW_ENV='DROVER_SECRET_*' "$WORKER" --job ev2 --exit-when-done
wait_exit 30 "$c1"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run ev1 (--allow-env NAME) exited $EXIT_CODE"
wait_exit 30 "$c2"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run ev2 (a DROVER_SECRET_* prefix) exited $EXIT_CODE"
[ "$(hits /ok/ev1/1)" -eq 1 ] && [ "$(hits /ok/ev2/2)" -eq 1 ] || fail "allowed jobs were not sent"
say "\${NAME}: refused with exit 2 naming it unless --allow-env names it or a prefix of it"

# ---- 11: numbers past 2^53, an escaped NUL, options before the command -----------------------
echo '{"id": "big", "source": {"type": "range", "start": 9007199254740990, "end": 9007199254740993}}' >"$TMP/big.json"
rc=0
"$DROVER" submit "$TMP/big.json" 2>"$TMP/err" >/dev/null || rc=$?
[ "$rc" -eq 2 ] && grep -qF 'source.end: 9007199254740993 is not exact' "$TMP/err" ||
    fail "end past 2^53: rc $rc: $(cat "$TMP/err")"
[ "$(R EXISTS 'drover:{big}:job')" = 0 ] || fail "the refused spec was written"
printf '{"id":"a"}\n{"id":"b\\u0000c"}\n' >"$TMP/nul.ndjson"
rc=0
"$DROVER" submit --id nul --file "$TMP/nul.ndjson" --format ndjson --id-field id 2>"$TMP/err" >/dev/null || rc=$?
[ "$rc" -eq 2 ] && grep -qF 'record 2 (byte 11)' "$TMP/err" && grep -qF 'escaped NUL' "$TMP/err" ||
    fail "a NUL in an NDJSON id: rc $rc: $(cat "$TMP/err")"
[ "$(R EXISTS 'drover:{nul}:job')" = 0 ] || fail "the refused file was submitted"
env -u DROVER_REDIS_URL "$DROVER" --redis "$URL" list >"$TMP/list" 2>"$TMP/err" || fail "drover --redis URL list: $(cat "$TMP/err")"
grep -q '^ev2 ' "$TMP/list" || fail "drover --redis URL list lists nothing: $(cat "$TMP/list")"
env -u DROVER_REDIS_URL "$DROVER" --redis="$URL" --prefix drover: status ev2 --json >/dev/null ||
    fail "drover --redis=URL --prefix P status JOB failed"
rc=0
"$DROVER" --json list 2>"$TMP/err" || rc=$?
[ "$rc" -eq 2 ] && grep -qF 'before the command' "$TMP/err" || fail "drover --json list: rc $rc"
say "refused: range end 2^53+1 in a spec, an escaped NUL in an NDJSON id; options before the command"

# ---- 12: a spec field that is not JSON -------------------------------------------------------
"$DROVER" submit --id bj --range 1..5 --quiet >/dev/null
R HSET 'drover:{bj}:job' spec '{not json' >/dev/null
"$DROVER" list >"$TMP/list" || fail "drover list failed with a broken job"
grep -E '^bj +broken ' "$TMP/list" | grep -qF 'drover:{bj}:job: field spec' ||
    fail "the broken job is not listed as broken: $(cat "$TMP/list")"
grep -q '^ev2 ' "$TMP/list" || fail "the other jobs are not listed"
"$DROVER" list --json | grep -F '"id":"bj"' | grep -qF '"state":"broken"' || fail "list --json: not broken"
rc=0
"$DROVER" status bj 2>"$TMP/err" || rc=$?
[ "$rc" -eq 1 ] && grep -qF 'job bj is broken: drover:{bj}:job: field spec: malformed JSON' "$TMP/err" ||
    fail "drover status of a broken job: rc $rc: $(cat "$TMP/err")"
say "a job whose spec is not JSON is listed as broken, naming the field"
echo "PASS: secrets and strict input"
