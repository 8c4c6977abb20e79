#!/bin/sh
# A DNS name that resolves to this host is not caught by the router's text checks (only
# literal addresses and localhost are): the machine's host name when /etc/hosts maps it
# to 127.0.0.1 or 127.0.1.1, or "localhost." with its root dot. A mirror transfer to
# such a name on the proxy's own port connects to the proxy itself; the address it
# connected to (CURLOPT_PREREQFUNCTION) is checked against this host's addresses and the
# listening port, and the request is refused with 508 and a reason that says so, in
# rewrite and proxy form, instead of the proxy fetching from itself. The same name on
# another port (the real mirror's) is fetched as usual. SKIP when no such name resolves.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool curl python3 getent
fixture_build
mirror_start
mkdir -p "$T/proxy"
proxy_config "$T/proxy/apt-dht.conf"
proxy_start

# the names to try: each must resolve to a loopback or local address
names=""
for n in "$(hostname 2>/dev/null || true)" localhost.; do
    [ -n "$n" ] || continue
    a=$(getent ahostsv4 "$n" 2>/dev/null | awk 'NR == 1 { print $1 }')
    case $a in 127.*) names="$names $n" ;; esac
done
[ -n "$names" ] || skip "no host name of this machine resolves to a loopback address"

tried=0
for n in $names; do
    # rewrite form: the router sees a host name, not an address of ours
    st=$(http_status "$PROXY_URL/$n:$PROXY_PORT/fixture/dists/bookworm/InRelease")
    if [ "$st" = 400 ] || [ "$st" = 403 ]; then
        log "$n: refused by the request parser or router ($st): not a case for this test"
        continue
    fi
    tried=$((tried + 1))
    [ "$st" = 508 ] || fail "/$n:$PROXY_PORT/... answered $st, expected 508 (the proxy fetched from itself)"
    body=$(tcurl "$PROXY_URL/$n:$PROXY_PORT/fixture/dists/bookworm/Release" 2>/dev/null || true)
    case $body in *"resolves to this proxy"*) ;; *) fail "the 508 does not say why: $body" ;; esac
    # proxy form
    st=$(tcurl --noproxy '' -x "$PROXY_URL" -o /dev/null -w '%{http_code}' \
        "http://$n:$PROXY_PORT/fixture/dists/bookworm/InRelease" 2>/dev/null || true)
    [ "$st" = 508 ] || fail "proxy form http://$n:$PROXY_PORT/... answered $st, expected 508"
    # the same name, the mirror's port: an ordinary fetch
    st=$(http_status "$PROXY_URL/$n:$MIRROR_PORT/debian/dists/bookworm/InRelease")
    [ "$st" = 200 ] || fail "/$n:$MIRROR_PORT/ (the real mirror) answered $st"
    log "$n (resolves to this host): 508 on the proxy's port ($body); 200 on the mirror's"
done
[ "$tried" -gt 0 ] || skip "every local name was already refused by its spelling"
# the proxy never served a request to itself
self=$(grep -c "GET /fixture/dists/bookworm/InRelease 200" "$PROXY_LOG" || true)
[ "$self" -eq 0 ] || fail "the proxy answered $self requests from itself"
log "PASS"
