# shellcheck shell=bash
# Sourced by tests/e2e/test_serve_postgres.sh and bench/handlers.sh: a PostgreSQL server of
# the caller's own (Debian postgresql), in DIR, on a free loopback port with its unix socket in
# DIR, no fsync; stopped by its PID. PostgreSQL refuses to run as root: then it runs as the
# postgres user (setpriv), DIR is made its own and DIR's parent traversable.

PG_PID=""
PG_DIR=""

# pg_bin: sets PGBIN to the newest installed server's bin dir; returns 1 when there is none.
pg_bin() {
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/postgres" ]
}

# pg_start DIR: initdb and start; exports PGHOST, PGPORT, PGUSER, PGDATABASE for psql and libpq
# (and sets PG_PID). Returns 1 with the reason on stderr when the server does not start.
pg_start() {
    local dir=$1 as=()
    pg_bin || { echo "no PostgreSQL server installed" >&2; return 1; }
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        as=(setpriv --reuid postgres --regid postgres --init-groups --)
        chmod 711 "$(dirname "$dir")"
        chown postgres: "$dir"
    fi
    "${as[@]}" "$PGBIN/initdb" -D "$dir/data" -U drover -A trust --no-sync -E UTF8 \
        >"$dir.initdb.log" 2>&1 || { tail -5 "$dir.initdb.log" >&2; return 1; }
    PG_DIR=$dir
    for _ in $(seq 20); do
        PGPORT=$((20000 + RANDOM % 40000))
        if pg_launch; then
            export PGHOST=$dir PGPORT PGUSER=drover PGDATABASE=postgres
            return 0
        fi
        pg_stop
    done
    tail -5 "$dir.log" >&2
    return 1
}

# pg_launch: starts the server of PG_DIR on PGPORT (sets PG_PID); 0 once it accepts connections.
pg_launch() {
    local as=()
    [ "$(id -u)" -ne 0 ] || as=(setpriv --reuid postgres --regid postgres --init-groups --)
    "${as[@]}" "$PGBIN/postgres" -D "$PG_DIR/data" -p "$PGPORT" -k "$PG_DIR" \
        -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
        -c full_page_writes=off -c max_connections=100 >>"$PG_DIR.log" 2>&1 &
    PG_PID=$!
    for _ in $(seq 200); do
        "$PGBIN/pg_isready" -q -h "$PG_DIR" -p "$PGPORT" && break
        kill -0 "$PG_PID" 2>/dev/null || break
        sleep 0.05
    done
    "$PGBIN/pg_isready" -q -h "$PG_DIR" -p "$PGPORT"
}

# pg_restart: starts the server pg_stop stopped again, on its data dir and port. 1 when it
# does not come up.
pg_restart() {
    pg_launch || { tail -5 "$PG_DIR.log" >&2; return 1; }
}

# pg_stop: a fast shutdown (SIGINT) of the server pg_start started, SIGKILL after 10 s.
pg_stop() {
    [ -n "$PG_PID" ] || return 0
    kill -INT "$PG_PID" 2>/dev/null || true
    for _ in $(seq 200); do
        kill -0 "$PG_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$PG_PID" 2>/dev/null || true
    wait "$PG_PID" 2>/dev/null || true
    PG_PID=""
}

# pg_q SQL: runs SQL, prints rows unaligned, stops at the first error.
pg_q() { "$PGBIN/psql" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
