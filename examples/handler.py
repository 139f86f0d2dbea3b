#!/usr/bin/env python3
"""A drover --serve handler in Python, standard library only. Copy it and change handle().

    drover-worker --job J --serve 4 -- python3 handler.py

drover writes one JSON object a line on stdin (the first one says the protocol version) and
reads one answer a line from stdout for each item. docs/handler-protocol.md has the details."""
import json
import sys


class Permanent(Exception):
    """An item that can never succeed: dead at once, no retry."""


def handle(item_id, item):
    """Your work for one item (item is None when the id is the item). Return its result (kept
    when the job is submitted with --keep-results BYTES: drover results prints it), raise
    Permanent to give up on the item, any other exception to have it retried."""
    if item_id.startswith("bad"):
        raise Permanent("refusing %s" % item_id)
    return {"length": len(item_id)}


hello = json.loads(sys.stdin.readline())
if hello.get("version") != 1:
    sys.exit("unknown handler protocol: %r" % hello)
for line in sys.stdin:
    msg = json.loads(line)
    try:
        answer = {"id": msg["id"], "ok": True, "result": handle(msg["id"], msg.get("item"))}
    except Permanent as e:
        answer = {"id": msg["id"], "error": str(e), "retry": False}
    except Exception as e:  # anything else: worth another attempt
        answer = {"id": msg["id"], "error": "%s: %s" % (type(e).__name__, e), "retry": True}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()  # drover waits for this line: never leave it in a buffer
