#!/usr/bin/env bash
# Redis Cluster: a 3-master cluster on loopback; a job's 16 partitions spread over all three
# masters; the core scenario end to end (submit, run, two workers, pause/resume, status, done
# record = source, purge with its SCAN sweep over every master) through redis+cluster://.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_cluster 3 0
masters=$(master_ports)
[ "$(echo "$masters" | wc -l)" -eq 3 ] || fail "expected 3 masters, got: $masters"
say "cluster formed: masters $(echo $masters)"

# keys_on PORT PATTERN: the keys matching PATTERN held by that node alone.
keys_on() { redis-cli -p "$1" --scan --pattern "$2"; }
keys_anywhere() { local p; for p in $masters; do keys_on "$p" "$1"; done; }

"$DROVER" submit --id core --range 1..3000 --partitions 16 --quiet >/dev/null
for p in $masters; do
    n=$(keys_on "$p" 'drover:{core.*}:state' | wc -l)
    [ "$n" -gt 0 ] || fail "master $p holds none of the 16 partitions"
    say "master $p holds $n of the 16 partitions"
done
[ "$(keys_anywhere 'drover:{core.*}:state' | wc -l)" -eq 16 ] || fail "not 16 partition hashes"

bg coord "$DROVER" run core
coord=$LAST_PID
printf '#!/bin/sh\necho "$1" >>"%s/out-$2"\n' "$TMP" >"$TMP/h.sh"
bg w1 "$WORKER" --job core --batch 50 --concurrency 4 --stats-ms 0 --exit-when-done --no-stdin \
    -- sh "$TMP/h.sh" {id} 1
bg w2 "$WORKER" --job core --batch 50 --concurrency 4 --stats-ms 0 --exit-when-done --no-stdin \
    -- sh "$TMP/h.sh" {id} 2
wait_for "some items done" 30 done_at_least core 100
"$DROVER" pause core >/dev/null || fail "drover pause on the cluster"
# Paused is mirrored into every partition's hash, wherever it lives.
for p in $(seq 0 15); do
    [ "$(R HGET "drover:{core.$p}:state" state)" = paused ] || fail "partition $p not paused"
done
"$DROVER" status core | grep -q paused || fail "status does not say paused"
"$DROVER" resume core >/dev/null || fail "drover resume on the cluster"
# --exit-when-done workers leave a paused job; a new one finishes it.
bg w3 "$WORKER" --job core --batch 50 --concurrency 4 --stats-ms 0 --exit-when-done --no-stdin \
    -- sh "$TMP/h.sh" {id} 3
wait_exit 120 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "coordinator exited $EXIT_CODE"
[ "$(status_num core done)" -eq 3000 ] || fail "done count $(status_num core done), expected 3000"
all_done_ids core 16 >"$TMP/done"
seq 1 3000 | sort >"$TMP/want"
cmp -s "$TMP/done" "$TMP/want" || fail "the done record differs from the source"
sort -u "$TMP"/out-* | cmp -s - "$TMP/want" || fail "the handlers did not see every id"
say "core job on the cluster: 3000 ids over 16 partitions on 3 masters, done record = source"

"$DROVER" purge core | grep -q "^job core: purged" || fail "drover purge core"
[ -z "$(keys_anywhere 'drover:{core*')" ] || fail "keys of core are left: $(keys_anywhere 'drover:{core*' | head -3)"
# Stray keys under the job's tags on several masters: the sweep SCANs every master.
"$DROVER" submit --id core --range 1..10 --partitions 2 --quiet >/dev/null
"$DROVER" cancel core >/dev/null
for p in 7 8 9 10 11 12; do R SET "drover:{core.$p}:pending" x >/dev/null; done
"$DROVER" purge core | grep -q "6 stray keys swept" || fail "stray keys on several masters not swept"
[ -z "$(keys_anywhere 'drover:{core*')" ] || fail "stray keys are left"
say "purge on the cluster: every partition and stray key gone from every master"
# String ids: each partition's done record is HASH buckets its scripts create and split without
# declaring them (lua/lib/done.lua); the hash tag keeps them on the partition's master.
seq -f 'user-%05g' 1 4000 >"$TMP/users.txt"
"$DROVER" submit --id str --file "$TMP/users.txt" --partitions 8 --quiet >/dev/null
bg coord "$DROVER" run str
coord=$LAST_PID
bg w4 "$WORKER" --job str --handler noop --batch 100 --concurrency 100 --stats-ms 0 --exit-when-done
wait_exit 120 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "coordinator of str exited $EXIT_CODE"
all_done_ids str 8 >"$TMP/done"
sort "$TMP/users.txt" | cmp -s - "$TMP/done" || fail "str: the done record differs from the source"
for p in $(seq 0 7); do
    nb=$(R HGET "drover:{str.$p}:state" done_buckets)
    [ "$nb" -gt 10 ] || fail "str.$p: $nb buckets, expected its buckets split past 10"
    for m in $masters; do
        [ "$(keys_on "$m" "drover:{str.$p}:state" | wc -l)" -eq 1 ] || continue
        [ "$(keys_on "$m" "drover:{str.$p}:done:*" | wc -l)" -eq "$nb" ] ||
            fail "str.$p: not all $nb buckets are on its master $m"
    done
done
"$DROVER" purge str | grep -q "^job str: purged$" || fail "drover purge str"
[ -z "$(keys_anywhere 'drover:{str*')" ] || fail "keys of str are left"
say "string ids on the cluster: 4000 ids in split buckets beside their partitions, purged"

# Bad cluster and sentinel URLs are bad input: exit 2, a reason, nothing done.
for bad in "redis+cluster://127.0.0.1:1/3|only database 0" "redis+cluster://127.0.0.1:1,|missing host" \
    "redis+sentinel://127.0.0.1:1|needs the master's name"; do
    rc=0
    "$DROVER" list --redis "${bad%%|*}" 2>"$TMP/err" || rc=$?
    [ "$rc" -eq 2 ] && grep -q "${bad#*|}" "$TMP/err" || fail "URL ${bad%%|*}: exit $rc, $(cat "$TMP/err")"
done
say "bad cluster and sentinel URLs: exit 2 with the reason"
echo "PASS: drover on Redis Cluster"
