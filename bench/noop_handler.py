#!/usr/bin/python3
"""The same no-op handler logic for every way of running Python (bench/handlers.sh):
  exec   one item per process: exit 0
  batch  --stdin-batch: one "ok" line per item line
  serve  --serve: the line protocol (docs/handler-protocol.md), {"id":...,"ok":true} per item"""
import json
import sys

mode = sys.argv[1]
if mode == "batch":
    for line in sys.stdin:
        sys.stdout.write("ok\n")
elif mode == "serve":
    sys.stdin.readline()  # the protocol's version line
    out = sys.stdout
    for line in sys.stdin:
        out.write(json.dumps({"id": json.loads(line)["id"], "ok": True}) + "\n")
        out.flush()
