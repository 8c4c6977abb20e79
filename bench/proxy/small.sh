#!/bin/sh
# Cached files served over persistent connections, side by side in one run: apt-dht-proxy,
# apt-cacher-ng, and nginx serving the same file from disk by sendfile (the limit a
# caching proxy can reach on this machine). wrk drives each in turn, A B C A B C ...
#
#   sh bench/proxy/small.sh            (from the top of a built tree)
#
# Environment (all optional):
#   BENCH_SMALL_KIB  size of the small file, KiB                  (264)
#   BENCH_LARGE_MIB  size of the large file, MiB                  (64)
#   BENCH_CONNS      wrk connections for the small file            (64)
#   BENCH_LCONNS     wrk connections for the large file            (16)
#   BENCH_SECONDS    seconds of each wrk run                       (5)
#   BENCH_REPS       repetitions (the median is reported)          (3)
#   APT_DHT_PROXY    the apt-dht-proxy binary (default: this build's)
#   APT_DHT_PROXY_B  a second apt-dht-proxy binary to compare (before/after), optional
#
# Everything listens on 127.0.0.1; every process it starts is stopped by PID.

top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/bench/proxy/lib-bench.sh"

SMALL_KIB=${BENCH_SMALL_KIB:-264}
LARGE_MIB=${BENCH_LARGE_MIB:-64}
CONNS=${BENCH_CONNS:-64}
LCONNS=${BENCH_LCONNS:-16}
SECS=${BENCH_SECONDS:-5}
REPS=${BENCH_REPS:-3}
require_tool wrk nginx apt-cacher-ng curl python3 awk
say() { printf '[bench] %s\n' "$*" >&2; }

fixture_build
fixture_copy "$T/archive"
BDIR="pool/main/b/bench"
mkdir -p "$FIXTURE_ROOT/$BDIR"
head -c $((SMALL_KIB * 1024)) /dev/urandom > "$FIXTURE_ROOT/$BDIR/small_1.0_all.deb"
head -c $((LARGE_MIB * 1048576)) /dev/urandom > "$FIXTURE_ROOT/$BDIR/large_1.0_all.deb"
mirror_start --port "$(low_port)"

# apt-dht-proxy A (and B): backend "fixture" -> the mirror. B may be an older build that
# knows no listen.max_per_client: its config names only the keys every build has (the
# default budget, 64 per address, still holds wrk's connections).
dproxy_start() { # NAME BINARY [EXTRA-LISTEN-KEYS] -> sets <NAME>_PID, <NAME>_URL
    _port=$(low_port)
    mkdir -p "$T/$1/cache" "$T/$1/state"
    cat > "$T/$1/conf" <<EOC
listen: {address: 127.0.0.1, port: $_port${3:+, $3}}
dht: {mode: off}
backends: {fixture: [$MIRROR_URL/debian]}
log: {level: warn}
EOC
    "$2" -f -c "$T/$1/conf" --cache-dir "$T/$1/cache" --state-dir "$T/$1/state" \
        > "$T/$1/log" 2>&1 &
    eval "$1_PID=\$!"
    track_pid "$!"
    wait_port "$_port" 15 || hard_error "apt-dht-proxy ($2) did not start"
    eval "$1_URL=http://127.0.0.1:$_port"
}
dproxy_start DA "${APT_DHT_PROXY:-$(proxy_bin)}" "max_per_client: 1000"
TOOLS="DA"
if [ -n "${APT_DHT_PROXY_B:-}" ]; then dproxy_start DB "$APT_DHT_PROXY_B"; TOOLS="DA DB"; fi
ACNG_PORT=$(low_port); export ACNG_PORT
acng_start
AC_URL=$ACNG_URL

# nginx: the same files from disk, sendfile on, keep-alive on
NG_PORT=$(low_port)
mkdir -p "$T/nginx/tmp"
cat > "$T/nginx/nginx.conf" <<EOC
daemon off; worker_processes 1; error_log $T/nginx/error.log; pid $T/nginx/pid;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
       client_body_temp_path $T/nginx/tmp; proxy_temp_path $T/nginx/tmp;
       fastcgi_temp_path $T/nginx/tmp; uwsgi_temp_path $T/nginx/tmp; scgi_temp_path $T/nginx/tmp;
       server { listen 127.0.0.1:$NG_PORT; location /fixture/ { alias $FIXTURE_ROOT/; } } }
EOC
nginx -c "$T/nginx/nginx.conf" -p "$T/nginx" > "$T/nginx/stdout" 2>&1 &
NG_PID=$!
track_pid "$NG_PID"
wait_port "$NG_PORT" 15 || hard_error "nginx did not start"
NG_URL="http://127.0.0.1:$NG_PORT"
TOOLS="$TOOLS AC NG"

url_of() { eval "echo \$$1_URL"; }
for t in $TOOLS; do # warm every cache, check the bytes
    for f in small large; do
        bcurl -f -o "$T/w" "$(url_of "$t")/fixture/$BDIR/${f}_1.0_all.deb" || hard_error "$t: warm-up of $f failed"
        cmp -s "$T/w" "$FIXTURE_ROOT/$BDIR/${f}_1.0_all.deb" || hard_error "$t: wrong bytes for $f"
    done
done

# wrk_run URL CONNS -> "REQ_PER_S MB_PER_S" (errors make it "-")
wrk_run() {
    wrk -t2 -c"$2" -d"${SECS}s" --latency "$1" > "$T/wrk.out" 2>&1 || { echo "- -"; return; }
    if grep -q 'Non-2xx\|Socket errors' "$T/wrk.out"; then say "errors: $(grep 'Non-2xx\|Socket' "$T/wrk.out")"; fi
    awk '/^Requests\/sec/ { r = $2 } /^Transfer\/sec/ { v = $2; if (v ~ /GB/) m = v * 1024; else if (v ~ /KB/) m = v / 1024; else m = v + 0 }
         END { printf "%s %.1f\n", r, m }' "$T/wrk.out"
}

for f in small large; do
    c=$CONNS; [ $f = large ] && c=$LCONNS
    r=0
    while [ "$r" -lt "$REPS" ]; do
        r=$((r + 1))
        for t in $TOOLS; do
            set -- $(wrk_run "$(url_of "$t")/fixture/$BDIR/${f}_1.0_all.deb" "$c")
            echo "$1" >> "$T/$f.$t.rps"; echo "$2" >> "$T/$f.$t.mbs"
        done
        say "$f, round $r done"
    done
done
for t in DA DB; do
    eval "_p=\${${t}_PID:-}"
    [ -z "$_p" ] || kill -0 "$_p" 2>/dev/null || say "apt-dht-proxy $t died during the run"
done

name() { case $1 in DA) echo "apt-dht-proxy" ;; DB) echo "apt-dht-proxy (B)" ;; AC) echo apt-cacher-ng ;; NG) echo nginx ;; esac; }
echo "# Cached files over persistent connections ($(date '+%Y-%m-%d %H:%M'))"
echo
echo "wrk -t2, ${SECS} s per run, median of $REPS; small ${SMALL_KIB} KiB at $CONNS connections, large ${LARGE_MIB} MiB at $LCONNS; $(nproc) CPUs, loopback."
echo
echo "| tool | small: req/s | / acng | / nginx | large: MB/s | / acng | / nginx |"
echo "|---|---:|---:|---:|---:|---:|---:|"
SA=$(median < "$T/small.AC.rps"); SN=$(median < "$T/small.NG.rps")
LA=$(median < "$T/large.AC.mbs"); LN=$(median < "$T/large.NG.mbs")
for t in $TOOLS; do
    s=$(median < "$T/small.$t.rps"); l=$(median < "$T/large.$t.mbs")
    echo "| $(name "$t") | $(fmt "$s" 0) | $(ratio "$s" "$SA") | $(ratio "$s" "$SN") | $(fmt "$l" 0) | $(ratio "$l" "$LA") | $(ratio "$l" "$LN") |"
done
