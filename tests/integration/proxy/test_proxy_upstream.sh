#!/bin/sh
# upstream.proxy and upstream.no_proxy: the daemon behind a forward proxy (the logging
# fixture tests/fixture/fwdproxy.py). The real apt's update and downloads through a
# backend reach the mirror only through the forward proxy (its log lists the mirror's
# files as absolute-form requests); with the mirror's host in no_proxy the forward proxy
# sees nothing more; an https mirror goes through a CONNECT tunnel with the CA still
# checked; an environment http_proxy pointing elsewhere is never used. A
# forward proxy that is down gives a clear 502/504, and a malformed upstream.proxy
# stops the start-up with FILE:LINE.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3
fixture_build
mirror_start

FP_LOG="$T/fwdproxy.log"
: > "$FP_LOG"
python3 "$top_srcdir/tests/fixture/fwdproxy.py" --port-file "$T/fp.port" --log "$FP_LOG" \
    2> "$T/fp.err" &
FP_PID=$!
track_pid "$FP_PID"
wait_file "$FP_PID" "$T/fp.port" 15 || { cat "$T/fp.err" >&2; hard_error "fwdproxy.py did not start"; }
FP_URL="http://127.0.0.1:$(cat "$T/fp.port")"

mkdir -p "$T/proxy"
PROXY_PORT=$(free_port)
write_conf() {
    cat > "$T/proxy/apt-dht.conf" <<EOF
listen: {address: 127.0.0.1, port: $PROXY_PORT}
dht: {mode: off}
backends: {fixture: [$MIRROR_URL/debian]}
upstream: {proxy: "$1", no_proxy: [$2]}
EOF
}
write_conf "$FP_URL" ""
# a proxy in the environment must not be used (it would be this daemon, often)
http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 proxy_start

apt_sandbox "$T/c1" > /dev/null
apt_sources "$T/c1" backend fixture "$PROXY_URL"
apt_update "$T/c1"
apt_download_all "$T/c1" || fail "apt-get download through the proxy chain"
apt_check_downloads "$T/c1/downloads"
through=$(grep -c "^GET $MIRROR_URL/debian/" "$FP_LOG" || true)
pool=$(grep -c "^GET $MIRROR_URL/debian/pool/" "$FP_LOG" || true)
[ "$pool" -ge 6 ] || fail "only $pool package requests went through the forward proxy"
log "upstream.proxy: $through mirror requests through the forward proxy ($pool packages)"
direct=$(mirror_requests '*' 200)
[ "$direct" -eq "$through" ] || log "(the mirror saw $direct answers for $through proxied requests)"

# no_proxy: the mirror's host is reached directly (a reload applies it)
write_conf "$FP_URL" "127.0.0.1"
kill -HUP "$PROXY_PID"
wait_for 10 grep -q "configuration reloaded" "$PROXY_LOG" || fail "the reload was not applied"
before=$(wc -l < "$FP_LOG")
st=$(http_status "$PROXY_URL/fixture/dists/bookworm/Release")
[ "$st" = 200 ] || fail "with no_proxy the mirror answered $st"
[ "$(wc -l < "$FP_LOG")" -eq "$before" ] || fail "a no_proxy host went through the forward proxy"
log "upstream.no_proxy [127.0.0.1]: the mirror is reached directly"

# an https mirror through the forward proxy: a CONNECT tunnel, the CA still checked
HTTP_MIRROR=$MIRROR_URL
sh "$top_srcdir/tests/fixture/make-ca.sh" "$T/pki" || hard_error "openssl: cannot make the test CA"
mirror_start --tls-cert "$T/pki/srv.pem" --tls-key "$T/pki/srv.key"
HP="127.0.0.1:$MIRROR_PORT"
MIRROR_URL=$HTTP_MIRROR
cat > "$T/proxy/apt-dht.conf" <<EOF
listen: {address: 127.0.0.1, port: $PROXY_PORT}
dht: {mode: off}
upstream: {proxy: "$FP_URL", ca_file: $T/pki/ca.pem}
EOF
reloads() { [ "$(grep -c 'configuration reloaded' "$PROXY_LOG")" -ge "$1" ]; }
kill -HUP "$PROXY_PID"
wait_for 10 reloads 2 || fail "the second reload was not applied"
st=$(http_status "$PROXY_URL/HTTPS///$HP/debian/dists/bookworm/InRelease")
[ "$st" = 200 ] || fail "an https mirror through the forward proxy answered $st"
grep -q "^CONNECT $HP" "$FP_LOG" || fail "the https mirror was not reached through a CONNECT tunnel"
log "https mirror through upstream.proxy: CONNECT $HP, 200"

# a forward proxy that is down: a clear answer, not a hang
proxy_stop
write_conf "http://127.0.0.1:9" ""
rm -rf "$PROXY_CACHE"
proxy_start
st=$(http_status "$PROXY_URL/fixture/dists/bookworm/InRelease")
case $st in 502|504) ;; *) fail "with the forward proxy down the answer was $st" ;; esac
log "upstream.proxy down: $st"
proxy_stop

# a malformed upstream.proxy stops the start-up
printf 'upstream:\n  proxy: "proxy.example:3128"\n' > "$T/bad.conf"
rc=0
"$(proxy_bin)" -f -c "$T/bad.conf" --cache-dir "$T/c2" --state-dir "$T/s2" > "$T/bad.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "a malformed upstream.proxy did not stop the start-up"
grep -q "bad.conf:2: key 'upstream.proxy': 'proxy.example:3128' is not http://HOST\[:PORT\]" \
    "$T/bad.out" || { cat "$T/bad.out" >&2; fail "no FILE:LINE message for upstream.proxy"; }
log "malformed upstream.proxy: exit $rc"
log "PASS"
