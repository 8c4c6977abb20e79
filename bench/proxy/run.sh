#!/bin/sh
# apt-dht-proxy vs apt-cacher-ng, side by side in one run, on loopback.
# See bench/proxy/README.md for what each figure means.
#
#   sh bench/proxy/run.sh            (from the top of a built tree)
#
# Environment (all optional):
#   BENCH_SIZE_MIB   size of the test file, MiB                 (64)
#   BENCH_REPS       repetitions of each warm measurement       (11)
#   BENCH_CLIENTS    concurrent clients of the parallel run     (16)
#   BENCH_COLD_REPS  repetitions of the cold path               (3)
#   BENCH_RATE       mirror rate for the cold path, bytes/s     (20971520 = 20 MiB/s)
#   BENCH_APT        1: also time the real apt-get through each (1)
#   BENCH_MIRROR_NODELAY 1: the mirror sets TCP_NODELAY like real mirrors (1)
#   BENCH_RESULTS    directory for the report         ($top_srcdir/bench/results)
#   APT_DHT_PROXY    the apt-dht-proxy binary (default: this build's)
#
# Everything listens on 127.0.0.1; every process it starts is stopped by PID
# when it ends and its temporary directory is removed.

top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/bench/proxy/lib-bench.sh"

SIZE_MIB=${BENCH_SIZE_MIB:-64}
REPS=${BENCH_REPS:-11}
CLIENTS=${BENCH_CLIENTS:-16}
COLD_REPS=${BENCH_COLD_REPS:-3}
RATE=${BENCH_RATE:-20971520}
DO_APT=${BENCH_APT:-1}
NODELAY=${BENCH_MIRROR_NODELAY:-1}
RESULTS=${BENCH_RESULTS:-$top_srcdir/bench/results}
for _v in "$SIZE_MIB" "$REPS" "$CLIENTS" "$COLD_REPS" "$RATE"; do
    case $_v in ''|*[!0-9]*|0) hard_error "BENCH_* settings must be positive integers" ;; esac
done

require_tool curl python3 apt-cacher-ng awk
[ -x "$(proxy_bin)" ] || hard_error "apt-dht-proxy not built: $(proxy_bin) (autoreconf -fi && ./configure && make)"
if [ "$DO_APT" = 1 ]; then require_tool apt-get timeout; fi

say() { printf '[bench] %s\n' "$*" >&2; }

# alive WHEN: note (in the report and on stderr, with the tool's own log) a
# daemon that is no longer running; every figure after that is "-".
DEAD_NOTES=""
alive() {
    if ! kill -0 "$PROXY_PID" 2>/dev/null; then
        DEAD_NOTES="$DEAD_NOTES
- apt-dht-proxy was not running any more $1"
        say "apt-dht-proxy died $1; its log:"; tail -n 20 "$PROXY_LOG" >&2
    fi
    if ! kill -0 "$ACNG_PID" 2>/dev/null; then
        DEAD_NOTES="$DEAD_NOTES
- apt-cacher-ng was not running any more $1"
        say "apt-cacher-ng died $1; its logs:"
        tail -n 20 "$T/acng/stdout.log" "$T/acng/log/apt-cacher.err" >&2 2>/dev/null || true
    fi
}

# ---------------------------------------------------------------------------
# The archive: a private copy of the fixture, plus the benchmark's own files
# in its pool (random bytes, .deb names; not listed in any index).

fixture_build
fixture_copy "$T/archive"
BDIR="pool/main/b/bench"
mkdir -p "$FIXTURE_ROOT/$BDIR"
SIZE=$((SIZE_MIB * 1048576))
say "making the ${SIZE_MIB} MiB test files"
head -c "$SIZE" /dev/urandom > "$FIXTURE_ROOT/$BDIR/bench-warm_1.0_all.deb"
i=0
while [ "$i" -lt "$COLD_REPS" ]; do
    i=$((i + 1))
    head -c "$SIZE" /dev/urandom > "$FIXTURE_ROOT/$BDIR/bench-cold${i}_1.0_all.deb"
done
WARM_SUM=$(sha256_of "$FIXTURE_ROOT/$BDIR/bench-warm_1.0_all.deb")

# ---------------------------------------------------------------------------
# The mirror and both proxies, each on its own low port, each with a fresh cache.

if [ "$NODELAY" = 1 ]; then
    # Only the mirror's python loads bench/proxy/nodelay/sitecustomize.py.
    mport=$(low_port)
    _pp_was_set=${PYTHONPATH+x} _pp=${PYTHONPATH-}
    PYTHONPATH="$top_srcdir/bench/proxy/nodelay${_pp:+:$_pp}"
    export PYTHONPATH
    mirror_start --port "$mport"
    if [ -n "$_pp_was_set" ]; then PYTHONPATH=$_pp; else unset PYTHONPATH; fi
    MIRROR_NOTE="mirror with TCP_NODELAY"
else
    mirror_start --port "$(low_port)"
    MIRROR_NOTE="mirror without TCP_NODELAY (Nagle: ~40 ms per small file on a reused connection)"
fi
MPATH="$MIRROR_URL/debian/$BDIR"
PROXY_PORT=$(low_port)
ACNG_PORT=$(low_port)
while [ "$ACNG_PORT" = "$PROXY_PORT" ] || [ "$ACNG_PORT" = "$MIRROR_PORT" ]; do ACNG_PORT=$(low_port); done
export PROXY_PORT ACNG_PORT
proxy_start
acng_start
say "mirror $MIRROR_URL, apt-dht-proxy $PROXY_URL (pid $PROXY_PID), apt-cacher-ng $ACNG_URL (pid $ACNG_PID)"

sleep 2
RSS_IDLE_D=$(mem_kib "$PROXY_PID" VmRSS); RSS_IDLE_A=$(mem_kib "$ACNG_PID" VmRSS)
ANON_IDLE_D=$(mem_kib "$PROXY_PID" RssAnon); ANON_IDLE_A=$(mem_kib "$ACNG_PID" RssAnon)
PSS_IDLE_D=$(pss_kib "$PROXY_PID"); PSS_IDLE_A=$(pss_kib "$ACNG_PID")

# ---------------------------------------------------------------------------
# Pre-warm: one fetch each, checked byte for byte; then the mirror must not
# be asked again for that file.

WARM_URL="$MPATH/bench-warm_1.0_all.deb"
for px in "$PROXY_URL" "$ACNG_URL"; do
    bcurl -f -x "$px" -o "$T/prewarm" "$WARM_URL" || hard_error "pre-warm through $px failed"
    [ "$(sha256_of "$T/prewarm")" = "$WARM_SUM" ] || hard_error "pre-warm through $px: wrong content"
    bcurl -f -x "$px" -o "$T/prewarm" "$WARM_URL" || hard_error "second fetch through $px failed"
    [ "$(sha256_of "$T/prewarm")" = "$WARM_SUM" ] || hard_error "cached copy from $px: wrong content"
done
rm -f "$T/prewarm"
warm_from_mirror=$(mirror_requests "*/bench-warm_1.0_all.deb" 200)
[ "$warm_from_mirror" = 2 ] || say "note: the mirror served the warm file $warm_from_mirror times (expected 2: once per proxy)"

# ---------------------------------------------------------------------------
# Warm serving, 1 client and CLIENTS concurrent clients. The two tools
# alternate within each repetition so that both see the same machine noise.

say "warm, 1 client, $REPS repetitions"
CPU0_D=$(cpu_ticks "$PROXY_PID"); CPU0_A=$(cpu_ticks "$ACNG_PID")
: > "$T/w1.d"; : > "$T/w1.a"
r=0
while [ "$r" -lt "$REPS" ]; do
    r=$((r + 1))
    for tool in d a; do
        if [ $tool = d ]; then px=$PROXY_URL; else px=$ACNG_URL; fi
        set -- $(fetch_time "$px" "$WARM_URL")
        [ "${2:-0}" = "$SIZE" ] || { say "warm 1-client fetch ($tool) got ${2:-0} bytes"; continue; }
        awk -v t="$1" -v s="$SIZE" 'BEGIN { printf "%.3f\n", s / 1048576 / t }' >> "$T/w1.$tool"
    done
done
CPU1_D=$(cpu_ticks "$PROXY_PID"); CPU1_A=$(cpu_ticks "$ACNG_PID")

say "warm, $CLIENTS concurrent clients, $REPS repetitions"
: > "$T/wn.d"; : > "$T/wn.a"
r=0
while [ "$r" -lt "$REPS" ]; do
    r=$((r + 1))
    for tool in d a; do
        if [ $tool = d ]; then px=$PROXY_URL; else px=$ACNG_URL; fi
        set -- $(fetch_parallel "$CLIENTS" "$px" "$WARM_URL" "$T/par")
        [ "$2" = "$((SIZE * CLIENTS))" ] || { say "warm parallel run ($tool) got $2 of $((SIZE * CLIENTS)) bytes"; continue; }
        awk -v t="$1" -v s="$2" 'BEGIN { printf "%.3f\n", s / 1048576 / t }' >> "$T/wn.$tool"
    done
done
CPU2_D=$(cpu_ticks "$PROXY_PID"); CPU2_A=$(cpu_ticks "$ACNG_PID")
sleep 2
alive "after the warm runs"
RSS_WARM_D=$(mem_kib "$PROXY_PID" VmRSS); RSS_WARM_A=$(mem_kib "$ACNG_PID" VmRSS)
ANON_WARM_D=$(mem_kib "$PROXY_PID" RssAnon); ANON_WARM_A=$(mem_kib "$ACNG_PID" RssAnon)

# ---------------------------------------------------------------------------
# Cold path through the rate-limited mirror: a file neither proxy has seen,
# compared with a direct download of the same file.

say "cold, mirror at $RATE bytes/s, $COLD_REPS repetitions"
mirror_ctl rate "{\"bytes_per_sec\": $RATE}" >/dev/null
: > "$T/c.direct"; : > "$T/c.d"; : > "$T/c.a"
: > "$T/cf.direct"; : > "$T/cf.d"; : > "$T/cf.a"
i=0
while [ "$i" -lt "$COLD_REPS" ]; do
    i=$((i + 1))
    u="$MPATH/bench-cold${i}_1.0_all.deb"
    for tool in direct d a; do
        case $tool in direct) px=direct ;; d) px=$PROXY_URL ;; a) px=$ACNG_URL ;; esac
        set -- $(fetch_time "$px" "$u")
        [ "${2:-0}" = "$SIZE" ] || { say "cold fetch ($tool) got ${2:-0} bytes"; continue; }
        echo "$1" >> "$T/c.$tool"
        echo "$3" >> "$T/cf.$tool"
    done
done
mirror_ctl rate '{"bytes_per_sec": 0}' >/dev/null
alive "after the cold path"

# ---------------------------------------------------------------------------
# Optional: the real apt-get (sandboxed) through each, proxy mode: update and
# download of every fixture package, first with a cold cache, then again from
# a second client (warm cache). The direct figure is apt without a proxy.

apt_time() { # DIR MODE [PROXY_URL] -> seconds, or "-" on failure
    apt_sandbox "$1" > /dev/null
    if [ "$2" = direct ]; then apt_sources "$1" direct; else apt_sources "$1" proxy "$3"; fi
    _t0=$(now_ns)
    if apt_run "$1" update >> "$T/apt.log" 2>&1 && apt_download_all "$1" >> "$T/apt.log" 2>&1; then
        _t1=$(now_ns)
        awk -v a="$_t0" -v b="$_t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }'
    else
        echo "-"
    fi
}
APT_DIRECT="-"; APT_COLD_D="-"; APT_COLD_A="-"; APT_WARM_D="-"; APT_WARM_A="-"
if [ "$DO_APT" = 1 ]; then
    say "apt-get update + download of every fixture package"
    APT_DIRECT=$(apt_time "$T/apt-direct" direct)
    APT_COLD_D=$(apt_time "$T/apt-d1" proxy "$PROXY_URL")
    APT_COLD_A=$(apt_time "$T/apt-a1" proxy "$ACNG_URL")
    APT_WARM_D=$(apt_time "$T/apt-d2" proxy "$PROXY_URL")
    APT_WARM_A=$(apt_time "$T/apt-a2" proxy "$ACNG_URL")
    alive "after the apt-get runs"
    for _x in "$APT_DIRECT" "$APT_COLD_D" "$APT_COLD_A" "$APT_WARM_D" "$APT_WARM_A"; do
        [ "$_x" != "-" ] || { say "an apt-get run failed; its output:"; tail -n 30 "$T/apt.log" >&2; break; }
    done
fi

# ---------------------------------------------------------------------------
# The report.

W1_D=$(median < "$T/w1.d"); W1_A=$(median < "$T/w1.a")
WN_D=$(median < "$T/wn.d"); WN_A=$(median < "$T/wn.a")
C_DIR=$(median < "$T/c.direct"); C_D=$(median < "$T/c.d"); C_A=$(median < "$T/c.a")
CF_DIR=$(median < "$T/cf.direct"); CF_D=$(median < "$T/cf.d"); CF_A=$(median < "$T/cf.a")
CR_D=$(ratio "$C_D" "$C_DIR"); CR_A=$(ratio "$C_A" "$C_DIR")
tck=$(getconf CLK_TCK)
cpu() { awk -v a="$1" -v b="$2" -v t="$tck" 'BEGIN { printf "%.2f\n", (b - a) / t }'; }
CPUW1_D=$(cpu "$CPU0_D" "$CPU1_D"); CPUW1_A=$(cpu "$CPU0_A" "$CPU1_A")
CPUWN_D=$(cpu "$CPU1_D" "$CPU2_D"); CPUWN_A=$(cpu "$CPU1_A" "$CPU2_A")
mib() { awk -v k="$1" 'BEGIN { printf "%.1f\n", k / 1024 }'; }
samples() { tr '\n' ' ' < "$1" | sed 's/ $//'; }

stamp=$(date +%Y-%m-%d-%H%M%S)
mkdir -p "$RESULTS"
out="$RESULTS/proxy-$stamp.md"
{
    echo "# apt-dht-proxy vs apt-cacher-ng — $(date '+%Y-%m-%d %H:%M:%S %z')"
    echo
    echo "$("$(proxy_bin)" --version 2>/dev/null | head -n 1);" \
         "apt-cacher-ng $(dpkg-query -W -f='${Version}' apt-cacher-ng 2>/dev/null || echo '?');" \
         "$(nproc) CPU(s), $(uname -sr); loopback only; file ${SIZE_MIB} MiB;" \
         "warm: median of $REPS; cold: median of $COLD_REPS, mirror at $(awk -v r="$RATE" 'BEGIN { printf "%.1f", r / 1048576 }') MiB/s; $MIRROR_NOTE."
    echo
    echo "| Measure | apt-dht-proxy | apt-cacher-ng | apt-dht / acng |"
    echo "|---|---:|---:|---:|"
    echo "| Warm, 1 client (MiB/s, higher is better) | $(fmt "$W1_D" 1) | $(fmt "$W1_A" 1) | $(ratio "$W1_D" "$W1_A") |"
    echo "| Warm, $CLIENTS concurrent clients, aggregate (MiB/s) | $(fmt "$WN_D" 1) | $(fmt "$WN_A" 1) | $(ratio "$WN_D" "$WN_A") |"
    echo "| Daemon CPU for the $REPS 1-client runs (s) | $CPUW1_D | $CPUW1_A | $(ratio "$CPUW1_D" "$CPUW1_A") |"
    echo "| Daemon CPU for the $REPS $CLIENTS-client runs (s) | $CPUWN_D | $CPUWN_A | $(ratio "$CPUWN_D" "$CPUWN_A") |"
    echo "| Cold, time to get the file (s; direct: $(fmt "$C_DIR" 2) s) | $(fmt "$C_D" 2) | $(fmt "$C_A" 2) | $(ratio "$C_D" "$C_A") |"
    echo "| Cold, ratio to the direct download (1.00 = as fast as direct) | $CR_D | $CR_A | |"
    echo "| Cold, time to first byte (ms; direct: $(fmt "$(awk -v x="$CF_DIR" 'BEGIN { print x * 1000 }')" 1) ms) | $(fmt "$(awk -v x="$CF_D" 'BEGIN { print x * 1000 }')" 1) | $(fmt "$(awk -v x="$CF_A" 'BEGIN { print x * 1000 }')" 1) | $(ratio "$CF_D" "$CF_A") |"
    echo "| Idle RSS after start, VmRSS (MiB, lower is better) | $(mib "$RSS_IDLE_D") | $(mib "$RSS_IDLE_A") | $(ratio "$RSS_IDLE_D" "$RSS_IDLE_A") |"
    echo "| Idle, anonymous part of RSS, RssAnon (MiB) | $(mib "$ANON_IDLE_D") | $(mib "$ANON_IDLE_A") | $(ratio "$ANON_IDLE_D" "$ANON_IDLE_A") |"
    echo "| Idle PSS (MiB) | $(mib "$PSS_IDLE_D") | $(mib "$PSS_IDLE_A") | $(ratio "$PSS_IDLE_D" "$PSS_IDLE_A") |"
    echo "| VmRSS after the warm runs (MiB) | $(mib "$RSS_WARM_D") | $(mib "$RSS_WARM_A") | $(ratio "$RSS_WARM_D" "$RSS_WARM_A") |"
    echo "| RssAnon after the warm runs (MiB) | $(mib "$ANON_WARM_D") | $(mib "$ANON_WARM_A") | $(ratio "$ANON_WARM_D" "$ANON_WARM_A") |"
    if [ "$DO_APT" = 1 ]; then
        echo "| apt-get update + download, cold cache (s; direct: $APT_DIRECT s) | $APT_COLD_D | $APT_COLD_A | $(ratio "$APT_COLD_D" "$APT_COLD_A") |"
        echo "| apt-get update + download, second client (s) | $APT_WARM_D | $APT_WARM_A | $(ratio "$APT_WARM_D" "$APT_WARM_A") |"
    fi
    echo
    echo "Samples (apt-dht-proxy / apt-cacher-ng):"
    echo
    echo "- warm 1 client MiB/s: $(samples "$T/w1.d") / $(samples "$T/w1.a")"
    echo "- warm $CLIENTS clients MiB/s: $(samples "$T/wn.d") / $(samples "$T/wn.a")"
    echo "- cold s: $(samples "$T/c.d") / $(samples "$T/c.a"); direct: $(samples "$T/c.direct")"
    echo "- mirror GETs of the warm file: $warm_from_mirror (one per proxy expected)"
    if [ -n "$DEAD_NOTES" ]; then echo "$DEAD_NOTES"; fi
} > "$out"
cat "$out"
say "saved to $out"
