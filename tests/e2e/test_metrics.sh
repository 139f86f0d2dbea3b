#!/usr/bin/env bash
# Metrics: drover run --metrics-addr serves the Prometheus exposition over HTTP while the job
# runs and (with --metrics-linger) after it ends; drover metrics prints the same. Both are
# parsed with prometheus_client's parser and checked against drover status --json and
# drover workers --json. Other paths are 404; a port in use and a bad address are clear errors
# that write nothing.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

# parse.py FILE [JOB]: parses an exposition with the reference parser, checks that every family
# has HELP and TYPE lines, and prints a JSON summary: per job its numbers, per worker its own.
cat >"$TMP/parse.py" <<'EOF'
import json, re, sys
from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1]).read()
helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
problems = []
jobs, workers, fams = {}, {}, {}
for fam in text_string_to_metric_families(text):
    fams[fam.name] = fam.type
    if fam.type == "unknown" or not fam.documentation:
        problems.append("family %s has no TYPE or HELP" % fam.name)
    for s in fam.samples:
        # The parser names a counter family without _total; the lines keep it.
        for name in (s.name, fam.name):
            if name not in helps and name + "_total" not in helps:
                problems.append("no HELP line for " + s.name)
        if s.name.startswith("drover_worker_"):
            workers.setdefault(s.labels["worker"], {})[s.name[len("drover_worker_"):]] = s.value
        elif "job" in s.labels:
            j = jobs.setdefault(s.labels["job"], {})
            key = s.name[len("drover_"):]
            if "state" in s.labels:
                key += ":" + s.labels["state"]
            j[key] = s.value
        else:
            problems.append("sample without job or worker label: %s" % s.name)
for name, typ in types.items():
    if typ == "counter" and not name.endswith("_total"):
        problems.append("counter %s does not end in _total" % name)
    if typ != "counter" and name.endswith("_total"):
        problems.append("%s %s ends in _total" % (typ, name))
if problems:
    sys.exit("bad exposition: " + "; ".join(sorted(set(problems))))
print(json.dumps({"jobs": jobs, "workers": workers, "families": fams}))
EOF

# summary FILE: the parsed summary of an exposition (fails the test if it does not parse).
# Debian's python3 is named by path: the package python3-prometheus-client installs into its
# dist-packages, which a python3 found earlier on PATH (pyenv, a venv) does not see.
summary() {
    /usr/bin/python3 "$TMP/parse.py" "$1" || fail "$1 did not parse: $(head -c 2000 "$1")"
}
# field JSONFILE EXPR: a value out of a summary, e.g. field s.json 'jobs["mj"]["items_done_total"]'
field() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' \
        "$1" "d$2"
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# mj: 3000 ids; ids ending in 7 fail their only attempt, so 300 end dead. At most 1000 a second
# (--rate), so the job runs for at least 2.7 s on any machine and a scrape can see it running.
"$DROVER" submit --id mj --range 1..3000 --partitions 4 --max-attempts 1 --rate 1000 --quiet >/dev/null
"$DROVER" submit --id other --range 1..10 --partitions 1 --quiet >/dev/null
PORT=$(free_port)
URL="http://127.0.0.1:$PORT/metrics"
bg coord "$DROVER" run mj --metrics-addr "127.0.0.1:$PORT" --metrics-linger 120 --progress-ms 200
c=$LAST_PID
wait_for "the metrics endpoint" 15 curl -fsS -o /dev/null "$URL"
WID='w"1\x' # a worker id with a quote and a backslash: its label value must be escaped
bg w1 "$WORKER" --job mj --id "$WID" --concurrency 4 -- \
    sh -c 'case "$1" in *7) exit 3;; esac; sleep 0.003' sh {id}

# While it runs: the worker shows up, up and busy; the job is running with items done.
running_scrape() {
    curl -fsS "$URL" >"$TMP/live.prom" || return 1
    summary "$TMP/live.prom" >"$TMP/live.json"
    python3 - "$TMP/live.json" "$WID" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
j, w = d["jobs"].get("mj", {}), d["workers"].get(sys.argv[2], {})
ok = (j.get("job_state:running") == 1 and j.get("items_done_total", 0) > 0
      and j.get("items_done_total") < 2700 and w.get("up") == 1 and w.get("done_total", 0) > 0)
sys.exit(0 if ok else 1)
EOF
}
wait_for "a scrape showing the job running and the worker busy" 30 running_scrape
grep -qF 'drover_worker_up{worker="w\"1\\x"} 1' "$TMP/live.prom" ||
    fail "the worker id is not escaped: $(grep drover_worker_up "$TMP/live.prom")"
[ "$(field "$TMP/live.json" '["jobs"].get("other")')" = None ] ||
    fail "a coordinator's endpoint shows another job"
curl -sS -D "$TMP/headers" -o /dev/null "$URL"
grep -qi '^content-type: text/plain; version=0.0.4' "$TMP/headers" ||
    fail "content type: $(cat "$TMP/headers")"
say "scraped while running: job running, worker up and escaped, content type 0.0.4"

# Other paths are 404, other methods 405.
code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/")
[ "$code" = 404 ] || fail "GET / answered $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics/x")
[ "$code" = 404 ] || fail "GET /metrics/x answered $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d x=1 "$URL")
[ "$code" = 405 ] || fail "POST /metrics answered $code"
say "other paths 404, POST 405"

# A port in use: exit 1 naming it, and nothing written for job other (no lock, nothing fed).
rc=0
"$DROVER" run other --metrics-addr "127.0.0.1:$PORT" 2>"$TMP/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "cannot listen on 127.0.0.1:$PORT: Address already in use" "$TMP/err" ||
    fail "port in use: rc $rc: $(cat "$TMP/err")"
# Bad addresses: usage errors.
for a in garbage 127.0.0.1 127.0.0.1:0 127.0.0.1:70000 :9464 '[::1' '::1:9464'; do
    rc=0
    "$DROVER" run other --metrics-addr "$a" 2>"$TMP/err" || rc=$?
    [ "$rc" -eq 2 ] && grep -q "error: --metrics-addr: " "$TMP/err" ||
        fail "--metrics-addr $a: rc $rc: $(cat "$TMP/err")"
done
rc=0
DROVER_METRICS_ADDR=nope "$DROVER" run other 2>"$TMP/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "expected HOST:PORT" "$TMP/err" || fail "DROVER_METRICS_ADDR=nope: $rc"
[ "$(R EXISTS 'drover:{other}:lock')" = 0 ] || fail "a refused run took the lock of job other"
[ "$(status_num other fed)" = 0 ] || fail "a refused run fed job other"
say "port in use: exit 1 naming it; bad addresses exit 2; nothing written"

# The job ends with 300 dead; the coordinator keeps serving (linger). The final scrape equals
# drover status --json.
is_done() {
    "$DROVER" status mj --json | python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["state"] != "done")'
}
wait_for "job mj done" 120 is_done
kill -0 "$c" || fail "the coordinator did not linger after the job ended"
curl -fsS "$URL" >"$TMP/final.prom" || fail "no scrape after the job ended"
summary "$TMP/final.prom" >"$TMP/final.json"
"$DROVER" status mj --json >"$TMP/status.json"
python3 - "$TMP/final.json" "$TMP/status.json" <<'EOF' || fail "final scrape vs status: $(cat "$TMP/status.json")"
import json, sys
m = json.load(open(sys.argv[1]))["jobs"]["mj"]
s = json.load(open(sys.argv[2]))
pairs = {"items_done_total": s["done"], "items_fed_total": s["fed"],
         "items:pending": s["pending"], "items:leased": s["leased"],
         "items:retrying": s["retrying"], "items:dead": s["dead"],
         "duplicates_total": s["duplicates"], "attempts_failed_total": s["failed_attempts"],
         "leases_expired_total": s["expired_leases"], "items_skipped_total": s["skipped_done"],
         "job_source_items": s["total"], "job_state:done": 1, "job_state:running": 0,
         "job_partitions": 4}
bad = {k: (m.get(k), v) for k, v in pairs.items() if m.get(k) != v}
if bad or s["done"] != 2700 or s["dead"] != 300:
    sys.exit("mismatch (metric, status): %s; done %s dead %s" % (bad, s["done"], s["dead"]))
EOF
say "after the job: the scrape equals drover status --json (2700 done, 300 dead)"

# drover metrics prints the same exposition: every job, every worker; the worker's numbers
# equal drover workers --json.
reported_all() { # the worker's heartbeat has its final counts
    "$DROVER" workers --json | python3 -c '
import json, sys
w = {w["id"]: w for w in map(json.loads, sys.stdin)}.get(sys.argv[1])
sys.exit(0 if w and w["done"] + w["failed"] == 3000 and w["in_flight"] == 0 else 1)' "$WID"
}
wait_for "the worker to report its final counts" 10 reported_all
"$DROVER" metrics >"$TMP/all.prom" || fail "drover metrics failed"
summary "$TMP/all.prom" >"$TMP/all.json"
"$DROVER" workers --json >"$TMP/workers.json"
python3 - "$TMP/all.json" "$TMP/final.json" "$TMP/workers.json" "$WID" <<'EOF' || fail "drover metrics"
import json, sys
a, f = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ws = {w["id"]: w for w in map(json.loads, open(sys.argv[3]))}
wid = sys.argv[4]
if a["jobs"]["mj"] != f["jobs"]["mj"]:
    sys.exit("drover metrics and the endpoint differ for mj: %s %s" % (a["jobs"]["mj"], f["jobs"]["mj"]))
if a["jobs"]["other"].get("items_done_total") != 0 or a["jobs"]["other"].get("job_state:running") != 1:
    sys.exit("job other: %s" % a["jobs"]["other"])
w, x = a["workers"][wid], ws[wid]
if (w["done_total"], w["failed_total"], w["in_flight"], w["up"]) != (x["done"], x["failed"], x["in_flight"], 1):
    sys.exit("worker: metrics %s, drover workers %s" % (w, x))
if w["done_total"] != 2700 or w["failed_total"] != 300:
    sys.exit("worker counts: %s" % w)
EOF
"$DROVER" metrics mj >"$TMP/one.prom" || fail "drover metrics mj failed"
summary "$TMP/one.prom" >"$TMP/one.json"
[ "$(field "$TMP/one.json" '["jobs"].keys()')" = "dict_keys(['mj'])" ] || fail "drover metrics mj shows other jobs"
rc=0
"$DROVER" metrics mj nojob >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "no job nojob" "$TMP/err" || fail "drover metrics nojob: $rc $(cat "$TMP/err")"
rc=0
"$DROVER" metrics 'a b' >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "is not a job id" "$TMP/err" || fail "drover metrics 'a b': $rc"
say "drover metrics: same numbers as the endpoint; workers as drover workers --json; bad names"

# Redis gone: a scrape is a 503 that says so (a scraper marks the target down), not stale data.
kill "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
REDIS_PID=""
code=$(curl -sS -o "$TMP/503.txt" -w '%{http_code}' "$URL")
[ "$code" = 503 ] && grep -q "metrics unavailable: .*127.0.0.1:$REDIS_PORT" "$TMP/503.txt" ||
    fail "scrape without Redis: $code $(cat "$TMP/503.txt")"
say "Redis down: 503 naming it"

# A signal ends the linger at once; the exit code is still the job's (1: dead items).
kill -TERM "$c"
wait_exit 10 "$c"
[ "$EXIT_CODE" -eq 1 ] || fail "the lingering coordinator exited $EXIT_CODE, not 1 (dead items)"
curl -fsS -o /dev/null "$URL" 2>/dev/null && fail "still serving after the coordinator exited"
echo "PASS: metrics over HTTP and on stdout, parsed and equal to drover status"
