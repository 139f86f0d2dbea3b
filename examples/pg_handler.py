#!/usr/bin/env python3
"""A drover --serve handler holding one PostgreSQL connection for all its items (Debian:
python3-psycopg2). Each item is the id of a row of
    CREATE TABLE items (id bigint PRIMARY KEY, done boolean NOT NULL DEFAULT false,
                        updates int NOT NULL DEFAULT 0, attempt int, lease_token bigint);
which it marks done, one transaction per item, fenced: a write from an older delivery of the
item than the last one that wrote it changes nothing (docs/handler-protocol.md, "Fencing").

    PGDATABASE=app drover-worker --job J --serve 8 -- python3 pg_handler.py"""
import json
import sys

import psycopg2

db = psycopg2.connect("")  # libpq's PG* variables or a DSN: opened once, kept warm
if json.loads(sys.stdin.readline()).get("version") != 1:
    sys.exit("unknown handler protocol")
for line in sys.stdin:
    msg = json.loads(line)
    fence = (msg["attempt"], msg["lease_token"])
    try:
        with db, db.cursor() as cur:  # commits, or rolls back on an exception
            cur.execute("UPDATE items SET done = true, updates = updates + 1, attempt = %s,"
                        " lease_token = %s WHERE id = %s AND (attempt IS NULL OR"
                        " (attempt, lease_token) <= (%s, %s))", (*fence, int(msg["id"]), *fence))
            answer = {"id": msg["id"], "ok": True, "result": {"updated": cur.rowcount}}
    except psycopg2.OperationalError as e:  # the connection broke: retry, start afresh
        print(json.dumps({"id": msg["id"], "error": str(e).strip(), "retry": True}), flush=True)
        sys.exit(1)
    except (psycopg2.Error, ValueError) as e:  # bad id or data: it would fail again
        answer = {"id": msg["id"], "error": str(e).strip(), "retry": False}
    print(json.dumps(answer), flush=True)
