#!/usr/bin/env bash
# drover web over HTTP, against a real redis-server and a job a real fleet ran: every route,
# 404/405/HEAD, escaping of Redis data, the token and CSRF refusals, each action checked with
# the command line, a client that sends nothing, 100 concurrent viewers costing a bounded
# number of Redis commands (INFO commandstats), and --json parity.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

# Job wj: a file job with a hostile id that fails (one attempt), run to its end.
EVIL='<script>alert(1)</script>'
{ seq 1 200; echo "$EVIL"; } >"$TMP/items"
"$DROVER" submit --id wj --file "$TMP/items" --partitions 2 --max-attempts 1 --quiet >/dev/null
printf '#!/bin/sh\ncase "$1" in "<"*) echo "bad <b>item</b>" >&2; exit 3;; esac\n' >"$TMP/h.sh"
bg coord "$DROVER" run wj --progress-ms 200 --history-ms 200
bg w1 "$WORKER" --job wj --id w1 --concurrency 4 --exit-when-done --no-stdin -- sh "$TMP/h.sh" {id}
w1=$LAST_PID
bg wait "$DROVER" wait wj --timeout 60 --progress-ms 0
wait_exit 60 "$LAST_PID"
[ "$EXIT_CODE" -eq 1 ] || fail "wj: expected done with a dead item (exit 1), got $EXIT_CODE"
wait_exit 30 "$w1"
# Job idle: running, nothing working on it: the actions' target.
"$DROVER" submit --id idle --range 1..1000 --partitions 2 --quiet >/dev/null

TOKEN=web-test-token-0123456789
printf '%s\n' "$TOKEN" >"$TMP/token"

# start_web NAME [args...]: drover web on a free loopback port; sets WEB_PID and U.
start_web() {
    local name=$1 try port
    shift
    for try in $(seq 10); do
        port=$((20000 + RANDOM % 40000))
        bg "$name" "$DROVER" web --addr "127.0.0.1:$port" "$@"
        WEB_PID=$LAST_PID U="http://127.0.0.1:$port"
        local deadline=$((SECONDS + 10))
        while kill -0 "$WEB_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
            curl -sf -o /dev/null "$U/static/app.css" && return 0
            sleep 0.05
        done
        kill "$WEB_PID" 2>/dev/null || true
        wait "$WEB_PID" 2>/dev/null || true
    done
    fail "drover web did not start"
}
start_web web --token-file "$TMP/token"

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
expect() { # expect CODE curl-args...
    local want=$1 got
    shift
    got=$(code "$@")
    [ "$got" = "$want" ] || fail "curl $*: HTTP $got, expected $want"
}

# ---- routes
for r in / /workers /jobs/wj /api/jobs /api/jobs/wj /api/jobs/wj/history /api/workers \
    /static/app.js /static/app.css /static/favicon.svg \
    "/?state=done&find=w&sort=dead"; do
    expect 200 "$U$r"
done
for r in /nope /jobs/no-such-job /api/jobs/no-such-job /api/jobs/no-such-job/history "/jobs/bad%21id" /static/nope.js /jobs/wj/x/y; do
    expect 404 "$U$r"
done
expect 405 -X DELETE "$U/"
expect 405 -X POST "$U/api/jobs"
expect 405 "$U/jobs/idle/pause"
curl -s -D "$TMP/h405" -o /dev/null -X PUT "$U/workers"
grep -qi '^Allow: GET, HEAD' "$TMP/h405" || fail "405 without Allow: $(cat "$TMP/h405")"
curl -s -I "$U/" >"$TMP/head"
grep -q '^HTTP/1.1 200' "$TMP/head" || fail "HEAD /: $(cat "$TMP/head")"
grep -qi "^Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'" \
    "$TMP/head" || fail "no strict CSP: $(cat "$TMP/head")"
python3 - "$U" <<'PY' || fail "HEAD sent a body"
import socket, sys
host, port = sys.argv[1][len("http://"):].split(":")
s = socket.create_connection((host, int(port)), timeout=10)
s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
head, _, body = data.partition(b"\r\n\r\n")
assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: " in head and body == b"", data
PY
curl -s -D "$TMP/hjs" -o /dev/null "$U/static/app.js"
grep -qi '^Content-Type: text/javascript' "$TMP/hjs" || fail "app.js type: $(cat "$TMP/hjs")"
say "routes: 200s, 404s, 405 with Allow, HEAD, CSP"

# ---- escaping: the hostile id and its error are text
curl -s "$U/jobs/wj" >"$TMP/job.html"
grep -qF '&lt;script&gt;alert(1)&lt;/script&gt;' "$TMP/job.html" || fail "the dead id is not shown escaped"
grep -qF 'bad &lt;b&gt;item&lt;/b&gt;' "$TMP/job.html" || fail "the error is not shown escaped"
! grep -qF "$EVIL" "$TMP/job.html" || fail "the dead id reached the page unescaped"
! grep -qF '<b>item' "$TMP/job.html" || fail "the error reached the page unescaped"
grep -q '<tr><td>exit status 3</td><td class=n>1</td>' "$TMP/job.html" || fail "no errors-by-message row"
grep -q 'data-job="wj"' <(curl -s "$U/") || fail "the jobs page does not list wj"
grep -q '<a href="/jobs/wj">First page</a></p>' "$TMP/job.html" || fail "no paging of dead items"
expect 200 "$U/jobs/wj?dp=1&dc=0"
expect 400 "$U/jobs/wj?dp=x"
grep -q 'Sign in' "$TMP/job.html" || fail "a page of a server with a token offers no sign-in"
! grep -q 'name=csrf' "$TMP/job.html" || fail "action forms shown before signing in"
say "escaping: ids and errors from Redis are text"

# The snapshot cache (64 slots, each good for a second): one job page, then 70 pages of dead
# items as fast as one client asks, each of which takes the job's snapshot from the cache and
# then reads a new page of dead items into it. Once the job's snapshot is the oldest slot, that
# read must not evict it while the page still renders from it (it did: a use-after-free that
# ASan named in the sanitizer stage: the 70 requests fit in the cache's second).
python3 - "$U" <<'PY' || fail "job pages with a full cache of other pages"
import http.client, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
for i in range(71):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request("GET", "/jobs/wj" + ("?dp=0&dc=%d" % i if i else ""))
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200 or b"&lt;script&gt;alert(1)&lt;/script&gt;" not in body:
        sys.exit("request %d: HTTP %d, %d bytes" % (i, r.status, len(body)))
PY
kill -0 "$WEB_PID" 2>/dev/null || fail "drover web died with a full cache"
say "cache: a full cache evicts nothing a page is still rendering from"

# ---- history: drover run sampled the job; the page charts it on the server
curl -s "$U/api/jobs/wj/history" | python3 -c '
import json, sys
h = json.load(sys.stdin)
assert len(h) >= 2, h
assert all(a["at_ms"] < b["at_ms"] and a["done"] <= b["done"] for a, b in zip(h, h[1:])), h
assert h[-1]["done"] == 200 and h[-1]["dead"] == 1, h[-1]
assert any(s["rate"] > 0 for s in h), h' || fail "history: $(curl -s "$U/api/jobs/wj/history")"
[ "$(R LLEN 'drover:{wj}:history')" -ge 2 ] || fail "no drover:{wj}:history list"
grep -q '<figure id=chart><svg .*<polyline class=done points="[0-9]' "$TMP/job.html" ||
    fail "the job page has no chart"
say "history: samples oldest first, ending at the job's end; an SVG chart on the page"

# ---- --json parity: the page's JSON is drover status --json (neither job is moving)
for j in wj idle; do
    "$DROVER" status "$j" --json >"$TMP/cli.json"
    curl -s "$U/api/jobs/$j" >"$TMP/web.json"
    python3 -c '
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
sys.exit(0 if a == b else "differ:\n%s\n%s" % (a, b))' "$TMP/cli.json" "$TMP/web.json" ||
        fail "$j: /api/jobs/$j differs from drover status --json"
done
"$DROVER" list --json | python3 -c '
import json, sys, urllib.request
cli = sorted((json.loads(l) for l in sys.stdin), key=lambda o: o["id"])
web = sorted(json.load(urllib.request.urlopen(sys.argv[1] + "/api/jobs")), key=lambda o: o["id"])
sys.exit(0 if cli == web else "differ:\n%s\n%s" % (cli, web))' "$U" || fail "/api/jobs differs from drover list --json"
say "parity: /api/jobs/J == drover status J --json, /api/jobs == drover list --json"

# ---- refusals: no session, wrong token, bad CSRF
expect 403 -d csrf=x "$U/jobs/idle/pause"
expect 403 -d token=not-the-token-at-all "$U/login"
grep -q "sign-in with a wrong token was refused" "$TMP/web.log" || fail "a wrong token was not logged"
expect 303 -c "$TMP/jar" -d "token=$TOKEN" "$U/login"
CSRF=$(curl -s -b "$TMP/jar" "$U/jobs/idle" | grep -o 'name=csrf value="[0-9a-f]*"' | head -1 | cut -d'"' -f2)
[ ${#CSRF} -eq 32 ] || fail "no CSRF token in the signed-in page"
expect 403 -b "$TMP/jar" -d csrf=0123456789abcdef0123456789abcdef "$U/jobs/idle/pause"
expect 403 -b "$TMP/jar" -d other=1 "$U/jobs/idle/pause"
[ "$("$DROVER" status idle --json | grep -o '"state":"[a-z]*"' | head -1)" = '"state":"running"' ] ||
    fail "a refused POST changed the job"
say "refusals: 403 without a session, with a wrong token, without or with a wrong CSRF token"

# ---- actions, each checked with the command line
state_is() { "$DROVER" status "$1" --json | grep -q "^{\"id\":\"$1\",\"state\":\"$2\""; }
act() { curl -s -o /dev/null -w '%{http_code}' -b "$TMP/jar" -d "csrf=$CSRF" "$@"; }
[ "$(act "$U/jobs/idle/pause")" = 303 ] || fail "pause"
state_is idle paused || fail "pause from the web did not pause idle"
[ "$(act "$U/jobs/idle/pause")" = 409 ] || fail "pausing a paused job was not refused"
[ "$(act "$U/jobs/idle/resume")" = 303 ] && state_is idle running || fail "resume"
[ "$(act -d rate=50 -d max_in_flight=8 "$U/jobs/idle/set")" = 303 ] || fail "set"
"$DROVER" status idle --json | grep -q '"rate_per_second":50,"burst":5,"max_in_flight":8' ||
    fail "set from the web: $("$DROVER" status idle --json)"
[ "$(act -d rate=-3 "$U/jobs/idle/set")" = 409 ] || fail "a negative rate was not refused"
[ "$(act -d rate=1000000000000 "$U/jobs/idle/set")" = 409 ] || fail "a huge rate was not refused"
[ "$(act -d worker=no-such-worker "$U/workers/drain")" = 404 ] || fail "drain of no worker"
curl -s -b "$TMP/jar" "$U/jobs/wj" | grep -qF '<input type=checkbox name=id value="&lt;script&gt;' ||
    fail "no tick box for the dead item"
[ "$(act -d match=no-error-says-this "$U/jobs/wj/retry")" = 303 ] || fail "retry matching"
[ "$(status_num wj dead)" = 1 ] || fail "retry of the items matching nothing revived some"
[ "$(act -d id=not-dead --data-urlencode "id=$EVIL" "$U/jobs/wj/retry")" = 303 ] || fail "retry ticked"
[ "$(status_num wj dead)" = 0 ] && state_is wj running || fail "retry ticked: $("$DROVER" status wj)"
"$DROVER" pause wj >/dev/null
R HSET 'drover:{wj.0}:dead' again '{"error":"exit status 3","attempt":1}' >/dev/null
R HINCRBY 'drover:{wj.0}:state' dead 1 >/dev/null
"$DROVER" retry wj --match 'no such' | grep -q ': 0 dead items back' || fail "drover retry --match"
"$DROVER" retry wj --match 'status 3' | grep -q ': 1 dead items back' || fail "drover retry --match"
[ "$(act "$U/jobs/idle/purge")" = 409 ] || fail "purge of a running job without force"
[ "$(act "$U/jobs/idle/cancel")" = 303 ] && state_is idle cancelled || fail "cancel"
curl -s -b "$TMP/jar" "$U/jobs/idle" | grep -q 'class=msg' || true
[ "$(act "$U/jobs/idle/purge")" = 303 ] || fail "purge"
! "$DROVER" status idle >/dev/null 2>&1 || fail "purge from the web left the job"
expect 404 "$U/jobs/idle"
[ "$(act "$U/logout")" = 303 ] || fail "logout"
expect 403 -b "$TMP/jar" -d "csrf=$CSRF" "$U/jobs/wj/pause"
say "actions: pause, resume, set, drain, retry (matching, ticked; and drover retry --match), cancel, purge, logout; refusals 409/404"

# ---- a client that connects and sends nothing holds no one up
python3 - "$U" <<'PY' || fail "a silent client held up another"
import socket, sys, time, urllib.request
host, port = sys.argv[1][len("http://"):].split(":")
silent = [socket.create_connection((host, int(port))) for _ in range(5)]
half = socket.create_connection((host, int(port)))
half.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # headers never finished
t = time.monotonic()
body = urllib.request.urlopen(sys.argv[1] + "/api/jobs", timeout=5).read()
assert b'"wj"' in body, body
print("answered in %.3f s beside 6 stalled connections" % (time.monotonic() - t))
PY
say "slow clients: others are answered"

# ---- 100 concurrent viewers: Redis commands per refresh stay bounded
python3 - "$U" "$REDIS_PORT" <<'PY' || fail "100 viewers"
import socket, sys, threading, time, urllib.request
url, rport = sys.argv[1], int(sys.argv[2])
def calls():
    s = socket.create_connection(("127.0.0.1", rport))
    s.sendall(b"INFO commandstats\r\n")
    data = b""
    while not data.endswith(b"\r\n") or data.count(b"\r\n") < 2 or len(data) < int(data[1:data.index(b"\r\n")]) + 5:
        data += s.recv(65536)
    s.close()
    n = 0
    for line in data.decode().splitlines():
        if line.startswith("cmdstat_") and not line.startswith("cmdstat_info:"):
            n += int(line.split("calls=")[1].split(",")[0])
    return n
def get(path):
    return urllib.request.urlopen(url + path, timeout=20).read()
for path in ("/jobs/wj",):  # the job page: the job, the workers and the dead items
    time.sleep(1.1)
    c0 = calls(); get(path); one = calls() - c0
    time.sleep(1.1)
    errs = []
    def viewer():
        try: get(path)
        except Exception as e: errs.append(e)
    ts = [threading.Thread(target=viewer) for _ in range(100)]
    c0 = calls(); t0 = time.monotonic()
    for t in ts: t.start()
    for t in ts: t.join()
    took = time.monotonic() - t0; hundred = calls() - c0
    assert not errs, errs[:3]
    # one refresh per second of the run at most (plus the one in progress)
    bound = one * (int(took) + 2)
    print("%s: one viewer %d Redis commands; 100 viewers %d in %.2f s (bound %d)" % (path, one, hundred, took, bound))
    assert 0 < one and hundred <= bound, (one, hundred, bound)
PY
say "100 viewers: Redis commands bounded by the one-second cache"

# ---- without a token: read-only, says so, refuses every POST
start_web web_ro
grep -q 'Read-only' <(curl -s "$U/") || fail "the read-only page does not say so"
expect 403 -d "token=$TOKEN" "$U/login"
expect 403 -d csrf=x "$U/jobs/wj/pause"
say "read-only without a token"

# ---- bad flags
"$DROVER" web --addr nonsense >/dev/null 2>"$TMP/err" && fail "--addr nonsense accepted"
grep -q "expected HOST:PORT" "$TMP/err" || fail "--addr message: $(cat "$TMP/err")"
printf 'short\n' >"$TMP/short"
"$DROVER" web --token-file "$TMP/short" >/dev/null 2>"$TMP/err" && fail "a short token accepted"
grep -q "16 to 256 characters" "$TMP/err" || fail "short token message: $(cat "$TMP/err")"
"$DROVER" web --token-file "$TMP/none" >/dev/null 2>"$TMP/err" && fail "a missing token file accepted"
"$DROVER" web --help | grep -q -- "--token-file" || fail "--help"
say "PASS"
