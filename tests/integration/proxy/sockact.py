#!/usr/bin/env python3
"""Socket activation the way systemd does it, for test_proxy_sockact.sh.

    sockact.py --urls FILE --restarts N --pid-file FILE -- CMD ARGS...

Binds a listening TCP socket on 127.0.0.1 (a free port, printed on the first line of
stdout), puts it at fd 3 and starts CMD with LISTEN_FDS=1 and LISTEN_PID set to CMD's
own pid (sd_listen_fds(3)). A client thread requests the URLs of FILE (paths, one a line)
in a loop, each on a new connection, while the daemon is restarted N times: SIGTERM,
wait for it to exit (20 s at most), start it again on the same socket. The socket stays
open in this process throughout, so connections made during a restart wait in its
queue. Prints "requests OK FAILED" and exits 0 only if no request failed and every
restart happened. Every daemon it starts it stops by its pid (also on SIGTERM), and
each pid is appended to --pid-file for the test's own cleanup.
"""

import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time

LAUNCH = 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" "$@"'


class Clients:
    def __init__(self, port, paths):
        self.port, self.paths = port, paths
        self.ok = self.failed = 0
        self.errors = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def one(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request("GET", path, headers={"Connection": "close"})
            r = c.getresponse()
            body = r.read()
            want = r.getheader("Content-Length")
            good = r.status == 200 and (want is None or int(want) == len(body))
            return good, "%s %d %d bytes" % (path, r.status, len(body))
        except (OSError, http.client.HTTPException) as e:
            return False, "%s: %r" % (path, e)
        finally:
            c.close()

    def run(self):
        while not self.stop.is_set():
            for p in self.paths:
                good, what = self.one(p)
                with self.lock:
                    if good:
                        self.ok += 1
                    else:
                        self.failed += 1
                        self.errors.append(what)
                if self.stop.is_set():
                    break


def stop_daemon(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--urls", required=True)
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--pid-file", required=True)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    paths = [l.strip() for l in open(a.urls) if l.strip()]

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)
    port = ls.getsockname()[1]
    if ls.fileno() != 3:
        os.dup2(ls.fileno(), 3)
    os.set_inheritable(3, True)
    print(port, flush=True)

    def start():
        p = subprocess.Popen(["sh", "-c", LAUNCH] + cmd, pass_fds=(3,))
        with open(a.pid_file, "a") as f:
            f.write("%d\n" % p.pid)
        return p

    proc = start()
    signal.signal(signal.SIGTERM, lambda *x: (stop_daemon(proc), sys.exit(2)))
    cl = Clients(port, paths)
    # warm-up: every path once (the cache fills; the daemon is up)
    for p in paths:
        good, what = cl.one(p)
        if not good:
            print("warm-up failed: %s" % what, flush=True)
            stop_daemon(proc)
            return 1
    t = threading.Thread(target=cl.run, daemon=True)
    t.start()
    done = 0
    for i in range(a.restarts):
        time.sleep(1.0)
        if not stop_daemon(proc):
            print("restart %d: the daemon did not stop in 20 s" % i, flush=True)
            break
        proc = start()
        done += 1
    time.sleep(2.0)
    cl.stop.set()
    t.join(60)
    stopped = stop_daemon(proc)
    print("requests %d %d" % (cl.ok, cl.failed), flush=True)
    for e in cl.errors[:10]:
        print("failed: %s" % e, flush=True)
    return 0 if cl.failed == 0 and done == a.restarts and stopped and cl.ok > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
