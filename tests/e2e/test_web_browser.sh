#!/usr/bin/env bash
# drover web in a real browser: Debian's chromium, headless, driven by playwright-core from npm
# (installed here, pinned, into the git-ignored build dir), against a real redis-server and a
# running job. The jobs page shows the job and its progress moves; a dead item whose id is
# <script>alert(1)</script> shows as text; pause from the page pauses the job (drover status
# says so); drain from the workers page drains the worker; an action without the token is
# refused. Screenshots of each page go to
# $DROVER_BIN_DIR/web-artifacts/ (named in the output), with the time to first render and the
# bytes of each page.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
PW_VERSION=1.65.2
[ -x /usr/bin/chromium ] || { echo "SKIPPED: no /usr/bin/chromium (scripts/deps test installs it)"; exit 0; }
NODE_DIR="$DROVER_BIN_DIR/web-browser"
if [ ! -f "$NODE_DIR/node_modules/playwright-core/package.json" ] ||
    ! grep -q "\"version\": \"$PW_VERSION\"" "$NODE_DIR/node_modules/playwright-core/package.json"; then
    mkdir -p "$NODE_DIR"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --silent "playwright-core@$PW_VERSION" \
        >/dev/null || { echo "SKIPPED: npm could not install playwright-core@$PW_VERSION"; exit 0; }
fi
ART="$DROVER_BIN_DIR/web-artifacts"
rm -rf "$ART"
mkdir -p "$ART"
start_redis

# br: runs for a while (rate-limited), so its progress moves while the browser looks.
"$DROVER" submit --id br --range 1..100000 --partitions 2 --rate 40 --quiet >/dev/null
bg coord-br "$DROVER" run br
bg w-br "$WORKER" --job br --handler noop --id w-br
# evil: one item whose id is markup, failing on its only attempt.
echo '<script>alert(1)</script>' >"$TMP/evil"
"$DROVER" submit --id evil --file "$TMP/evil" --partitions 1 --max-attempts 1 --quiet >/dev/null
bg coord-evil "$DROVER" run evil
bg w-evil "$WORKER" --job evil --exit-when-done --no-stdin -- sh -c 'exit 3'
wait_for "evil to end with its dead item" 30 sh -c "\"$DROVER\" status evil --json | grep -q '\"state\":\"done\".*\"dead\":1'"
wait_for "br to make progress" 30 done_at_least br 1

TOKEN=browser-test-token-0123456789
for try in $(seq 10); do
    port=$((20000 + RANDOM % 40000))
    DROVER_WEB_TOKEN=$TOKEN bg web "$DROVER" web --addr "127.0.0.1:$port"
    U="http://127.0.0.1:$port"
    up=0
    for i in $(seq 200); do
        curl -sf -o /dev/null "$U/static/app.css" && { up=1; break; }
        kill -0 "$LAST_PID" 2>/dev/null || break
        sleep 0.05
    done
    [ $up -eq 1 ] && break
done
[ $up -eq 1 ] || fail "drover web did not start"

NODE_PATH="$NODE_DIR/node_modules" node "$DROVER_SRC_DIR/tests/e2e/web_browser.js" "$U" "$TOKEN" \
    "$ART" "$DROVER" >"$TMP/measures.json" || fail "the browser test"
say "screenshots and measurements in $ART:"
ls "$ART" >&2
python3 -c '
import json, sys
for name, m in json.load(open(sys.argv[1])).items():
    print("%-11s %-10s first render %s ms, %d bytes" % (name, m["path"], m["first_contentful_paint_ms"], m["bytes"]))' \
    "$TMP/measures.json" | tee "$ART/measures.txt" >&2
"$DROVER" cancel br >/dev/null
say "PASS"
