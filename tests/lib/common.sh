# The harness under every apt-dht shell test and shell benchmark: messages
# and automake's exit codes, process tracking and clean-up, the run's private
# directory, free ports and bounded waits. POSIX sh (dash), sourced by
# tests/integration/lib.sh and tests/dht/lib.sh (and, through the first,
# tests/lab/lab.sh and the benchmarks) once top_srcdir is known:
#
#   . "$top_srcdir/tests/lib/common.sh"
#
# The model: a run owns what it starts and nothing else. Every background
# process it starts is recorded by PID (track_pid). When the run ends, for
# whatever reason (pass, fail, skip, a signal), the exit hooks (on_exit) run,
# every recorded process still there gets SIGTERM, then SIGKILL if it
# outlives the grace period, and the private directory $T is removed.
# Processes are only ever stopped by PID, never by name. Every wait has a
# deadline in seconds.
#
# Exit codes follow automake: 0 pass, 1 fail, 77 skip, 99 hard error.
# KEEP_TMP=1 (any non-empty value) keeps $T after a failure; KEEP_TMP=always
# keeps it whatever the outcome.
#
# No shell option is set here: set -e is the choice of the including library.

# Sourced twice (a library sourcing another), the second time is a no-op: a
# second $T and trap would orphan the first.
[ -z "${LIB_COMMON_LOADED:-}" ] || return 0
LIB_COMMON_LOADED=1

: "${top_builddir:=$top_srcdir}"

# ---------------------------------------------------------------------------
# Messages, assertions, skipping

log() { printf '%s: %s\n' "${0##*/}" "$*"; }

fail() {
    printf '%s: FAIL: %s\n' "${0##*/}" "$*" >&2
    exit 1
}

# Hard error: the harness itself is broken (automake's ERROR result).
hard_error() {
    printf '%s: ERROR: %s\n' "${0##*/}" "$*" >&2
    exit 99
}

skip() {
    printf '%s: SKIP: %s\n' "${0##*/}" "$*"
    exit 77
}

# check_eq EXPECTED ACTUAL WHAT
check_eq() {
    [ "$1" = "$2" ] || fail "$3: expected '$1', got '$2'"
}

# require_tool TOOL...: skip when a tool is missing (scripts/deps.sh --test).
require_tool() {
    for _t in "$@"; do
        command -v "$_t" >/dev/null 2>&1 || skip "missing tool: $_t (scripts/deps.sh --test)"
    done
}

# ---------------------------------------------------------------------------
# Time and bounded waits

# now: seconds since the epoch.
now() { date +%s; }

# wait_every STEP SECONDS COMMAND...: run COMMAND (its output discarded) every
# STEP seconds until it succeeds. COMMAND runs at least once; returns 1 when
# SECONDS have passed without success.
wait_every() {
    _we_step=$1 _we_deadline=$(( $(now) + $2 ))
    shift 2
    while ! "$@" >/dev/null 2>&1; do
        [ "$(now)" -lt "$_we_deadline" ] || return 1
        sleep "$_we_step"
    done
}

# wait_for SECONDS COMMAND...: wait_every 0.1 s.
wait_for() { wait_every 0.1 "$@"; }

# wait_file PID FILE SECONDS: wait until FILE exists and is not empty while
# PID, the process that writes it, still runs. Returns 0 once it is there, 1
# when SECONDS pass first, 2 when PID exits first.
wait_file() {
    _wf_deadline=$(( $(now) + $3 ))
    while [ ! -s "$2" ]; do
        kill -0 "$1" 2>/dev/null || return 2
        [ "$(now)" -lt "$_wf_deadline" ] || return 1
        sleep 0.05
    done
}

# ---------------------------------------------------------------------------
# Processes and clean-up

LIB_PIDS=""         # the tracked PIDs (read it, change it only through the helpers)
LIB_EXIT_HOOKS=""
LIB_STATUS=""       # the run's exit status, once it is ending (for the exit hooks)
T=""

# list_without WORD LIST...: the words of LIST other than WORD, on one line.
list_without() {
    _lw=$1 _lw_out=""
    shift
    for _lw_w in "$@"; do [ "$_lw_w" = "$_lw" ] || _lw_out="$_lw_out $_lw_w"; done
    echo "$_lw_out"
}

# track_pid PID: stop PID when the run ends.
track_pid() { LIB_PIDS="$LIB_PIDS $1"; }

# untrack_pid PID: forget PID (it was reaped, or is left to someone else).
# shellcheck disable=SC2086
untrack_pid() { LIB_PIDS=$(list_without "$1" $LIB_PIDS); }

# on_exit 'COMMAND': run COMMAND (with eval) when the run ends, before the
# tracked processes are stopped (a hook may stop some of them its own way).
on_exit() { LIB_EXIT_HOOKS="$LIB_EXIT_HOOKS
$1"; }

# stop_pids SECONDS PID...: SIGTERM every PID at once, wait up to SECONDS for
# all of them, then SIGKILL the ones left; reap and untrack each. Only for
# PIDs this run started.
stop_pids() {
    _sp_grace=$1
    shift
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null || true
    _sp_deadline=$(( $(now) + _sp_grace ))
    while :; do
        _sp_alive=""
        for _sp in "$@"; do
            if kill -0 "$_sp" 2>/dev/null; then _sp_alive="$_sp_alive $_sp"; fi
        done
        [ -n "$_sp_alive" ] || break
        if [ "$(now)" -ge "$_sp_deadline" ]; then
            for _sp in $_sp_alive; do
                printf '%s: pid %s ignored SIGTERM for %s s; killing\n' "${0##*/}" "$_sp" "$_sp_grace" >&2
                kill -KILL "$_sp" 2>/dev/null || true
            done
            break
        fi
        sleep 0.1
    done
    for _sp in "$@"; do
        wait "$_sp" 2>/dev/null || true
        untrack_pid "$_sp"
    done
}

# stop_pid PID [SECONDS]: stop_pids for one PID (default grace 5 s).
stop_pid() { stop_pids "${2:-5}" "$1"; }

_lib_cleanup() {
    LIB_STATUS=$?
    trap - EXIT
    trap '' HUP INT PIPE TERM    # finish cleaning up whatever happens now
    set +e
    if [ -n "$LIB_EXIT_HOOKS" ]; then
        eval "$LIB_EXIT_HOOKS"
    fi
    # shellcheck disable=SC2086
    stop_pids 5 $LIB_PIDS
    if [ -n "$T" ] && [ -d "$T" ]; then
        if [ "${KEEP_TMP:-}" = always ] ||
           { [ "$LIB_STATUS" -ne 0 ] && [ "$LIB_STATUS" -ne 77 ] && [ -n "${KEEP_TMP:-}" ]; }; then
            echo "kept test directory: $T" >&2
        else
            rm -rf "$T"
        fi
    fi
    exit "$LIB_STATUS"
}
# A shell killed by an untrapped signal skips its EXIT trap, so every signal
# that can end the run (SIGPIPE too, when the reader of its output goes away)
# becomes an exit.
trap _lib_cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

# The run's private directory. Mode 755 so that apt, when run as root, can
# hand its downloads to its unprivileged _apt sandbox user.
T=$(mktemp -d "${TMPDIR:-/tmp}/apt-dht-test.XXXXXX") || hard_error "mktemp -d failed"
chmod 755 "$T"
export T

# ---------------------------------------------------------------------------
# Ports and the programs under test

# free_ports [N [ADDR [LOW-HIGH]]]: print N (default 1) distinct ports that
# were free a moment ago on ADDR (default 127.0.0.1; "::1" for IPv6) for both
# TCP and UDP (a proxy's DHT port is its HTTP port). All are held at once while
# choosing, so they differ. With LOW-HIGH, random ports from that range
# (apt-cacher-ng cannot use ports above 32767); otherwise the kernel's.
free_ports() {
    python3 - "${1:-1}" "${2:-127.0.0.1}" "${3:-}" <<'PY'
import random, socket, sys
n, addr, span = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lo, hi = (int(x) for x in span.split("-")) if span else (0, 0)
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
held, ports = [], []
for _ in range(100 * n + 200):
    if len(ports) == n:
        break
    u = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        u.bind((addr, random.randint(lo, hi) if span else 0))
    except OSError:
        u.close()
        if not span:
            raise          # no ephemeral port at all: ADDR is unusable
        continue
    port = u.getsockname()[1]
    t = socket.socket(fam, socket.SOCK_STREAM)
    try:
        t.bind((addr, port))
    except OSError:
        held.append(u)     # keep it, so the kernel does not offer it again
        t.close()
        continue
    held += [u, t]
    ports.append(port)
if len(ports) < n:
    sys.exit("free_ports: found %d of %d free ports on %s %s" % (len(ports), n, addr, span))
print(" ".join(map(str, ports)))
PY
}

# free_port: one port free on 127.0.0.1 (TCP and UDP) a moment ago.
free_port() { free_ports 1; }

# proxy_bin: the apt-dht-proxy binary of this build (APT_DHT_PROXY overrides).
proxy_bin() { echo "${APT_DHT_PROXY:-$top_builddir/apt-dht-proxy/apt-dht-proxy}"; }

# node_bin: the apt-dht-node binary of this build (APT_DHT_NODE overrides).
node_bin() { echo "${APT_DHT_NODE:-$top_builddir/dht/apt-dht-node}"; }
