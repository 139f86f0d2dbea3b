#!/usr/bin/env bash
# Staged pages: a listing that shrinks as the job deletes what it lists (GET /store?after=ID,
# DELETE /store/N/ID on tests/support/httpd.py). The coordinator is SIGKILLed right after its
# first partition write of page 1 (the test hook DROVER_TEST_KILL_AFTER_PAGE), the workers
# then delete every item fed so far, and a restarted coordinator must feed the rest of page 1
# from its staged copy in Redis: a fetch of page 1 again would list other items by now, and
# the partitions past it would skip them. Every item deleted, none twice.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis
start_httpd

N=90 PER=20
cat >"$TMP/spec.json" <<EOF
{"id": "st", "partitions": 3, "window": 1000, "max_attempts": 2,
 "source": {"type": "http", "url": "$HTTP/store/$N/$PER", "items": "items", "next": "next",
            "next_param": "after", "id_field": "id"},
 "handler": {"type": "http", "method": "DELETE", "url": "$HTTP/store/$N/{id}", "timeout_ms": 5000}}
EOF
"$DROVER" submit "$TMP/spec.json" --quiet >/dev/null

DROVER_TEST_KILL_AFTER_PAGE=1 bg coord1 "$DROVER" run st --progress-ms 200 --lock-ttl-ms 1000
c1=$LAST_PID
wait_exit 30 "$c1"
[ "$EXIT_CODE" -eq 137 ] || fail "the coordinator with the kill hook exited $EXIT_CODE, not 137"
[ "$(R HGET 'drover:{st}:job' page)" = 1 ] || fail "page is $(R HGET 'drover:{st}:job' page), not 1"
R GET 'drover:{st}:page' | grep -q '"page":1' || fail "page 1 is not staged: $(R GET 'drover:{st}:page')"
fed1=$(status_num st fed)
[ "$fed1" -gt "$PER" ] && [ "$fed1" -lt $((2 * PER)) ] ||
    fail "fed $fed1 before the kill: expected page 0 and one partition's share of page 1"
say "killed after the first partition write of page 1 ($fed1 items fed)"

# The workers delete what was fed meanwhile: the listing's page 1 is not what it was.
bg w "$WORKER" --job st --concurrency 8 --exit-when-done --stats-ms 0
w=$LAST_PID
settled() { [ "$(status_num st done)" -eq "$fed1" ]; }
wait_for "the $fed1 items fed to be deleted" 30 settled

bg coord2 "$DROVER" run st --progress-ms 200 --lock-ttl-ms 1000
c2=$LAST_PID
wait_exit 60 "$c2"
[ "$EXIT_CODE" -eq 0 ] || fail "the restarted coordinator exited $EXIT_CODE"
wait_exit 30 "$w"

for i in $(seq 1 $N); do printf 's%06d\n' "$i"; done >"$TMP/want"
all_done_ids st 3 | grep -v '^$' >"$TMP/got"
diff "$TMP/want" "$TMP/got" >&2 || fail "the done record is not the $N items"
curl -fsS "$HTTP/_stats" >"$TMP/stats"
python3 - "$TMP/stats" "$N" <<'PY' || fail "DELETEs were not one per item"
import json, sys
paths = json.load(open(sys.argv[1]))["paths"]
n = int(sys.argv[2])
dels = {p: c for p, c in paths.items() if p.startswith("/store/%d/s" % n)}
bad = {p: c for p, c in dels.items() if c != 1}
if len(dels) != n or bad:
    sys.exit("deleted %d distinct items of %d; more than once: %s" % (len(dels), n, bad))
PY
left=$(curl -fsS "$HTTP/store/$N/$PER" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
[ "$left" -eq 0 ] || fail "$left items are still listed"
[ "$(R EXISTS 'drover:{st}:page')" = 0 ] || fail "the staged page was not dropped at the end"
[ "$(status_num st fed)" -eq "$N" ] || fail "fed $(status_num st fed), expected $N"
say "restarted: the rest of page 1 came from the staged copy; $N items deleted, each once"
