#!/bin/sh
# A backend's cache is keyed by the backend's name, not by its first mirror: the real apt
# fetches everything through the backend, then
#  1. its mirrors are reordered and the proxy reloaded (SIGHUP),
#  2. its first mirror is replaced and the proxy restarted,
#  3. the cache is laid out as an older build keyed it (the first mirror's host and
#     prefix) and the proxy restarted: the start-up moves it under the backend's name;
# and after each, apt fetches everything again: every pool file is a cache hit (the
# fixture mirror's log shows no new request under pool/).

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3 timeout
fixture_build
mirror_start

ALIAS="http://localhost:$MIRROR_PORT/debian" # the same mirror under another name
# write_config MIRROR...: the backend "fixture" over these mirrors, in this order
write_config() {
    _list=$(printf '%s, ' "$@")
    cat > "$T/proxy/apt-dht.conf.new" <<EOC
listen: {address: 127.0.0.1, port: $PROXY_PORT}
dht: {mode: off}
backends: {fixture: [${_list%, }]}
EOC
    mv "$T/proxy/apt-dht.conf.new" "$T/proxy/apt-dht.conf"
}
PROXY_PORT=$(free_port)
mkdir -p "$T/proxy"
write_config "$MIRROR_URL/debian" "$ALIAS"
proxy_start

C="$T/client"
apt_sandbox "$C"
apt_sources "$C" backend fixture "$PROXY_URL"
apt_update "$C"
apt_download_all "$C" "$C/round0" || fail "apt through the backend"
apt_check_downloads "$C/round0"
pool0=$(mirror_requests '*/pool/*')
[ "$pool0" -gt 0 ] || fail "nothing came from the mirror"
[ -d "$PROXY_CACHE/fixture/pool" ] || fail "the cache is not under the backend's name"
log "first round: $pool0 pool files from the mirror"

# round N: apt again; no pool file from the mirror
round() {
    rm -rf "$C/state/lists"/*_dists_* 2>/dev/null || true
    apt_update "$C"
    apt_download_all "$C" "$C/round$1" || fail "round $1: apt through the backend"
    apt_check_downloads "$C/round$1"
    check_eq "$pool0" "$(mirror_requests '*/pool/*')" "round $1: pool requests at the mirror"
}

# 1. reordered, reloaded
write_config "$ALIAS" "$MIRROR_URL/debian"
n=$(grep -c "configuration reloaded" "$PROXY_LOG" || true)
kill -HUP "$PROXY_PID"
wait_for 10 sh -c "[ \$(grep -c 'configuration reloaded' '$PROXY_LOG') -gt $n ]" \
    || fail "the reload was not applied"
round 1

# 2. the first mirror replaced, restarted
proxy_stop
write_config "$ALIAS"
proxy_start
round 2

# 3. a cache keyed by the first mirror (as older builds did), restarted
proxy_stop
old="$PROXY_CACHE/localhost:$MIRROR_PORT/debian"
mkdir -p "$(dirname "$old")"
mv "$PROXY_CACHE/fixture" "$old"
proxy_start
grep -q "files moved to their backend's name" "$PROXY_LOG" || fail "no move was logged"
[ -d "$PROXY_CACHE/fixture/pool" ] || fail "the old cache was not moved"
[ ! -e "$PROXY_CACHE/localhost:$MIRROR_PORT" ] || fail "the old directories stayed"
round 3
proxy_stop
log "every round after the first: all $pool0 pool files from the cache"
