#!/bin/sh
# kill -9 of apt-dht-proxy in the middle of the big download; after a
# restart, leftovers are gone, apt succeeds, and nothing corrupt is served.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3 timeout
fixture_build
# Slow mirror: the big file takes about 8 s, so the kill lands mid-body.
mirror_start --rate 5000000
proxy_start

big_size=$(stat -c %s "$FIXTURE_ROOT/$FIXTURE_BIG")
big_sum=$(sha256_of "$FIXTURE_ROOT/$FIXTURE_BIG")
big_name=$(basename "$FIXTURE_BIG")

C="$T/client"
apt_sandbox "$C"
apt_sources "$C" proxy "$MIRROR_URL" "$PROXY_URL"
apt_update "$C"

mkdir -p "$C/first"; chmod a+rwx "$C/first"
(cd "$C/first" && apt_run "$C" download apt-dht-big) > "$T/first.out" 2>&1 &
apt_pid=$!
track_pid "$apt_pid"

# Wait until a few MiB of the big file have reached the proxy's cache dir.
cache_bytes() { du -sb "$PROXY_CACHE" 2>/dev/null | cut -f1; }
has_some() { [ "$(cache_bytes)" -ge 8000000 ]; }
wait_for 30 has_some || fail "the big download never started in the proxy's cache"
partial=$(cache_bytes)
[ "$partial" -lt "$big_size" ] || fail "the download finished before the kill"
proxy_kill9
log "proxy killed with about $partial bytes in its cache dir"
rc=0; wait "$apt_pid" || rc=$?
untrack_pid "$apt_pid"
[ "$rc" -ne 0 ] || cmp -s "$C/first/$big_name" "$FIXTURE_ROOT/$FIXTURE_BIG" \
    || fail "apt reported success with a wrong file"

# Nothing partial may be presented as complete, before or after the restart.
check_cache_not_corrupt "$PROXY_CACHE"
mirror_ctl rate '{"bytes_per_sec": 0}' >/dev/null
proxy_start
check_cache_not_corrupt "$PROXY_CACHE"

# The proxy serves the right bytes (or an error, never a short "complete" file).
rc=0
code=$(tcurl -o "$T/big" -w '%{http_code}' "$PROXY_URL/$(echo "$MIRROR_URL" | sed 's|^http://||')/debian/$FIXTURE_BIG") || rc=$?
if [ "$rc" -eq 0 ] && [ "$code" = 200 ]; then
    check_eq "$big_sum" "$(sha256_of "$T/big")" "big file served after the crash"
fi

# apt succeeds and gets everything intact.
rm -rf "$C/first"
apt_download_all "$C" "$C/after" || fail "apt failed after the restart"
apt_check_downloads "$C/after"
check_cache_not_corrupt "$PROXY_CACHE"

# After a clean restart the cache is complete: no pool bytes from the mirror.
proxy_stop
proxy_start
before=$(mirror_bytes '*/pool/*')
apt_download_all "$C" "$C/again" || fail "apt failed after a clean restart"
apt_check_downloads "$C/again"
check_eq "$before" "$(mirror_bytes '*/pool/*')" "pool bytes from the mirror after a restart"

proxy_stop
log "passed"
