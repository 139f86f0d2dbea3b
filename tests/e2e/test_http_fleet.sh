#!/usr/bin/env bash
# A rate-limited API sees the whole fleet back off, and a worker only sends where it is let.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis
start_httpd

# ---- fleet cool-down -------------------------------------------------------------------------
# 200 items answered after 50 ms, and one (third in line) answered 429 with Retry-After: 2.
# Two workers, 2 requests in flight each. The worker that gets the 429 must stop the other too.
: >"$TMP/cool.ndjson"
for i in $(seq 1 200); do
    [ "$i" -eq 3 ] && echo '{"id":"r1","a":"ratelimit","b":"1","c":"2"}' >>"$TMP/cool.ndjson"
    echo "{\"id\":\"d$i\",\"a\":\"delay\",\"b\":\"50\",\"c\":\"x\"}" >>"$TMP/cool.ndjson"
done
cat >"$TMP/cool.json" <<JSON
{"id": "cool", "partitions": 1, "max_attempts": 5, "backoff_ms": 50, "backoff_max_ms": 5000,
 "source": {"type": "file", "path": "$TMP/cool.ndjson", "format": "ndjson", "id_field": "id"},
 "handler": {"type": "http", "url": "$HTTP/{item.a}/{item.b}/{item.c}/{id}"}}
JSON
"$DROVER" submit "$TMP/cool.json" --quiet >/dev/null
bg coord "$DROVER" run cool --progress-ms 500
c=$LAST_PID
bg w1 "$WORKER" --job cool --concurrency 2 --exit-when-done --id w1
bg w2 "$WORKER" --job cool --concurrency 2 --exit-when-done --id w2
wait_exit 120 "$c"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run cool exited $EXIT_CODE"
[ "$(status_num cool done)" -eq 201 ] || fail "done $(status_num cool done) of 201"
curl -fsS "$HTTP/_log" >"$TMP/log.json"
# After the 429 (at t0) neither worker may start a request until the Retry-After is over:
# requests already in flight may land in the first 0.3 s; the cool-down ends at t0 + 2 s.
python3 - "$TMP/log.json" <<'PY' || fail "requests were sent during the fleet cool-down"
import json, sys
log = json.load(open(sys.argv[1]))
t0 = min(t for t, p, s in log if s == 429)
inside = [(round(t - t0, 3), p) for t, p, s in log if t0 + 0.3 < t < t0 + 1.7]
print("first 429 at +0; requests in (+0.3 s, +1.7 s):", inside[:5], len(inside), file=sys.stderr)
assert not inside
assert len(log) == 202, len(log)  # r1 twice, every other item once
assert max(t for t, p, s in log) > t0 + 1.9  # the job was still going after the cool-down
PY
[ "$(status_num cool cooldowns)" -ge 1 ] || fail "no cool-down recorded"
say "fleet cool-down: after one worker's 429, no worker started a request within the Retry-After"

# ---- --http-allow and ${NAME} ---------------------------------------------------------------
cat >"$TMP/allow.json" <<JSON
{"id": "al", "partitions": 1, "max_attempts": 2, "backoff_ms": 10,
 "source": {"type": "range", "start": 1, "end": 5},
 "handler": {"type": "http", "url": "http://127.0.0.1:$HTTP_PORT/ok/{id}"}}
JSON
"$DROVER" submit "$TMP/allow.json" --quiet >/dev/null
rc=0
out=$("$WORKER" --job al --http-allow api.example.com,localhost 2>&1) || rc=$?
[ "$rc" -eq 2 ] || fail "a worker given a job outside --http-allow exited $rc, expected 2"
grep -q "host 127.0.0.1 is not in this worker's --http-allow" <<<"$out" || fail "allow refusal: $out"
[ "$(hits_total)" -eq 202 ] || fail "a refused job still sent requests"

# A host allowed, redirects to one that is not: refused per hop, the item dead with the reason.
cat >"$TMP/redir.json" <<JSON
{"id": "rd", "partitions": 1, "max_attempts": 2, "backoff_ms": 10,
 "source": {"type": "range", "start": 1, "end": 2},
 "handler": {"type": "http", "url": "http://127.0.0.1:$HTTP_PORT/redirect-abs/302/localhost/$HTTP_PORT/ok/{id}"}}
JSON
"$DROVER" submit "$TMP/redir.json" --quiet >/dev/null
bg coordrd "$DROVER" run rd
crd=$LAST_PID
bg wrd "$WORKER" --job rd --http-allow "127.0.0.1:$HTTP_PORT" --exit-when-done
wait_exit 30 "$crd"
[ "$EXIT_CODE" -eq 1 ] || fail "drover run rd exited $EXIT_CODE, expected 1 (dead items)"
"$DROVER" dead rd | grep -q "redirect refused: host localhost is not in this worker's --http-allow" ||
    fail "the refused redirect is not the error: $("$DROVER" dead rd)"
[ "$(hits /ok/1)" -eq 0 ] || fail "the redirect was followed to a host outside --http-allow"

cat >"$TMP/env.json" <<JSON
{"id": "ev", "source": {"type": "range", "start": 1, "end": 2},
 "handler": {"type": "http", "url": "$HTTP/ok/{id}", "headers": {"X-Key": "\${DRV_E2E_KEY}"}}}
JSON
"$DROVER" submit "$TMP/env.json" --quiet >/dev/null
unset DRV_E2E_KEY
rc=0
out=$("$WORKER" --job ev --allow-env DRV_E2E_KEY 2>&1) || rc=$?
[ "$rc" -eq 2 ] || fail "a worker without \${DRV_E2E_KEY} exited $rc, expected 2"
grep -qF 'uses ${DRV_E2E_KEY}, which is not set' <<<"$out" || fail "the missing variable is not named: $out"
say "--http-allow refuses hosts and redirect hops; a missing \${NAME} stops a --job worker (exit 2)"
echo "PASS: fleet cool-down, --http-allow, \${NAME}"
