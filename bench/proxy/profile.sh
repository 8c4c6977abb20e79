#!/bin/sh
# Where does apt-dht-proxy spend its time when it serves a cached file?
#
#   sh bench/proxy/profile.sh [strace|perf|both]      (default: both)
#
# Starts the fixture mirror and apt-dht-proxy alone (no apt-cacher-ng), warms a
# BENCH_SIZE_MIB (64) MiB file into the cache, then serves it to BENCH_CLIENTS
# (16) concurrent clients while
#   strace -c -f  counts the daemon's system calls (calls, errors, time), and
#   perf record -g samples its stacks (perf report --no-children, top entries).
# The reports are printed and kept under BENCH_RESULTS (bench/results/).
# Needs strace and/or perf (scripts/deps-bench.sh --profile). Loopback only.

top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/bench/proxy/lib-bench.sh"

WHAT=${1:-both}
SIZE_MIB=${BENCH_SIZE_MIB:-64}
CLIENTS=${BENCH_CLIENTS:-16}
RESULTS=${BENCH_RESULTS:-$top_srcdir/bench/results}
require_tool curl python3
[ -x "$(proxy_bin)" ] || hard_error "apt-dht-proxy not built: $(proxy_bin)"
case $WHAT in strace|both) require_tool strace ;; esac
case $WHAT in perf|both) require_tool perf ;; esac

fixture_build
fixture_copy "$T/archive"
mkdir -p "$FIXTURE_ROOT/pool/main/b/bench"
SIZE=$((SIZE_MIB * 1048576))
head -c "$SIZE" /dev/urandom > "$FIXTURE_ROOT/pool/main/b/bench/bench-warm_1.0_all.deb"
mirror_start --port "$(low_port)"
PROXY_PORT=$(low_port)
export PROXY_PORT
proxy_start
URL="$MIRROR_URL/debian/pool/main/b/bench/bench-warm_1.0_all.deb"
bcurl -f -x "$PROXY_URL" -o /dev/null "$URL" || hard_error "pre-warm failed"

stamp=$(date +%Y-%m-%d-%H%M%S)
mkdir -p "$RESULTS"

# profile_round TOOL-PID: one parallel round; stop TOOL-PID (SIGINT) afterwards.
profile_round() {
    sleep 1
    set -- "$1" $(fetch_parallel "$CLIENTS" "$PROXY_URL" "$URL" "$T/par")
    printf '[profile] %s clients: %s bytes in %s s\n' "$CLIENTS" "$3" "$2" >&2
    kill -INT "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    untrack_pid "$1"
}

if [ "$WHAT" = strace ] || [ "$WHAT" = both ]; then
    out="$RESULTS/profile-strace-$stamp.txt"
    strace -c -f -o "$out" -p "$PROXY_PID" 2>/dev/null &
    sp=$!
    track_pid "$sp"
    profile_round "$sp"
    echo "== strace -c -f of apt-dht-proxy, $CLIENTS clients x ${SIZE_MIB} MiB (cached) =="
    head -n 25 "$out"
fi

if [ "$WHAT" = perf ] || [ "$WHAT" = both ]; then
    data="$T/perf.data"
    out="$RESULTS/profile-perf-$stamp.txt"
    perf record -q -g -o "$data" -p "$PROXY_PID" 2>/dev/null &
    pp=$!
    track_pid "$pp"
    profile_round "$pp"
    # Flat profile (self time per symbol) first, then the call graphs.
    perf report -i "$data" --stdio --no-children -g none --sort dso,sym \
        --percent-limit 1 2>/dev/null | grep -v '^$' > "$T/flat" || true
    {
        cat "$T/flat"
        perf report -i "$data" --stdio --no-children --percent-limit 3 2>/dev/null | grep -v '^$'
    } > "$out" || true
    echo "== perf: self time per symbol (>= 1%), $CLIENTS clients x ${SIZE_MIB} MiB (cached) =="
    grep -E '^ +[0-9.]+%' "$T/flat" | head -n 25
    echo "(call graphs: $out)"
fi
