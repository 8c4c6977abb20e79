#!/bin/sh
# A full disk: the cache lives on an 8 MiB tmpfs (in a mount namespace of the proxy's
# own, so nothing is left mounted) while cache.max_size allows far more. apt still gets
# every package, the 40 MiB one passed through memory and not cached; small files are
# still cached; the proxy keeps serving.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3 timeout
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
cache: {max_size: 10G}
EOC
unshare -m --propagation private sh -c \
    "mount -t tmpfs -o size=8m apt-dht-test '$T/small' && exec '$(proxy_bin)' -f -c '$T/apt-dht.conf' --cache-dir '$T/small' --state-dir '$T/state'" \
    > "$T/proxy.log" 2>&1 &
PROXY_PID=$!
track_pid "$PROXY_PID"
wait_port "$PROXY_PORT" 15 || { cat "$T/proxy.log"; fail "proxy did not start"; }

for c in one two; do
    C="$T/client-$c"
    apt_sandbox "$C"
    apt_sources "$C" backend fixture "http://127.0.0.1:$PROXY_PORT"
    apt_update "$C"
    apt_download_all "$C" "$C/downloads" || fail "client $c: apt failed with the cache disk full"
    apt_check_downloads "$C/downloads"
done
grep -q "cache disk full: .*apt-dht-big.* is served without being cached" "$T/proxy.log" \
    || fail "the big package was not passed through memory"
big=$(stat -c %s "$FIXTURE_ROOT/$FIXTURE_BIG")
check_eq $((2 * big)) "$(mirror_bytes "*/$FIXTURE_BIG")" "big package fetched once per client (not cacheable)"
check_eq "$(stat -c %s "$FIXTURE_ROOT/pool/main/a/apt-dht-tools/"*.deb)" \
    "$(mirror_bytes '*/apt-dht-tools_*')" "a small package was cached despite the full disk"
kill -0 "$PROXY_PID" || fail "the proxy died"
log "passed"
