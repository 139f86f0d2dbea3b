#!/usr/bin/env bash
# The HTTP handler against a real HTTP server on loopback (tests/support/httpd.py). Each item
# names a scripted behaviour; every item must end done or dead exactly as that behaviour says,
# nothing may be lost, and the requests the server saw must equal the handler's attempts.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis
start_httpd

# A port nothing listens on: connections to it are refused.
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')

# item ID A B C [PORT]: requests go to http://127.0.0.1:PORT/A/B/C/ID.
: >"$TMP/items.ndjson"
item() {
    printf '{"id":"%s","a":"%s","b":"%s","c":"%s","port":%s}\n' "$1" "$2" "$3" "$4" \
        "${5:-$HTTP_PORT}" >>"$TMP/items.ndjson"
}
declare -A want_state want_hits
expect_item() { # expect_item ID STATE HITS A B C [PORT]
    item "$1" "$4" "$5" "$6" "${7:-}"
    want_state[$1]=$2
    want_hits[$1]=$3
}
for i in $(seq 1 20); do expect_item "ok-$i" done 1 ok x y; done
for i in 1 2 3 4; do expect_item "dl-$i" done 1 delay 300 x; done
for i in 1 2 3; do expect_item "fl-$i" done 3 flaky 2 500; done  # 500, 500, 200
for i in 1 2; do expect_item "rl-$i" done 2 ratelimit 1 1; done  # 429 Retry-After: 1, then 200
expect_item rd-1 done 2 ratelimit-date 1 2                        # Retry-After as a date
expect_item un-1 done 2 unavailable 1 x                           # 503, then 200
expect_item nf-1 dead 1 status 404 x                              # not retried
expect_item nf-2 dead 1 status 410 x
expect_item st-1 dead 3 status 500 x                              # retried until max_attempts
expect_item hg-1 dead 3 hang x x                                  # times out every time
expect_item rs-1 dead 3 reset x x                                 # connection reset (see below)
expect_item bg-1 done 1 big 10485760 x                            # a 10 MB answer
expect_item rdr-1 done 1 redirect 302 ok                          # one hop to /ok/rdr-1
expect_item ec-1 done 1 echo x x
expect_item cr-1 dead 0 ok x y "$closed"                          # connection refused

export DRV_E2E_TOKEN=tok-123
cat >"$TMP/spec.json" <<EOF
{"id": "h", "partitions": 4, "max_attempts": 3, "backoff_ms": 50, "backoff_max_ms": 3000,
 "source": {"type": "file", "path": "$TMP/items.ndjson", "format": "ndjson", "id_field": "id"},
 "handler": {"type": "http", "url": "http://127.0.0.1:{item.port}/{item.a}/{item.b}/{item.c}/{id}",
             "headers": {"X-Item": "{id}", "Authorization": "Bearer \${DRV_E2E_TOKEN}"},
             "timeout_ms": 700, "keep_response": 4096}}
EOF
"$DROVER" submit "$TMP/spec.json" --quiet >/dev/null
# The secret never reaches Redis: only the ${NAME} reference does.
R HGET 'drover:{h}:job' spec | grep -q '\${DRV_E2E_TOKEN}' || fail "the spec lost its \${NAME}"
R HGET 'drover:{h}:job' spec | grep -q 'tok-123' && fail "the secret was written to Redis"

bg coord "$DROVER" run h --progress-ms 500
coord=$LAST_PID
bg w1 "$WORKER" --job h --allow-env DRV_E2E_TOKEN --concurrency 16 --exit-when-done --id w1 --stats-ms 0
w1=$LAST_PID
bg w2 "$WORKER" --job h --allow-env DRV_E2E_TOKEN --concurrency 16 --exit-when-done --id w2 --stats-ms 0
w2=$LAST_PID
wait_exit 120 "$coord"
[ "$EXIT_CODE" -eq 1 ] || fail "drover run exited $EXIT_CODE, expected 1 (the job has dead items)"
wait_exit 30 "$w1"
[ "$EXIT_CODE" -eq 0 ] || fail "worker 1 exited $EXIT_CODE"
wait_exit 30 "$w2"
[ "$EXIT_CODE" -eq 0 ] || fail "worker 2 exited $EXIT_CODE"

# Every item ended where its behaviour says, and nothing is anywhere else.
all_done_ids h 4 >"$TMP/done.got"
for p in 0 1 2 3; do R HKEYS "drover:{h.$p}:dead"; done | grep -v "^$" | sort >"$TMP/dead.got"
for id in "${!want_state[@]}"; do echo "$id ${want_state[$id]}"; done >"$TMP/want"
awk '$2 == "done" {print $1}' "$TMP/want" | sort >"$TMP/done.want"
awk '$2 == "dead" {print $1}' "$TMP/want" | sort >"$TMP/dead.want"
diff "$TMP/done.want" "$TMP/done.got" >&2 || fail "the done set is not what the behaviours say"
diff "$TMP/dead.want" "$TMP/dead.got" >&2 || fail "the dead items are not what the behaviours say"
for f in pending leased retrying; do
    [ "$(status_num h $f)" -eq 0 ] || fail "$f is $(status_num h $f) at the end"
done
say "every item ended done or dead as scripted; nothing pending, leased or retrying"

# Requests seen == attempts made, item by item and in all.
curl -fsS "$HTTP/_stats" >"$TMP/stats.json"
# A request on a kept-alive connection that dies before any byte of the answer is sent again
# by libcurl on another connection (up to 5 times): that is how it rides out servers closing
# idle connections. So a server that resets after reading the request sees it 1 to 6 times
# per attempt; rs-1 is counted apart.
rs=$(hits /reset/x/x/rs-1)
[ "$rs" -ge 3 ] && [ "$rs" -le 18 ] || fail "rs-1: the server saw $rs requests for 3 attempts"
for id in "${!want_state[@]}"; do
    [ "$id" = rs-1 ] && continue
    got=$(python3 - "$TMP/stats.json" "$id" <<'PY'
import json, sys
paths = json.load(open(sys.argv[1]))["paths"]
print(sum(n for p, n in paths.items() if p.endswith("/" + sys.argv[2]) and not p.startswith("/redirect/")))
PY
)
    [ "$got" -eq "${want_hits[$id]}" ] || fail "$id: the server saw $got requests, expected ${want_hits[$id]}"
done
[ "$(hits /redirect/302/ok/rdr-1)" -eq 1 ] || fail "the redirect was requested $(hits /redirect/302/ok/rdr-1) times"
done_n=$(status_num h done)
failed_n=$(status_num h failed_attempts)
# rl-1, rl-2 (429) and rd-1 (429 with a Retry-After date) were throttled once each: no attempt.
throttled_n=$(status_num h throttled)
[ "$throttled_n" -eq 3 ] || fail "throttled is $throttled_n, expected 3 (two 429s and one dated Retry-After)"
refused=3 # cr-1's attempts never reached the server
total=$(hits_total)
[ "$total" -eq $((done_n + failed_n + throttled_n - refused + 1 + rs - 3)) ] ||
    fail "the server saw $total requests; attempts were $done_n ok + $failed_n failed + $throttled_n throttled - $refused refused + 1 redirect hop + $((rs - 3)) libcurl resends"
say "requests seen ($total) == answers: $done_n ok + $failed_n failed + $throttled_n throttled, less $refused refused, plus 1 redirect hop and $((rs - 3)) resends of rs-1"

# What the errors say.
dead_err() { "$DROVER" dead h | grep "^$1	" | cut -f2-; }
dead_err nf-1 | grep -q '"error":"HTTP 404","status":404' || fail "nf-1: $(dead_err nf-1)"
dead_err nf-1 | grep -q '"body":"status 404"' || fail "nf-1 lacks the body: $(dead_err nf-1)"
dead_err nf-1 | grep -q '"attempt":1' || fail "nf-1 was retried: $(dead_err nf-1)"
dead_err st-1 | grep -q '"status":500.*"attempt":3' || fail "st-1: $(dead_err st-1)"
dead_err hg-1 | grep -q '"error":"timed out after 700 ms"' || fail "hg-1: $(dead_err hg-1)"
dead_err hg-1 | grep -q '"curl":"' || fail "hg-1 lacks curl's text: $(dead_err hg-1)"
dead_err rs-1 | grep -qiE '"curl":"[^"]*(reset|recv|empty reply)' || fail "rs-1: $(dead_err rs-1)"
dead_err cr-1 | grep -qiE "connect" || fail "cr-1: $(dead_err cr-1)"
say "errors carry the status, curl's text and the start of the body"

# Retry-After was honoured (seconds and date forms).
curl -fsS "$HTTP/_log" >"$TMP/log.json"
gap() { # gap PATH: seconds between the first two requests to PATH
    python3 -c 'import json,sys; t=[e[0] for e in json.load(open(sys.argv[1])) if e[1]==sys.argv[2]]; print("%.3f" % (t[1]-t[0]))' "$TMP/log.json" "$1"
}
for p in /ratelimit/1/1/rl-1 /ratelimit/1/1/rl-2; do
    g=$(gap $p)
    python3 -c "import sys; sys.exit(0 if $g >= 0.95 else 1)" || fail "$p retried after ${g}s despite Retry-After: 1"
done
g=$(gap /ratelimit-date/1/2/rd-1)
python3 -c "import sys; sys.exit(0 if $g >= 1.0 else 1)" || fail "rd-1 retried after ${g}s despite a Retry-After date 2 s ahead"
[ "$(status_num h cooldowns)" -ge 1 ] || fail "no fleet cool-down was recorded after 429/503 answers"
say "Retry-After honoured: rl $(gap /ratelimit/1/1/rl-1)s, date $(g=$(gap /ratelimit-date/1/2/rd-1); echo $g)s; cool-downs $(status_num h cooldowns)"

# Kept responses: drover results.
"$DROVER" results h >"$TMP/results.tsv"
[ "$(wc -l <"$TMP/results.tsv")" -eq "$(wc -l <"$TMP/done.want")" ] ||
    fail "drover results printed $(wc -l <"$TMP/results.tsv") lines for $(wc -l <"$TMP/done.want") done items"
cut -f1 "$TMP/results.tsv" | sort | diff "$TMP/done.want" - >&2 || fail "results are not the done items"
grep -q "^ok-7	ok /x/y/ok-7$" "$TMP/results.tsv" || fail "ok-7's response: $(grep ^ok-7 "$TMP/results.tsv")"
bigresp=$(grep "^bg-1	" "$TMP/results.tsv" | cut -f2)
[ "${#bigresp}" -eq 4096 ] || fail "bg-1 kept ${#bigresp} bytes, expected keep_response 4096"
echo_resp=$(grep "^ec-1	" "$TMP/results.tsv" | cut -f2)
grep -q '"authorization": "Bearer tok-123"' <<<"$echo_resp" || fail "\${DRV_E2E_TOKEN} was not sent: $echo_resp"
grep -q '"x-item": "ec-1"' <<<"$echo_resp" || fail "the {id} header was not sent: $echo_resp"
grep -q '"method": "GET"' <<<"$echo_resp" || fail "not a GET: $echo_resp"
"$DROVER" results h --json | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
assert all(set(r) == {"id", "response"} for r in rows), rows[:3]
assert any(r["id"] == "fl-2" and r["response"] == "ok" for r in rows)
' || fail "drover results --json"
say "responses kept and streamed by drover results (text and --json)"
echo "PASS: the HTTP handler against a real server"
