#!/usr/bin/env python3
"""libtorrent DHT nodes on loopback, for apt-dht's mainline (bep5) interop test.

Two commands, both confined to 127.0.0.1 and bounded in time:

  lt_node.py serve --sessions N [--bootstrap HOST:PORT]... [--announce KEY]...
                   --ready FILE [--deadline SEC]
      Runs N libtorrent sessions in this process. Session 0 bootstraps from
      the --bootstrap nodes; every other session from those and session 0.
      Each KEY (40 hex digits) becomes a magnet torrent on session 0, which
      makes libtorrent announce it in the DHT with its listen port (that is
      how an info-hash is announced with Debian's python3-libtorrent 2.0.8).
      Once every session knows some DHT nodes and every announce has been
      sent, FILE is written atomically: one line per session,
      "127.0.0.1:PORT" (the DHT UDP port, equal to the peer TCP port).
      Runs until SIGTERM/SIGINT or until --deadline seconds have passed.

  lt_node.py get KEY --bootstrap HOST:PORT... [--expect ADDR:PORT]
                 [--timeout SEC]
      One fresh libtorrent session looks KEY up with get_peers until it has
      found --expect (or any peer without --expect); prints every peer found
      as ADDR:PORT, one per line. Exit 0 when found, 1 on timeout, 2 on
      usage errors.

Settings: libtorrent's defaults would contact public bootstrap routers and
refuse a swarm whose nodes all share 127.0.0.1 (one node per IP in the
routing table and in lookups, "dark internet" filtering, a 5 packets/s
per-IP block). All of that is turned off here, and LSD/UPnP/NAT-PMP too,
so nothing leaves the machine.
"""

import argparse
import os
import signal
import sys
import tempfile
import time
import warnings

try:
    import libtorrent as lt
except ImportError:  # the shell test checks this before calling us
    sys.stderr.write("lt_node.py: python module libtorrent not available\n")
    sys.exit(77)


def parse_hostport(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    host = host.strip("[]")
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise argparse.ArgumentTypeError("loopback only, got %r" % text)
    return (host, int(port))


def parse_key(text):
    if len(text) != 40:
        raise argparse.ArgumentTypeError("KEY must be 40 hex digits")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError("KEY must be 40 hex digits")


def make_settings(bootstrap):
    """Settings for one loopback-only DHT session (listen port chosen by the OS)."""
    return {
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "dht_bootstrap_nodes": ",".join("%s:%d" % b for b in bootstrap),
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        "dht_prefer_verified_node_ids": False,
        "dht_block_ratelimit": 100000,
        "dht_upload_rate_limit": 1000000,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.all_categories,
    }


def new_session(bootstrap):
    ses = lt.session(make_settings(bootstrap))
    for host, port in bootstrap:
        ses.add_dht_node((host, port))
    return ses


def wait_listening(ses, deadline):
    while time.monotonic() < deadline:
        if ses.is_listening() and ses.listen_port() > 0:
            return ses.listen_port()
        time.sleep(0.05)
    raise SystemExit("lt_node.py: session did not start listening")


def dht_nodes(ses):
    """Nodes in the session's routing table (session_status is deprecated
    in 2.0 but still the simplest counter the Python binding offers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ses.status().dht_nodes


def add_magnet(ses, key, save_path):
    atp = lt.add_torrent_params()
    atp.info_hashes = lt.info_hash_t(lt.sha1_hash(key))
    atp.save_path = save_path
    atp.name = key.hex()
    atp.flags &= ~lt.torrent_flags.paused
    atp.flags &= ~lt.torrent_flags.auto_managed
    return ses.add_torrent(atp)


STOP = False


def on_signal(signum, frame):
    global STOP
    STOP = True


def cmd_serve(args):
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    end = time.monotonic() + args.deadline
    sessions, ports = [], []
    first = new_session(args.bootstrap)
    sessions.append(first)
    ports.append(wait_listening(first, end))
    for _ in range(1, args.sessions):
        boot = list(args.bootstrap) + [("127.0.0.1", ports[0])]
        ses = new_session(boot)
        sessions.append(ses)
        ports.append(wait_listening(ses, end))

    tmp = tempfile.mkdtemp(prefix="lt_node.")
    pending = {}
    announced = set()
    wanted_nodes = min(args.sessions - 1 + len(args.bootstrap), 2)
    ready = False
    last_force = 0.0
    while not STOP and time.monotonic() < end:
        now = time.monotonic()
        if not pending and args.announce and all(
                dht_nodes(s) >= wanted_nodes for s in sessions):
            for key in args.announce:
                pending[key] = add_magnet(sessions[0], key, tmp)
            last_force = now
        # A magnet torrent announces when libtorrent's DHT announce timer
        # reaches it; force it now and then so it happens within seconds.
        if pending and now - last_force > 3.0:
            for h in pending.values():
                h.force_dht_announce()
            last_force = now
        for a in sessions[0].pop_alerts():
            if isinstance(a, lt.dht_reply_alert):
                key = bytes(a.handle.info_hashes().v1.to_bytes())
                if key in pending:
                    announced.add(key)
        for s in sessions[1:]:
            s.pop_alerts()
        nodes_ok = all(dht_nodes(s) >= wanted_nodes for s in sessions)
        if not ready and nodes_ok and announced >= set(args.announce):
            with open(args.ready + ".tmp", "w") as f:
                for p in ports:
                    f.write("127.0.0.1:%d\n" % p)
            os.rename(args.ready + ".tmp", args.ready)
            ready = True
        time.sleep(0.1)
    if not ready:
        sys.stderr.write("lt_node.py: not ready before deadline (nodes %s)\n"
                         % [dht_nodes(s) for s in sessions])
        return 1
    return 0


def cmd_get(args):
    end = time.monotonic() + args.timeout
    ses = new_session(args.bootstrap)
    wait_listening(ses, end)
    target = lt.sha1_hash(args.key)
    found = set()
    last_query = 0.0
    while time.monotonic() < end:
        now = time.monotonic()
        if now - last_query > 2.0 and dht_nodes(ses) > 0:
            ses.dht_get_peers(target)
            last_query = now
        for a in ses.pop_alerts():
            if isinstance(a, lt.dht_get_peers_reply_alert) and \
                    bytes(a.info_hash.to_bytes()) == args.key:
                for ip, port in a.peers():
                    found.add("[%s]:%d" % (ip, port) if ":" in ip
                              else "%s:%d" % (ip, port))
        if found and (args.expect is None or args.expect in found):
            for p in sorted(found):
                print(p)
            return 0
        time.sleep(0.1)
    sys.stderr.write("lt_node.py: %s not found within %ds (dht nodes %d, "
                     "peers seen %s)\n" % (args.expect or "no peer",
                                           args.timeout, dht_nodes(ses),
                                           sorted(found)))
    return 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--sessions", type=int, default=4)
    s.add_argument("--bootstrap", type=parse_hostport, action="append",
                   default=[])
    s.add_argument("--announce", type=parse_key, action="append", default=[])
    s.add_argument("--ready", required=True)
    s.add_argument("--deadline", type=float, default=120.0)
    g = sub.add_parser("get")
    g.add_argument("key", type=parse_key)
    g.add_argument("--bootstrap", type=parse_hostport, action="append",
                   required=True)
    g.add_argument("--expect")
    g.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    if args.cmd == "serve":
        if args.sessions < 1 or args.sessions > 64:
            ap.error("--sessions must be 1..64")
        return cmd_serve(args)
    return cmd_get(args)


if __name__ == "__main__":
    sys.exit(main())
