#!/usr/bin/env bash
# Self-test of the HTTP fixture server (tests/support/httpd.py): starts it on a free port,
# exercises every endpoint with curl, stops it by PID. Exit 0 when all checks pass;
# otherwise prints each failed check and exits 1.
#   bash tests/support/httpd_selftest.sh
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TMP=$(mktemp -d)
SRV_PID=""
BG_PID=""
FAILS=0

cleanup() {
    if [ -n "$BG_PID" ]; then kill "$BG_PID" 2>/dev/null || true; wait "$BG_PID" 2>/dev/null || true; fi
    if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
# eq WHAT GOT WANT
eq() { if [ "$2" != "$3" ]; then fail "$1: got '$2', want '$3'"; fi; }
# code [CURL-ARGS...] URL: the HTTP status (000 when no answer)
code() { curl -s -o /dev/null -w '%{http_code}' "$@" || true; }
# body URL...: the response body
body() { curl -s "$@" || true; }
# curl_rc CURL-ARGS...: curl's exit code
curl_rc() { local rc=0; curl -s -o /dev/null "$@" || rc=$?; echo "$rc"; }
# json EXPR: evaluate a Python expression over the JSON document on stdin (as d)
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
# poll SECONDS CMD...: until CMD succeeds, or fail after SECONDS
poll() {
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

python3 "$HERE/httpd.py" --port-file "$TMP/port" --max-seconds 300 >"$TMP/httpd.log" 2>&1 &
SRV_PID=$!
if ! poll 10 test -s "$TMP/port"; then
    echo "FAIL: the server did not write its port file" >&2; cat "$TMP/httpd.log" >&2; exit 1
fi
H="http://127.0.0.1:$(cat "$TMP/port")"

# --- simple answers
eq "ok body" "$(body "$H/ok/a/b")" "ok /a/b"
eq "delay" "$(body "$H/delay/50/x")" "ok"
eq "status 418" "$(code "$H/status/418/x")" "418"
eq "status body" "$(body "$H/status/500/x")" "status 500"
eq "status 204" "$(code "$H/status/204/x")" "204"
eq "unknown path" "$(code "$H/nope")" "404"
eq "bad number" "$(code "$H/delay/abc")" "400"
eq "content type json" "$(curl -s -o /dev/null -w '%{content_type}' "$H/echo/ct")" "application/json"
eq "content type text" "$(curl -s -o /dev/null -w '%{content_type}' "$H/ok/ct")" "text/plain"

# --- echo, every method, with a body
for m in GET POST PUT DELETE PATCH; do
    out=$(body -X "$m" -H 'X-Test: yes' --data-binary "hello $m" "$H/echo/m?a=1&b=2")
    eq "echo $m" "$(echo "$out" | json '(d["method"], d["path"], d["query"], d["headers"]["x-test"], d["body"])')" \
        "('$m', '/echo/m', 'a=1&b=2', 'yes', 'hello $m')"
done
eq "echo chunked body" "$(body -H 'Transfer-Encoding: chunked' --data-binary 'chunky' "$H/echo/ch" | json 'd["body"]')" "chunky"

# --- flaky, rate limits, unavailable
seq3=$(for _ in 1 2 3; do code "$H/flaky/2/500/item-1"; echo -n ,; done)
eq "flaky sequence" "$seq3" "500,500,200,"
hdr=$(curl -s -D - -o /dev/null "$H/ratelimit/1/7/a" | tr -d '\r')
echo "$hdr" | grep -q '^HTTP/1.1 429' || fail "ratelimit: no 429 in: $hdr"
echo "$hdr" | grep -qi '^Retry-After: 7$' || fail "ratelimit: no 'Retry-After: 7' in: $hdr"
eq "ratelimit then ok" "$(code "$H/ratelimit/1/7/a")" "200"
hdr=$(curl -s -D - -o /dev/null "$H/ratelimit-date/1/30/a" | tr -d '\r')
echo "$hdr" | grep -qiE '^Retry-After: [A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} GMT$' \
    || fail "ratelimit-date: no HTTP-date Retry-After in: $hdr"
eq "ratelimit-date then ok" "$(code "$H/ratelimit-date/1/30/a")" "200"
hdr=$(curl -s -D - -o /dev/null "$H/unavailable/1/a" | tr -d '\r')
echo "$hdr" | grep -q '^HTTP/1.1 503' || fail "unavailable: no 503 in: $hdr"
if echo "$hdr" | grep -qi '^Retry-After'; then fail "unavailable: has a Retry-After"; fi
eq "unavailable then ok" "$(code "$H/unavailable/1/a")" "200"

# --- broken connections
rc=$(curl_rc "$H/reset/1")
[ "$rc" = 52 ] || [ "$rc" = 56 ] || fail "reset: curl exit $rc, want 52 or 56"
# and it is a RST, not an orderly close (which curl also reports as 52)
got=$(python3 - "${H##*:}" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /reset/2 HTTP/1.1\r\nHost: x\r\n\r\n")
try:
    print("answer %r" % s.recv(100))
except ConnectionResetError:
    print("rst")
EOF
)
eq "reset is a RST" "$got" "rst"
eq "hang times out" "$(curl_rc --max-time 1 "$H/hang/1")" "28"
eq "alive after reset and hang" "$(body "$H/ok/alive")" "ok /alive"

# --- big bodies, and a client that leaves early
eq "big size" "$(curl -s "$H/big/10485760/a" | wc -c | tr -d ' ')" "10485760"
eq "big head" "$(curl -s -o /dev/null -w '%{http_code}' -I "$H/big/1000/h")" "200"
curl -s "$H/big/52428800/early" | head -c 100 >/dev/null || true
eq "alive after early close" "$(body "$H/ok/alive2")" "ok /alive2"

# --- redirects
for c in 301 302 303 307 308; do
    loc=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$H/redirect/$c/echo/7?q=1")
    eq "redirect $c" "$loc" "$c $H/echo/7?q=1"
done
eq "redirect followed" "$(body -L "$H/redirect/302/echo/7?q=1" | json '(d["path"], d["query"])')" "('/echo/7', 'q=1')"
port=${H##*:}
eq "redirect-abs followed" "$(body -L "$H/redirect-abs/307/127.0.0.1/$port/echo/9" | json 'd["path"]')" "/echo/9"
eq "redirect-abs location" "$(curl -s -o /dev/null -w '%{redirect_url}' "$H/redirect-abs/301/example.test/81/x/y")" \
    "http://example.test:81/x/y"
eq "redirect-abs keeps the query" "$(curl -s -o /dev/null -w '%{redirect_url}' "$H/redirect-abs/302/h.test/82/z?k=v")" \
    "http://h.test:82/z?k=v"

# --- pagination
pages="" cur=0
while [ "$cur" != None ]; do
    out=$(body "$H/list/3/2?cursor=$cur")
    pages+="$(echo "$out" | json '",".join(i["id"] for i in d["data"]["items"])');"
    cur=$(echo "$out" | json 'd["meta"]["next"]')
done
eq "list chain" "$pages" "p0-0,p0-1;p1-0,p1-1;p2-0,p2-1;"
eq "list item" "$(body "$H/list/3/2?cursor=1" | json 'd["data"]["items"][1]')" "{'id': 'p1-1', 'n': 1, 'name': 'item 1/1'}"
next="/list-url/3/1?page=0" pages=""
while [ "$next" != None ]; do
    out=$(body "$H$next")
    pages+="$(echo "$out" | json 'd["data"]["items"][0]["id"]');"
    next=$(echo "$out" | json 'd["meta"]["next"]')
done
eq "list-url chain" "$pages" "p0-0;p1-0;p2-0;"
eq "list-bad" "$(body "$H/list-bad/1")" "not json"
eq "list-bad type" "$(curl -s -o /dev/null -w '%{content_type}' "$H/list-bad/1")" "application/json"

# --- hold and release
eq "hold" "$(code -X POST "$H/_hold?from=1")" "200"
eq "page below hold" "$(code --max-time 5 "$H/list/3/1?cursor=0")" "200"
curl -s -o "$TMP/held.out" -w '%{http_code}' --max-time 30 "$H/list/3/1?cursor=2" >"$TMP/held.code" &
BG_PID=$!
held_seen() { [ "$(curl -s "$H/_stats" | json 'd["paths"].get("/list/3/1", 0)')" -ge 2 ]; }
poll 10 held_seen || fail "hold: the held request never reached the server"
kill -0 "$BG_PID" 2>/dev/null || fail "hold: the held request finished before the release"
eq "release" "$(code -X POST "$H/_release")" "200"
wait "$BG_PID" || true
BG_PID=""
eq "held request answered" "$(cat "$TMP/held.code")" "200"
eq "held request body" "$(json 'd["data"]["items"][0]["id"]' <"$TMP/held.out")" "p2-0"

# --- 300 concurrent keep-alive connections (each does 3 requests on its connection)
python3 - "$H" <<'EOF' 2>"$TMP/conc.err" || fail "concurrency: $(cat "$TMP/conc.err")"
import http.client, sys, threading
host, port = sys.argv[1].split("//")[1].split(":")
errors, conns, barrier = [], [], threading.Barrier(300)
def run(i):
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        c.connect()
        barrier.wait(30)  # all 300 connections open at once
        for j in range(3):
            c.request("GET", "/delay/20/c%d-%d" % (i, j))
            r = c.getresponse()
            if r.status != 200 or r.read() != b"ok":
                errors.append("conn %d req %d: %d" % (i, j, r.status))
        c.close()
    except Exception as e:
        errors.append("conn %d: %r" % (i, e))
ts = [threading.Thread(target=run, args=(i,)) for i in range(300)]
for t in ts: t.start()
for t in ts: t.join()
if errors:
    print(len(errors), "errors, e.g.", errors[:3], file=sys.stderr)
    sys.exit(1)
EOF

# --- hooks: recorded bodies, failing first
eq "hook fails first" "$(code -X POST -H 'X-K: v' -d '{"a":1}' "$H/hook/1/h1")" "500"
eq "hook then accepts" "$(code -X POST -d '{"a":2}' "$H/hook/1/h1")" "200"
eq "hook bodies" "$(body "$H/_bodies?path=/hook/1/h1" | json '[(r["status"], r["body"], r["method"]) for r in d]')" \
    "[(500, '{\"a\":1}', 'POST'), (200, '{\"a\":2}', 'POST')]"
eq "hook headers" "$(body "$H/_bodies?path=/hook/1/h1" | json 'd[0]["headers"]["x-k"]')" "v"
eq "hook-ra status" "$(code -X POST -d x "$H/hook-ra/1/7/h2")" "503"
eq "hook-ra Retry-After" "$(curl -s -o /dev/null -D - -X POST "$H/hook-ra/2/7/h3" | tr -d '\r' | grep -i '^retry-after:')" "Retry-After: 7"
eq "hook-ra then accepts" "$(code -X POST -d x "$H/hook-ra/1/7/h2")" "200"
eq "hookmode fail" "$(code -X POST "$H/_hookmode?path=/hook/0/h4&fail=1")" "200"
eq "hook forced to fail" "$(code -X POST -d x "$H/hook/0/h4")" "500"
code -X POST "$H/_hookmode?path=/hook/0/h4&fail=0" >/dev/null
eq "hook forced to accept" "$(code -X POST -d x "$H/hook/0/h4")" "200"
eq "bodies of an unknown path" "$(body "$H/_bodies?path=/nothing")" "[]"

# --- stats and reset
eq "stats reset" "$(code -X POST "$H/_reset")" "200"
code "$H/ok/s1?x=1" >/dev/null; code "$H/ok/s1?x=2" >/dev/null; code -X POST "$H/echo/s2" >/dev/null
eq "stats" "$(body "$H/_stats" | json '(d["total"], sorted(d["paths"].items()))')" \
    "(3, [('/echo/s2', 1), ('/ok/s1', 2)])"
code -X POST "$H/_reset" >/dev/null
# (a /hang request from above may still be active: reset starts the peak from what is active)
eq "stats after reset" "$(body "$H/_stats" | json '(d["total"], d["paths"], d["peak"] == d["active"])')" \
    "(0, {}, True)"
# peak: three requests answered at once (each waits 400 ms) add 3, and none of them stays active
BASE=$(body "$H/_stats" | json 'd["active"]')
PEAK_PIDS=()
for i in 1 2 3; do
    code "$H/delay/400/peak-$i" >/dev/null &
    PEAK_PIDS+=($!)
done
for p in "${PEAK_PIDS[@]}"; do wait "$p"; done
eq "peak of three at once" "$(body "$H/_stats" | json '(d["active"], d["peak"])')" "($BASE, $((BASE + 3)))"
code -X POST "$H/_reset" >/dev/null
eq "peak after reset" "$(body "$H/_stats" | json 'd["peak"]')" "$BASE"
eq "flaky again after reset" "$(code "$H/flaky/1/502/item-1")" "502"

# --- stop by PID
kill "$SRV_PID"
rc=0; wait "$SRV_PID" || rc=$?
SRV_PID=""
eq "server exit status" "$rc" "0"

if [ "$FAILS" -ne 0 ]; then
    echo "httpd selftest: $FAILS check(s) failed" >&2
    echo "--- server log:" >&2; cat "$TMP/httpd.log" >&2
    exit 1
fi
echo "httpd selftest: all checks passed"
