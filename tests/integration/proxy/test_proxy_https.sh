#!/bin/sh
# https mirrors: the fixture mirror over TLS with a throwaway CA (made by openssl here),
# given to the daemon as upstream.ca_file. The real apt reaches it through the proxy in
# rewrite mode by apt-cacher-ng's /HTTPS///HOST:PORT/PATH, by /HOST:443/PATH (when port
# 443 of 127.0.0.1 is free to bind), and by the per-host upgrade upstream.https_hosts
# (apt asks http://HOST:PORT/..., the proxy fetches https://). Every package arrives
# byte-identical and is cached; the other spellings of the same host are served from the
# cache. A daemon without the CA refuses the mirror with a clear 502 (certificate), and
# a ca_file that does not exist stops the start-up with FILE:LINE.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get openssl curl python3
fixture_build

# ---- the throwaway CA and the mirror's certificate (127.0.0.1 and localhost) ----
P="$T/pki"
sh "$top_srcdir/tests/fixture/make-ca.sh" "$P" || hard_error "openssl: cannot make the test CA"

mirror_start --tls-cert "$P/srv.pem" --tls-key "$P/srv.key"
HP="127.0.0.1:$MIRROR_PORT"
MIRROR_URL="https://$HP" # lib.sh's _ctl requests go over TLS too
tcurl --cacert "$P/ca.pem" -fo /dev/null "$MIRROR_URL/debian/dists/bookworm/InRelease" \
    || hard_error "the https fixture mirror does not answer with the test CA"

# a second https mirror on 127.0.0.1:443, for the /HOST:443/ spelling, when it can bind
M443=""
if python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 443))' 2>/dev/null; then
    : > "$T/m443.log"
    python3 "$top_srcdir/tests/fixture/mirror.py" --root "$FIXTURE_DIR" --port 443 \
        --port-file "$T/m443.port" --log "$T/m443.log" --tls-cert "$P/srv.pem" \
        --tls-key "$P/srv.key" 2> "$T/m443.err" &
    M443=$!
    track_pid "$M443"
    wait_file "$M443" "$T/m443.port" 15 || hard_error "the mirror on port 443 did not start"
else
    log "port 443 of 127.0.0.1 cannot be bound here: the /HOST:443/ spelling is not tried"
fi

mkdir -p "$T/proxy"
PROXY_PORT=$(free_port)
cat > "$T/proxy/apt-dht.conf" <<EOF
listen: {address: 127.0.0.1, port: $PROXY_PORT}
dht: {mode: off}
upstream: {ca_file: $P/ca.pem, https_hosts: ["$HP"]}
EOF
proxy_start

# client NAME BASE-URL PROXY: a sandbox whose source is BASE-URL: update, every package
client() {
    apt_sandbox "$T/$1" > /dev/null
    key="$T/$1/etc/apt/keyrings/fixture.gpg"
    echo "deb [signed-by=$key] $2 bookworm main" > "$T/$1/etc/apt/sources.list"
    printf 'Acquire::http::Proxy "%s";\n' "$3" > "$T/$1/etc/apt/apt.conf.d/50proxy"
    chmod a+r "$T/$1/etc/apt/sources.list" "$T/$1/etc/apt/apt.conf.d/50proxy"
    apt_update "$T/$1"
    mkdir -p "$T/$1/dl"; chmod a+rwx "$T/$1/dl"
    # shellcheck disable=SC2046
    (cd "$T/$1/dl" && apt_run "$T/$1" download $(fixture_packages)) || fail "$1: apt-get download"
    check_all_debs "$T/$1/dl"
}

client acng "$PROXY_URL/HTTPS///$HP/debian" DIRECT
got=$(mirror_requests '*/pool/*' 200)
[ "$got" -ge 6 ] || fail "only $got packages came from the https mirror"
log "rewrite mode, /HTTPS///$HP/debian: update and every package over https ($got packages)"

# the per-host upgrade: apt asks http://HOST:PORT/... through the proxy; the same files
# under the same key, so the packages now come from the cache
client upgrade "http://$HP/debian" "$PROXY_URL/"
[ "$(mirror_requests '*/pool/*' 200)" -eq "$got" ] \
    || fail "the upgraded spelling fetched packages again instead of using the cache"
client upgrade2 "$PROXY_URL/$HP/debian" DIRECT
[ "$(mirror_requests '*/pool/*' 200)" -eq "$got" ] || fail "rewrite form: packages fetched again"
log "http://$HP/debian in proxy and rewrite form, with upstream.https_hosts: from the cache"
st=$(http_status "$PROXY_URL/$HP/debian/dists/bookworm/Release")
[ "$st" = 200 ] || fail "an upgraded uncached index answered $st"
grep -q 'GET /debian/dists/bookworm/Release 200' "$MIRROR_LOG" \
    || fail "the upgraded request did not reach the https mirror"
cached=$(find "$PROXY_CACHE" -name '*.deb' | wc -l)
[ "$cached" -ge 6 ] || fail "only $cached packages cached from the https mirror"
check_cache_not_corrupt "$PROXY_CACHE"

if [ -n "$M443" ]; then
    client p443 "$PROXY_URL/127.0.0.1:443/debian" DIRECT
    # the indices come from port 443 over https; the packages, whose SHA-256 the cache
    # already holds under the other spellings' keys, are links to those copies
    n=$(awk '$2 ~ /\/dists\// && $3 == 200' "$T/m443.log" | wc -l)
    [ "$n" -ge 1 ] || fail "the /127.0.0.1:443/ spelling fetched no index from port 443"
    log "rewrite mode, /127.0.0.1:443/debian: $n indices over https from port 443," \
        "$(awk '$2 ~ /\/pool\// && $3 == 200' "$T/m443.log" | wc -l) packages (the rest are cached copies)"
fi

# ---- without the CA: a clear refusal, not a hang; a missing ca_file stops the start ----
proxy_stop
cat > "$T/proxy/apt-dht.conf" <<EOF
listen: {address: 127.0.0.1, port: $PROXY_PORT}
dht: {mode: off}
EOF
proxy_start
st=$(http_status "$PROXY_URL/HTTPS///$HP/debian/dists/bookworm/main/binary-all/Release")
[ "$st" = 502 ] || fail "an https mirror with an unknown CA answered $st, expected 502"
body=$(tcurl "$PROXY_URL/HTTPS///$HP/debian/dists/bookworm/main/binary-all/Release" 2>/dev/null || true)
case $body in *certificate*|*SSL*|*TLS*) ;; *) fail "the 502 does not say why: $body" ;; esac
log "without upstream.ca_file: 502 ($(printf '%s' "$body" | head -n 1))"
proxy_stop
printf 'upstream:\n  ca_file: %s/no-such-ca.pem\n' "$T" > "$T/bad.conf"
rc=0
"$(proxy_bin)" -f -c "$T/bad.conf" --cache-dir "$T/c2" --state-dir "$T/s2" > "$T/bad.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "a missing upstream.ca_file did not stop the start-up"
grep -q "bad.conf:2: key 'upstream.ca_file': '.*no-such-ca.pem' cannot be read" "$T/bad.out" \
    || { cat "$T/bad.out" >&2; fail "no FILE:LINE message for the missing ca_file"; }
log "a missing upstream.ca_file: exit $rc: $(cat "$T/bad.out")"
log "PASS"
