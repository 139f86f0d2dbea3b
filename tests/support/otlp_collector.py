#!/usr/bin/env python3
"""A fixture OpenTelemetry collector for drover's tests (loopback only): OTLP/HTTP JSON traces.

    python3 otlp_collector.py --port-file FILE --out SPANS.jsonl [--hang]

Binds 127.0.0.1 on a free port and writes it to FILE (atomically). Each POST /v1/traces body is
checked against the OTLP JSON shape drover must send: resourceSpans[].resource.attributes (with
service.name), scopeSpans[].scope.name and spans[], each span with traceId (32 lowercase hex,
not all zeros), spanId (16 hex, not all zeros), parentSpanId (absent or 16 hex), name, kind,
startTimeUnixNano <= endTimeUnixNano (decimal strings), attributes [{key, value: {stringValue |
intValue}}] and status.code. A body that passes gets 200 and its spans appended to SPANS.jsonl
(one flat object a line: traceId, spanId, parentSpanId, name, attrs {key: value}, status); one
that fails gets 400 and the reason is appended to SPANS.jsonl.errors. --hang: accept requests
and never answer (a collector that has stopped answering). Serves until SIGTERM or 600 s.
"""
import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def check_span(s):
    if not HEX32.match(s.get("traceId", "")) or set(s["traceId"]) == {"0"}:
        return "traceId %r is not 32 hex digits" % s.get("traceId")
    if not HEX16.match(s.get("spanId", "")) or set(s["spanId"]) == {"0"}:
        return "spanId %r is not 16 hex digits" % s.get("spanId")
    if "parentSpanId" in s and not HEX16.match(s["parentSpanId"]):
        return "parentSpanId %r is not 16 hex digits" % s["parentSpanId"]
    if not isinstance(s.get("name"), str) or not s["name"]:
        return "no name"
    if not isinstance(s.get("kind"), int):
        return "no kind"
    try:
        if int(s["startTimeUnixNano"]) > int(s["endTimeUnixNano"]):
            return "ends before it starts"
    except (KeyError, ValueError, TypeError):
        return "times are not decimal strings"
    attrs = {}
    for a in s.get("attributes", []):
        v = a.get("value", {})
        if "stringValue" in v:
            attrs[a["key"]] = v["stringValue"]
        elif "intValue" in v:
            attrs[a["key"]] = int(v["intValue"])  # a string in OTLP JSON: int() checks it
        else:
            return "attribute %r has no string or int value" % a.get("key")
    if not isinstance(s.get("status", {}).get("code"), int):
        return "no status.code"
    return attrs


def check(body):
    spans = []
    rs = body.get("resourceSpans")
    if not isinstance(rs, list) or not rs:
        return "no resourceSpans", None
    for r in rs:
        keys = [a.get("key") for a in r.get("resource", {}).get("attributes", [])]
        if "service.name" not in keys:
            return "resource without service.name", None
        for ss in r.get("scopeSpans", []):
            if not ss.get("scope", {}).get("name"):
                return "scopeSpans without scope.name", None
            for s in ss.get("spans", []):
                attrs = check_span(s)
                if isinstance(attrs, str):
                    return attrs, None
                spans.append({"traceId": s["traceId"], "spanId": s["spanId"],
                              "parentSpanId": s.get("parentSpanId", ""), "name": s["name"],
                              "attrs": attrs, "status": s["status"]})
    if not spans:
        return "no spans", None
    return None, spans


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        if ARGS.hang:
            time.sleep(600)
            return
        err, spans = None, None
        if self.path != "/v1/traces":
            err = "POST to %s, not /v1/traces" % self.path
        elif "application/json" not in self.headers.get("Content-Type", ""):
            err = "Content-Type %r" % self.headers.get("Content-Type")
        else:
            try:
                err, spans = check(json.loads(raw))
            except (ValueError, AttributeError, TypeError) as e:
                err = "not OTLP JSON: %s" % e
        with LOCK:
            if err:
                with open(ARGS.out + ".errors", "a") as f:
                    f.write(err + "\n")
            else:
                with open(ARGS.out, "a") as f:
                    for s in spans:
                        f.write(json.dumps(s) + "\n")
        body = b"{}" if not err else err.encode()
        self.send_response(400 if err else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


LOCK = threading.Lock()
ap = argparse.ArgumentParser()
ap.add_argument("--port-file", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--hang", action="store_true")
ARGS = ap.parse_args()
srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
signal.alarm(600)
with open(ARGS.port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(ARGS.port_file + ".tmp", ARGS.port_file)
srv.serve_forever()
