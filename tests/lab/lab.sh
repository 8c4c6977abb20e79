# The apt-dht LAN lab: a small LAN built from Linux network namespaces, for the
# peer-to-peer tests (tests/lab) and the benchmark (bench/lab). POSIX sh, sourced
# after setting top_srcdir (it sources tests/integration/lib.sh itself):
#
#   : "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
#   . "$top_srcdir/tests/lab/lab.sh"
#   lab_require                 # SKIP (exit 77) without root or namespaces
#   lab_up 4                    # mirror + h1..h4 on one bridge
#   lab_proxies_start h1 h2     # their proxies, LAN discovery settled
#   lab_apt h1 update && lab_apt h1 download
#
# Topology of one lab (names carry a per-run prefix, adht-<pid>-):
#
#   adht-<pid>-br      holds the bridge br0 (multicast snooping off) and one
#                      veth end per lab member; no address, nothing else
#   adht-<pid>-mirror  the fixture mirror (tests/fixture/mirror.py) on
#                      $LAB_NET.2:$LAB_MIRROR_PORT, logging every request
#   adht-<pid>-h1..hN  the hosts, $LAB_NET.11 .. $LAB_NET.(10+N); each may run
#                      its own apt-dht-proxy on port 9977 (TCP and UDP)
#   (lab_node_add NAME adds more members, e.g. a shared apt-cacher-ng)
#
# Each member has lo up and eth0 (its veth end) in $LAB_NET.0/24 with
# multicast on and a route for 224.0.0.0/4 on eth0 (LAN discovery), and no
# other route: no default route, no way out. Everything that talks to a lab
# address runs inside a lab namespace (ip netns exec); the root namespace
# never sends to the lab. lab_down (also run at exit, whatever the outcome)
# stops every process the lab started, by PID, and deletes every namespace it
# created, which removes the veths and the bridge with them.
#
# Functions:
#   lab_require                   skip unless root with working ip netns
#   lab_require_node              lab_require, and apt-dht-node built
#   lab_up N [MIRROR-ARGS...]     build the lab and start the mirror
#                                 (extra args go to mirror.py, e.g. --rate N);
#                                 LAB_FIXTURE_DIR overrides the served archive
#   lab_node_add NAME ADDR        one more member namespace on the bridge
#   lab_hosts                     the hosts, "h1 h2 ... hN"
#   lab_ns HOST / lab_addr HOST   namespace name / address of a member
#   lab_hostport HOST PORT        ADDR:PORT, or [ADDR]:PORT in an IPv6 lab
#   lab_exec HOST CMD...          run CMD inside HOST's namespace
#   lab_bg HOST OUTFILE CMD...    start CMD in the background inside HOST, its
#                                 output appended to OUTFILE; sets LAB_BG_PID
#   lab_stop_bg PID               stop a process started with lab_bg
#   lab_curl HOST CURL-ARGS...    curl inside HOST (no proxy, bounded)
#   lab_wait_tcp HOST ADDR PORT [SECONDS]  wait until ADDR:PORT accepts, seen from HOST
#   lab_mcast_check FROM TO [GROUP PORT]   a multicast datagram sent in FROM
#                                 reaches a group member in TO
#   lab_proxy_config HOST [YAML-LINES...]  write HOST's proxy config
#   lab_proxy_start HOST [YAML-LINES...]   start apt-dht-proxy in HOST on 9977
#   lab_proxies_start HOST...     start each HOST's proxy, wait for LAN discovery
#   lab_proxy_stop HOST           SIGTERM it (by PID) and wait
#   lab_proxy_log HOST            path of its log (stderr, appended)
#   lab_proxy_url HOST            http://ADDR:9977 as peers see it
#   lab_apt HOST update|download [backend|proxy|direct|via URL]
#                                 a sandboxed real apt-get inside HOST
#   lab_apt_dest HOST             where lab_apt HOST download puts the files
#   lab_mirror_served GLOB        "COUNT BYTES" of GET answers (200/206) whose
#                                 path matches GLOB, from the mirror's log
#   lab_deb_served_counts         one line per fixture .deb: "COUNT POOL-PATH"
#   lab_down                      stop everything and remove the lab
#
# IPv6 (LAB_IPV6=only, set before lab_up): the same lab without IPv4 on the
# lab link: every member gets a unique-local address $LAB_NET6<n> (a /64 of
# fd77::/16 chosen per run, e.g. fd77:1a2b::11 for h1) with no IPv4 address
# on eth0, and a route for ff00::/8 on eth0 (LAN discovery's IPv6 group);
# lab_addr gives that address, URLs bracket it, the proxies listen on ::
# (apt reaches its own proxy at [::1]: with no IPv4 address, getaddrinfo
# refuses 127.0.0.1) and take peers from fd00::/8. Unset, the lab is IPv4 only, as described above.
#
# Variables: LAB_DHT_MODE (apt-dht | bep5 | off, default apt-dht),
# LAB_DHT_EXTRA (more entries for the dht flow mapping, e.g. "ttl: 600"),
# LAB_LOG_LEVEL (proxy log level, default info), LAB_APT_TAG (a separate
# apt sandbox per tag), LAB_APT_QUIET (1: do not copy apt's output to the
# test log), LAB_MIRROR_PORT (default 8080; kept below 32768 because
# apt-cacher-ng cannot use higher ports), LAB_DHT_VIA (see lab_dht_announce),
# LAB_P2P_OPTIONAL (see lab_p2p_check).
#
# Also: lab_dht_get, lab_dht_announce, lab_wait_announced, lab_proxy_sources,
# lab_key_of, lab_p2p_check (below, with their comments), and everything of
# tests/integration/lib.sh and tests/lib/common.sh (log, fail, skip, now,
# wait_for, node_bin, proxy_bin, the fixture, apt_sandbox, ...).

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

LAB_PROXY_PORT=9977
: "${LAB_MIRROR_PORT:=8080}"
: "${LAB_DHT_MODE:=apt-dht}"
: "${LAB_DHT_EXTRA:=}"
: "${LAB_LOG_LEVEL:=info}"
: "${LAB_APT_QUIET:=0}"
: "${LAB_IPV6:=}"

LAB_ID=""          # namespace prefix of this run, set by lab_up
LAB_NSES=""        # every namespace created (deleted by lab_down)
LAB_PIDS=""        # every process started inside the lab
LAB_MEMBERS=""     # member names (mirror h1 h2 ...)
LAB_N=0

# ---------------------------------------------------------------------------
# Preconditions

# lab_require: the lab needs root, ip(8) with namespaces, and the tools of the
# integration harness. Skips (exit 77) with the reason otherwise.
lab_require() {
    [ "$(id -u)" -eq 0 ] || skip "the LAN lab needs root (network namespaces)"
    require_tool ip python3 apt-get curl timeout sha256sum
    _probe="adht-$$-probe"
    if ! ip netns add "$_probe" 2>"$T/.netns-probe.err"; then
        skip "cannot create a network namespace: $(head -n 1 "$T/.netns-probe.err")"
    fi
    _ok=1
    ip -n "$_probe" link add adht-probe-br type bridge 2>"$T/.netns-probe.err" || _ok=0
    ip netns del "$_probe" 2>/dev/null || true
    [ "$_ok" -eq 1 ] || skip "cannot create a bridge in a namespace: $(head -n 1 "$T/.netns-probe.err")"
}

# lab_require_node: lab_require, and the apt-dht-node binary of this build
# (for the tests that look into the lab's DHT).
lab_require_node() {
    lab_require
    [ -x "$(node_bin)" ] || skip "apt-dht-node not built ($(node_bin))"
}

# ---------------------------------------------------------------------------
# Building and removing the lab

_lab_ns_add() {
    ip netns add "$1" || hard_error "ip netns add $1 failed"
    LAB_NSES="$LAB_NSES $1"
    ip -n "$1" link set lo up || hard_error "lo up in $1 failed"
}

# lab_hosts: the hosts of the lab, "h1 h2 ... hN".
lab_hosts() {
    _lh=1 _lh_out=""
    while [ "$_lh" -le "$LAB_N" ]; do _lh_out="$_lh_out h$_lh"; _lh=$((_lh + 1)); done
    echo "$_lh_out"
}

# lab_ns HOST: the namespace of a member (h1, mirror, ... or a bare number = hN).
lab_ns() {
    case $1 in
        [0-9]*) echo "$LAB_ID-h$1" ;;
        *) echo "$LAB_ID-$1" ;;
    esac
}

_lab_name() {
    case $1 in [0-9]*) echo "h$1" ;; *) echo "$1" ;; esac
}

# lab_addr HOST: the member's address in the lab (IPv4; IPv6 with LAB_IPV6=only).
lab_addr() {
    _n=$(_lab_name "$1")
    eval "echo \"\${LAB_ADDR_$(_lab_var "$_n"):-}\""
}

_lab_var() { printf '%s' "$1" | tr -c 'A-Za-z0-9_' '_'; }

_lab_v6() { [ "$LAB_IPV6" = only ]; }

# lab_hostport HOST PORT: ADDR:PORT of a member, the address bracketed if IPv6.
lab_hostport() {
    _hp=$(lab_addr "$1")
    case $_hp in *:*) echo "[$_hp]:$2" ;; *) echo "$_hp:$2" ;; esac
}

# _lab_link_addr NS ADDR: eth0's address and the multicast route of the lab.
_lab_link_addr() {
    if _lab_v6; then
        # nodad: the address is usable at once (the lab's addresses are unique)
        ip -n "$1" -6 addr add "$2/64" dev eth0 nodad || hard_error "address $2 failed"
        ip -n "$1" -6 route add ff00::/8 dev eth0 || hard_error "multicast route in $1 failed"
    else
        ip -n "$1" addr add "$2/24" dev eth0 || hard_error "address $2 failed"
        # Multicast (LAN discovery) goes out on the lab link; nothing else has a route.
        ip -n "$1" route add 224.0.0.0/4 dev eth0 || hard_error "multicast route in $1 failed"
    fi
}

# lab_node_add NAME ADDR: a new member namespace with eth0 = ADDR/24 (IPv6: /64)
# on the bridge.
lab_node_add() {
    _name=$1 _addr=$2
    _ns="$LAB_ID-$_name"
    _lab_ns_add "$_ns"
    # Both veth ends are created directly in their namespaces, so no lab link
    # ever exists in the root namespace.
    ip -n "$LAB_ID-br" link add "v-$_name" type veth peer name eth0 netns "$_ns" \
        || hard_error "veth for $_name failed"
    ip -n "$LAB_ID-br" link set "v-$_name" master br0 || hard_error "enslaving v-$_name failed"
    ip -n "$LAB_ID-br" link set "v-$_name" multicast on up || hard_error "v-$_name up failed"
    ip -n "$_ns" link set eth0 multicast on up || hard_error "eth0 up in $_ns failed"
    _lab_link_addr "$_ns" "$_addr"
    eval "LAB_ADDR_$(_lab_var "$_name")=\$_addr"
    LAB_MEMBERS="$LAB_MEMBERS $_name"
}

# lab_up N [MIRROR-ARGS...]: build the lab with N hosts and start the mirror.
# Sets LAB_ID, LAB_NET, LAB_N, LAB_MIRROR_ADDR, LAB_MIRROR_URL and, for the
# lib.sh helpers, MIRROR_URL, MIRROR_LOG, MIRROR_PID.
lab_up() {
    _count=$1; shift
    [ -n "${FIXTURE_DIR:-}" ] || fixture_build
    [ -z "${LAB_FIXTURE_DIR:-}" ] || fixture_use "$LAB_FIXTURE_DIR"
    LAB_ID="adht-$$"
    LAB_NET="10.77.$(( $$ % 250 + 1 ))"
    LAB_NET6="fd77:$(printf %x $(( $$ % 65535 + 1 )))::"
    _pre=$LAB_NET.
    _lab_v6 && _pre=$LAB_NET6
    LAB_N=$_count
    mkdir -p "$T/lab"
    on_exit lab_down
    _lab_ns_add "$LAB_ID-br"
    ip -n "$LAB_ID-br" link add br0 type bridge forward_delay 0 stp_state 0 mcast_snooping 0 \
        || hard_error "bridge creation failed"
    ip -n "$LAB_ID-br" link set br0 multicast on up || hard_error "bridge up failed"
    lab_node_add mirror "${_pre}2"
    _i=1
    while [ "$_i" -le "$_count" ]; do
        lab_node_add "h$_i" "$_pre$((10 + _i))"
        _i=$((_i + 1))
    done
    LAB_MIRROR_ADDR="${_pre}2"
    LAB_MIRROR_URL="http://$(lab_hostport mirror "$LAB_MIRROR_PORT")"
    MIRROR_URL=$LAB_MIRROR_URL
    MIRROR_LOG="$T/lab/mirror.log"
    : > "$MIRROR_LOG"
    rm -f "$T/lab/mirror.port"
    # mirror.py's server is IPv4; for an IPv6 lab it runs with its family switched
    _mirror="$LIB_FIXTURE_SRC/mirror.py"
    if _lab_v6; then
        set -- -c 'import socket, sys
sys.path.insert(0, sys.argv[1])
sys.argv = sys.argv[1:]
import mirror
mirror.Server.address_family = socket.AF_INET6
sys.exit(mirror.main())' "$LIB_FIXTURE_SRC" "$@"
        _mirror=""
    fi
    lab_bg mirror "$T/lab/mirror.stderr" python3 ${_mirror:+"$_mirror"} "$@" \
        --root "$FIXTURE_DIR" --bind "$LAB_MIRROR_ADDR" --port "$LAB_MIRROR_PORT" \
        --port-file "$T/lab/mirror.port" --log "$MIRROR_LOG"
    MIRROR_PID=$LAB_BG_PID
    mirror_wait "$T/lab/mirror.port" "$T/lab/mirror.stderr"
    export LAB_ID LAB_NET LAB_NET6 LAB_N LAB_MIRROR_ADDR LAB_MIRROR_URL MIRROR_URL MIRROR_LOG \
        MIRROR_PID
    _lnet="$LAB_NET.0/24"
    _lab_v6 && _lnet="${LAB_NET6}/64, no IPv4"
    log "lab $LAB_ID up: mirror $LAB_MIRROR_URL, hosts h1..h$_count in $_lnet"
}

# lab_down: stop every lab process (by PID), then delete the namespaces. Safe
# to call twice; runs at exit.
lab_down() {
    set +e
    # shellcheck disable=SC2086
    stop_pids 5 $LAB_PIDS
    LAB_PIDS=""
    for _ns in $LAB_NSES; do
        # A process of this run may still sit in the namespace (an apt-get cut
        # short by a signal); the namespace is private to this run, so whatever
        # is left in it was started here.
        for _p in $(ip netns pids "$_ns" 2>/dev/null); do
            kill -KILL "$_p" 2>/dev/null
        done
        ip netns del "$_ns" 2>/dev/null
    done
    LAB_NSES=""
    set -e
    return 0
}

# ---------------------------------------------------------------------------
# Running things inside the lab

# lab_exec HOST CMD...: run CMD in HOST's namespace.
lab_exec() {
    _ns=$(lab_ns "$1"); shift
    ip netns exec "$_ns" "$@"
}

# lab_bg HOST OUTFILE CMD...: start CMD in HOST's namespace in the background
# (output appended to OUTFILE); it is stopped by lab_down. Sets LAB_BG_PID.
# ip netns exec replaces itself with CMD, so the PID is CMD's.
lab_bg() {
    _ns=$(lab_ns "$1") _out=$2; shift 2
    ip netns exec "$_ns" "$@" >> "$_out" 2>&1 &
    LAB_BG_PID=$!
    LAB_PIDS="$LAB_PIDS $LAB_BG_PID"
    track_pid "$LAB_BG_PID"
}

# lab_stop_bg PID [SECONDS]: stop a process started by lab_bg.
lab_stop_bg() {
    stop_pid "$1" "${2:-5}"
    # shellcheck disable=SC2086
    LAB_PIDS=$(list_without "$1" $LAB_PIDS)
}

# lab_curl HOST CURL-ARGS...: curl inside HOST, no proxy, bounded.
lab_curl() {
    _h=$1; shift
    lab_exec "$_h" curl -q -sS --noproxy '*' --max-time "${TCURL_MAX_TIME:-60}" "$@"
}

_lab_tcp_open() {
    lab_exec "$1" python3 -c 'import socket, sys
socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()' "$2" "$3"
}

# lab_wait_tcp HOST ADDR PORT [SECONDS]: wait until ADDR:PORT accepts TCP
# connections, seen from inside HOST (default 15 s).
lab_wait_tcp() {
    wait_for "${4:-15}" _lab_tcp_open "$1" "$2" "$3"
}

# lab_mcast_check FROM TO [GROUP PORT]: send datagrams to the LAN discovery
# group (default 239.192.152.143:6772; IPv6 lab: ff15::efc0:988f) from FROM,
# and wait up to 5 s for one of them at a member of the group in TO. Returns 0
# when one arrived.
lab_mcast_check() {
    if _lab_v6; then
        _lab_mcast_check6 "$1" "$2" "${3:-ff15::efc0:988f}" "${4:-6772}"
        return
    fi
    _group=${3:-239.192.152.143} _port=${4:-6772}
    _nonce="apt-dht-lab-$$-$(date +%s%N)"
    _rfile="$T/lab/mcast.$$"
    rm -f "$_rfile"
    lab_exec "$2" python3 -c 'import socket, struct, sys, time
group, port, nonce, out, ifaddr = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4], sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", port))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             socket.inet_aton(group) + socket.inet_aton(ifaddr))
open(out + ".ready", "w").close()
deadline = time.time() + 5
while time.time() < deadline:
    s.settimeout(max(0.05, deadline - time.time()))
    try:
        data, src = s.recvfrom(2048)
    except socket.timeout:
        break
    if data == nonce:
        with open(out, "w") as f:
            f.write(src[0] + "\n")
        sys.exit(0)
sys.exit(1)' "$_group" "$_port" "$_nonce" "$_rfile" "$(lab_addr "$2")" &
    _rpid=$!
    wait_for 5 test -e "$_rfile.ready" || true
    lab_exec "$1" python3 -c 'import socket, sys, time
group, port, nonce = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for _ in range(20):
    s.sendto(nonce, (group, port))
    time.sleep(0.2)' "$_group" "$_port" "$_nonce" &
    _spid=$!
    _mrc=0
    wait "$_rpid" || _mrc=$?
    kill "$_spid" 2>/dev/null || true
    wait "$_spid" 2>/dev/null || true
    [ "$_mrc" -eq 0 ] && [ -s "$_rfile" ] || return 1
    rm -f "$_rfile" "$_rfile.ready"
    return 0
}

# _lab_mcast_check6 FROM TO GROUP PORT: lab_mcast_check over IPv6, the group
# joined and sent to on eth0.
_lab_mcast_check6() {
    _nonce="apt-dht-lab-$$-$(date +%s%N)"
    _rfile="$T/lab/mcast.$$"
    rm -f "$_rfile"
    lab_exec "$2" python3 -c 'import socket, struct, sys, time
group, port, nonce, out = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4]
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", port))
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
             socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", socket.if_nametoindex("eth0")))
open(out + ".ready", "w").close()
deadline = time.time() + 5
while time.time() < deadline:
    s.settimeout(max(0.05, deadline - time.time()))
    try:
        data, src = s.recvfrom(2048)
    except socket.timeout:
        break
    if data == nonce:
        with open(out, "w") as f:
            f.write(src[0] + "\n")
        sys.exit(0)
sys.exit(1)' "$3" "$4" "$_nonce" "$_rfile" &
    _rpid=$!
    wait_for 5 test -e "$_rfile.ready" || true
    lab_exec "$1" python3 -c 'import socket, struct, sys, time
group, port, nonce = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex("eth0"))
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
for _ in range(20):
    s.sendto(nonce, (group, port))
    time.sleep(0.2)' "$3" "$4" "$_nonce" &
    _spid=$!
    _mrc=0
    wait "$_rpid" || _mrc=$?
    kill "$_spid" 2>/dev/null || true
    wait "$_spid" 2>/dev/null || true
    [ "$_mrc" -eq 0 ] && [ -s "$_rfile" ] || return 1
    rm -f "$_rfile" "$_rfile.ready"
    return 0
}

# ---------------------------------------------------------------------------
# apt-dht-proxy in a host

_lab_hdir() { echo "$T/lab/$(_lab_name "$1")"; }

# lab_proxy_log HOST: the proxy's log file (stderr, appended across restarts).
lab_proxy_log() { echo "$(_lab_hdir "$1")/proxy.log"; }

# lab_proxy_url HOST: the proxy as the other hosts reach it.
lab_proxy_url() { echo "http://$(lab_hostport "$1" "$LAB_PROXY_PORT")"; }

# lab_proxy_config HOST [YAML-LINES...]: HOST's config file: listen on all
# addresses (peers reach port 9977), apt only from loopback, peers from the
# lab, one backend "fixture" -> the lab mirror, DHT in LAB_DHT_MODE with LAN
# discovery and no bootstrap list. Extra YAML lines are appended as given.
lab_proxy_config() {
    _d=$(_lab_hdir "$1"); shift
    mkdir -p "$_d"
    _dhtx=""
    [ -z "$LAB_DHT_EXTRA" ] || _dhtx=", $LAB_DHT_EXTRA"
    _lan=", lan_discovery: true"
    [ "$LAB_DHT_MODE" != off ] || _lan=""
    _any=0.0.0.0 _peers=10.0.0.0/8 _url=$LAB_MIRROR_URL/debian _apt=127.0.0.0/8
    _lab_v6 && _any='"::"' _peers='"fd00::/8"' _url="\"$_url\"" _apt='"::1/128"'
    {
        echo "# apt-dht-proxy in one host of the LAN lab"
        echo "listen: {address: $_any, port: $LAB_PROXY_PORT}"
        echo "allowed_clients: [$_apt]"
        echo "peer_clients: [$_peers]"
        echo "backends: {fixture: [$_url]}"
        echo "dht: {mode: $LAB_DHT_MODE$_lan$_dhtx}"
        echo "log: {level: $LAB_LOG_LEVEL}"
        for _l in "$@"; do printf '%s\n' "$_l"; done
    } > "$_d/apt-dht.conf"
}

# lab_owner_ids OWNER N HOST...: gives each HOST a node id of its own (a state file
# in its state dir, read at start) such that OWNER ranks first, as owner.c ranks
# (SHA-256 of id and key, largest wins), for at least N of the fixture's .deb keys (the
# first 160 bits of each file's SHA-256). A test that needs one host to be asked (a
# liar that must be caught) makes it so instead of leaving it to random ids.
lab_owner_ids() {
    _owner=$1 _need=$2; shift 2
    python3 - "$FIXTURE_ROOT" "$_owner" "$_need" "$@" > "$T/owner-ids" <<'PY' ||
import hashlib, pathlib, sys
root, owner, need, hosts = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
keys = [hashlib.sha256(p.read_bytes()).digest()[:20]
        for p in sorted(pathlib.Path(root).rglob("*.deb"))]
def nid(h, seed):
    return hashlib.sha1(("apt-dht lab node %s %d" % (h, seed)).encode()).digest()
def owned(ids, h):
    return sum(1 for k in keys
               if max(ids, key=lambda x: hashlib.sha256(ids[x] + k).digest()) == h)
ids = {h: nid(h, 0) for h in hosts}
for seed in range(1, 10000):
    if owned(ids, owner) >= min(need, len(keys)):
        break
    ids[owner] = nid(owner, seed)
else:
    sys.exit("no id found")
for h in hosts:
    print(h, ids[h].hex(), owned(ids, h))
PY
        fail "lab_owner_ids: no id makes $_owner own $_need keys"
    while read -r _h _id _n; do
        mkdir -p "$(_lab_hdir "$_h")/state"
        printf 'apt-dht-state 1\nid %s\n' "$_id" > "$(_lab_hdir "$_h")/state/dht-$LAB_DHT_MODE.state"
    done < "$T/owner-ids"
    log "node ids: $(awk '{printf "%s owns %s; ", $1, $3}' "$T/owner-ids")"
}

# lab_proxy_start HOST [YAML-LINES...]: run apt-dht-proxy in HOST's namespace,
# cache and state under $T/lab/HOST (kept across restarts). A config written
# by lab_proxy_config beforehand is kept when no YAML lines are given. Waits
# until port 9977 accepts connections.
lab_proxy_start() {
    _h=$(_lab_name "$1"); shift
    _bin=$(proxy_bin)
    [ -x "$_bin" ] || skip "apt-dht-proxy not built ($_bin)"
    _d=$(_lab_hdir "$_h")
    mkdir -p "$_d/cache" "$_d/state"
    if [ $# -gt 0 ] || [ ! -f "$_d/apt-dht.conf" ]; then
        lab_proxy_config "$_h" "$@"
    fi
    lab_bg "$_h" "$_d/proxy.log" "$_bin" -f -c "$_d/apt-dht.conf" -p "$LAB_PROXY_PORT" \
        --cache-dir "$_d/cache" --state-dir "$_d/state"
    eval "LAB_PROXY_PID_$(_lab_var "$_h")=\$LAB_BG_PID"
    if ! lab_wait_tcp "$_h" 127.0.0.1 "$LAB_PROXY_PORT" 15; then
        tail -n 20 "$_d/proxy.log" >&2
        fail "apt-dht-proxy in $_h did not start listening on $LAB_PROXY_PORT"
    fi
    kill -0 "$LAB_BG_PID" 2>/dev/null || { tail -n 20 "$_d/proxy.log" >&2; fail "apt-dht-proxy in $_h exited"; }
}

# lab_proxies_start HOST...: lab_proxy_start each HOST, then give LAN
# discovery LAB_SETTLE seconds (default 2): every node multicasts when it
# starts and the others answer.
lab_proxies_start() {
    for _ph in "$@"; do lab_proxy_start "$_ph"; done
    log "proxies up in $* (dht mode: $LAB_DHT_MODE); LAN discovery settles for ${LAB_SETTLE:-2} s"
    sleep "${LAB_SETTLE:-2}"
}

# lab_proxy_pid HOST: PID of HOST's proxy (empty when not running).
lab_proxy_pid() {
    eval "echo \"\${LAB_PROXY_PID_$(_lab_var "$(_lab_name "$1")"):-}\""
}

# lab_proxy_stop HOST: SIGTERM HOST's proxy by PID and wait (10 s, then KILL).
lab_proxy_stop() {
    _pid=$(lab_proxy_pid "$1")
    [ -n "$_pid" ] || return 0
    lab_stop_bg "$_pid" 10
    eval "LAB_PROXY_PID_$(_lab_var "$(_lab_name "$1")")="
}

# ---------------------------------------------------------------------------
# apt in a host

# LAB_APT_TAG gives each HOST a separate apt sandbox per tag (a benchmark
# runs several rounds in one lab, each with empty apt caches).
_lab_apt_dir() { echo "$(_lab_hdir "$1")/apt${LAB_APT_TAG:+-$LAB_APT_TAG}"; }

# lab_apt_dest HOST: where lab_apt HOST download leaves the files.
lab_apt_dest() { echo "$(_lab_apt_dir "$1")/downloads"; }

# _lab_apt_run HOST APT-GET-ARGS...: apt-get with HOST's private configuration,
# inside HOST's namespace, bounded by APT_TIME_LIMIT (default 300 s).
_lab_apt_run() {
    _h=$1; shift
    _ad=$(_lab_apt_dir "$_h")
    [ "$LAB_APT_QUIET" = 1 ] || log "[$(_lab_name "$_h")] apt-get $*"
    set +e
    ip netns exec "$(lab_ns "$_h")" env APT_CONFIG="$_ad/apt.conf" \
        timeout -k 5 "${APT_TIME_LIMIT:-300}" apt-get -q -y "$@" > "$_ad/log/last.log" 2>&1
    _arc=$?
    set -e
    cat "$_ad/log/last.log" >> "$_ad/log/all.log"
    if [ "$LAB_APT_QUIET" != 1 ] || [ "$_arc" -ne 0 ]; then
        sed 's/^/    /' "$_ad/log/last.log"
    fi
    return "$_arc"
}

# lab_apt HOST update|download [HOW]: a sandboxed real apt-get (private
# Dir::State/Cache/Etc, see apt_sandbox) inside HOST's namespace. HOW:
#   backend (default)  deb http://127.0.0.1:9977/fixture   (HOST's own proxy)
#   proxy              deb MIRROR/debian with Acquire::http::Proxy = the local proxy
#   direct             deb MIRROR/debian, no proxy
#   via URL            deb MIRROR/debian with Acquire::http::Proxy = URL
# update fails on any W:/E:/Err: line. download fetches every binary package
# of the archive (and the source package when the archive has one) into
# lab_apt_dest HOST. Returns non-zero on failure; the caller decides.
lab_apt() {
    _h=$(_lab_name "$1") _what=$2 _how=${3:-backend}
    _ad=$(_lab_apt_dir "$_h")
    [ -f "$_ad/apt.conf" ] || apt_sandbox "$_ad"
    _local="http://127.0.0.1:$LAB_PROXY_PORT"
    # without an IPv4 address, getaddrinfo (AI_ADDRCONFIG) refuses 127.0.0.1
    ! _lab_v6 || _local="http://[::1]:$LAB_PROXY_PORT"
    case $_how in
        backend) apt_sources "$_ad" backend fixture "$_local" ;;
        proxy)   apt_sources "$_ad" proxy "$LAB_MIRROR_URL" "$_local" ;;
        direct)  apt_sources "$_ad" direct "$LAB_MIRROR_URL" ;;
        via)     apt_sources "$_ad" proxy "$LAB_MIRROR_URL" "${4:?lab_apt: via needs a URL}" ;;
        *) hard_error "lab_apt: unknown way $_how" ;;
    esac
    case $_what in
        update)
            _lab_apt_run "$_h" update || return 1
            if grep -Eq '^(W|E|Err):' "$_ad/log/last.log"; then
                log "[$_h] apt-get update reported a problem"
                grep -E '^(W|E|Err):' "$_ad/log/last.log" | sed 's/^/    /'
                return 1
            fi
            ;;
        download)
            _dest="$_ad/downloads"
            mkdir -p "$_dest"
            chmod a+rwx "$_dest"
            # shellcheck disable=SC2046
            (cd "$_dest" && _lab_apt_run "$_h" download $(fixture_packages)) || return 1
            if grep -q '\.dsc$' "$FIXTURE_DIR/pool.sha256"; then
                _src=$(sed -n 's|.*pool/[^/]*/[^/]*/[^/]*/\([^_/]*\)_[^/]*\.dsc$|\1|p' \
                       "$FIXTURE_DIR/pool.sha256" | head -n 1)
                (cd "$_dest" && _lab_apt_run "$_h" source --download-only "$_src") || return 1
            fi
            ;;
        *) hard_error "lab_apt: unknown command $_what" ;;
    esac
    return 0
}

# ---------------------------------------------------------------------------
# What the mirror served

# lab_mirror_served GLOB [LOG]: "COUNT BYTES" over the GET requests answered
# 200 or 206 whose logged path matches the shell pattern GLOB (e.g. '*.deb').
lab_mirror_served() { mirror_tally "$1" "${2:-}" GET '20[06]'; }

# lab_deb_served_counts [LOG]: for each .deb of the archive, "COUNT POOL-PATH"
# where COUNT is how many GET answers with a body the mirror gave for it.
lab_deb_served_counts() {
    _log=${1:-$MIRROR_LOG}
    while read -r _name _ver _arch _path _size _sum; do
        _served=$(lab_mirror_served "*/$_path" "$_log")
        echo "${_served% *} $_path"
    done < "$FIXTURE_DIR/packages.txt"
}

# lab_key_of FILE: the DHT key of a file: its SHA-256 truncated to 160 bits
# (40 hex digits).
lab_key_of() { sha256_of "$1" | cut -c1-40; }

# lab_p2p_check COND MESSAGE: an assertion that only holds once the daemon
# shares files between peers. Fails like any assertion, unless
# LAB_P2P_OPTIONAL=1, which reports it and carries on (to check the rest of
# the lab while peer-to-peer is not there).
lab_p2p_check() {
    if eval "$1"; then
        log "ok (p2p): $2"
    elif [ "${LAB_P2P_OPTIONAL:-0}" = 1 ]; then
        log "NOT YET (p2p): $2"
        LAB_P2P_MISSING=$(( ${LAB_P2P_MISSING:-0} + 1 ))
    else
        fail "$2"
    fi
}

# ---------------------------------------------------------------------------
# Talking to the lab's DHT with apt-dht-node (dht/apt-dht-node)

# lab_dht_get HOST KEY VIA [SECONDS]: look KEY up from a resolve-only node in
# HOST that joins through VIA's node (port 9977), in LAB_DHT_MODE. Prints the
# peers found ("ADDR:PORT" lines among apt-dht-node's output); returns
# non-zero when none was found within SECONDS (default 10).
lab_dht_get() {
    lab_exec "$1" "$(node_bin)" --mode "$LAB_DHT_MODE" --bind "$(lab_addr "$1")" \
        --port 0 --bootstrap "$(lab_hostport "$3" "$LAB_PROXY_PORT")" --timeout "${4:-10}" \
        get "$2" 2>&1
}

# lab_dht_announce HOST KEY PORT [SECONDS]: announce from HOST that HOST's
# PORT holds the file of KEY, joining through the proxies of LAB_DHT_VIA
# (hosts, default h1) only: without LAN discovery, so that one-shot nodes
# started side by side do not find and store on each other. Prints
# apt-dht-node's output.
lab_dht_announce() {
    _boot=""
    for _v in ${LAB_DHT_VIA:-h1}; do
        _boot="$_boot --bootstrap $(lab_hostport "$_v" "$LAB_PROXY_PORT")"
    done
    # shellcheck disable=SC2086
    lab_exec "$1" "$(node_bin)" --mode "$LAB_DHT_MODE" --bind "$(lab_addr "$1")" \
        --port 0 $_boot --timeout "${4:-10}" announce "$2" "$3" 2>&1
}

# lab_wait_announced HOST KEY VIA HOLDER [SECONDS]: wait (default 15 s) until
# a lookup from HOST through VIA finds HOLDER's proxy for KEY.
lab_wait_announced() {
    wait_every 0.5 "${5:-15}" _lab_finds "$1" "$2" "$3" "$(lab_hostport "$4" "$LAB_PROXY_PORT")"
}

# _lab_finds HOST KEY VIA ADDR:PORT: one lookup of KEY lists ADDR:PORT.
_lab_finds() { lab_dht_get "$1" "$2" "$3" 5 2>/dev/null | grep -qF "$4"; }

# lab_proxy_sources HOST [GLOB]: where HOST's proxy got the files it served
# for request paths matching GLOB (default '*.deb'), from its request log
# lines ("CLIENT METHOD PATH STATUS BYTES SOURCE ..."): one "SOURCE=COUNT"
# word per source seen (cache, mirror, peer, ...), on one line.
lab_proxy_sources() {
    awk -v glob="${2:-*.deb}" '
        function globre(g,   r) {
            r = g; gsub(/[.+^$(){}|\\]/, "\\\\&", r); gsub(/\*/, ".*", r); gsub(/\?/, ".", r)
            return "^" r "$"
        }
        BEGIN { re = globre(glob) }
        {
            for (i = 1; i <= NF; i++) if ($i ~ /:$/ && $i != "" && i + 6 <= NF) break
            if (i + 6 > NF) next
            if ($(i + 2) != "GET" || $(i + 4) !~ /^2/) next
            if ($(i + 3) !~ re) next
            n[$(i + 6)]++
        }
        END { for (k in n) printf "%s=%d ", k, n[k]; print "" }' "$(lab_proxy_log "$1")"
}
