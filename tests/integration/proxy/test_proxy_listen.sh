#!/bin/sh
# listen.address as a list: [127.0.0.1, 127.0.0.2] (and "::1" when this host has IPv6
# loopback) each get a listener on listen.port and serve the same cache; an address not
# in the list is not listened on; every listening address is the proxy itself for the
# router (a rewrite request naming it is refused). A list in which one address cannot be
# bound (its port taken there) stops the start-up, naming the address, with exit 1.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool curl python3
fixture_build
mirror_start
mkdir -p "$T/proxy"
PROXY_PORT=$(free_port)
v6=""
python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null \
    && v6=', "::1"'
cat > "$T/proxy/apt-dht.conf" <<EOF
listen: {address: [127.0.0.1, 127.0.0.2$v6], port: $PROXY_PORT}
dht: {mode: off}
backends: {fixture: [$MIRROR_URL/debian]}
EOF
proxy_start
F=fixture/dists/bookworm/InRelease
for a in 127.0.0.1 127.0.0.2; do
    st=$(http_status "http://$a:$PROXY_PORT/$F")
    [ "$st" = 200 ] || fail "listener $a answered $st"
done
if [ -n "$v6" ]; then
    st=$(http_status "http://[::1]:$PROXY_PORT/$F")
    [ "$st" = 200 ] || fail "listener [::1] answered $st"
fi
st=$(http_status "http://127.0.0.3:$PROXY_PORT/$F")
[ "$st" = 000 ] || fail "127.0.0.3 is not in the list but answered $st"
[ "$(mirror_requests '*/InRelease' 200)" -eq 1 ] || fail "the listeners do not share one cache"
log "listeners on 127.0.0.1, 127.0.0.2${v6:+ and ::1}: one cache; 127.0.0.3 not listened on"
st=$(http_status "http://127.0.0.1:$PROXY_PORT/127.0.0.2:$PROXY_PORT/$F")
[ "$st" = 403 ] || fail "a rewrite request naming the second listener answered $st, expected 403"
log "a rewrite request naming 127.0.0.2:$PROXY_PORT: 403 (this proxy)"
proxy_stop

# one address of the list taken: the start fails and says which
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.2", int(sys.argv[1]))); s.listen(1)
open(sys.argv[2], "w").write("ok\n"); time.sleep(60)' "$PROXY_PORT" "$T/taken" &
H=$!
track_pid "$H"
wait_file "$H" "$T/taken" 10 || hard_error "cannot hold 127.0.0.2:$PROXY_PORT"
rc=0
"$(proxy_bin)" -f -c "$T/proxy/apt-dht.conf" --cache-dir "$T/c2" --state-dir "$T/s2" \
    > "$T/taken.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "with 127.0.0.2:$PROXY_PORT taken the daemon exited $rc"
grep -q "cannot listen on 127.0.0.2 port $PROXY_PORT" "$T/taken.out" \
    || { cat "$T/taken.out" >&2; fail "the error does not name the address in use"; }
log "127.0.0.2:$PROXY_PORT in use: exit 1, $(grep -o 'cannot listen on 127.0.0.2.*' "$T/taken.out" | head -n 1)"
stop_pid "$H"
log "PASS"
