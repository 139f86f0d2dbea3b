#!/usr/bin/env bash
# The paginated HTTP source: the coordinator walks a listing a page at a time. Killed after
# page 1 was fed, a restarted coordinator goes on from page 2 and every item is fed once.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis
start_httpd

# 3 pages of 10 (p0-0 .. p2-9), "next" a token carried in ?cursor=.
cat >"$TMP/spec.json" <<EOF
{"id": "ls", "partitions": 3, "window": 100,
 "source": {"type": "http", "url": "$HTTP/list/3/10?cursor=0&limit=10", "items": "data.items",
            "next": "meta.next", "id_field": "id"}}
EOF
"$DROVER" submit "$TMP/spec.json" --quiet >/dev/null
for p in 0 1 2; do for i in $(seq 0 9); do echo "p$p-$i"; done; done | sort >"$TMP/want"

# Pages from 1 on wait until released: the coordinator feeds page 0, then blocks on page 1.
curl -fsS -X POST "$HTTP/_hold?from=1" >/dev/null
bg coord1 "$DROVER" run ls --progress-ms 200
c1=$LAST_PID
fed_is() { [ "$(status_num ls fed)" -eq "$1" ]; }
page1_asked() { [ "$(hits /list/3/10)" -ge 2 ]; }
wait_for "page 0 fed" 20 fed_is 10
wait_for "page 1 requested" 20 page1_asked
[ "$(R HGET 'drover:{ls}:job' page)" = 1 ] || fail "the job hash does not say page 1 is next"
R HGET 'drover:{ls}:job' page_url | grep -q 'cursor=1&limit=10\|limit=10&cursor=1' || fail "page_url: $(R HGET 'drover:{ls}:job' page_url)"
kill -9 "$c1"
wait_exit 10 "$c1"
say "coordinator killed while fetching page 1 (page 0 fed: 10 items)"

curl -fsS -X POST "$HTTP/_release" >/dev/null
curl -fsS -X POST "$HTTP/_hold?from=99" >/dev/null # nothing held from now on
bg coord2 "$DROVER" run ls --progress-ms 200 --lock-ttl-ms 1000
c2=$LAST_PID
bg w "$WORKER" --job ls --concurrency 8 --exit-when-done -- true
w=$LAST_PID
wait_exit 60 "$c2"
[ "$EXIT_CODE" -eq 0 ] || fail "the restarted coordinator exited $EXIT_CODE"
wait_exit 30 "$w"

all_done_ids ls 3 | grep -v '^$' >"$TMP/got"
diff "$TMP/want" "$TMP/got" >&2 || fail "done ids differ from the listing's 30 items"
[ "$(status_num ls fed)" -eq 30 ] || fail "fed $(status_num ls fed), expected each of 30 items once"
[ "$(status_num ls total)" -eq 30 ] || fail "total $(status_num ls total) at the end"
[ "$(status_num ls skipped_done)" -eq 0 ] || fail "items were fed twice (skipped_done)"
[ "$(R HGET 'drover:{ls}:job' page)" = 3 ] || fail "page is $(R HGET 'drover:{ls}:job' page) at the end"
say "restarted: pages 1 and 2 fed, 30 items each fed once, total 30"

# "next" as a relative URL, and a page that is not JSON.
cat >"$TMP/spec2.json" <<EOF
{"id": "lu", "partitions": 2,
 "source": {"type": "http", "url": "$HTTP/list-url/4/5", "items": "data.items", "next": "meta.next", "id_field": "n"}}
EOF
"$DROVER" submit "$TMP/spec2.json" --quiet >/dev/null
bg coord3 "$DROVER" run lu --progress-ms 200
c3=$LAST_PID
bg w2 "$WORKER" --job lu --concurrency 4 --exit-when-done -- true
wait_exit 60 "$c3"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run lu exited $EXIT_CODE"
# id_field n repeats on every page (0..4): 20 listed, 5 distinct ids; the repeats are fed and
# skipped at claim as already done.
[ "$(status_num lu fed)" -eq 20 ] || fail "lu fed $(status_num lu fed), expected 20"
[ "$(status_num lu done)" -eq 5 ] || fail "lu done $(status_num lu done), expected 5 distinct ids"
[ "$(hits /list-url/4/5)" -eq 4 ] || fail "lu fetched $(hits /list-url/4/5) pages, expected 4"
say "next as a relative URL: 4 pages walked"

# Killed after feeding the last page but before writing the total (simulated by clearing it):
# a restarted coordinator writes it.
cat >"$TMP/spec5.json" <<JSON
{"id": "lt", "partitions": 2, "source": {"type": "http", "url": "$HTTP/list/1/3", "items": "data.items", "id_field": "id"}}
JSON
"$DROVER" submit "$TMP/spec5.json" --quiet >/dev/null
bg coord5 "$DROVER" run lt
c5=$LAST_PID
lt_fed() { [ "$(status_num lt fed)" -eq 3 ] && [ "$(R HGET 'drover:{lt}:job' page)" = 1 ]; }
wait_for "the one page of lt fed" 20 lt_fed
kill -9 "$c5"
wait_exit 10 "$c5"
R HSET 'drover:{lt}:job' total -1 >/dev/null
bg coord6 "$DROVER" run lt --lock-ttl-ms 1000
c6=$LAST_PID
bg w6 "$WORKER" --job lt --exit-when-done -- true
wait_exit 60 "$c6"
[ "$EXIT_CODE" -eq 0 ] || fail "drover run lt exited $EXIT_CODE"
[ "$(status_num lt total)" -eq 3 ] || fail "total after the restart: $(status_num lt total)"
[ "$(hits /list/1/3)" -eq 1 ] || fail "the fed page was fetched again"
say "killed after the last page: the restarted coordinator writes the total, fetches nothing again"

cat >"$TMP/spec3.json" <<EOF
{"id": "lb", "source": {"type": "http", "url": "$HTTP/list-bad/x", "items": "data.items"}}
EOF
"$DROVER" submit "$TMP/spec3.json" --quiet >/dev/null
"$DROVER" run lb >"$TMP/lb.log" 2>&1 && fail "drover run lb succeeded on a page that is not JSON"
grep -q "page 0 (http://127.0.0.1:$HTTP_PORT/list-bad/x): not JSON" "$TMP/lb.log" ||
    fail "the error does not name the page: $(tail -2 "$TMP/lb.log")"
[ "$(status_num lb fed)" -eq 0 ] || fail "something of the bad page was fed"

cat >"$TMP/spec4.json" <<EOF
{"id": "le", "source": {"type": "http", "url": "$HTTP/list/1/3", "items": "data.items",
 "id_field": "id", "headers": {"Authorization": "Bearer \${DRV_E2E_NOT_SET}"}}}
EOF
unset DRV_E2E_NOT_SET
"$DROVER" submit "$TMP/spec4.json" --quiet >/dev/null
"$DROVER" run le >"$TMP/le.log" 2>&1 && fail "drover run le succeeded without its \${NAME}"
grep -q 'DRV_E2E_NOT_SET' "$TMP/le.log" || fail "the missing variable is not named: $(tail -2 "$TMP/le.log")"
say "a page that is not JSON and a missing \${NAME}: exit 1, named, nothing fed"
echo "PASS: the paginated HTTP source"
