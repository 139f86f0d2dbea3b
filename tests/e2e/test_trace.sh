#!/usr/bin/env bash
# Trace context: each attempt gets a W3C traceparent, continued from the item's "traceparent"
# field when it has one, given to the command as TRACEPARENT, to the HTTP handler as a
# traceparent header and to --serve handlers in the line protocol; --otlp-endpoint exports one
# span per attempt to a fixture collector (tests/support/otlp_collector.py) that checks the OTLP
# JSON shape, and the spans' ids must match what the handlers saw. A collector that hangs or is
# gone does not stop items: they all finish and the dropped spans are counted.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

# ---- bad input ------------------------------------------------------------------------------
set +e
"$WORKER" --job x --otlp-endpoint ftp://127.0.0.1:1 -- true >"$TMP/bad.out" 2>&1
rc=$?
set -e
[ $rc -eq 2 ] || fail "--otlp-endpoint ftp:// exited $rc, expected 2"
grep -q "expected an http:// or https:// URL" "$TMP/bad.out" || fail "no clear error: $(cat "$TMP/bad.out")"

# start_collector NAME [--hang]: sets COLL_PID and COLL (its base URL).
start_collector() {
    local name=$1
    shift
    python3 "$DROVER_SRC_DIR/tests/support/otlp_collector.py" --port-file "$TMP/$name.port" \
        --out "$TMP/$name.jsonl" "$@" >"$TMP/$name.log" 2>&1 &
    COLL_PID=$!
    PIDS+=("$COLL_PID")
    wait_for "the collector to listen" 10 test -s "$TMP/$name.port"
    COLL="http://127.0.0.1:$(cat "$TMP/$name.port")"
}

# ---- spans and what the handlers saw ---------------------------------------------------------
start_collector coll
# 20 NDJSON items: the even ones carry a traceparent (a trace to continue), the odd ones none;
# item 5 fails its first attempt (two spans, two traceparents, one trace each... new per attempt).
python3 - "$TMP/items.ndjson" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(1, 21):
        if i % 2 == 0:
            f.write('{"id": "i%d", "traceparent": "00-%032x-%016x-01"}\n' % (i, 0xabc000 + i, 0xdef000 + i))
        else:
            f.write('{"id": "i%d"}\n' % i)
PY
cat >"$TMP/handler.sh" <<EOF
#!/bin/sh
echo "\$DROVER_ITEM_ID \$DROVER_ATTEMPT \$TRACEPARENT" >>"$TMP/seen"
[ "\$DROVER_ITEM_ID" = i5 ] && [ "\$DROVER_ATTEMPT" = 1 ] && exit 3
exit 0
EOF
chmod +x "$TMP/handler.sh"
"$DROVER" submit --id tr --file "$TMP/items.ndjson" --format ndjson --id-field id --partitions 2 \
    --backoff-ms 10 --backoff-max-ms 20 --quiet >/dev/null
bg coord "$DROVER" run tr
coord=$LAST_PID
bg w1 "$WORKER" --job tr --concurrency 4 --stats-ms 0 --exit-when-done --otlp-endpoint "$COLL" \
    -- "$TMP/handler.sh"
w1=$LAST_PID
wait_exit 60 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "coordinator exited $EXIT_CODE"
wait_exit 30 "$w1"
[ "$EXIT_CODE" -eq 0 ] || fail "worker exited $EXIT_CODE"
[ ! -s "$TMP/coll.jsonl.errors" ] || fail "the collector refused: $(cat "$TMP/coll.jsonl.errors")"
# The worker sent its last spans before it exited: 21 attempts, 21 spans.
python3 - "$TMP/seen" "$TMP/coll.jsonl" <<'PY' || fail "spans and traceparents disagree"
import json, re, sys
seen = [l.split() for l in open(sys.argv[1])]
spans = [json.loads(l) for l in open(sys.argv[2])]
assert len(seen) == 21, "handler ran %d times, expected 21" % len(seen)
assert len(spans) == 21, "collector got %d spans, expected 21" % len(spans)
by_span = {s["spanId"]: s for s in spans}
traces = set()
for item, attempt, tp in seen:
    m = re.match(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$", tp)
    assert m, "bad TRACEPARENT %r" % tp
    trace, span = m.groups()
    s = by_span.get(span)
    assert s, "no span %s for %s attempt %s" % (span, item, attempt)
    assert s["traceId"] == trace, (item, s)
    a = s["attrs"]
    assert a["drover.job"] == "tr" and a["drover.item.id"] == item, a
    assert a["drover.attempt"] == int(attempt), a
    n = int(item[1:])
    if n % 2 == 0:  # continued: the item's trace, parent = the item's span
        assert trace == "%032x" % (0xabc000 + n), (item, trace)
        assert s["parentSpanId"] == "%016x" % (0xdef000 + n), (item, s)
    else:
        assert s["parentSpanId"] == "", (item, s)
        traces.add(trace)
    ok = not (item == "i5" and attempt == "1")
    assert a["drover.outcome"] == ("ok" if ok else "failed"), (item, attempt, a)
    assert s["status"]["code"] == (1 if ok else 2), s
# Each attempt of an item without a traceparent starts a trace of its own (i5 has two).
assert len(traces) == 11, "new traces should be distinct: %d of 11" % len(traces)
print("ok: 21 spans match the handlers' TRACEPARENT")
PY

# ---- the HTTP handler's header and the --serve protocol's field -------------------------------
start_httpd
"$DROVER" submit --id th --file "$TMP/items.ndjson" --format ndjson --id-field id --partitions 1 \
    --handler "{\"type\":\"http\",\"url\":\"$HTTP/hook/0/{id}\"}" --quiet >/dev/null
bg coord2 "$DROVER" run th
bg w2 "$WORKER" --job th --concurrency 4 --stats-ms 0 --exit-when-done --otlp-endpoint "$COLL"
w2=$LAST_PID
wait_exit 60 "$w2"
[ "$EXIT_CODE" -eq 0 ] || fail "HTTP worker exited $EXIT_CODE"
for i in 2 3; do
    curl -fsS "$HTTP/_bodies?path=/hook/0/i$i" >"$TMP/bodies"
    python3 - "$TMP/bodies" "$TMP/coll.jsonl" "i$i" <<'PY' || fail "HTTP item i$i: its traceparent header has no span"
import json, sys
tp = json.load(open(sys.argv[1]))[0]["headers"].get("traceparent", "").split("-")
assert len(tp) == 4 and len(tp[1]) == 32 and len(tp[2]) == 16, tp
spans = [json.loads(l) for l in open(sys.argv[2])]
s = [s for s in spans if s["spanId"] == tp[2] and s["traceId"] == tp[1]]
assert s and s[0]["attrs"]["drover.job"] == "th" and s[0]["attrs"]["drover.item.id"] == sys.argv[3], tp
PY
done
# --serve: the line protocol carries the traceparent.
cat >"$TMP/serve.py" <<EOF
import json, sys
assert json.loads(sys.stdin.readline())["version"] == 1
for line in sys.stdin:
    m = json.loads(line)
    with open("$TMP/serve_seen", "a") as f:
        f.write("%s %s\\n" % (m["id"], m.get("traceparent", "-")))
    print(json.dumps({"id": m["id"], "ok": True}), flush=True)
EOF
"$DROVER" submit --id ts --file "$TMP/items.ndjson" --format ndjson --id-field id --partitions 1 \
    --quiet >/dev/null
bg coord3 "$DROVER" run ts
bg w3 "$WORKER" --job ts --serve 1 --stats-ms 0 --exit-when-done -- python3 "$TMP/serve.py"
w3=$LAST_PID
wait_exit 60 "$w3"
[ "$EXIT_CODE" -eq 0 ] || fail "--serve worker exited $EXIT_CODE"
[ "$(grep -c . "$TMP/serve_seen")" -eq 20 ] || fail "--serve handler saw $(grep -c . "$TMP/serve_seen") items"
grep -q "^i4 00-$(printf '%032x' $((0xabc004)))-[0-9a-f]\{16\}-01\$" "$TMP/serve_seen" ||
    fail "--serve: i4 did not continue its trace: $(grep '^i4 ' "$TMP/serve_seen")"
if grep -v '^i[0-9]* 00-[0-9a-f]\{32\}-[0-9a-f]\{16\}-01$' "$TMP/serve_seen" >"$TMP/serve_bad"; then
    fail "--serve: a line without a traceparent: $(head -1 "$TMP/serve_bad")"
fi

# --stdin-batch: TRACEPARENT holds the batch's traceparents, in the order of its lines.
cat >"$TMP/batch.sh" <<EOF
#!/bin/sh
ids=""
while IFS= read -r line; do ids="\$ids \$(echo "\$line" | sed 's/.*"id": *"\\([^"]*\\)".*/\\1/')"; echo ok; done
echo "\$ids|\$TRACEPARENT" >>"$TMP/batch_seen"
EOF
chmod +x "$TMP/batch.sh"
"$DROVER" submit --id tb --file "$TMP/items.ndjson" --format ndjson --id-field id --partitions 1 \
    --quiet >/dev/null
bg coord6 "$DROVER" run tb
bg w6 "$WORKER" --job tb --stdin-batch 4 --concurrency 2 --stats-ms 0 --exit-when-done -- "$TMP/batch.sh"
wait_exit 60 "$LAST_PID"
[ "$EXIT_CODE" -eq 0 ] || fail "--stdin-batch worker exited $EXIT_CODE"
python3 - "$TMP/batch_seen" <<'PY' || fail "--stdin-batch: TRACEPARENT does not match the lines"
import re, sys
n = 0
for line in open(sys.argv[1]):
    ids, tps = line.rstrip("\n").split("|")
    ids, tps = ids.split(), tps.split()
    assert len(ids) == len(tps) and ids, line
    for i, tp in zip(ids, tps):
        m = re.match(r"^00-([0-9a-f]{32})-[0-9a-f]{16}-01$", tp)
        assert m, tp
        k = int(i[1:])
        assert k % 2 or m.group(1) == "%032x" % (0xabc000 + k), (i, tp)
        n += 1
assert n == 20, n
PY

# ---- a collector that hangs, then none: items never wait --------------------------------------
kill "$COLL_PID"
wait "$COLL_PID" 2>/dev/null || true
start_collector hang --hang
N=6000 # more spans than the queue (4096) and a batch in flight (512) hold: some must drop
"$DROVER" submit --id slow --range 1..$N --partitions 2 --quiet >/dev/null
bg coord4 "$DROVER" run slow
coord4=$LAST_PID
bg w4 "$WORKER" --handler noop --concurrency 64 --stats-ms 0 --otlp-endpoint "$COLL"
w4=$LAST_PID
wait_exit 120 "$coord4"
[ "$EXIT_CODE" -eq 0 ] || fail "coordinator of the hung-collector job exited $EXIT_CODE"
[ "$(status_num slow done)" -eq $N ] || fail "not all $N items done with a hung collector"
dropped() { "$DROVER" metrics | awk '/^drover_worker_spans_dropped_total/ {s += $2} END {print s + 0}'; }
dropped_some() { [ "$(dropped)" -gt 0 ]; }
wait_for "the dropped spans in the worker's heartbeat" 20 dropped_some
say "hung collector: $N items done, $(dropped) spans dropped"
# Gone: the collector stops; the same worker runs the next job, says so once, and still exits
# on SIGTERM.
kill "$COLL_PID"
wait "$COLL_PID" 2>/dev/null || true
"$DROVER" submit --id gone --range 1..2000 --partitions 2 --quiet >/dev/null
bg coord5 "$DROVER" run gone
wait_exit 120 "$LAST_PID"
[ "$EXIT_CODE" -eq 0 ] || fail "coordinator of the no-collector job exited $EXIT_CODE"
kill -TERM "$w4"
wait_exit 60 "$w4"
[ "$EXIT_CODE" -eq 0 ] || fail "worker exited $EXIT_CODE after SIGTERM"
n=$(grep -c "sending spans to the collector failing" "$TMP/w4.log" || true)
[ "$n" -eq 1 ] || fail "the failing collector was logged $n times, expected once (one episode)"
grep -q "spans dropped" "$TMP/w4.log" || fail "the dropped spans were not logged at exit"
echo "PASS: trace context and span export"
