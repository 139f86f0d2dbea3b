#!/usr/bin/env python3
"""A scripted HTTP/1.1 server for drover's end-to-end tests and benchmarks (loopback only).

    python3 httpd.py --port-file FILE [--max-seconds N] [--quiet | --verbose]

Binds 127.0.0.1 on a free port, writes the port to FILE (atomically: FILE.tmp, rename), and
serves until SIGTERM/SIGINT or --max-seconds (default 900: a test server is bounded in time).
Nothing is logged per request unless --verbose (--quiet is the default, accepted for clarity).
Keep-alive throughout (every answer has a Content-Length). Any method; the request body
(Content-Length or chunked) is read fully. Every request is counted by its path (without the
query), except the /_ control endpoints. A malformed number in a path gives 400.

Control:
  GET  /_stats            {"total": N, "paths": {path: count}, "active": A, "peak": P}
                          (A: requests being answered now; P: the most at once since reset)
  GET  /_log              [[t_start, path, status], ...]  (t: Unix seconds; last 100000)
  POST /_reset            clears counts, log and state
  POST /_hold?from=K      /list pages >= K wait (up to 120 s) until POST /_release
  GET  /_bodies?path=P    [{"t", "status", "headers", "body"}, ...]: what /hook* recorded for P
  POST /_hookmode?path=P&fail=1|0   /hook path P answers 500 (1) or 200 (0) from now on,
                          whatever its N says (cleared by /_reset)

Behaviour ("..." is any further path, used to make paths unique per item):
  /echo/...                      200, the request as JSON (method, path, query, headers, body)
  /ok/...                        200 "ok /..."
  /delay/MS/...                  200 "ok" after MS milliseconds
  /status/CODE/...               CODE, "status CODE" (no body for 204/304)
  /flaky/N/CODE/...              CODE for the first N requests to this path, then 200
  /ratelimit/N/SECS/...          429 with Retry-After: SECS for the first N, then 200
  /ratelimit-date/N/SECS/...     the same with Retry-After as an HTTP date
  /unavailable/N/...             503 without Retry-After for the first N, then 200
  /throttle-all/SECS/RA/...      every request to a /throttle-all path in the SECS seconds from
                                 the first one (since /_reset): 503 with Retry-After: RA (RA
                                 "-": 429 without one); then 200
  /hang/...                      never answers (closes without an answer after 120 s)
  /reset/...                     closes the connection with a TCP RST, no answer
  /big/BYTES/...                 200 with BYTES bytes of "x"
  /redirect/CODE/REST...         CODE, Location: /REST... (query kept)
  /redirect-abs/CODE/HOST/PORT/REST...   CODE, Location: http://HOST:PORT/REST... (query kept)
  /list/NPAGES/PER?cursor=K      {"data": {"items": [{"id": "pK-i", "n": i, "name": ...}]},
                                  "meta": {"next": "K+1" or null}}
  /list-url/NPAGES/PER?page=K    the same, "next" a relative URL
  /list-bad/...                  200 "not json" (Content-Type: application/json)
  /store/N/PER?after=ID          a listing that shrinks: of the ids s000001..sN (N of them,
                                 zero-padded to 6 digits) not yet deleted, the first PER after ID
                                 (all from the start without after=): {"items": [{"id": ID,
                                 "n": K}], "next": the last id, or null once none are left after it}
  DELETE /store/N/ID             deletes ID from store N: 200, or 404 if it is gone already
  /store-offset/N/PER?offset=K   the same store listed by offset (next: K+PER): what a listing
                                 that shrinks under its consumer does to offsets
  /hook/N/...                    records the request (headers, body, answer) for /_bodies; 500
                                 for the first N requests to this path, then 200
  /hook-ra/N/SECS/...            the same with 503 and Retry-After: SECS for the first N
  anything else                  404 "not found"
"""
import argparse
import collections
import email.utils
import json
import os
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
COUNTS = {}
LOG = collections.deque(maxlen=100000)
HOLD = {"from": None}
ACTIVE = {"now": 0, "peak": 0}
BODIES = {}
HOOKMODE = {}
STORES = {}  # N -> set of the ids deleted so far
THROTTLE = {"since": None}
RELEASE = threading.Event()
VERBOSE = False


def reset():
    with LOCK:
        COUNTS.clear()
        LOG.clear()
        BODIES.clear()
        HOOKMODE.clear()
        STORES.clear()
        THROTTLE["since"] = None
        HOLD["from"] = None
        RELEASE.clear()
        ACTIVE["peak"] = ACTIVE["now"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if VERBOSE:
            sys.stderr.write("httpd: " + (fmt % args) + "\n")

    def done_active(self):
        """The request stops counting as active before its answer goes out, so a client
        that has the answer never sees it counted."""
        if getattr(self, "active", False):
            self.active = False
            with LOCK:
                ACTIVE["now"] -= 1

    def send(self, code, body=b"", ctype="text/plain", headers=()):
        self.done_active()
        if isinstance(body, str):
            body = body.encode()
        if code < 200 or code in (204, 304):
            body = b""  # these never carry a body; a stray one would corrupt keep-alive
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if code >= 200 and code != 204:
            self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return code

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers, then the blank line
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_any(self):
        t = time.time()
        try:
            body = self.read_body()
        except ValueError:
            self.close_connection = True
            return self.send(400, "bad body")
        u = urlsplit(self.path)
        path, query = u.path, parse_qs(u.query)
        seg = [s for s in path.split("/") if s]
        if path.startswith("/_"):
            return self.control(path, query)
        with LOCK:
            COUNTS[path] = COUNTS.get(path, 0) + 1
            nth = COUNTS[path]
            entry = [t, path, 0]
            LOG.append(entry)
            ACTIVE["now"] += 1
            ACTIVE["peak"] = max(ACTIVE["peak"], ACTIVE["now"])
            self.active = True
        try:
            entry[2] = self.behave(seg, path, u.query, query, body, nth)
        except (ValueError, IndexError):
            entry[2] = self.send(400, "bad request path")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.done_active()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_any

    def control(self, path, query):
        if path == "/_stats":
            with LOCK:
                doc = {"total": sum(COUNTS.values()), "paths": dict(COUNTS),
                       "active": ACTIVE["now"], "peak": ACTIVE["peak"]}
            return self.send(200, json.dumps(doc), "application/json")
        if path == "/_log":
            with LOCK:
                doc = list(LOG)
            return self.send(200, json.dumps(doc), "application/json")
        if path == "/_reset":
            reset()
            return self.send(200, "reset")
        if path == "/_hold":
            try:
                k = int(query.get("from", ["0"])[0])
            except ValueError:
                return self.send(400, "bad from")
            with LOCK:
                HOLD["from"] = k
                RELEASE.clear()
            return self.send(200, "held")
        if path == "/_bodies":
            with LOCK:
                doc = list(BODIES.get(query.get("path", [""])[0], []))
            return self.send(200, json.dumps(doc), "application/json")
        if path == "/_hookmode":
            with LOCK:
                HOOKMODE[query.get("path", [""])[0]] = query.get("fail", ["0"])[0] == "1"
            return self.send(200, "ok")
        if path == "/_release":
            RELEASE.set()
            return self.send(200, "released")
        return self.send(404, "not found")

    def behave(self, seg, path, rawq, query, body, nth):
        kind = seg[0] if seg else ""
        if kind == "echo":
            doc = {"method": self.command, "path": path, "query": rawq,
                   "headers": {k.lower(): v for k, v in self.headers.items()},
                   "body": body.decode("utf-8", "replace")}
            return self.send(200, json.dumps(doc), "application/json")
        if kind == "ok":
            return self.send(200, "ok /" + "/".join(seg[1:]))
        if kind == "delay":
            time.sleep(int(seg[1]) / 1000.0)
            return self.send(200, "ok")
        if kind == "status":
            return self.send(int(seg[1]), "status " + seg[1])
        if kind == "flaky":
            if nth <= int(seg[1]):
                return self.send(int(seg[2]), "flaky " + seg[2])
            return self.send(200, "ok")
        if kind in ("ratelimit", "ratelimit-date"):
            if nth <= int(seg[1]):
                secs = int(seg[2])
                ra = str(secs) if kind == "ratelimit" else \
                    email.utils.formatdate(time.time() + secs, usegmt=True)
                return self.send(429, "slow down", headers=[("Retry-After", ra)])
            return self.send(200, "ok")
        if kind == "throttle-all":
            with LOCK:
                if THROTTLE["since"] is None:
                    THROTTLE["since"] = time.time()
                throttling = time.time() < THROTTLE["since"] + float(seg[1])
            if throttling:
                if seg[2] == "-":
                    return self.send(429, "slow down")
                return self.send(503, "busy", headers=[("Retry-After", seg[2])])
            return self.send(200, "ok")
        if kind == "unavailable":
            if nth <= int(seg[1]):
                return self.send(503, "unavailable")
            return self.send(200, "ok")
        if kind == "hang":
            for _ in range(1200):
                time.sleep(0.1)
            self.close_connection = True
            return 0
        if kind == "reset":
            # linger on, 0 s: the close sends a RST. (The descriptor really closes once
            # finish() drops rfile/wfile; nothing is written to it before then.)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return 0
        if kind == "big":
            size = int(seg[1])
            self.done_active()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b"x" * 65536
            while size > 0 and self.command != "HEAD":
                self.wfile.write(chunk[:min(size, len(chunk))])
                size -= len(chunk)
            return 200
        if kind == "redirect":
            loc = "/" + "/".join(seg[2:]) + ("?" + rawq if rawq else "")
            return self.send(int(seg[1]), "moved", headers=[("Location", loc)])
        if kind == "redirect-abs":
            loc = "http://%s:%s/%s" % (seg[2], seg[3], "/".join(seg[4:]))
            loc += "?" + rawq if rawq else ""
            return self.send(int(seg[1]), "moved", headers=[("Location", loc)])
        if kind in ("list", "list-url"):
            npages, per = int(seg[1]), int(seg[2])
            k = int(query.get("cursor" if kind == "list" else "page", ["0"])[0])
            with LOCK:
                held = HOLD["from"]
            if held is not None and k >= held:
                RELEASE.wait(120)
            items = [{"id": "p%d-%d" % (k, i), "n": i, "name": "item %d/%d" % (k, i)}
                     for i in range(per)]
            nxt = None
            if k + 1 < npages:
                nxt = str(k + 1) if kind == "list" else \
                    "/list-url/%d/%d?page=%d" % (npages, per, k + 1)
            doc = {"data": {"items": items}, "meta": {"next": nxt}}
            return self.send(200, json.dumps(doc), "application/json")
        if kind in ("hook", "hook-ra"):
            with LOCK:
                failing = HOOKMODE.get(path, nth <= int(seg[1]))
            code = (500 if kind == "hook" else 503) if failing else 200
            hdrs = [("Retry-After", str(int(seg[2])))] if failing and kind == "hook-ra" else []
            rec = {"t": time.time(), "status": code, "method": self.command,
                   "headers": {k.lower(): v for k, v in self.headers.items()},
                   "body": body.decode("utf-8", "replace")}
            with LOCK:
                BODIES.setdefault(path, []).append(rec)
            return self.send(code, "hook %d" % code, headers=hdrs)
        if kind in ("store", "store-offset"):
            n = int(seg[1])
            if self.command == "DELETE":
                sid = seg[2]
                with LOCK:  # (send() takes LOCK too: answer after it is released)
                    gone = STORES.setdefault(n, set())
                    ok = sid not in gone and sid.startswith("s") and 1 <= int(sid[1:]) <= n
                    if ok:
                        gone.add(sid)
                return self.send(200, "deleted") if ok else self.send(404, "no such item")
            with LOCK:
                gone = STORES.setdefault(n, set())
                left = ["s%06d" % i for i in range(1, n + 1) if "s%06d" % i not in gone]
            per = int(seg[2])
            if kind == "store":
                after = query.get("after", [""])[0]
                page = [x for x in left if x > after][:per]
                more = page and page[-1] < left[-1]
                nxt = page[-1] if more else None
            else:
                off = int(query.get("offset", ["0"])[0])
                page = left[off:off + per]
                nxt = str(off + per) if off + per < len(left) else None
            doc = {"items": [{"id": x, "n": int(x[1:])} for x in page], "next": nxt}
            return self.send(200, json.dumps(doc), "application/json")
        if kind == "list-bad":
            return self.send(200, "not json", "application/json")
        return self.send(404, "not found")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def server_bind(self):
        # HTTPServer.server_bind would resolve the host name (getfqdn), slow without DNS
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        pass  # a client that went away (a killed worker, a timeout) is not the server's error


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description="scripted HTTP server for drover's tests")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--max-seconds", type=float, default=900)
    ap.add_argument("--quiet", action="store_true", help="no per-request log (the default)")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    a = ap.parse_args()
    VERBOSE = a.verbose and not a.quiet
    # Handler threads may be blocked (/hang, /_hold): leave at once, without joining them.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    srv = Server(("127.0.0.1", 0), Handler)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, a.port_file)
    timer = threading.Timer(a.max_seconds, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
