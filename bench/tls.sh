#!/usr/bin/env bash
# TLS against plain text: the same no-op job on the same redis-server, once through its plain
# port (redis://) and once through its TLS port (rediss://, certificates verified, made here
# with openssl), each measured like bench/core.sh: items/s from submit to the coordinator's
# exit, Redis CPU per item (INFO cpu), and drover's CPU per item (coordinator, workers and
# submit: this shell's children, from bash's `times`).
# Usage: bench/tls.sh [ITEMS] [PARTITIONS] [WORKERS] [BATCH] [CONCURRENCY] [ROUNDS]
#   bench/tls.sh 300000 16 2 1000 1000 3
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-300000} parts=${2:-16} nworkers=${3:-2} batch=${4:-1000} conc=${5:-$batch}
rounds=${6:-3}
. bench/lib.sh
bench_bins
BENCH_TLS_DIR=$BENCH_TMP/certs
mkdir -p "$BENCH_TLS_DIR"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
(
    cd "$BENCH_TLS_DIR"
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 2 -subj /CN=bench-ca
    openssl req "${ec[@]}" -keyout server.key -out server.csr -subj /CN=bench-server
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -out server.crt -extfile <(printf 'subjectAltName=IP:127.0.0.1\n')
) >/dev/null 2>&1 || bench_die "openssl could not make the certificates"
bench_redis_start
plain=$DROVER_REDIS_URL
tls="rediss://127.0.0.1:$BENCH_TLS_PORT/0?ca=$BENCH_TLS_DIR/ca.crt"

# children_cpu: user + system seconds of this shell's reaped children so far (bash's `times`,
# run in this shell: in $(...) it would see only the subshell's children).
children_cpu() {
    times >"$BENCH_TMP/times"
    tail -1 "$BENCH_TMP/times" | awk '{
        s = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] }
        printf "%.3f", s }' >"$BENCH_TMP/cpu"
}

printf '%-8s %10s %12s %16s %16s\n' mode items/s "wall (s)" "Redis us/item" "drover us/item"
for round in $(seq "$rounds"); do
    for mode in plain tls; do
        export DROVER_REDIS_URL=${!mode}
        children_cpu
        c0=$(cat "$BENCH_TMP/cpu")
        bench_drover "$items" "$parts" "$nworkers" "$batch" "$conc" noop --range "1..$items"
        children_cpu
        c1=$(cat "$BENCH_TMP/cpu")
        printf '%-8s %10s %12.2f %16s %16.2f\n' "$mode" "$R_rate" "$R_secs" "$R_cpu" \
            "$(awk -v a="$c0" -v b="$c1" -v n="$R_done" 'BEGIN {print (b - a) * 1e6 / n}')"
    done
done
