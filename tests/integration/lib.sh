# Shared helpers for the apt-dht integration tests. POSIX sh (dash), sourced:
#
#   : "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
#   . "$top_srcdir/tests/integration/lib.sh"
#
# make check exports top_srcdir and top_builddir (absolute). The harness
# itself is tests/lib/common.sh: messages and exit codes (log, fail, skip,
# hard_error: 0 pass, 1 fail, 77 skip, 99 hard error), a fresh private
# directory $T per test (nothing is written to the source or build tree),
# process tracking (track_pid, stop_pid: only the test's own processes are
# stopped, by PID, when it exits), bounded waits (wait_for), free_port,
# proxy_bin. This file adds what the tests drive: the archive fixture, the
# test mirror, sandboxed apt clients and the proxy under test. The tests run
# with set -e and set -u.

set -eu

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/lib/common.sh"
LIB_FIXTURE_SRC="$top_srcdir/tests/fixture"

# Loopback only: no proxy from the environment may get between the tests and
# the servers they start (apt and curl both honour these variables).
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY \
      no_proxy NO_PROXY ftp_proxy FTP_PROXY 2>/dev/null || true
export LC_ALL=C

# curl with no user configuration, no proxy, bounded time, quiet but with errors.
tcurl() {
    curl -q -sS --noproxy '*' --max-time "${TCURL_MAX_TIME:-60}" "$@"
}

port_open() {
    _prc=0
    tcurl --max-time 2 -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null || _prc=$?
    [ "$_prc" -ne 7 ]
}

# wait_port PORT [SECONDS]: wait until something accepts connections on
# 127.0.0.1:PORT (default 10 s). Returns 1 on timeout.
wait_port() {
    wait_for "${2:-10}" port_open "$1"
}

# ---------------------------------------------------------------------------
# The archive fixture

# fixture_build: build (or reuse) the signed archive and export
#   FIXTURE_DIR   the fixture directory (served by the mirror as its root)
#   FIXTURE_ROOT  $FIXTURE_DIR/debian, the archive root
#   FIXTURE_KEY   the public keyring that signs it
#   FIXTURE_BIG   pool path (relative to FIXTURE_ROOT) of the large package
fixture_build() {
    require_tool dpkg-deb dpkg-source apt-ftparchive gpg xz gzip python3
    _fdir=$(sh "$LIB_FIXTURE_SRC/make-archive.sh" --cached) \
        || hard_error "building the archive fixture failed"
    fixture_use "$_fdir"
}

# fixture_use DIR: serve and check against the archive in DIR (the layout of
# make-archive.sh: DIR/debian, DIR/archive-key.gpg, packages.txt,
# pool.sha256, and big.path when it has a large package); sets and exports
# FIXTURE_* as fixture_build does. FIXTURE_BIG is kept when DIR has no big.path.
fixture_use() {
    FIXTURE_DIR=$(cd "$1" && pwd)
    FIXTURE_ROOT="$FIXTURE_DIR/debian"
    FIXTURE_KEY="$FIXTURE_DIR/archive-key.gpg"
    [ ! -f "$FIXTURE_DIR/big.path" ] || FIXTURE_BIG=$(cat "$FIXTURE_DIR/big.path")
    export FIXTURE_DIR FIXTURE_ROOT FIXTURE_KEY
    [ -z "${FIXTURE_BIG:-}" ] || export FIXTURE_BIG
}

# fixture_packages: the binary package names of the fixture, one per line.
fixture_packages() { cut -d' ' -f1 "$FIXTURE_DIR/packages.txt"; }

# fixture_copy DIR: a private, writable copy of the fixture (for tests that
# change the archive under a running mirror); sets FIXTURE_* to the copy.
fixture_copy() {
    cp -a "$FIXTURE_DIR" "$1"
    fixture_use "$1"
}

# sha256_of FILE
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# check_against_pool DIR: every regular file under DIR (recursively) must be
# byte-identical to some file of the fixture's pool. Prints the number checked.
check_against_pool() {
    _n=0
    _list="$T/.check-list.$$"
    find "$1" -type f > "$_list"
    while IFS= read -r _f; do
        _s=$(sha256_of "$_f")
        grep -q "^$_s " "$FIXTURE_DIR/pool.sha256" \
            || fail "$_f is not byte-identical to any pool file (sha256 $_s)"
        _n=$((_n + 1))
    done < "$_list"
    rm -f "$_list"
    echo "$_n"
}

# check_all_debs DIR: every .deb of the fixture is present in DIR (found by
# content, whatever the file name) and every file in DIR is a pool file.
check_all_debs() {
    check_against_pool "$1" >/dev/null
    find "$1" -type f -exec sha256sum {} + | cut -d' ' -f1 | sort -u > "$T/.have.$$"
    while read -r _name _ver _arch _path _size _sum; do
        grep -qx "$_sum" "$T/.have.$$" || fail "$_name ($_path) missing or wrong in $1"
    done < "$FIXTURE_DIR/packages.txt"
    rm -f "$T/.have.$$"
}

# check_source_files DIR: the source package's files are in DIR, intact.
check_source_files() {
    for _f in apt-dht-hello_1.0-1.dsc apt-dht-hello_1.0.orig.tar.gz apt-dht-hello_1.0-1.debian.tar.xz; do
        [ -f "$1/$_f" ] || fail "source file $_f missing in $1"
        cmp -s "$1/$_f" "$FIXTURE_ROOT/pool/main/a/apt-dht-hello/$_f" \
            || fail "source file $_f differs from the pool"
    done
}

# check_cache_not_corrupt DIR: no file under DIR that looks like a pool file
# has the wrong content. A file is recognised by its (percent-decoded) base
# name matching a pool file's base name, or by a base name that is the
# SHA-256 (64 hex) of a pool file (then the content must hash to that name).
# Other files (databases, metadata, index files) are ignored.
check_cache_not_corrupt() {
    [ -d "$1" ] || return 0
    _bad=0
    _list="$T/.cache-list.$$"
    find "$1" -type f > "$_list"
    while IFS= read -r _f; do
        _b=$(basename "$_f" | sed 's/%2[bB]/+/g; s/%3[aA]/:/g; s/%7[eE]/~/g')
        _want=$(awk -v b="$_b" '{ n = split($2, p, "/"); if (p[n] == b) print $1 }' \
                "$FIXTURE_DIR/pool.sha256" | head -n 1)
        if [ -z "$_want" ] && printf '%s' "$_b" | grep -Eqx '[0-9a-f]{64}' \
           && grep -q "^$_b " "$FIXTURE_DIR/pool.sha256"; then
            _want=$_b
        fi
        [ -n "$_want" ] || continue
        _got=$(sha256_of "$_f")
        if [ "$_got" != "$_want" ]; then
            echo "corrupt or partial file in cache: $_f" >&2
            _bad=1
        fi
    done < "$_list"
    rm -f "$_list"
    [ "$_bad" -eq 0 ] || fail "the cache under $1 holds wrong content"
}

# ---------------------------------------------------------------------------
# The test mirror (tests/fixture/mirror.py)
#
# mirror_start [ARGS...]: serve $FIXTURE_DIR (override with --root DIR) on
# 127.0.0.1, on a free port. Sets MIRROR_PORT, MIRROR_PID, MIRROR_LOG and
# MIRROR_URL (http://127.0.0.1:PORT; the archive is at $MIRROR_URL/debian).
mirror_start() {
    [ -n "${FIXTURE_DIR:-}" ] || fixture_build
    _mdir=$(mktemp -d "$T/mirror.XXXXXX")
    MIRROR_LOG="$_mdir/requests.log"
    : > "$MIRROR_LOG"
    python3 "$LIB_FIXTURE_SRC/mirror.py" --root "$FIXTURE_DIR" --port 0 \
        --port-file "$_mdir/port" --log "$MIRROR_LOG" "$@" 2> "$_mdir/stderr" &
    MIRROR_PID=$!
    track_pid "$MIRROR_PID"
    mirror_wait "$_mdir/port" "$_mdir/stderr"
    MIRROR_PORT=$(cat "$_mdir/port")
    MIRROR_URL="http://127.0.0.1:$MIRROR_PORT"
    export MIRROR_PORT MIRROR_PID MIRROR_LOG MIRROR_URL
}

# mirror_wait PORT-FILE STDERR-FILE: wait (15 s at most) until the mirror just
# started as MIRROR_PID has written its port to PORT-FILE; a hard error (with
# its stderr) when it exits or does not start in time.
mirror_wait() {
    _mw=0
    wait_file "$MIRROR_PID" "$1" 15 || _mw=$?
    case $_mw in
        0) ;;
        2) cat "$2" >&2; hard_error "mirror.py exited" ;;
        *) hard_error "mirror.py did not start" ;;
    esac
}

# mirror_stop: SIGTERM the mirror started by mirror_start (by its PID).
mirror_stop() {
    [ -n "${MIRROR_PID:-}" ] || return 0
    stop_pid "$MIRROR_PID" 5
    MIRROR_PID=""
}

# mirror_ctl NAME [JSON]: POST a control request (/_ctl/NAME), print the answer.
mirror_ctl() {
    _body='{}'
    [ $# -lt 2 ] || _body=$2
    tcurl --max-time 10 -f -X POST -H 'Content-Type: application/json' \
        --data-binary "$_body" "$MIRROR_URL/_ctl/$1"
}

# mirror_fault JSON: add a fault, e.g. '{"path_glob":"pool/*big*","mode":"cut","after_bytes":1000}'
mirror_fault() { mirror_ctl fault "$1" >/dev/null; }

# mirror_reset: remove all faults and zero the statistics (the log is kept).
mirror_reset() { mirror_ctl reset >/dev/null; }

# mirror_stats: the statistics as JSON.
mirror_stats() { tcurl --max-time 10 -f "$MIRROR_URL/_ctl/stats"; }

# mirror_tally GLOB [LOG] [METHOD] [STATUS]: "COUNT BYTES" over the logged
# requests (LOG, default $MIRROR_LOG) whose path matches the shell pattern
# GLOB (the logged path starts with "/", e.g. '*/pool/*'), whose method
# matches METHOD and whose status matches STATUS (shell patterns, default
# any: '*'; e.g. GET and '20[06]').
mirror_tally() {
    _cnt=0 _sum=0
    while read -r _m _path _st _bytes _rest; do
        # shellcheck disable=SC2254
        case $_m in ${3:-*}) ;; *) continue ;; esac
        # shellcheck disable=SC2254
        case $_st in ${4:-*}) ;; *) continue ;; esac
        # shellcheck disable=SC2254
        case $_path in $1) _cnt=$((_cnt + 1)); _sum=$((_sum + _bytes)) ;; esac
    done < "${2:-$MIRROR_LOG}"
    echo "$_cnt $_sum"
}

# mirror_bytes GLOB [LOG]: total body bytes the mirror sent for request paths
# matching GLOB.
mirror_bytes() {
    _tally=$(mirror_tally "$1" "${2:-}")
    echo "${_tally#* }"
}

# mirror_requests GLOB [STATUS] [LOG]: number of logged requests whose path
# matches GLOB (and whose status is STATUS, when given and not empty).
mirror_requests() {
    _tally=$(mirror_tally "$1" "${3:-}" '*' "${2:-}")
    echo "${_tally% *}"
}

# ---------------------------------------------------------------------------
# A private apt for each client

# apt_sandbox DIR: a complete, private apt configuration under DIR. Its own
# Dir::State (with an empty dpkg status), Dir::Cache, Dir::Etc, Dir::Log; the
# host's apt configuration and state are neither read nor written. The
# archive key is copied in and used with signed-by=. Works as root (apt then
# drops to its _apt user for downloads) and as any other user.
# APT_CONFIG for this client is DIR/apt.conf (apt_run sets it).
apt_sandbox() {
    _d=$1
    [ -n "${FIXTURE_KEY:-}" ] || fixture_build
    mkdir -p "$_d/etc/apt/apt.conf.d" "$_d/etc/apt/preferences.d" \
             "$_d/etc/apt/sources.list.d" "$_d/etc/apt/trusted.gpg.d" \
             "$_d/etc/apt/keyrings" "$_d/state/lists/partial" \
             "$_d/cache/archives/partial" "$_d/log" "$_d/downloads"
    _d=$(cd "$_d" && pwd)
    : > "$_d/state/dpkg-status"
    : > "$_d/etc/apt/sources.list"
    cp "$FIXTURE_KEY" "$_d/etc/apt/keyrings/fixture.gpg"
    chmod -R a+rX "$_d"
    chmod a+w "$_d/downloads"
    _sandbox_user="_apt"
    if [ "$(id -u)" -eq 0 ] && ! getent passwd _apt >/dev/null 2>&1; then
        _sandbox_user="root"
    fi
    cat > "$_d/apt.conf" <<EOF
// Private apt configuration of one apt-dht test client.
Dir "/";
Dir::State "$_d/state/";
Dir::State::status "$_d/state/dpkg-status";
Dir::State::extended_states "$_d/state/extended_states";
Dir::Cache "$_d/cache/";
Dir::Etc "$_d/etc/apt/";
Dir::Etc::main "/dev/null";
Dir::Etc::parts "apt.conf.d";
Dir::Etc::sourcelist "sources.list";
Dir::Etc::sourceparts "sources.list.d";
Dir::Etc::preferences "preferences";
Dir::Etc::preferencesparts "preferences.d";
Dir::Etc::trusted "trusted.gpg";
Dir::Etc::trustedparts "trusted.gpg.d";
Dir::Log "$_d/log/";
Dir::Log::Terminal "$_d/log/term.log";
Dir::Log::History "$_d/log/history.log";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Sandbox::User "$_sandbox_user";
APT::Get::AllowUnauthenticated "false";
APT::Cache-Start "33554432";
Acquire::Languages "none";
Acquire::Retries "${APT_RETRIES:-0}";
Acquire::http::Timeout "${APT_HTTP_TIMEOUT:-30}";
Acquire::http::Proxy "DIRECT";
Acquire::https::Proxy "DIRECT";
Acquire::PDiffs "false";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Debug::pkgAcquire "false";
Debug::Acquire::http "false";
Debug::NoLocking "false";
EOF
}

# apt_sources DIR MODE ...: write DIR's sources (deb and deb-src, signed-by
# the fixture key) for one of the ways apt can reach the archive:
#   apt_sources DIR direct  [MIRROR_URL]            deb MIRROR_URL/debian
#   apt_sources DIR proxy   [MIRROR_URL] PROXY_URL  same, through Acquire::http::Proxy
#   apt_sources DIR rewrite [MIRROR_URL] PROXY_URL  deb PROXY_URL/HOST:PORT/debian
#   apt_sources DIR backend NAME PROXY_URL          deb PROXY_URL/NAME
# MIRROR_URL defaults to $MIRROR_URL; URLs have no trailing slash.
apt_sources() {
    _d=$1 _mode=$2
    shift 2
    case $_mode in
        direct)  _murl=${1:-$MIRROR_URL}; _base="$_murl/debian"; _proxy="DIRECT" ;;
        proxy)   [ $# -ge 2 ] || set -- "$MIRROR_URL" "$1"
                 _base="$1/debian"; _proxy="$2/" ;;
        rewrite) [ $# -ge 2 ] || set -- "$MIRROR_URL" "$1"
                 _hostport=${1#*://}; _base="$2/$_hostport/debian"; _proxy="DIRECT" ;;
        backend) _base="$2/$1"; _proxy="DIRECT" ;;
        *) hard_error "apt_sources: unknown mode $_mode" ;;
    esac
    _key="$_d/etc/apt/keyrings/fixture.gpg"
    cat > "$_d/etc/apt/sources.list" <<EOF
deb [signed-by=$_key] $_base bookworm main
deb-src [signed-by=$_key] $_base bookworm main
EOF
    printf 'Acquire::http::Proxy "%s";\n' "$_proxy" > "$_d/etc/apt/apt.conf.d/50proxy"
    chmod a+r "$_d/etc/apt/sources.list" "$_d/etc/apt/apt.conf.d/50proxy"
}

# apt_run DIR APT-GET-ARGS...: run the real apt-get with DIR's configuration
# (bounded by APT_TIME_LIMIT seconds, default 300). Output goes to the test's
# log and to DIR/log/last.log; returns apt-get's status.
apt_run() {
    _d=$1; shift
    log "apt-get $*"
    set +e
    APT_CONFIG="$_d/apt.conf" timeout -k 5 "${APT_TIME_LIMIT:-300}" \
        apt-get -q -y "$@" > "$_d/log/last.log" 2>&1
    _rc=$?
    set -e
    sed 's/^/    /' "$_d/log/last.log"
    return "$_rc"
}

# apt_cache DIR ARGS...: apt-cache with DIR's configuration.
apt_cache() {
    _d=$1; shift
    APT_CONFIG="$_d/apt.conf" apt-cache "$@"
}

# apt_update DIR: apt-get update that must succeed with no warning or error.
apt_update() {
    apt_run "$1" update || fail "apt-get update failed"
    if grep -Eq '^(W|E|Err):' "$1/log/last.log"; then
        fail "apt-get update reported a problem"
    fi
}

# apt_download_all DIR [DEST]: download every binary package of the fixture
# (apt-get download, which needs no root and no dpkg) and the source package
# (apt-get source --download-only) into DEST (default DIR/downloads).
# Returns apt-get's status (the first failure).
apt_download_all() {
    _d=$1 _dest=${2:-$1/downloads}
    mkdir -p "$_dest"
    chmod a+rwx "$_dest"
    # shellcheck disable=SC2046
    (cd "$_dest" && apt_run "$_d" download $(fixture_packages)) || return $?
    (cd "$_dest" && apt_run "$_d" source --download-only apt-dht-hello) || return $?
}

# apt_check_downloads DEST: everything apt_download_all should have fetched
# is in DEST and byte-identical to the fixture's pool.
apt_check_downloads() {
    check_all_debs "$1"
    check_source_files "$1"
}

# ---------------------------------------------------------------------------
# The proxy under test (apt-dht-proxy), for the proxy tests

# proxy_config FILE [NEGATIVE_TTL]: a config with one backend "fixture" -> the
# mirror, DHT off. Sets PROXY_PORT (a free port) unless already set.
proxy_config() {
    : "${PROXY_PORT:=$(free_port)}"
    cat > "$1" <<EOF
listen: {address: 127.0.0.1, port: $PROXY_PORT}
dht: {mode: off}
backends: {fixture: [$MIRROR_URL/debian]}
cache: {negative_ttl: ${2:-5}}
EOF
}

# proxy_start [EXTRA-ARGS...]: start apt-dht-proxy in the foreground mode on
# PROXY_PORT with its cache and state under $T/proxy (kept across restarts).
# Sets PROXY_PID, PROXY_URL, PROXY_LOG (its stderr, appended), PROXY_CACHE,
# PROXY_STATE. Skips the test when the binary has not been built.
proxy_start() {
    _bin=$(proxy_bin)
    [ -x "$_bin" ] || skip "apt-dht-proxy not built ($_bin)"
    PROXY_CACHE="$T/proxy/cache"
    PROXY_STATE="$T/proxy/state"
    PROXY_CONF="$T/proxy/apt-dht.conf"
    PROXY_LOG="$T/proxy/stderr.log"
    mkdir -p "$PROXY_CACHE" "$PROXY_STATE"
    [ -f "$PROXY_CONF" ] || proxy_config "$PROXY_CONF"
    "$_bin" -f -c "$PROXY_CONF" -p "$PROXY_PORT" --cache-dir "$PROXY_CACHE" \
        --state-dir "$PROXY_STATE" "$@" >> "$PROXY_LOG" 2>&1 &
    PROXY_PID=$!
    track_pid "$PROXY_PID"
    PROXY_URL="http://127.0.0.1:$PROXY_PORT"
    export PROXY_PORT PROXY_PID PROXY_URL PROXY_LOG PROXY_CACHE PROXY_STATE PROXY_CONF
    if ! wait_port "$PROXY_PORT" 15; then
        tail -n 20 "$PROXY_LOG" >&2
        fail "apt-dht-proxy did not start listening on $PROXY_PORT"
    fi
    kill -0 "$PROXY_PID" 2>/dev/null || { tail -n 20 "$PROXY_LOG" >&2; fail "apt-dht-proxy exited"; }
}

# proxy_stop: SIGTERM (graceful stop), by PID.
proxy_stop() {
    [ -n "${PROXY_PID:-}" ] || return 0
    stop_pid "$PROXY_PID" 10
    PROXY_PID=""
}

# proxy_kill9: SIGKILL the proxy, by PID (crash simulation).
proxy_kill9() {
    [ -n "${PROXY_PID:-}" ] || return 0
    kill -KILL "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
    untrack_pid "$PROXY_PID"
    PROXY_PID=""
}

# p2p_node_start NAME PORT [BOOTSTRAP-PORT]: one of several proxies on loopback sharing
# through the DHT, with its own cache and state under $T/NAME (log $T/NAME/log, PID in
# PID_NAME); P2P_MODE (default apt-dht) is its dialect, P2P_LOG_LEVEL (default debug)
# its log level; LAN discovery off, the peer budget 2 s (lookups on a loaded machine).
p2p_node_start() {
    _n=$1 _p=$2 _b=${3:-}
    mkdir -p "$T/$_n/cache" "$T/$_n/state"
    _boot=""
    [ -n "$_b" ] && _boot="\"127.0.0.1:$_b\""
    cat > "$T/$_n/apt-dht.conf" <<EOC
listen: {address: 127.0.0.1, port: $_p}
backends: {fixture: [$MIRROR_URL/debian]}
dht: {mode: ${P2P_MODE:-apt-dht}, lan_discovery: false, bootstrap: [$_boot]}
peers: {budget: 2000}
log: {level: ${P2P_LOG_LEVEL:-debug}}
EOC
    "$(proxy_bin)" -f -c "$T/$_n/apt-dht.conf" --cache-dir "$T/$_n/cache" \
        --state-dir "$T/$_n/state" >> "$T/$_n/log" 2>&1 &
    eval "PID_$_n=$!"
    track_pid "$!"
    wait_port "$_p" 15 || { tail -20 "$T/$_n/log"; fail "proxy $_n did not start"; }
}

# p2p_client NAME PORT: a sandboxed apt ($T/client-NAME) using the proxy on PORT by
# backend name: update, download every fixture package, check them.
p2p_client() {
    _c="$T/client-$1"
    apt_sandbox "$_c"
    apt_sources "$_c" backend fixture "http://127.0.0.1:$2"
    apt_update "$_c"
    apt_download_all "$_c" "$_c/downloads" || fail "host $1: apt could not download everything"
    apt_check_downloads "$_c/downloads"
}

# http_status URL [CURL-ARGS...]: print the HTTP status code curl got (000 when none).
http_status() {
    _u=$1; shift
    tcurl -o /dev/null -w '%{http_code}' "$@" "$_u" 2>/dev/null || true
}

# raw_request PORT: send stdin verbatim to 127.0.0.1:PORT, print the status
# code of the answer (000 when the connection closed without one).
raw_request() {
    python3 -c 'import socket, sys
data = sys.stdin.buffer.read()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
try:
    s.sendall(data)  # no half-close: libmicrohttpd takes it for a hang-up mid-request
except OSError:
    pass
buf = b""
try:
    while len(buf) < 64:
        b = s.recv(4096)
        if not b:
            break
        buf += b
except OSError:
    pass
parts = buf.split(b" ", 2)
print(parts[1].decode("ascii", "replace") if len(parts) > 1 and buf.startswith(b"HTTP/") else "000")' "$1"
}
