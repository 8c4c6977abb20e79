#!/usr/bin/env python3
"""Memory of apt-dht-proxy under many open connections, for one or more binaries side by
side in one run (bench/proxy/README.md, "Connections").

Two figures per binary, VmRSS and RssAnon of the daemon:
  idle     N connections opened and left idle (no request sent);
  waiting  N connections, each with a GET in progress for one .deb whose mirror accepts
           and never answers, so N requests wait on one shared download.

    python3 bench/proxy/conns.py [-n 990] BINARY [BINARY ...]

Everything listens on 127.0.0.1; the mirror is a socket here that never answers. Every
process it starts is stopped by PID; the run is bounded (about 10 s per binary)."""
import argparse, os, signal, socket, subprocess, sys, tempfile, time


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


def measure(binary, n, mirror_port, work):
    port = free_port()
    cfg = os.path.join(work, f"conf-{port}.yaml")
    with open(cfg, "w") as f:
        f.write(f"listen: {{address: 127.0.0.1, port: {port}}}\n"
                f"cache: {{dir: {work}/cache-{port}}}\nstate_dir: {work}/state-{port}\n"
                "dht: {mode: off}\nupstream: {connect_timeout: 30, stall_timeout: 60}\n"
                "log: {level: error}\n")
    proc = subprocess.Popen([binary, "-f", "-c", cfg], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    conns = []
    try:
        wait_port(port, proc)
        time.sleep(0.3)
        base = rss(proc.pid)
        for _ in range(n):
            conns.append(socket.create_connection(("127.0.0.1", port), 2))
        time.sleep(1.0)
        idle = rss(proc.pid)
        req = (f"GET /127.0.0.1:{mirror_port}/debian/pool/main/h/hello/hello_1_amd64.deb "
               "HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").encode()
        for c in conns:
            c.sendall(req)
        time.sleep(2.0)
        waiting = rss(proc.pid)
        return base, idle, waiting
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
    print(f"{'binary':40} {'idle KiB':>10} {'+N idle':>10} {'+N waiting':>11} {'RssAnon w.':>11}")
    with tempfile.TemporaryDirectory() as work:
        for b in a.binaries:
            base, idle, waiting = measure(os.path.abspath(b), a.n, mport, work)
            print(f"{b[-40:]:40} {base['VmRSS']:>10} {idle['VmRSS'] - base['VmRSS']:>10} "
                  f"{waiting['VmRSS'] - base['VmRSS']:>11} {waiting['RssAnon']:>11}")
    hung.close()


if __name__ == "__main__":
    sys.exit(main())
