# Shared helpers for the process-level DHT tests and the DHT benchmark.
# Sourced, not run. Everything stays on loopback (127.0.0.1, or ::1 when the
# caller sets DHT_ADDR=::1 before dht_init); every process started
# here is recorded by PID and stopped by dht_cleanup (installed as the EXIT
# trap by dht_init); every wait is bounded by a deadline.
#
# Callers set nothing; after dht_init they have:
#   NODE      path of the apt-dht-node binary
#   WORK      a private temporary directory (removed on exit unless KEEP_WORK=1)
#   PY        a python3 interpreter
#   DHT_ADDR  the loopback address the nodes use (127.0.0.1 unless set)

# Exit statuses understood by automake's test driver.
DHT_SKIP=77
DHT_HARD=99

DHT_PIDS=""

dht_log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

dht_die() { dht_log "FAIL: $*"; exit 1; }

dht_init() {
    here=$(cd "$(dirname "$0")" && pwd)
    : "${top_srcdir:=$(cd "$here/../.." && pwd)}"
    : "${top_builddir:=$top_srcdir}"
    NODE=${APT_DHT_NODE:-$top_builddir/dht/apt-dht-node}
    if [ ! -x "$NODE" ]; then
        dht_log "apt-dht-node not built at $NODE"
        exit $DHT_HARD
    fi
    PY=$(command -v python3) || { dht_log "SKIP: python3 not found"; exit $DHT_SKIP; }
    : "${DHT_ADDR:=127.0.0.1}"
    case $DHT_ADDR in
    127.0.0.1 | ::1) ;;
    *) dht_log "DHT_ADDR must be 127.0.0.1 or ::1"; exit $DHT_HARD ;;
    esac
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/apt-dht-test.XXXXXX") || exit $DHT_HARD
    # A shell killed by an untrapped signal skips its EXIT trap, so every
    # signal that can end the test (including SIGPIPE when the reader of
    # its output goes away) is turned into an exit.
    trap dht_cleanup EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 141' PIPE
    trap 'exit 143' TERM
}

# Stop every process we started: SIGTERM, up to 5 s of grace, then SIGKILL.
dht_cleanup() {
    status=$?
    trap - EXIT
    trap '' PIPE HUP INT TERM   # finish cleaning up whatever happens now
    if [ -n "$DHT_PIDS" ]; then
        # shellcheck disable=SC2086
        kill -TERM $DHT_PIDS 2>/dev/null
        i=0
        while [ $i -lt 50 ]; do
            alive=""
            for p in $DHT_PIDS; do
                kill -0 "$p" 2>/dev/null && alive="$alive $p"
            done
            [ -z "$alive" ] && break
            sleep 0.1
            i=$((i + 1))
        done
        for p in $alive; do
            dht_log "pid $p ignored SIGTERM for 5 s; killing"
            kill -KILL "$p" 2>/dev/null
        done
        # shellcheck disable=SC2086
        wait $DHT_PIDS 2>/dev/null
    fi
    if [ "$status" -ne 0 ] && [ "$status" -ne $DHT_SKIP ] && [ -d "$WORK" ]; then
        for f in "$WORK"/*.log; do
            [ -s "$f" ] || continue
            printf '=== %s (last 20 lines)\n' "${f##*/}" >&2
            tail -n 20 "$f" >&2
        done
    fi
    if [ "${KEEP_WORK:-0}" = 1 ]; then
        dht_log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}

# Remember a background PID so dht_cleanup stops it.
dht_track() { DHT_PIDS="$DHT_PIDS $1"; }

# Forget a PID that has been reaped already.
dht_untrack() {
    new=""
    for p in $DHT_PIDS; do [ "$p" = "$1" ] || new="$new $p"; done
    DHT_PIDS=$new
}

# dht_hostport PORT: PORT on $DHT_ADDR as apt-dht-node writes it
# (127.0.0.1:PORT or [::1]:PORT).
dht_hostport() {
    case $DHT_ADDR in
    *:*) printf '[%s]:%s\n' "$DHT_ADDR" "$1" ;;
    *) printf '%s:%s\n' "$DHT_ADDR" "$1" ;;
    esac
}

# dht_free_ports N: print N distinct UDP ports that are free on $DHT_ADDR
# (all held at once while choosing, so they differ; TCP checked too because
# a node's HTTP port equals its DHT port). Fails if $DHT_ADDR is unusable.
dht_free_ports() {
    "$PY" - "$1" "$DHT_ADDR" <<'EOF'
import socket, sys
n, addr = int(sys.argv[1]), sys.argv[2]
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
held, ports = [], []
while len(ports) < n:
    u = socket.socket(fam, socket.SOCK_DGRAM)
    u.bind((addr, 0))
    port = u.getsockname()[1]
    t = socket.socket(fam, socket.SOCK_STREAM)
    try:
        t.bind((addr, port))
    except OSError:
        held.append(u)
        t.close()
        continue
    held += [u, t]
    ports.append(port)
print(" ".join(map(str, ports)))
EOF
}

# dht_random_key: 40 hex digits.
dht_random_key() {
    od -An -N20 -tx1 /dev/urandom | tr -d ' \n'
}

# dht_start_node MODE PORT [BOOTSTRAP_PORT...]: start `apt-dht-node run` in
# the background on $DHT_ADDR:PORT; its output goes to $WORK/node-PORT.log.
# Sets LAST_PID.
dht_start_node() {
    mode=$1 port=$2
    shift 2
    boot=""
    for b in "$@"; do boot="$boot --bootstrap $(dht_hostport "$b")"; done
    # shellcheck disable=SC2086
    "$NODE" --mode "$mode" --bind "$DHT_ADDR" --port "$port" $boot \
        ${DHT_NODE_EXTRA:-} run >"$WORK/node-$port.log" 2>&1 &
    LAST_PID=$!
    dht_track "$LAST_PID"
}

# dht_now: seconds since the epoch.
dht_now() { date +%s; }

# dht_wait_ping MODE PORT DEADLINE: ping $DHT_ADDR:PORT with one-shot nodes
# until it answers or the epoch second DEADLINE passes. Returns 0/1.
dht_wait_ping() {
    while :; do
        if timeout 10 "$NODE" --mode "$1" --bind "$DHT_ADDR" ping "$(dht_hostport "$2")" \
                >/dev/null 2>>"$WORK/ping.log"; then
            return 0
        fi
        [ "$(dht_now)" -lt "$3" ] || return 1
        sleep 0.2
    done
}

# dht_python_with_libtorrent: print a python3 that can import libtorrent
# (Debian's module lives in /usr/lib/python3/dist-packages, which a python3
# from elsewhere on PATH does not see). Returns 1 if there is none.
# LT_PYTHON, when set, is the only interpreter tried.
dht_python_with_libtorrent() {
    for p in ${LT_PYTHON:-/usr/bin/python3 "$(command -v python3)"}; do
        [ -x "$p" ] || continue
        if "$p" -c 'import libtorrent' 2>/dev/null; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    return 1
}
