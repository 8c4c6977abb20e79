# Helpers for the process-level DHT tests: swarms of real apt-dht-node
# processes on loopback (127.0.0.1, or ::1 when the caller sets DHT_ADDR=::1
# before dht_init). POSIX sh, sourced, not run:
#
#   . "$(dirname "$0")/lib.sh"
#   dht_init
#
# Underneath is tests/lib/common.sh: log, fail, skip, now, track_pid and
# untrack_pid, wait_every, free_ports; every process a test starts is tracked
# by PID and stopped when it exits, and every wait is bounded by a deadline.
# Unlike the integration tests, these run without set -e: they test exit
# statuses themselves.
#
# After dht_init the caller has:
#   NODE      path of the apt-dht-node binary
#   WORK      the test's private directory ($T; KEEP_WORK=1 keeps it, whatever
#             the outcome); on a failure the last lines of each WORK/*.log are shown
#   PY        a python3 interpreter
#   DHT_ADDR  the loopback address the nodes use (127.0.0.1 unless set)

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/lib/common.sh"

dht_init() {
    NODE=$(node_bin)
    [ -x "$NODE" ] || hard_error "apt-dht-node not built at $NODE"
    # shellcheck disable=SC2034 # for the callers
    PY=$(command -v python3) || skip "python3 not found"
    : "${DHT_ADDR:=127.0.0.1}"
    case $DHT_ADDR in
    127.0.0.1 | ::1) ;;
    *) hard_error "DHT_ADDR must be 127.0.0.1 or ::1" ;;
    esac
    WORK=$T
    # shellcheck disable=SC2034 # read by common.sh's clean-up
    [ "${KEEP_WORK:-0}" != 1 ] || KEEP_TMP=always
    on_exit _dht_show_logs
}

# At exit (an exit hook): on a failure, stop the nodes, then show the end of
# every log in WORK, so that make check's log says what the nodes saw.
_dht_show_logs() {
    case $LIB_STATUS in 0 | 77) return 0 ;; esac
    # shellcheck disable=SC2086
    stop_pids 5 $LIB_PIDS
    for f in "$WORK"/*.log; do
        [ -s "$f" ] || continue
        printf '=== %s (last 20 lines)\n' "${f##*/}" >&2
        tail -n 20 "$f" >&2
    done
}

# dht_hostport PORT: PORT on $DHT_ADDR as apt-dht-node writes it
# (127.0.0.1:PORT or [::1]:PORT).
dht_hostport() {
    case $DHT_ADDR in
    *:*) printf '[%s]:%s\n' "$DHT_ADDR" "$1" ;;
    *) printf '%s:%s\n' "$DHT_ADDR" "$1" ;;
    esac
}

# dht_free_ports N: N distinct ports free on $DHT_ADDR for UDP (the DHT) and
# TCP (a node's HTTP port equals its DHT port). Fails if $DHT_ADDR is unusable.
dht_free_ports() { free_ports "$1" "$DHT_ADDR"; }

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
    track_pid "$LAST_PID"
}

# dht_wait_ping MODE PORT DEADLINE: ping $DHT_ADDR:PORT with one-shot nodes
# until it answers or the epoch second DEADLINE passes. Returns 0/1.
dht_wait_ping() {
    wait_every 0.2 $(( $3 - $(now) )) _dht_ping "$1" "$2"
}

_dht_ping() {
    timeout 10 "$NODE" --mode "$1" --bind "$DHT_ADDR" ping "$(dht_hostport "$2")" \
        2>>"$WORK/ping.log"
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
