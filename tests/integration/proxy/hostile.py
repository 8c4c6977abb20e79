#!/usr/bin/env python3
"""Hostile and load clients for the proxy's integration tests (loopback only, bounded).

  hostile.py flood HOST PORT PATH N SECONDS [keepalive]
      N concurrent GETs of PATH, all connected before any is sent (with keepalive, on
      persistent connections, each closed by the client once its body is in); prints
      "ok=A err=B" (A answers of status 200 with a body, B anything else) once all end
      or SECONDS pass (the rest count as errors).
  hostile.py slowloris SRC HOST PORT N SECONDS
      from address SRC, opens N connections and sends a request head one byte at a time,
      one byte per connection every 5 s, never finishing; holds them SECONDS, then closes.
      Prints "open=K" (connections the proxy accepted and kept open) at the end.
"""
import socket, sys, threading, time


def read_answer(s, keepalive):
    """The answer's first bytes; reads to the end of the body (Content-Length) or EOF."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            return buf
        buf += b
    head, _, body = buf.partition(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    got = len(body)
    while length is None or got < length:
        b = s.recv(65536)
        if not b:
            break
        got += len(b)
    return head[:64]


def flood(host, port, path, n, seconds, keepalive=False):
    deadline = time.monotonic() + seconds
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port), 10)
        socks.append(s)
    conn = "" if keepalive else "Connection: close\r\n"
    req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{conn}\r\n".encode()
    for s in socks:
        s.sendall(req)
    ok = err = 0
    lock = threading.Lock()

    def reader(s):
        nonlocal ok, err
        buf = b""
        try:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            buf = read_answer(s, keepalive)
        except OSError:
            pass
        good = buf.startswith(b"HTTP/1.1 200") or buf.startswith(b"HTTP/1.0 200")
        with lock:
            if good:
                ok += 1
            else:
                err += 1
        s.close()

    threads = [threading.Thread(target=reader, args=(s,)) for s in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()) + 1)
    print(f"ok={ok} err={err + sum(t.is_alive() for t in threads)}")


def slowloris(src, host, port, n, seconds):
    socks = []
    for _ in range(n):
        try:
            s = socket.socket()
            s.bind((src, 0))
            s.settimeout(2)
            s.connect((host, port))
            socks.append(s)
        except OSError:
            s.close()
    head = b"GET /x/dists/a/InRelease HTTP/1.1\r\nHost: x\r\n"
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        for s in list(socks):
            try:
                s.send(head[i % len(head):i % len(head) + 1])
            except OSError:
                socks.remove(s)
                s.close()
        i += 1
        time.sleep(min(5, max(0, end - time.monotonic())))
    alive = 0
    for s in socks:
        try:
            s.setblocking(False)
            if s.recv(1) == b"":
                continue
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
        s.close()
    print(f"open={alive}")


if __name__ == "__main__":
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    threading.stack_size(256 * 1024)  # a thousand reader threads
    a = sys.argv
    if a[1] == "flood":
        flood(a[2], int(a[3]), a[4], int(a[5]), float(a[6]), len(a) > 7 and a[7] == "keepalive")
    elif a[1] == "slowloris":
        slowloris(a[2], a[3], int(a[4]), int(a[5]), float(a[6]))
    else:
        sys.exit("usage: see the file's docstring")
