#!/usr/bin/env python3
"""Lookup cost of the apt-dht DHT in a loopback network of real processes.

How to run (from a built tree; it is not part of `make check`):

    ./bench/dht/lookup_bench.py                       # 200 nodes, both dialects
    ./bench/dht/lookup_bench.py --nodes 50 --lookups 40 --modes bep5
    ./bench/dht/lookup_bench.py --node build/dht/apt-dht-node --out result.md

For each dialect it starts N `apt-dht-node run` processes on 127.0.0.1
(node i bootstraps from nodes 0, 1, 2 and i-1), waits until every one
answers `ping`, lets the start-up lookups settle, announces --keys random
keys (each by a one-shot node bootstrapped from a random node), then runs
--lookups one-shot `get` commands for a random announced key, each
bootstrapped from a random node, --parallel at a time. It records per
lookup: success (exit 0 and the announced contact printed), wall time, and
the number of queries and rounds; and per `run` process its resident
memory (VmRSS) after the lookups. It prints a Markdown table (also written
to --out when given).

Queries and rounds: apt-dht-node prints no lookup counters on success, so
each getter runs under strace (when installed; --no-trace turns it off) and
its UDP traffic is decoded (KRPC is bencoded): "queries" counts the lookup's
own queries (get_value in apt-dht, get_peers in bep5; the join that
precedes them is counted apart as "join"), and "rounds" is the longest
chain of referrals: a node the getter already knew when its lookup began is
round 1, a node first learned from a round-k answer is round k+1, and the
lookup's rounds are the highest round among the nodes it queried. If the
tool prints "queries=N rounds=M" itself, those figures are used instead.

A one-shot getter starts empty, so its queries and rounds include reaching
the network from its single bootstrap node: that is the cost a new node
(or a proxy's resolve of a fresh key after start-up) pays.

Everything stays on 127.0.0.1; every process is started by this script,
tracked by PID and stopped (SIGTERM, then SIGKILL after 5 s) on exit; every
wait has a deadline.
"""

import argparse
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

STARTED = []          # every Popen we started, stopped in stop_all()
STARTED_LOCK = threading.Lock()


def spawn(argv, **kw):
    p = subprocess.Popen(argv, **kw)
    with STARTED_LOCK:
        STARTED.append(p)
    return p


def stop_all():
    with STARTED_LOCK:
        procs = [p for p in STARTED if p.poll() is None]
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
    end = time.monotonic() + 5
    for p in procs:
        try:
            p.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def free_ports(n):
    """n distinct ports free for UDP and TCP on 127.0.0.1 (held while chosen)."""
    held, ports = [], []
    while len(ports) < n:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
        except OSError:
            held.append(u)
            t.close()
            continue
        held += [u, t]
        ports.append(port)
    for s in held:
        s.close()
    return ports


def run_once(argv, timeout):
    """Run a one-shot command; returns (rc, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    p = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return (124, out, err + "\n(timeout)", time.monotonic() - t0)
    return (p.returncode, out, err, time.monotonic() - t0)


STAT_RE = re.compile(r"\b(queries|rounds|replies|timeouts)\s*[=:]\s*(\d+)")


def parse_stats(text):
    """Counters the tool prints about a lookup ("queries=12 rounds=3" or
    "queries: 12"), from stdout or stderr; {} when it prints none."""
    found = {}
    for name, value in STAT_RE.findall(text):
        found[name] = int(value)
    return found


def bdecode(buf, i=0, depth=0):
    """Minimal bencode decoder for traced datagrams; returns (value, next)."""
    if depth > 32:
        raise ValueError("too deep")
    c = buf[i:i + 1]
    if c == b"i":
        j = buf.index(b"e", i)
        return int(buf[i + 1:j]), j + 1
    if c == b"l":
        out, i = [], i + 1
        while buf[i:i + 1] != b"e":
            v, i = bdecode(buf, i, depth + 1)
            out.append(v)
        return out, i + 1
    if c == b"d":
        out, i = {}, i + 1
        while buf[i:i + 1] != b"e":
            k, i = bdecode(buf, i, depth + 1)
            v, i = bdecode(buf, i, depth + 1)
            out[k] = v
        return out, i + 1
    j = buf.index(b":", i)
    n = int(buf[i:j])
    if n < 0 or j + 1 + n > len(buf):
        raise ValueError("bad string")
    return buf[j + 1:j + 1 + n], j + 1 + n


TRACE_RE = re.compile(
    r'^(?:\d+\s+)?(sendto|recvfrom)\(\d+, "((?:\\x[0-9a-f]{2})*)"(?:\.\.\.)?, '
    r'\d+, \w+, \{sa_family=AF_INET, sin_port=htons\((\d+)\)')

LOOKUP_METHODS = (b"get_value", b"get_peers")


def trace_stats(path):
    """Decodes a getter's strace output: {"queries", "rounds", "join"}."""
    sent = {}        # transaction id -> (destination port, method)
    depth = {}       # port -> round in which the lookup learned the node
    queries = join = rounds = 0
    try:
        f = open(path, errors="replace")
    except OSError:
        return {}
    with f:
        for line in f:
            m = TRACE_RE.match(line)
            if not m:
                continue
            call, data, port = m.group(1), m.group(2), int(m.group(3))
            try:
                msg, _ = bdecode(bytes.fromhex(data.replace("\\x", "")))
            except (ValueError, IndexError):
                continue
            if not isinstance(msg, dict):
                continue
            kind, tid = msg.get(b"y"), msg.get(b"t")
            if call == "sendto" and kind == b"q":
                method = msg.get(b"q")
                sent[tid] = (port, method)
                if method in LOOKUP_METHODS:
                    queries += 1
                    d = depth.setdefault(port, 1)
                    rounds = max(rounds, d)
                else:
                    join += 1
            elif call == "recvfrom" and kind == b"r" and tid in sent:
                qport, method = sent[tid]
                if method not in LOOKUP_METHODS:
                    continue
                r = msg.get(b"r")
                nodes = r.get(b"nodes", b"") if isinstance(r, dict) else b""
                for k in range(0, len(nodes) - 25, 26):
                    p = int.from_bytes(nodes[k + 24:k + 26], "big")
                    depth.setdefault(p, depth.get(qport, 1) + 1)
    return {"queries": queries, "rounds": rounds, "join": join}


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(q * (len(v) - 1)))))
    return v[k]


def fmt(x, unit=""):
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return "%.0f%s" % (x, unit) if x >= 100 else "%.1f%s" % (x, unit)
    return "%d%s" % (x, unit)


T_START = time.monotonic()


def note(mode, text):
    sys.stderr.write("lookup_bench: [%6.1fs] %s: %s\n"
                     % (time.monotonic() - T_START, mode, text))


def bench_mode(args, mode):
    node = args.node
    ports = free_ports(args.nodes + args.keys)
    peer_ports = ports[args.nodes:]
    ports = ports[:args.nodes]
    base = [node, "--mode", mode, "--bind", "127.0.0.1"] + args.node_arg
    logdir = args.logdir
    runs = []
    t0 = time.monotonic()
    for i, port in enumerate(ports):
        boot = sorted({ports[j] for j in (0, 1, 2, i - 1) if 0 <= j < i})
        argv = base + ["--port", str(port)]
        for b in boot:
            argv += ["--bootstrap", "127.0.0.1:%d" % b]
        log = open(os.path.join(logdir, "%s-%d.log" % (mode, port)), "w") \
            if logdir else subprocess.DEVNULL
        runs.append(spawn(argv + ["run"], stdout=log, stderr=log))

    deadline = time.monotonic() + args.start_budget

    def wait_ping(port):
        while time.monotonic() < deadline:
            rc, _, _, _ = run_once(base + ["ping", "127.0.0.1:%d" % port], 10)
            if rc == 0:
                return True
            time.sleep(0.2)
        return False

    with ThreadPoolExecutor(args.parallel) as ex:
        up = list(ex.map(wait_ping, ports))
    if not all(up):
        raise SystemExit("%s: %d of %d nodes never answered ping"
                         % (mode, up.count(False), len(up)))
    dead = [p.pid for p in runs if p.poll() is not None]
    if dead:
        raise SystemExit("%s: run processes exited: %s" % (mode, dead))
    startup = time.monotonic() - t0
    note(mode, "%d nodes answer ping after %.1fs" % (len(ports), startup))
    time.sleep(args.settle)

    rng = random.Random(args.seed)
    keys = {}
    for pp in peer_ports:
        key = "%040x" % rng.getrandbits(160)
        via = rng.choice(ports)
        rc, out, err, _ = run_once(
            base + ["--bootstrap", "127.0.0.1:%d" % via, "announce", key,
                    str(pp)], 30)
        if rc != 0:
            raise SystemExit("%s: announce %s failed (%d): %s"
                             % (mode, key, rc, err.strip()))
        keys[key] = "127.0.0.1:%d" % pp

    note(mode, "%d keys announced" % len(keys))
    plan = [(rng.choice(list(keys)), rng.choice(ports))
            for _ in range(args.lookups)]

    def lookup(item):
        n, (key, via) = item
        argv = base + args.get_arg + ["--bootstrap", "127.0.0.1:%d" % via,
                                      "get", key]
        trace = None
        if args.trace:
            trace = os.path.join(args.tracedir, "%s-%d.strace" % (mode, n))
            argv = ["strace", "-e", "trace=sendto,recvfrom", "-s", "4096",
                    "-xx", "-o", trace] + argv
        rc, out, err, secs = run_once(argv, args.get_timeout)
        ok = rc == 0 and keys[key] in out.split()
        stats = parse_stats(out + "\n" + err)
        if trace and "queries" not in stats:
            stats = trace_stats(trace)
            os.unlink(trace)
        return ok, secs, stats, (rc, err.strip())

    with ThreadPoolExecutor(args.parallel) as ex:
        results = list(ex.map(lookup, enumerate(plan)))

    note(mode, "%d lookups done" % len(results))
    rss = [r for r in (rss_kib(p.pid) for p in runs) if r is not None]
    failures = [(k, v, r[3]) for (k, v), r in zip(plan, results) if not r[0]]
    for key, via, (rc, err) in failures[:5]:
        sys.stderr.write("%s: get %s via :%d failed: exit %d %s\n"
                         % (mode, key, via, rc, err[-200:]))

    stop_all()
    times = [r[1] * 1000 for r in results if r[0]]
    stat = {}
    for name in ("queries", "rounds", "join"):
        vals = [r[2][name] for r in results if r[0] and name in r[2]]
        stat[name] = vals
    return {
        "mode": mode,
        "nodes": args.nodes,
        "lookups": len(results),
        "success": sum(1 for r in results if r[0]),
        "startup": startup,
        "wall_med": statistics.median(times) if times else None,
        "wall_p95": pct(times, 0.95),
        "q_med": statistics.median(stat["queries"]) if stat["queries"] else None,
        "q_p95": pct(stat["queries"], 0.95),
        "r_med": statistics.median(stat["rounds"]) if stat["rounds"] else None,
        "r_p95": pct(stat["rounds"], 0.95),
        "j_med": statistics.median(stat["join"]) if stat["join"] else None,
        "rss_med": statistics.median(rss) if rss else None,
        "rss_max": max(rss) if rss else None,
    }


def table(rows):
    head = ("| dialect | nodes | lookups | success | queries med / p95 "
            "| rounds med / p95 | join queries med | wall ms med / p95 "
            "| RSS KiB med / max | start-up s |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append("| %s | %d | %d | %.1f%% (%d) | %s / %s | %s / %s "
                     "| %s | %s / %s | %s / %s | %.1f |" % (
                         r["mode"], r["nodes"], r["lookups"],
                         100.0 * r["success"] / max(1, r["lookups"]),
                         r["success"],
                         fmt(r["q_med"]), fmt(r["q_p95"]),
                         fmt(r["r_med"]), fmt(r["r_p95"]), fmt(r["j_med"]),
                         fmt(r["wall_med"]), fmt(r["wall_p95"]),
                         fmt(r["rss_med"]), fmt(r["rss_max"]),
                         r["startup"]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(
        description="DHT lookup cost in a loopback network of apt-dht-node "
                    "processes (see the top of this file).")
    ap.add_argument("--node", default=os.path.join(
        os.environ.get("top_builddir", TOP), "dht", "apt-dht-node"))
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--modes", default="apt-dht,bep5")
    ap.add_argument("--keys", type=int, default=10,
                    help="keys announced before the lookups")
    ap.add_argument("--lookups", type=int, default=200)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds between start-up and the first announce")
    ap.add_argument("--start-budget", type=float, default=120.0)
    ap.add_argument("--get-timeout", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--node-arg", action="append", default=[],
                    help="extra option for every apt-dht-node command")
    ap.add_argument("--get-arg", action="append", default=[],
                    help="extra option for `get` only (e.g. a stats flag)")
    ap.add_argument("--no-trace", dest="trace", action="store_false",
                    help="do not run getters under strace (no query counts)")
    ap.add_argument("--logdir", help="keep each run node's output here")
    ap.add_argument("--out", help="also write the Markdown table here")
    args = ap.parse_args()
    if not os.access(args.node, os.X_OK):
        ap.error("apt-dht-node not found at %s (use --node)" % args.node)
    if not 1 <= args.nodes <= 1000:
        ap.error("--nodes must be 1..1000")
    if args.logdir:
        os.makedirs(args.logdir, exist_ok=True)
    if args.trace and not shutil.which("strace"):
        sys.stderr.write("lookup_bench: strace not found; no query counts\n")
        args.trace = False
    args.tracedir = tempfile.mkdtemp(prefix="lookup_bench.")

    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda s, f: sys.exit(129))
    rows = []
    try:
        for mode in args.modes.split(","):
            sys.stderr.write("lookup_bench: %s, %d nodes...\n"
                             % (mode, args.nodes))
            rows.append(bench_mode(args, mode))
    finally:
        stop_all()
        shutil.rmtree(args.tracedir, ignore_errors=True)
    text = table(rows)
    text += ("\n\nOne-shot getters, each bootstrapped from one random node; "
             "%d keys, %d parallel, seed %d, %s.\n"
             % (args.keys, args.parallel, args.seed,
                time.strftime("%Y-%m-%d")))
    if all(r["q_med"] is None for r in rows):
        text += ("No query/round counters (strace missing or --no-trace); "
                 "those columns are n/a.\n")
    else:
        text += ("Queries: the lookup's get_value/get_peers queries; join: "
                 "the getter's ping/find_node before it; rounds: longest "
                 "referral chain (decoded from each getter's traffic).\n")
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
