#!/usr/bin/env bash
# A handler gets fds 0, 1 and 2 and nothing else of the worker's (not its Redis socket: hiredis
# does not set close-on-exec, and a handler must not be able to act as a worker in Redis), for
# per-item exec, --stdin-batch and --serve; also when the worker itself was started with fds
# 0-2 closed, where its pipe ends land on 0-2 and must still reach the handler as working
# stdin/stdout/stderr pipes.
source "$DROVER_SRC_DIR/tests/support/e2e.sh"
start_redis

# fds.py MODE TAG [ID]: writes "FD TARGET" lines for its own open fds to $TMP/fds.TAG.ID (the
# directory fd the listing opens is closed by the time its link is read, and skipped), says
# something on stderr, and answers as MODE expects.
cat >"$TMP/fds.py" <<EOF
import json, os, sys
def listing(tag, item):
    lines = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + name)
        except OSError:
            continue
        lines.append("%s %s" % (name, target))
    with open("$TMP/fds.%s.%s" % (tag, item), "w") as f:
        f.write("\n".join(sorted(lines)) + "\n")
    sys.stderr.write("listed %s\n" % item)
    sys.stderr.flush()
mode, tag = sys.argv[1], sys.argv[2]
if mode == "exec":
    listing(tag, sys.argv[3])
elif mode == "batch":
    for line in sys.stdin:
        listing(tag, line.strip())
        print("ok", flush=True)
else:
    sys.stdin.readline()
    for line in sys.stdin:
        msg = json.loads(line)
        listing(tag, msg["id"])
        print(json.dumps({"id": msg["id"], "ok": True}), flush=True)
EOF

# run TAG WRAP HANDLER-ARGS...: one job of 2 items through one worker started by WRAP.
run() {
    local tag=$1 wrap=$2
    shift 2
    "$DROVER" submit --id "$tag" --range 1..2 --quiet >/dev/null
    bg "coord_$tag" "$DROVER" run "$tag"
    local c=$LAST_PID
    bg "w_$tag" sh -c "$wrap"' "$@"' sh "$WORKER" --job "$tag" --exit-when-done "$@"
    wait_exit 60 "$c"
    [ "$EXIT_CODE" -eq 0 ] || fail "drover run $tag exited $EXIT_CODE: $(cat "$TMP/w_$tag.log")"
    for i in 1 2; do
        local f="$TMP/fds.$tag.$i"
        [ -s "$f" ] || fail "$tag: item $i left no fd listing"
        [ "$(cut -d' ' -f1 "$f" | tr '\n' ' ')" = "0 1 2 " ] ||
            fail "$tag: the handler holds fds other than 0-2: $(tr '\n' ';' <"$f")"
        grep -q '^2 pipe:' "$f" || fail "$tag: the handler's stderr is not a pipe: $(tr '\n' ';' <"$f")"
    done
}

for wrap in "exec" "exec <&- >&- 2>&-"; do
    t=$([ "$wrap" = exec ] && echo open || echo closed)
    run "exec_$t" "$wrap" -- python3 "$TMP/fds.py" exec "exec_$t" {id}
    run "batch_$t" "$wrap" --stdin-batch 2 -- python3 "$TMP/fds.py" batch "batch_$t"
    run "serve_$t" "$wrap" --serve 1 -- python3 "$TMP/fds.py" serve "serve_$t"
    for tag in "batch_$t" "serve_$t"; do
        grep -q '^0 pipe:' "$TMP/fds.$tag.1" && grep -q '^1 pipe:' "$TMP/fds.$tag.1" ||
            fail "$tag: stdin/stdout are not pipes: $(tr '\n' ';' <"$TMP/fds.$tag.1")"
    done
    say "handlers hold fds 0-2 only, as working pipes (worker's own fds 0-2: $t)"
done
