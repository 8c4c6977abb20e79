#!/bin/sh
# A full disk and downloads that pass through memory: the cache lives on an 8 MiB tmpfs
# (in a mount namespace of the proxy's own), and three indices by name, unknown to the
# hash index, come from a mirror whose bodies run on for 400 MB each. Every download
# moves to memory when the disk fills, and all of them together stop at the 256 MiB the
# proxy allows in memory (before: up to 1 GiB each). The proxy keeps serving.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool curl python3 timeout
[ "$(id -u)" -eq 0 ] || skip "needs root to mount a small tmpfs in a private mount namespace"
command -v unshare >/dev/null 2>&1 || skip "unshare(1) not available"
unshare -m true 2>/dev/null || skip "cannot create a mount namespace here"
fixture_build
mirror_start

PROXY_PORT=$(free_port)
mkdir -p "$T/small" "$T/state"
cat > "$T/apt-dht.conf" <<EOC
listen: {address: 127.0.0.1, port: $PROXY_PORT}
dht: {mode: off}
backends: {fixture: [$MIRROR_URL/debian]}
cache: {max_size: 10G, max_index: 1G}
EOC
unshare -m --propagation private sh -c \
    "mount -t tmpfs -o size=8m apt-dht-test '$T/small' && exec '$(proxy_bin)' -f -c '$T/apt-dht.conf' --cache-dir '$T/small' --state-dir '$T/state'" \
    > "$T/proxy.log" 2>&1 &
PROXY_PID=$!
track_pid "$PROXY_PID"
wait_port "$PROXY_PORT" 15 || { cat "$T/proxy.log"; fail "proxy did not start"; }

FILES="dists/bookworm/main/binary-amd64/Packages dists/bookworm/main/source/Sources dists/bookworm/main/binary-amd64/Packages.gz"
for f in $FILES; do
    mirror_fault "{\"path_glob\": \"$f\", \"mode\": \"endless\", \"after_bytes\": 400000000, \"count\": 1}"
done
# memheld: the bytes the proxy holds in its in-memory download files right now (memfds
# are files: their size is what they hold).
memheld() {
    _sum=0
    for _fd in /proc/"$PROXY_PID"/fd/*; do
        case $(readlink "$_fd" 2>/dev/null) in
            /memfd:apt-dht-download*) _sum=$((_sum + $(stat -L -c %s "$_fd" 2>/dev/null || echo 0))) ;;
        esac
    done
    echo "$_sum"
}
pids=""
for f in $FILES; do
    TCURL_MAX_TIME=90 tcurl -o /dev/null "http://127.0.0.1:$PROXY_PORT/fixture/$f" 2>/dev/null &
    pids="$pids $!"
done
peak=0
while :; do
    m=$(memheld)
    [ "$m" -le "$peak" ] || peak=$m
    running=0
    for p in $pids; do kill -0 "$p" 2>/dev/null && running=1; done
    [ "$running" -eq 1 ] || break
    sleep 0.05
done
for p in $pids; do wait "$p" || true; done
total=0
for f in $FILES; do
    b=$(mirror_bytes "*/$f")
    log "$f: the mirror sent $b bytes"
    total=$((total + b))
done
log "three endless downloads with the disk full: at most $peak bytes held in memory at once, $total bytes from the mirror in all"
grep -q "cache disk full: .* is served without being cached" "$T/proxy.log" \
    || fail "no download moved to memory"
grep -q "downloads in memory hold all of the 256 MiB" "$T/proxy.log" \
    || fail "no download was stopped by the memory budget"
[ "$peak" -gt 0 ] || fail "no memory use was seen"
[ "$peak" -le 268435456 ] || fail "the downloads in memory held more than 256 MiB at once ($peak)"

mirror_reset
check_eq 200 "$(http_status "http://127.0.0.1:$PROXY_PORT/fixture/dists/bookworm/InRelease")" \
    "served afterwards"
kill -0 "$PROXY_PID" || fail "the proxy died"
log "passed"
