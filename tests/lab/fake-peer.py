#!/usr/bin/env python3
"""A dishonest or hostile apt-dht peer for the LAN lab and the loopback tests.

Answers the peer route of apt-dht-proxy, GET|HEAD /~/sha256/<64 hex>, for the
files listed in a sha256sum-style map ("HEX  PATH" per line, PATH relative to
--root), with the right status, headers and length but wrong bytes:

  --corrupt tail     the real content with its last byte inverted (default): a
                     downloader that hands bytes on before the hash is checked
                     would pass everything but the last byte
  --corrupt random   pseudo-random bytes of the right length
  --corrupt none     the real content (for the --behave modes below)

and how it behaves on a GET (HEAD is always answered at once):

  --behave normal    answers at once and sends the body (default)
  --behave silent    accepts the connection, reads the request, never answers
  --behave stall     sends the headers, then nothing
  --behave trickle   sends the headers, then the body at 1 byte per second
  --behave slow      sends the headers, then the body at --rate bytes/second
  --behave half      sends the headers and half the body, then closes

Every mode holds its connection until the client leaves or the peer stops.

Range requests (one range) are answered 206 with the same corruption applied
at the file's offsets. Unknown hashes get 404. One line per request is
appended to --log: "CLIENT METHOD PATH STATUS BYTES". Stops on SIGTERM.
"""

import argparse
import hashlib
import os
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROUTE = re.compile(r"^/~/sha256/([0-9a-f]{64})$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def record(self, status, nbytes):
        with self.server.lock:
            if self.server.log:
                self.server.log.write("%s %s %s %d %d\n" % (
                    self.client_address[0], self.command, self.path, status, nbytes))
                self.server.log.flush()

    def content(self, hexsum):
        path = self.server.files.get(hexsum)
        if path is None:
            return None
        with open(os.path.join(self.server.root, path), "rb") as f:
            data = bytearray(f.read())
        if self.server.mode == "none":
            pass
        elif self.server.mode == "random":
            data = bytearray(hashlib.shake_256(hexsum.encode()).digest(len(data)))
        elif data:
            data[-1] ^= 0xFF
        return bytes(data)

    def answer(self, body_wanted):
        m = ROUTE.match(self.path)
        data = self.content(m.group(1)) if m else None
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.record(404, 0)
            return
        start, end, status = 0, len(data) - 1, 200
        rng = self.headers.get("Range")
        if rng:
            rm = re.match(r"^bytes=(\d*)-(\d*)$", rng.strip())
            if rm and (rm.group(1) or rm.group(2)):
                if rm.group(1):
                    start = int(rm.group(1))
                    end = int(rm.group(2)) if rm.group(2) else len(data) - 1
                else:
                    start = max(0, len(data) - int(rm.group(2)))
                end = min(end, len(data) - 1)
                if start > end:
                    self.send_response(416)
                    self.send_header("Content-Range", "bytes */%d" % len(data))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    self.record(416, 0)
                    return
                status = 206
        body = data[start:end + 1]
        behave = self.server.behave if body_wanted else "normal"
        if behave == "silent":
            self.record(0, 0)
            self.server.stop.wait()
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, len(data)))
        self.end_headers()
        sent = 0
        if body_wanted:
            sent = self.send_body(body, behave)
        self.record(status, sent)

    def send_body(self, body, behave):
        """Sends the body as --behave says; returns the bytes sent."""
        stop = self.server.stop
        try:
            self.wfile.flush()
            if behave == "stall":
                stop.wait()
                self.close_connection = True
                return 0
            if behave == "half":
                self.wfile.write(body[:len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return len(body) // 2
            if behave in ("trickle", "slow"):
                rate = 1 if behave == "trickle" else max(1, self.server.rate)
                step = max(1, rate // 10)  # ten writes a second
                sent = 0
                while sent < len(body):
                    self.wfile.write(body[sent:sent + step])
                    self.wfile.flush()
                    sent += len(body[sent:sent + step])
                    if stop.wait(step / rate):
                        break
                self.close_connection = True
                return sent
            self.wfile.write(body)
            return len(body)
        except OSError:
            self.close_connection = True
            return 0

    def do_GET(self):
        self.answer(True)

    def do_HEAD(self):
        self.answer(False)


def main():
    ap = argparse.ArgumentParser(description="dishonest apt-dht peer")
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--root", required=True, help="directory the map's paths are relative to")
    ap.add_argument("--map", required=True, help="sha256sum-style list of served files")
    ap.add_argument("--log", help="append one line per request here")
    ap.add_argument("--corrupt", choices=["tail", "random", "none"], default="tail")
    ap.add_argument("--behave", choices=["normal", "silent", "stall", "trickle", "slow", "half"],
                    default="normal")
    ap.add_argument("--rate", type=int, default=71680, help="bytes/second of --behave slow")
    args = ap.parse_args()

    files = {}
    with open(args.map) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                files[parts[0]] = parts[1]
    server = ThreadingHTTPServer((args.bind, args.port), Handler)
    server.daemon_threads = True
    server.files = files
    server.root = args.root
    server.mode = args.corrupt
    server.lock = threading.Lock()
    server.behave = args.behave
    server.rate = args.rate
    server.stop = threading.Event()
    server.log = open(args.log, "a") if args.log else None

    stop = server.stop
    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    signal.signal(signal.SIGINT, lambda s, f: stop.set())
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    print("listening", flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
