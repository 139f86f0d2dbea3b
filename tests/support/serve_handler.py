#!/usr/bin/python3
"""A --serve handler for tests/unit/test_serve.c. argv[1] is the mode:
  script     each item does what its id starts with: crash (stderr line, exit 3), bad (a line
             that is not protocol), hang (never answered), fail (error, retry false), later
             (error, retry_after_ms 1500), slow (answered after 0.2 s); anything else: ok with
             result {"pid", "len" of the item's text, "attempt",
             "token", "job", "deadline": 1 when the line had deadline_ms}
  echo       ok with the item itself as the result
  reverse K  holds K items, then answers them newest first
  chatty     writes "hello" to stdout before reading anything, then as script
  noread     never reads stdin
  noisy      writes 5000 lines (250 KB) to stderr first, then as script
  closeout   closes its stdout after the version line, then reads on
  sleep S    answers each item ok after S seconds (one at a time); writes "started ID" to the
             file $SERVE_LOG when it gets an item, and "EOF" when its stdin ends
It checks the protocol's first line and exits 0 at the end of stdin."""
import json
import os
import sys
import time

mode = sys.argv[1]


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


if mode == "noread":
    while True:
        time.sleep(3600)
if mode == "chatty":
    print("hello", flush=True)
if mode == "noisy":
    for i in range(5000):
        sys.stderr.write("noise line %05d: more than a pipe holds in all\n" % i)
    sys.stderr.flush()

hello = json.loads(sys.stdin.readline())
if hello.get("drover") != "handler-protocol" or hello.get("version") != 1:
    sys.exit(2)

if mode == "closeout":
    os.close(1)
    for line in sys.stdin:
        pass
    sys.exit(0)

if mode == "sleep":
    log = open(os.environ["SERVE_LOG"], "a")
    for line in sys.stdin:
        iid = json.loads(line)["id"]
        log.write("started %s\n" % iid)
        log.flush()
        time.sleep(float(sys.argv[2]))
        send({"id": iid, "ok": True})
    log.write("EOF\n")
    sys.exit(0)

held = []
for line in sys.stdin:
    m = json.loads(line)
    iid = m["id"]
    if mode == "echo":
        send({"id": iid, "ok": True, "result": m.get("item")})
    elif mode == "reverse":
        held.append(iid)
        if len(held) == int(sys.argv[2]):
            for h in reversed(held):
                send({"id": h, "ok": True})
            held = []
    elif iid.startswith("crash"):
        sys.stderr.write("dying on %s\n" % iid)
        sys.stderr.flush()
        os._exit(3)
    elif iid.startswith("bad"):
        print("garbage instead of an answer", flush=True)
    elif iid.startswith("hang"):
        continue
    elif iid.startswith("fail"):
        send({"id": iid, "error": "no such row", "retry": False})
    elif iid.startswith("later"):
        send({"id": iid, "error": "rate limited", "retry": True, "retry_after_ms": 1500})
    else:
        if iid.startswith("slow"):
            time.sleep(0.2)
        item = m.get("item")
        size = len(item) if isinstance(item, str) else len(json.dumps(item)) if item else 0
        send({"id": iid, "ok": True, "extra": "ignored",
              "result": {"pid": os.getpid(), "len": size, "attempt": m["attempt"],
                         "token": m["lease_token"], "job": m["job"],
                         "deadline": int("deadline_ms" in m)}})
