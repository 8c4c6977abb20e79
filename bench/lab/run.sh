#!/bin/sh
# LAN lab benchmark of apt-dht: 8 hosts fetch a ~200 MiB package set from a
# rate-limited mirror, side by side in one run:
#   (a) direct      every host straight to the mirror (apt without a proxy)
#   (b) acng        one apt-cacher-ng for the whole lab, in its own namespace
#   (c) apt-dht     apt-dht-proxy on every host (LAN discovery, no bootstrap)
# For each: the total wall time until all 8 hosts have the set (apt-get update
# + download of every package), the bytes the mirror served, the CPU of the
# caching daemons, and how even the upload load is: the bytes each lab member
# sent on its link (eth0's tx counter; hosts and apt-cacher-ng's machine) and
# the largest share of them that one member sent. Prints a Markdown table and
# saves it under bench/results/.
#
# The lab is tests/lab/lab.sh: network namespaces on one bridge, nothing sent
# from or to the root namespace, everything removed at exit. The mirror's
# egress (its veth, inside its namespace) is shaped with tc tbf.
#
# Needs root, the build (apt-dht-proxy) and apt-cacher-ng (its binary only:
# it runs here in the foreground in the lab, never as a system service).
#
# Settings (environment):
#   BENCH_HOSTS      number of hosts (default 8)
#   BENCH_COUNT      packages in the set (default 10)
#   BENCH_SIZE_MIB   size of each package in MiB (default 20)
#   BENCH_RATE       mirror egress rate for tc tbf (default 200mbit)
#   BENCH_DELAY      extra one-way delay at the mirror for tc netem (default: none, e.g. 5ms)
#   BENCH_HOST_RATE  the link rate of every host and of apt-cacher-ng's machine, both
#                    ways (tc tbf on each end of its veth; default: none, e.g. 400mbit).
#                    Under a host's own tbf is pfifo_fast, Linux's default qdisc, so
#                    socket priorities (apt-dht's uploads go to its bulk band) act as
#                    on a Debian host; the bridge end (the switch port) is one FIFO.
#                    Models machines with their own network cards: without it the
#                    hosts are limited only by the CPU cores they all share.
#   BENCH_SCHEDULE   first-then-rest (default: host 1 alone, then all others at
#                    once), parallel (all at once), sequential (one after another),
#                    departed (hosts 1 and 2 one after the other, then host 1's link
#                    dies while the DHT still lists it, then hosts 3.. at once; "the
#                    others" is the time of hosts 3..; run it again with
#                    BENCH_DHT_MODE=off for the no-DHT figure), churn (all at
#                    once; after BENCH_CHURN_AT s (default 2) the links of hosts 2 and
#                    3 die, host 3's comes back BENCH_CHURN_BACK s later (default 3),
#                    host 2's when the others are done)
#   BENCH_ROUNDS     which rounds to run (default "direct acng apt-dht")
#   BENCH_DHT_MODE   dht.mode of the apt-dht round (default apt-dht)
#   BENCH_VERIFY     1 (default): check every downloaded file against the pool
#                    (outside the timed part)
#   APT_TIME_LIMIT   bound for each apt-get run in seconds (default 900)
#   APT_RETRIES      apt's Acquire::Retries (default 3, apt's own default; the
#                    test suite uses 0)

top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
. "$top_srcdir/tests/lab/lab.sh"
. "$top_srcdir/bench/proxy/lib-bench.sh"   # cpu_ticks

: "${BENCH_HOSTS:=8}" "${BENCH_COUNT:=10}" "${BENCH_SIZE_MIB:=20}" "${BENCH_RATE:=200mbit}"
: "${BENCH_DELAY:=}" "${BENCH_HOST_RATE:=}" "${BENCH_SCHEDULE:=first-then-rest}" "${BENCH_ROUNDS:=direct acng apt-dht}"
: "${BENCH_CHURN_AT:=2}" "${BENCH_CHURN_BACK:=3}"
: "${BENCH_DHT_MODE:=apt-dht}" "${BENCH_VERIFY:=1}" "${APT_TIME_LIMIT:=900}" "${APT_RETRIES:=3}"
export APT_TIME_LIMIT APT_RETRIES
LAB_APT_QUIET=1
ACNG_PORT=3142

lab_require
for r in $BENCH_ROUNDS; do
    case $r in
        acng) require_tool apt-cacher-ng ;;
        apt-dht) [ -x "$(proxy_bin)" ] || skip "apt-dht-proxy not built ($(proxy_bin))" ;;
        direct) ;;
        *) hard_error "unknown round $r" ;;
    esac
done
require_tool tc

log "building the package set ($BENCH_COUNT x $BENCH_SIZE_MIB MiB)"
bench_dir=$(sh "$top_srcdir/bench/lab/make-bench-archive.sh" --cached "$BENCH_COUNT" "$BENCH_SIZE_MIB") \
    || hard_error "building the benchmark archive failed"
fixture_use "$bench_dir"
set_bytes=$(awk '{ s += $5 } END { print s }' "$FIXTURE_DIR/packages.txt")

lab_up "$BENCH_HOSTS"
mns=$(lab_ns mirror)
if [ -n "$BENCH_DELAY" ]; then
    ip -n "$mns" link set eth0 txqueuelen 10000
    tc -n "$mns" qdisc add dev eth0 root handle 1: netem delay "$BENCH_DELAY" limit 100000 \
        || hard_error "tc netem on the mirror failed"
    tc -n "$mns" qdisc add dev eth0 parent 1:1 handle 10: tbf rate "$BENCH_RATE" burst 256kb latency 200ms \
        || hard_error "tc tbf on the mirror failed"
else
    tc -n "$mns" qdisc add dev eth0 root tbf rate "$BENCH_RATE" burst 256kb latency 200ms \
        || hard_error "tc tbf on the mirror failed"
fi
log "mirror egress: $(tc -n "$mns" qdisc show dev eth0 | tr '\n' ';')"

# shape_node NAME: with BENCH_HOST_RATE, NAME's link is that fast both ways: its eth0
# (what it sends) and the bridge end of its veth (what it receives).
shape_node() {
    [ -n "$BENCH_HOST_RATE" ] || return 0
    tc -n "$(lab_ns "$1")" qdisc add dev eth0 root handle 1: tbf rate "$BENCH_HOST_RATE" burst 256kb latency 200ms \
        || hard_error "tc tbf on $1 failed"
    tc -n "$(lab_ns "$1")" qdisc add dev eth0 parent 1:1 handle 10: pfifo_fast \
        || hard_error "tc pfifo_fast on $1 failed"
    tc -n "$LAB_ID-br" qdisc add dev "v-$1" root tbf rate "$BENCH_HOST_RATE" burst 256kb latency 200ms \
        || hard_error "tc tbf on the bridge end of $1 failed"
}
for h in $(lab_hosts); do shape_node "$h"; done
[ -z "$BENCH_HOST_RATE" ] || log "every host's link: $BENCH_HOST_RATE both ways"

# CPU accounting, so a round's figures say where the time went: the busy CPU time of
# the whole machine (/proc/stat) and of the caching daemons (cpu_ticks of each).
HZ=$(getconf CLK_TCK)
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
daemon_ticks() { _dt=0; for _p in $DAEMON_PIDS; do _dt=$((_dt + $(cpu_ticks "$_p"))); done; echo "$_dt"; }
# span A B [DIVISOR]: (B - A) / DIVISOR with one decimal.
span() { awk -v a="$1" -v b="$2" -v d="${3:-1}" 'BEGIN { printf "%.1f", (b - a) / d }'; }
DAEMON_PIDS=""

# Upload accounting: what each member (hosts, and acng when it is there) sent on its
# link during a round, from its eth0's tx counter (requests and DHT datagrams included:
# they are small next to the files).
tx_bytes() { lab_exec "$1" cat /sys/class/net/eth0/statistics/tx_bytes 2>/dev/null || echo 0; }
uploaders() { echo "$(lab_hosts)${ACNG_UP:+ acng}"; }
tx_snapshot() { for _m in $(uploaders); do echo "$_m $(tx_bytes "$_m")"; done > "$1"; }
# tx_report BEFORE: "h1=MiB,h2=MiB,... SHARE%(MEMBER)" of the bytes sent since BEFORE.
tx_report() {
    for _m in $(uploaders); do echo "$_m $(tx_bytes "$_m")"; done |
        awk 'NR == FNR { b[$1] = $2; next }
             { d = $2 - b[$1]; if (d < 0) d = 0; t += d; s = s (s ? "," : "") $1 "=" sprintf("%.0f", d / 1048576)
               if (d > m) { m = d; who = $1 } }
             END { printf "%s %.0f%%(%s)\n", s, t ? 100 * m / t : 0, who ? who : "-" }' "$1" -
}

# ---------------------------------------------------------------------------

# host_fetch HOST HOW [URL]: apt-get update + download in HOST; records the
# outcome in $T/round/HOST.rc.
host_fetch() {
    _hf_rc=0
    lab_apt "$1" update "$2" ${3:+"$3"} || _hf_rc=$?
    [ "$_hf_rc" -ne 0 ] || lab_apt "$1" download "$2" ${3:+"$3"} || _hf_rc=$?
    echo "$_hf_rc" > "$T/round/$1.rc"
}

# run_departed HOW [URL]: the departed schedule: host 1, then host 2 (from host 1 with
# apt-dht), then host 1's link goes down (its veth in the bridge: packets vanish) and
# hosts 3.. fetch at once; host 1's link comes back at the end, for the next round.
run_departed() {
    _pids=""
    host_fetch h1 "$@"
    host_fetch h2 "$@"
    ip -n "$LAB_ID-br" link set v-h1 down || hard_error "cannot take h1's link down"
    date +%s.%N > "$T/round/first.done"
    for _bh in $(lab_hosts); do
        case $_bh in h1|h2) ;; *) host_fetch "$_bh" "$@" & _pids="$_pids $!" ;; esac
    done
    for _p in $_pids; do wait "$_p" || true; done
    ip -n "$LAB_ID-br" link set v-h1 up || hard_error "cannot bring h1's link back"
}

# run_churn HOW [URL]: the churn schedule: every host at once, as parallel; after
# BENCH_CHURN_AT seconds the links of hosts 2 and 3 die (their veths in the bridge: packets
# vanish), BENCH_CHURN_BACK seconds later host 3's comes back, and host 2's once every
# other host is done; then host 2 finishes too. Every apt run must succeed.
run_churn() {
    _pids=""
    for _bh in $(lab_hosts); do
        host_fetch "$_bh" "$@" &
        if [ "$_bh" = h2 ]; then _p2=$!; else _pids="$_pids $!"; fi
    done
    sleep "$BENCH_CHURN_AT"
    ip -n "$LAB_ID-br" link set v-h2 down || hard_error "cannot take h2's link down"
    ip -n "$LAB_ID-br" link set v-h3 down || hard_error "cannot take h3's link down"
    log "churn: h2 and h3 departed"
    sleep "$BENCH_CHURN_BACK"
    ip -n "$LAB_ID-br" link set v-h3 up || hard_error "cannot bring h3's link back"
    log "churn: h3 is back"
    for _p in $_pids; do wait "$_p" || true; done
    ip -n "$LAB_ID-br" link set v-h2 up || hard_error "cannot bring h2's link back"
    log "churn: h2 is back"
    wait "$_p2" || true
}

# peer_latency: "p50 p99 N" in ms over the lines of every host's proxy log since
# PEER_LOG_FROM_h* that say how long after a miss a LAN peer's first byte came.
peer_latency() {
    for _bh in $(lab_hosts); do
        _lf=$(lab_proxy_log "$_bh")
        [ -f "$_lf" ] || continue
        eval "_from=\${PEER_LOG_FROM_$_bh:-1}"
        tail -n "+$_from" "$_lf"
    done | sed -n 's/.*: first byte from peer [^ ]* \([0-9]*\) ms after the miss$/\1/p' | sort -n |
        awk '{ v[NR] = $1 } END {
                 if (NR == 0) { print "- - 0"; exit }
                 i50 = int(NR * 0.50 + 0.999); i99 = int(NR * 0.99 + 0.999)
                 print v[i50 < 1 ? 1 : i50], v[i99 < 1 ? 1 : i99], NR }'
}

# run_hosts HOW [URL]: every host fetches the set, in BENCH_SCHEDULE order.
run_hosts() {
    [ "$BENCH_SCHEDULE" != departed ] || { run_departed "$@"; return; }
    [ "$BENCH_SCHEDULE" != churn ] || { run_churn "$@"; return; }
    _pids=""
    for _bh in $(lab_hosts); do
        case $BENCH_SCHEDULE in
            sequential) host_fetch "$_bh" "$@" ;;
            first-then-rest)
                if [ "$_bh" = h1 ]; then host_fetch h1 "$@"; date +%s.%N > "$T/round/first.done"
                else host_fetch "$_bh" "$@" & _pids="$_pids $!"; fi ;;
            parallel) host_fetch "$_bh" "$@" & _pids="$_pids $!" ;;
            *) hard_error "unknown BENCH_SCHEDULE $BENCH_SCHEDULE" ;;
        esac
    done
    for _p in $_pids; do wait "$_p" || true; done
}

# round NAME HOW [URL]: one timed round; appends a result line to $T/results.
round() {
    _name=$1; shift
    rm -rf "$T/round"
    mkdir -p "$T/round"
    LAB_APT_TAG=$_name
    _from=$(( $(wc -l < "$MIRROR_LOG") + 1 ))
    log "round $_name: $BENCH_HOSTS hosts, schedule $BENCH_SCHEDULE"
    tx_snapshot "$T/round/tx0"
    _c0=$(busy_ticks) _d0=$(daemon_ticks)
    _t0=$(date +%s.%N)
    run_hosts "$@"
    _t1=$(date +%s.%N)
    _cpu=$(span "$_c0" "$(busy_ticks)" "$HZ") _dcpu=$(span "$_d0" "$(daemon_ticks)" "$HZ")
    _tx=$(tx_report "$T/round/tx0")
    sleep 1   # the mirror logs an answer when it is finished
    tail -n "+$_from" "$MIRROR_LOG" > "$T/round/mirror.log"
    _served=$(lab_mirror_served '*' "$T/round/mirror.log")
    _debs=$(lab_mirror_served '*.deb' "$T/round/mirror.log")
    _ok=0 _bad=""
    for _bh in $(lab_hosts); do
        if [ "$(cat "$T/round/$_bh.rc" 2>/dev/null || echo 1)" = 0 ]; then
            if [ "$BENCH_VERIFY" = 1 ]; then
                if (check_all_debs "$(lab_apt_dest "$_bh")") >/dev/null 2>&1; then
                    _ok=$((_ok + 1))
                else
                    _bad="$_bad $_bh(bad files)"
                fi
            else
                _ok=$((_ok + 1))
            fi
        else
            _bad="$_bad $_bh(apt failed)"
        fi
        rm -rf "$(lab_apt_dest "$_bh")"
    done
    _secs=$(span "$_t0" "$_t1")
    # first-then-rest: how long host 1 alone took, and then the others.
    _first=- _rest=-
    if [ -f "$T/round/first.done" ]; then
        _tf=$(cat "$T/round/first.done")
        _first=$(span "$_t0" "$_tf") _rest=$(span "$_tf" "$_t1")
    fi
    echo "$_name $_secs $_first $_rest $_cpu $_dcpu ${_served#* } ${_debs% *} $_tx $_ok/$BENCH_HOSTS$_bad" >> "$T/results"
    log "round $_name: $_secs s (host 1: $_first s, the rest: $_rest s; CPU busy $_cpu s, of which the caching daemons $_dcpu s), mirror sent ${_served#* } bytes (${_debs% *} .deb answers), $_ok/$BENCH_HOSTS hosts complete$_bad; sent per member (MiB): ${_tx% *}, the largest share ${_tx#* }"
    LAB_APT_TAG=""
}

: > "$T/results"
for r in $BENCH_ROUNDS; do
    case $r in
    direct)
        round direct direct
        ;;
    acng)
        lab_node_add acng "$LAB_NET.3"
        shape_node acng
        mkdir -p "$T/acng/conf" "$T/acng/cache" "$T/acng/log"
        # A private configuration: no remapping, no system paths.
        cat > "$T/acng/conf/acng.conf" <<EOF
CacheDir: $T/acng/cache
LogDir: $T/acng/log
SupportDir: /usr/lib/apt-cacher-ng
Port: $ACNG_PORT
BindAddress: $(lab_addr acng)
SocketPath: $T/acng/socket
PidFile: $T/acng/pid
ForeGround: 1
AllowUserPorts: 80 $LAB_MIRROR_PORT
ExThreshold: 4
VerboseLog: 1
EOF
        lab_bg acng "$T/acng/stderr" apt-cacher-ng -c "$T/acng/conf"
        acng_pid=$LAB_BG_PID
        DAEMON_PIDS=$acng_pid ACNG_UP=1
        lab_wait_tcp acng "$(lab_addr acng)" "$ACNG_PORT" 15 \
            || { cat "$T/acng/stderr" >&2; hard_error "apt-cacher-ng did not start"; }
        round acng via "http://$(lab_addr acng):$ACNG_PORT"
        DAEMON_PIDS="" ACNG_UP=""
        lab_stop_bg "$acng_pid" 10
        rm -rf "$T/acng/cache"
        ;;
    apt-dht)
        LAB_DHT_MODE=$BENCH_DHT_MODE
        # shellcheck disable=SC2046
        lab_proxies_start $(lab_hosts)
        DAEMON_PIDS=""
        for h in $(lab_hosts); do
            DAEMON_PIDS="$DAEMON_PIDS $(lab_proxy_pid "$h")"
            eval "PEER_LOG_FROM_$h=$(( $(wc -l < "$(lab_proxy_log "$h")") + 1 ))"
        done
        round apt-dht backend
        peer_latency > "$T/latency"
        log "apt-dht: from a miss to a LAN peer's first byte (ms): p50, p99, files: $(cat "$T/latency")"
        DAEMON_PIDS=""
        for h in $(lab_hosts); do
            log "$h proxy: $(lab_proxy_sources "$h")"
            lab_proxy_stop "$h"
            rm -rf "$T/lab/$h/cache"
        done
        ;;
    esac
done

# ---------------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
stamp=$(date -u +%Y%m%d-%H%M%S)
version=$("$(proxy_bin)" --version 2>/dev/null || echo "apt-dht-proxy (not built)")
commit=$(git -C "$top_srcdir" rev-parse --short HEAD 2>/dev/null || echo unknown)
out="$top_srcdir/bench/results/lab-$stamp.md"
mkdir -p "$top_srcdir/bench/results"
{
    echo "## LAN lab: $BENCH_HOSTS hosts, $BENCH_COUNT x $BENCH_SIZE_MIB MiB ($(mib "$set_bytes") MiB), mirror at $BENCH_RATE${BENCH_DELAY:+ + $BENCH_DELAY delay}${BENCH_HOST_RATE:+, every host's link $BENCH_HOST_RATE}"
    echo
    echo "$stamp UTC, $version, commit $commit, schedule: $BENCH_SCHEDULE, apt-dht dht.mode: $BENCH_DHT_MODE"
    echo
    first_col="host 1 alone"
    [ "$BENCH_SCHEDULE" != departed ] || first_col="hosts 1 and 2, then host 1 departs"
    echo "| setup | wall time (s) | $first_col (s) | the others (s) | CPU busy (s) | caching daemons' CPU (s) | mirror sent (MiB) | mirror / set | .deb answers | largest upload share | hosts complete |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    : > "$T/uploads"
    while read -r name secs first rest cpu dcpu bytes debs sent share ok; do
        case $name in
            direct) label="(a) every host direct to the mirror" ;;
            acng) label="(b) one apt-cacher-ng for the lab" ;;
            apt-dht) label="(c) apt-dht on every host" ;;
            *) label=$name ;;
        esac
        ratio=$(awk -v b="$bytes" -v s="$set_bytes" 'BEGIN { printf "%.2f", b / s }')
        echo "| $label | $secs | $first | $rest | $cpu | $dcpu | $(mib "$bytes") | $ratio | $debs | $share | $ok |"
        echo "- $label, MiB sent per member: $(echo "$sent" | sed 's/,/, /g')" >> "$T/uploads"
    done < "$T/results"
    echo
    cat "$T/uploads"
    if [ -s "$T/latency" ]; then
        read -r p50 p99 nlat < "$T/latency"
        echo
        echo "apt-dht, from a miss to the first byte from a LAN peer: p50 $p50 ms, p99 $p99 ms ($nlat files)"
    fi
} > "$out"
echo
cat "$out"
echo
log "saved $out"
