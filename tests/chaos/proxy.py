#!/usr/bin/env python3
"""A loopback TCP proxy between drover processes and Redis, with a control port to cut it.

    proxy.py --upstream PORT --port-file F --control-port-file C [--max-seconds S]

Listens on a free loopback port (written to F) and forwards each connection to
127.0.0.1:PORT. The control port (written to C) takes one line per connection:

    cut SECONDS [refuse|blackhole]

refuse (the default) closes every current connection at once and, for SECONDS, closes each
new one as soon as it is accepted (the client sees a reset or EOF: a dropped link).
blackhole stops forwarding on every current connection and accepts new ones without
forwarding anything for SECONDS (the client's commands time out: a silent partition); when it
ends the stalled connections are closed. Either way the answer is "ok N" with N the
connections cut. "stats" answers "conns N cuts N". The proxy exits after --max-seconds.
"""
import argparse
import asyncio
import sys
import time


class Proxy:
    def __init__(self, upstream):
        self.upstream = upstream
        self.conns = set()  # (client_writer, upstream_writer or None)
        self.cut_until = 0.0
        self.mode = "refuse"
        self.cuts = 0

    def cutting(self):
        return time.monotonic() < self.cut_until

    async def pump(self, reader, writer, pair):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                while self.cutting() and self.mode == "blackhole" and pair in self.conns:
                    await asyncio.sleep(0.05)  # stalled: hold the bytes, send nothing
                if pair not in self.conns:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.drop(pair)

    def drop(self, pair):
        if pair in self.conns:
            self.conns.discard(pair)
        for w in pair:
            if w is None:
                continue
            try:
                w.transport.abort()
            except Exception:
                pass

    async def client(self, creader, cwriter):
        if self.cutting():
            if self.mode == "refuse":
                cwriter.transport.abort()
                return
            # blackhole: hold the connection open, forward nothing, close when the cut ends
            pair = (cwriter, None)
            self.conns.add(pair)
            while self.cutting() and pair in self.conns:
                await asyncio.sleep(0.05)
            self.drop(pair)
            return
        try:
            ureader, uwriter = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            cwriter.transport.abort()
            return
        pair = (cwriter, uwriter)
        self.conns.add(pair)
        await asyncio.gather(self.pump(creader, uwriter, pair), self.pump(ureader, cwriter, pair))

    async def control(self, reader, writer):
        try:
            line = (await reader.readline()).decode(errors="replace").split()
            if line[:1] == ["cut"] and len(line) in (2, 3):
                secs = float(line[1])
                mode = line[2] if len(line) == 3 else "refuse"
                if mode not in ("refuse", "blackhole") or not 0 < secs <= 600:
                    raise ValueError
                self.mode = mode
                self.cut_until = time.monotonic() + secs
                self.cuts += 1
                n = len(self.conns)
                if mode == "refuse":
                    for pair in list(self.conns):
                        self.drop(pair)
                else:
                    asyncio.get_running_loop().call_later(secs, self.end_blackhole,
                                                          set(self.conns))
                writer.write(b"ok %d\n" % n)
            elif line[:1] == ["stats"]:
                writer.write(b"conns %d cuts %d\n" % (len(self.conns), self.cuts))
            else:
                writer.write(b"error: expected 'cut SECONDS [refuse|blackhole]' or 'stats'\n")
            await writer.drain()
        except (ValueError, IndexError):
            writer.write(b"error: bad cut\n")
        finally:
            writer.close()

    def end_blackhole(self, pairs):
        for pair in pairs:
            self.drop(pair)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", type=int, required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--control-port-file", required=True)
    ap.add_argument("--max-seconds", type=float, default=3600)
    a = ap.parse_args()
    p = Proxy(a.upstream)
    srv = await asyncio.start_server(p.client, "127.0.0.1", 0)
    ctl = await asyncio.start_server(p.control, "127.0.0.1", 0)
    # The control port file first: the port file is what callers wait for.
    with open(a.control_port_file + ".tmp", "w") as f:
        f.write("%d\n" % ctl.sockets[0].getsockname()[1])
    import os
    os.rename(a.control_port_file + ".tmp", a.control_port_file)
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.sockets[0].getsockname()[1])
    os.rename(a.port_file + ".tmp", a.port_file)
    await asyncio.sleep(a.max_seconds)
    print("proxy: --max-seconds reached, exiting", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
