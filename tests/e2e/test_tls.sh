#!/usr/bin/env bash
# TLS to Redis (rediss://): a CA, server and client certificates made here with openssl; a job
# end to end over mutual TLS; a wrong CA, a wrong host name, an expired certificate, a plain
# server on a rediss:// URL and a TLS server on a redis:// URL each fail within a few seconds
# naming the reason; reconnect after the TLS server restarts on the same port; a cluster over
# TLS (--tls-cluster yes); the master found through a sentinel on a TLS port (rediss+sentinel://).
source "$DROVER_SRC_DIR/tests/support/e2e.sh"

# ---- certificates --------------------------------------------------------------------------
C=$TMP/certs
mkdir -p "$C"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
mkcert() { # mkcert NAME CA DAYS SAN: NAME.key and NAME.crt signed by CA
    openssl req "${ec[@]}" -keyout "$C/$1.key" -out "$C/$1.csr" -subj "/CN=drover-$1" 2>/dev/null
    openssl x509 -req -in "$C/$1.csr" -CA "$C/$2.crt" -CAkey "$C/$2.key" -CAcreateserial \
        -days "$3" -out "$C/$1.crt" -extfile <(printf 'subjectAltName=%s\n' "$4") 2>/dev/null ||
        fail "openssl could not make $1"
}
for ca in ca otherca; do
    openssl req -x509 "${ec[@]}" -keyout "$C/$ca.key" -out "$C/$ca.crt" -days 2 \
        -subj "/CN=drover-test-$ca" 2>/dev/null || fail "openssl could not make $ca"
done
mkcert server ca 2 IP:127.0.0.1          # valid for the address only: "localhost" mismatches
mkcert expired ca -1 IP:127.0.0.1        # its notAfter is a day before its notBefore
mkcert client ca 2 DNS:drover-worker

# ---- a TLS redis-server ----------------------------------------------------------------------
TLS_PID="" TLS_PORT="" TLS_ARGS=()
tls_cli() { # tls_cli PORT args...: redis-cli over mutual TLS
    local p=$1
    shift
    redis-cli --tls --cacert "$C/ca.crt" --cert "$C/client.crt" --key "$C/client.key" -p "$p" "$@"
}
# tls_server PORT CERT [args...]: redis-server with only a TLS port on 127.0.0.1, stopped by PID
# at cleanup (NODE_PIDS). Returns 1 when it does not answer (port taken).
tls_server() {
    local port=$1 cert=$2 i
    shift 2
    mkdir -p "$TMP/tls-$port"
    redis-server --port 0 --tls-port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$TMP/tls-$port" --logfile "$TMP/tls-$port.log" --tls-cert-file "$C/$cert.crt" \
        --tls-key-file "$C/$cert.key" --tls-ca-cert-file "$C/ca.crt" "$@" &
    LAST_TLS_PID=$!
    NODE_PIDS+=("$LAST_TLS_PID")
    for i in $(seq 200); do
        # --insecure: the expired certificate's server must answer too.
        tls_cli "$port" --insecure ping 2>/dev/null | grep -q PONG && return 0
        kill -0 "$LAST_TLS_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
# start_tls NAME CERT [args...]: tls_server on a free port; sets NAME_PORT and NAME_PID.
start_tls() {
    local name=$1 cert=$2 try port
    shift 2
    for try in $(seq 20); do
        port=$((20000 + RANDOM % 40000))
        if tls_server "$port" "$cert" "$@"; then
            printf -v "${name}_PORT" '%s' "$port"
            printf -v "${name}_PID" '%s' "$LAST_TLS_PID"
            return 0
        fi
        kill "$LAST_TLS_PID" 2>/dev/null || true
        wait "$LAST_TLS_PID" 2>/dev/null || true
    done
    fail "could not start a TLS redis-server"
}

start_tls S server --tls-auth-clients yes --appendonly yes
MTLS="ca=$C/ca.crt&cert=$C/client.crt&key=$C/client.key"
GOOD="rediss://127.0.0.1:$S_PORT/0?$MTLS"

# ---- a job end to end over mutual TLS ----------------------------------------------------------
export DROVER_REDIS_URL=$GOOD
"$DROVER" submit --id t1 --range 1..2000 --partitions 4 --quiet >/dev/null || fail "submit over TLS"
bg coord "$DROVER" run t1
coord=$LAST_PID
bg w1 "$WORKER" --job t1 --handler noop --batch 50 --concurrency 50 --stats-ms 0 --exit-when-done
wait_exit 60 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "coordinator over TLS exited $EXIT_CODE"
[ "$(status_num t1 done)" -eq 2000 ] || fail "done $(status_num t1 done), expected 2000"
[ "$(tls_cli "$S_PORT" BITCOUNT 'drover:{t1.0}:done')" -eq 500 ] || fail "partition 0 not all done"
"$DROVER" metrics | grep -q '^drover_items_done_total{job="t1"} 2000' ||
    fail "drover metrics over TLS: $("$DROVER" metrics | grep t1 | head -3)"
say "a job of 2000 ids over mutual TLS: done, metrics read over TLS"

# ---- each failure: non-zero within a few seconds, the reason named ---------------------------
# expect_refusal WHAT URL NEEDLE: `drover list` at URL fails naming NEEDLE, within 10 s.
expect_refusal() {
    local what=$1 url=$2 needle=$3 start=$SECONDS rc=0
    DROVER_REDIS_URL=$url "$DROVER" list >"$TMP/out" 2>"$TMP/err" || rc=$?
    [ "$rc" -ne 0 ] || fail "$what: drover list succeeded"
    grep -qF -- "$needle" "$TMP/err" || fail "$what: expected \"$needle\", got: $(cat "$TMP/err")"
    [ $((SECONDS - start)) -le 10 ] || fail "$what: took $((SECONDS - start)) s"
    say "$what: $(head -c 300 "$TMP/err")"
}
# redis-server sends its CA along with its certificate, so a client that does not trust that CA
# finds a self-signed certificate at the top of the chain.
expect_refusal "wrong CA" "rediss://127.0.0.1:$S_PORT?ca=$C/otherca.crt" \
    "certificate verify failed: self-signed certificate in certificate chain"
expect_refusal "system CA store" "rediss://127.0.0.1:$S_PORT" \
    "certificate verify failed: self-signed certificate in certificate chain"
expect_refusal "wrong host name" "rediss://localhost:$S_PORT?$MTLS" \
    "certificate verify failed: hostname mismatch"
expect_refusal "no client certificate" "rediss://127.0.0.1:$S_PORT?ca=$C/ca.crt" \
    "the server wants a client certificate"
expect_refusal "TLS server on a plain URL" "redis://127.0.0.1:$S_PORT" "expects TLS"
expect_refusal "missing CA file" "rediss://127.0.0.1:$S_PORT?ca=$C/nope.crt" \
    "cannot read the CA file $C/nope.crt"
start_tls E expired --tls-auth-clients no
expect_refusal "expired certificate" "rediss://127.0.0.1:$E_PORT?ca=$C/ca.crt" \
    "certificate verify failed: certificate has expired"
start_redis
expect_refusal "plain server on a TLS URL" "rediss://127.0.0.1:$REDIS_PORT?ca=$C/ca.crt" \
    "not speaking TLS"
export DROVER_REDIS_URL=$GOOD # start_redis pointed it at the plain server
# A server that stops answering: the reply over TLS times out like a plain one.
tls_cli "$S_PORT" CLIENT PAUSE 3000 ALL >/dev/null
start=$SECONDS rc=0
"$DROVER" list --command-timeout-ms 300 >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" -ne 0 ] && grep -q "timed out waiting for a reply" "$TMP/err" ||
    fail "a paused TLS server: exit $rc, $(cat "$TMP/err")"
[ $((SECONDS - start)) -le 2 ] || fail "a paused TLS server: took $((SECONDS - start)) s"
say "a paused TLS server: $(head -c 200 "$TMP/err")"
tls_cli "$S_PORT" CLIENT UNPAUSE >/dev/null

# insecure=1 connects to the expired one, with a warning.
DROVER_REDIS_URL="rediss://127.0.0.1:$E_PORT?insecure=1" "$DROVER" list >/dev/null 2>"$TMP/err" ||
    fail "insecure=1: $(cat "$TMP/err")"
grep -q "insecure=1: the server's certificate and host name are NOT checked" "$TMP/err" ||
    fail "insecure=1 without its warning: $(cat "$TMP/err")"
say "insecure=1 connects to the expired certificate, warning: $(head -c 120 "$TMP/err")"

# ---- reconnect after the TLS server restarts on the same port --------------------------------
# The job's rate limit keeps it running for seconds, so the restart falls in the middle of it;
# both programs must see Redis go and come back over TLS.
"$DROVER" submit --id t2 --range 1..3000 --partitions 2 --rate 400 --quiet >/dev/null
bg coord2 "$DROVER" run t2
coord=$LAST_PID
bg w2 "$WORKER" --job t2 --handler noop --batch 20 --concurrency 20 --stats-ms 0 --exit-when-done
wait_for "some items done" 30 done_at_least t2 100
# SHUTDOWN flushes the AOF (nothing is lost); the same port again, the same certificates.
tls_cli "$S_PORT" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
wait_exit 30 "$S_PID"
wait_for "the worker to lose Redis" 30 grep -q "redis lost" "$TMP/w2.log"
wait_for "the coordinator to lose Redis" 30 grep -q "redis lost" "$TMP/coord2.log"
tls_server "$S_PORT" server --tls-auth-clients yes --appendonly yes ||
    fail "could not restart the TLS server on $S_PORT"
wait_for "the worker to reconnect" 30 grep -q "redis reconnected" "$TMP/w2.log"
wait_for "the coordinator to reconnect" 30 grep -q "redis reconnected" "$TMP/coord2.log"
wait_exit 60 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "coordinator after the TLS restart exited $EXIT_CODE"
[ "$(status_num t2 done)" -eq 3000 ] || fail "t2 done $(status_num t2 done), expected 3000"
say "TLS server restarted mid-job: $(grep -m1 'redis reconnected' "$TMP/w2.log" | cut -c26-)"

# ---- Sentinel over TLS: the sentinel and the master it names both on TLS ports -----------------
for try in $(seq 20); do
    sport=$((20000 + RANDOM % 40000))
    mkdir -p "$TMP/sentinel-$sport"
    cat >"$TMP/sentinel-$sport/sentinel.conf" <<CONF
port 0
tls-port $sport
bind 127.0.0.1
tls-cert-file $C/server.crt
tls-key-file $C/server.key
tls-ca-cert-file $C/ca.crt
tls-replication yes
sentinel monitor mm 127.0.0.1 $S_PORT 1
CONF
    redis-server "$TMP/sentinel-$sport/sentinel.conf" --sentinel --dir "$TMP/sentinel-$sport" \
        --logfile "$TMP/sentinel-$sport.log" &
    spid=$!
    NODE_PIDS+=("$spid")
    sentinel_knows() { tls_cli "$sport" sentinel get-master-addr-by-name mm | grep -q "$S_PORT"; }
    for i in $(seq 200); do
        sentinel_knows 2>/dev/null && break
        kill -0 "$spid" 2>/dev/null || break
        sleep 0.05
    done
    sentinel_knows 2>/dev/null && break
    kill "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
done
sentinel_knows || fail "could not start a TLS sentinel"
SURL="rediss+sentinel://127.0.0.1:$sport/mm?$MTLS"
[ "$(DROVER_REDIS_URL=$SURL status_num t1 done)" -eq 2000 ] ||
    fail "drover status through a TLS sentinel: $(DROVER_REDIS_URL=$SURL "$DROVER" status t1 2>&1)"
expect_refusal "TLS sentinel on a plain URL" "redis+sentinel://127.0.0.1:$sport/mm" "expects TLS"
say "rediss+sentinel://: the master found through a TLS sentinel, read over TLS"

# ---- a cluster over TLS: clients, cluster bus and CLUSTER SLOTS all on TLS ports -------------
cports=()
for i in 1 2 3; do
    start_tls N server --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-node-timeout 1000 --tls-cluster yes --tls-replication yes
    cports+=("$N_PORT")
done
tls_cli "${cports[0]}" --cluster create "${cports[@]/#/127.0.0.1:}" --cluster-replicas 0 \
    --cluster-yes >"$TMP/cluster-create.log" 2>&1 || fail "redis-cli --cluster create over TLS"
tls_cluster_ok() {
    local p
    for p in "${cports[@]}"; do
        tls_cli "$p" cluster info | grep -q '^cluster_state:ok' || return 1
    done
}
wait_for "the TLS cluster to form" 30 tls_cluster_ok
export DROVER_REDIS_URL="rediss+cluster://127.0.0.1:${cports[0]},127.0.0.1:${cports[1]}?$MTLS"
"$DROVER" submit --id tc --range 1..1500 --partitions 9 --quiet >/dev/null || fail "submit on the TLS cluster"
bg coordc "$DROVER" run tc
coord=$LAST_PID
bg wc "$WORKER" --job tc --handler noop --batch 50 --concurrency 50 --stats-ms 0 --exit-when-done
wait_exit 60 "$coord"
[ "$EXIT_CODE" -eq 0 ] || fail "coordinator on the TLS cluster exited $EXIT_CODE"
[ "$(status_num tc done)" -eq 1500 ] || fail "tc done $(status_num tc done), expected 1500"
for p in "${cports[@]}"; do
    n=$(tls_cli "$p" --scan --pattern 'drover:{tc.*}:state' | wc -l)
    [ "$n" -gt 0 ] || fail "TLS cluster node $p holds none of the 9 partitions"
done
say "a job of 1500 ids over 9 partitions on a 3-master TLS cluster: done"
