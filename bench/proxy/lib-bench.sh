# Helpers for bench/proxy/run.sh (and the CPU figures of bench/lab/run.sh).
# POSIX sh, sourced after tests/integration/lib.sh, which provides $T,
# track_pid, stop_pid, free_ports, wait_port, the fixture and the test mirror.

# low_port: print a port in 20000..32767 that was free (TCP and UDP) on
# 127.0.0.1 a moment ago. apt-cacher-ng 3.7.4 cannot use ports above 32767,
# neither for itself nor for the mirror it fetches from, so every port of the
# benchmark comes from this range.
low_port() { free_ports 1 127.0.0.1 20000-32767; }

# bcurl ARGS...: curl with no user configuration and a bound on its time.
# (Not tcurl: its --noproxy would override -x.)
bcurl() {
    curl -q -sS --max-time "${BENCH_CURL_MAX_TIME:-300}" "$@"
}

# proc_tree PID: PID and its descendants (apt-cacher-ng is one process with
# threads today, but count any child it forks).
proc_tree() {
    echo "$1"
    for _c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        proc_tree "$_c"
    done
}

# tree_sum PID FILE AWK-ARGS...: the number awk AWK-ARGS prints for
# /proc/P/FILE, summed over P = PID and all its descendants (0 for a process
# gone in the meantime).
tree_sum() {
    _tp=$1 _tf=$2
    shift 2
    _sum=0
    for _p in $(proc_tree "$_tp"); do
        _r=$(awk "$@" "/proc/$_p/$_tf" 2>/dev/null || true)
        _sum=$((_sum + ${_r:-0}))
    done
    echo "$_sum"
}

# mem_kib PID FIELD: a /proc/PID/status field (VmRSS, RssAnon, ...) over PID
# and all its descendants, in KiB.
# shellcheck disable=SC2016
mem_kib() { tree_sum "$1" status -v f="$2:" '$1 == f { print $2 }'; }

# pss_kib PID: proportional set size (shared pages divided among the processes
# that map them) of PID and its descendants, in KiB.
# shellcheck disable=SC2016
pss_kib() { tree_sum "$1" smaps_rollup '$1 == "Pss:" { print $2 }'; }

# cpu_ticks PID: user + system CPU time of PID and its descendants, in clock
# ticks (all threads included).
# shellcheck disable=SC2016
cpu_ticks() { tree_sum "$1" stat '{ sub(/^.*\) /, ""); print $12 + $13 }'; }

# median: the median of the numbers on stdin, one per line ("-" when none).
median() {
    sort -g | awk '{ v[NR] = $1 }
        END { if (NR == 0) { print "-"; exit }
              if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# now_ns: nanoseconds since the epoch.
now_ns() { date +%s%N; }

# fmt N DECIMALS: N rounded ("-" stays "-").
fmt() {
    case $1 in -|'') echo "-" ;; *) awk -v n="$1" -v d="$2" 'BEGIN { printf "%.*f\n", d, n }' ;; esac
}

# ratio A B: A / B with two decimals ("-" when either is missing or B is 0).
ratio() {
    case "$1$2" in *-*|'') echo "-"; return ;; esac
    awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f\n", a / b }'
}

# acng_start: run apt-cacher-ng in the foreground with a private config, cache
# and log directory under $T/acng, on 127.0.0.1:$ACNG_PORT, fetching in proxy
# mode from any port (AllowUserPorts: 0) and with a backend name "fixture" ->
# the mirror. Sets ACNG_PID and ACNG_URL. Never touches /etc/apt-cacher-ng's
# instance, its cache or its socket.
acng_start() {
    _a="$T/acng"
    mkdir -p "$_a/conf" "$_a/cache" "$_a/log" "$_a/run"
    cat > "$_a/conf/acng.conf" <<EOF
# Private apt-cacher-ng instance of the apt-dht proxy benchmark.
CacheDir: $_a/cache
LogDir: $_a/log
SupportDir: /usr/lib/apt-cacher-ng
Port: $ACNG_PORT
BindAddress: 127.0.0.1
SocketPath: $_a/run/socket
PidFile: $_a/run/pid
ForeGround: 1
AllowUserPorts: 0
ReportPage: acng-report.html
Remap-fixture: /fixture ; $MIRROR_URL/debian
EOF
    apt-cacher-ng -c "$_a/conf" > "$_a/stdout.log" 2>&1 &
    ACNG_PID=$!
    track_pid "$ACNG_PID"
    ACNG_URL="http://127.0.0.1:$ACNG_PORT"
    if ! wait_port "$ACNG_PORT" 15; then
        cat "$_a/stdout.log" >&2
        hard_error "apt-cacher-ng did not start listening on $ACNG_PORT"
    fi
    kill -0 "$ACNG_PID" 2>/dev/null || hard_error "apt-cacher-ng exited"
}

# fetch_time PROXY_URL URL: download URL (through PROXY_URL, or directly when
# PROXY_URL is "direct") to /dev/null; print "SECONDS BYTES FIRST_BYTE_SECONDS".
fetch_time() {
    if [ "$1" = direct ]; then
        bcurl -o /dev/null -w '%{time_total} %{size_download} %{time_starttransfer}\n' "$2"
    else
        bcurl -x "$1" -o /dev/null -w '%{time_total} %{size_download} %{time_starttransfer}\n' "$2"
    fi
}

# fetch_parallel N PROXY_URL URL OUTDIR: N concurrent downloads of URL through
# PROXY_URL; prints "WALL_SECONDS TOTAL_BYTES" (wall time from the first start
# to the last end).
fetch_parallel() {
    _n=$1 _px=$2 _url=$3 _out=$4
    mkdir -p "$_out"
    rm -f "$_out"/c.*
    _pids=""
    _t0=$(now_ns)
    _i=0
    while [ "$_i" -lt "$_n" ]; do
        _i=$((_i + 1))
        bcurl -x "$_px" -o /dev/null -w '%{size_download}\n' "$_url" > "$_out/c.$_i" 2>&1 &
        _pids="$_pids $!"
    done
    for _p in $_pids; do wait "$_p" || true; done
    _t1=$(now_ns)
    _bytes=$(cat "$_out"/c.* | awk '/^[0-9]+$/ { s += $1 } END { print s + 0 }')
    awk -v a="$_t0" -v b="$_t1" -v n="$_bytes" 'BEGIN { printf "%.6f %d\n", (b - a) / 1e9, n }'
}
