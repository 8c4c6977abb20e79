#!/bin/sh
# The three ways apt reaches apt-dht-proxy (proxy mode, rewrite mode, backend
# name) each do a full apt-get update + download of every package; all three
# normalise to one cache entry, so the mirror serves each pool file once; a
# second client then gets everything with zero pool bytes from the mirror.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3 timeout
fixture_build
mirror_start
proxy_start

pool_total=$(find "$FIXTURE_ROOT/pool" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')

n=0
for mode in proxy rewrite backend; do
    n=$((n + 1))
    C="$T/client-$mode"
    apt_sandbox "$C"
    case $mode in
        backend) apt_sources "$C" backend fixture "$PROXY_URL" ;;
        *)       apt_sources "$C" "$mode" "$MIRROR_URL" "$PROXY_URL" ;;
    esac
    apt_update "$C"
    apt_download_all "$C" "$C/downloads" || fail "$mode: apt could not download everything"
    apt_check_downloads "$C/downloads"
    log "$mode mode: every file byte-identical"
    # Whatever the form, each pool file left the mirror once.
    check_eq "$pool_total" "$(mirror_bytes '*/pool/*')" "pool bytes from the mirror after $n client(s)"
done

# Requests reached the proxy, and it logged one line per request.
[ "$(wc -l < "$PROXY_LOG")" -ge 10 ] || fail "the proxy logged fewer lines than requests"

# A second client in proxy mode: zero pool bytes from the mirror.
before=$(mirror_bytes '*/pool/*')
C2="$T/client-second"
apt_sandbox "$C2"
apt_sources "$C2" proxy "$MIRROR_URL" "$PROXY_URL"
apt_update "$C2"
apt_download_all "$C2" "$C2/downloads" || fail "second client could not download everything"
apt_check_downloads "$C2/downloads"
check_eq "$before" "$(mirror_bytes '*/pool/*')" "pool bytes from the mirror for the second client"
check_eq 0 "$(( $(mirror_bytes '*/pool/*') - before ))" "extra pool bytes"
log "second client: everything from the cache, zero pool bytes from the mirror"

# Volatile files were revalidated, not blindly served: the mirror saw
# conditional requests (304) for InRelease.
[ "$(mirror_requests '*/dists/bookworm/InRelease' 304)" -ge 1 ] \
    || fail "the proxy did not revalidate InRelease with the mirror"
check_cache_not_corrupt "$PROXY_CACHE"

# Cached files: HEAD, Range, If-Range, 416, all through the proxy.
BIGP="$PROXY_URL/fixture/$FIXTURE_BIG"
big_size=$(stat -c %s "$FIXTURE_ROOT/$FIXTURE_BIG")
tcurl -I "$BIGP" | tr -d '\r' | grep -qi "^content-length: $big_size\$" || fail "HEAD through the proxy"
tcurl -r 1000-1999 -o "$T/r" -w '%{http_code}' "$BIGP" > "$T/code"
check_eq 206 "$(cat "$T/code")" "Range on a cached file"
tail -c +1001 "$FIXTURE_ROOT/$FIXTURE_BIG" | head -c 1000 | cmp -s - "$T/r" || fail "Range content"
check_eq 416 "$(http_status "$BIGP" -r "$big_size-")" "Range past the end"
lm=$(tcurl -I "$BIGP" | tr -d '\r' | sed -n 's/^[Ll]ast-[Mm]odified: //p')
if [ -n "$lm" ]; then
    check_eq 206 "$(http_status "$BIGP" -r 0-9 -H "If-Range: $lm")" "If-Range with the current date"
fi
check_eq 200 "$(http_status "$BIGP" -r 0-9 -H 'If-Range: Thu, 01 Jan 1998 00:00:00 GMT')" \
    "If-Range with an old date gives the whole file"

# The mirror goes away: volatile and immutable files still come from the cache.
mirror_stop
C3="$T/client-offline"
apt_sandbox "$C3"
apt_sources "$C3" backend fixture "$PROXY_URL"
apt_run "$C3" update || fail "apt-get update with the mirror down"
apt_download_all "$C3" "$C3/downloads" || fail "downloads with the mirror down"
apt_check_downloads "$C3/downloads"
log "mirror down: served from the cache"

proxy_stop
log "passed"
