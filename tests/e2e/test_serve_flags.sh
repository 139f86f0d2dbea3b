#!/usr/bin/env bash
# drover-worker --serve: flags that do not go together are refused with exit 2 and a message that
# says what to change, before the worker connects or claims anything.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

refused() { # refused "what the message says" ARGS...: exit 2 with that message
    local want=$1 rc=0
    shift
    "$WORKER" "$@" >"$TMP/out" 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || fail "drover-worker $* exited $rc, expected 2: $(cat "$TMP/out")"
    grep -qF -- "$want" "$TMP/out" || fail "drover-worker $*: no clear error: $(cat "$TMP/out")"
}

refused "add -- CMD" --job x --serve 2
refused "pick one" --job x --serve 2 --stdin-batch 4 -- cat
refused "drop --no-stdin" --job x --serve 2 --no-stdin -- cat
refused "cannot hold" --job x --serve 2 -- echo '{id}'
refused "go with --serve N" --job x --serve-inflight 4 -- cat
refused "go with --serve N" --job x --serve-max-items 10 -- cat
# Nothing was claimed or registered by any of them.
[ "$(R DBSIZE)" -eq 0 ] || fail "a refused worker wrote to Redis: $(R --scan | head -3)"
say "serve flags: every bad combination refused with exit 2 and a message"
