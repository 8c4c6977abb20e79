#!/usr/bin/env python3
"""Memory of apt-dht-proxy under many open connections, for one or more binaries side by
side in one run (bench/proxy/README.md, "Connections").

Three figures per binary, VmRSS and RssAnon of the daemon:
  idle     N connections opened and left idle (no request sent);
  kept     N connections, each of which fetched one small cached .deb and is kept open
           (HTTP keep-alive: idle between requests);
  waiting  N connections, each with a GET in progress for one .deb whose mirror accepts
           and never answers, so N requests wait on one shared download.

    python3 bench/proxy/conns.py [-n 990] BINARY [BINARY ...]

Everything listens on 127.0.0.1; the mirror is a socket here that never answers. Every
process it starts is stopped by PID; the run is bounded (about 10 s per binary)."""
import argparse, http.server, os, signal, socket, subprocess, sys, tempfile, threading, time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon"):
                out[k] = int(v.split()[0])
    return out


def wait_port(port, proc, limit=10.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("the proxy exited")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the proxy did not listen")


class Small(http.server.BaseHTTPRequestHandler):
    """A mirror that serves one small .deb."""
    body = os.urandom(2048)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *a):
        pass


def fetch_kept(conns, path):
    """One GET on each connection; reads the answer; leaves the connection open."""
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    for c in conns:
        c.sendall(req)
    for c in conns:
        c.settimeout(10)
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = c.recv(65536)
            if not b:
                break
            buf += b
        head, _, body = buf.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        while len(body) < n:
            b = c.recv(65536)
            if not b:
                break
            body += b


def measure(binary, n, mirror_port, small_port, work):
    port = free_port()
    cfg = os.path.join(work, f"conf-{port}.yaml")
    proc = None
    # a build with connection budgets needs them wide for N connections from one address;
    # an older build knows no such key and refuses it: then it is started without
    for budget in (", max_per_client: 100000, max_connections: 100000", ""):
        with open(cfg, "w") as f:
            f.write(f"listen: {{address: 127.0.0.1, port: {port}{budget}}}\n"
                    f"cache: {{dir: {work}/cache-{port}}}\nstate_dir: {work}/state-{port}\n"
                    "dht: {mode: off}\nupstream: {connect_timeout: 30, stall_timeout: 60}\n"
                    "log: {level: error}\n")
        proc = subprocess.Popen([binary, "-f", "-c", cfg], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            proc.wait(0.5)
        except subprocess.TimeoutExpired:
            break
    conns = []
    try:
        wait_port(port, proc)
        time.sleep(0.3)
        base = rss(proc.pid)
        conns = [socket.create_connection(("127.0.0.1", port), 2) for _ in range(n)]
        time.sleep(1.0)
        idle = rss(proc.pid)
        for c in conns:
            c.close()
        small = f"/127.0.0.1:{small_port}/debian/pool/main/s/small/small_1_all.deb"
        time.sleep(1.0)
        one = socket.create_connection(("127.0.0.1", port), 2)
        fetch_kept([one], small)  # now it is cached
        one.close()
        conns = [socket.create_connection(("127.0.0.1", port), 2) for _ in range(n)]
        fetch_kept(conns, small)
        time.sleep(1.0)
        kept = rss(proc.pid)
        for c in conns:
            c.close()
        time.sleep(1.0)
        conns = [socket.create_connection(("127.0.0.1", port), 2) for _ in range(n)]
        req = (f"GET /127.0.0.1:{mirror_port}/debian/pool/main/h/hello/hello_1_amd64.deb "
               "HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").encode()
        for c in conns:
            c.sendall(req)
        time.sleep(2.0)
        waiting = rss(proc.pid)
        return base, idle, kept, waiting
    finally:
        for c in conns:
            c.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=990, help="connections (the proxy takes 1000)")
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * a.n + 256)), hard))
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(4096)  # accepts (the kernel does), never answers
    mport = hung.getsockname()[1]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Small)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    sport = srv.server_address[1]
    print(f"VmRSS in KiB, N = {a.n}")
    print(f"{'binary':40} {'at start':>9} {'+N idle':>8} {'+N kept':>8} {'+N waiting':>11}")
    with tempfile.TemporaryDirectory() as work:
        for b in a.binaries:
            base, idle, kept, waiting = measure(os.path.abspath(b), a.n, mport, sport, work)
            d = lambda x: x["VmRSS"] - base["VmRSS"]
            print(f"{b[-40:]:40} {base['VmRSS']:>9} {d(idle):>8} {d(kept):>8} {d(waiting):>11}")
    srv.shutdown()
    hung.close()


if __name__ == "__main__":
    sys.exit(main())
