#!/bin/sh
# Routing policy with curl against a real proxy and the fixture mirror:
#  - a backend's mirrors fail over: a dead first mirror (connection refused) and a first
#    mirror answering 503 both lead to the next one;
#  - allowed_clients is enforced on apt routes while peers keep their own list;
#  - a by-name index that disagrees with the InRelease the proxy served is never passed
#    on: the proxy fetches the by-hash copy instead.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool curl python3 timeout sha256sum
fixture_build
mirror_start

DEAD=$(free_port)   # nothing listens here
BUSY=$(free_port)   # answers 503 to everything
python3 - "$BUSY" > "$T/busy.log" 2>&1 <<'EOP' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"busy\n"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *a):
        sys.stderr.write("busy: " + (fmt % a) + "\n")
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOP
track_pid "$!"
wait_port "$BUSY" 10 || fail "503 server did not start"

PROXY_PORT=$(free_port)
mkdir -p "$T/proxy"
cat > "$T/proxy/apt-dht.conf" <<EOC
listen: {address: 127.0.0.1, port: $PROXY_PORT}
dht: {mode: off}
backends:
  fixture: [$MIRROR_URL/debian]
  dead-first: [http://127.0.0.1:$DEAD/debian, $MIRROR_URL/debian]
  busy-first: [http://127.0.0.1:$BUSY/debian, $MIRROR_URL/debian]
EOC
proxy_start
P=$PROXY_URL

# --- failover ---------------------------------------------------------------------
for b in dead-first busy-first; do
    check_eq 200 "$(http_status "$P/$b/dists/bookworm/Release")" "$b: Release through the second mirror"
done
grep -q "busy: .*GET /debian/dists/bookworm/Release" "$T/busy.log" || fail "the 503 mirror was never asked"
grep -q "trying the next mirror" "$PROXY_LOG" || fail "no failover logged"
log "failover: connection refused and 503 both moved on to the next mirror"

# --- stale by-name index -------------------------------------------------------------
# apt got this InRelease: from now on, by-name indices must match what it lists.
check_eq 200 "$(http_status "$P/fixture/dists/bookworm/InRelease")" "InRelease"
idx=dists/bookworm/main/binary-amd64/Packages.xz
want=$(sha256_of "$FIXTURE_ROOT/$idx")
mirror_fault '{"path_glob": "dists/bookworm/main/binary-amd64/Packages.xz", "mode": "corrupt", "length": 64}'
tcurl -o "$T/Packages.xz" "$P/fixture/$idx" || fail "by-name Packages.xz through the proxy"
check_eq "$want" "$(sha256_of "$T/Packages.xz")" "by-name Packages.xz matches the InRelease"
[ "$(mirror_requests "*/binary-amd64/by-hash/SHA256/$want")" -ge 1 ] \
    || fail "the proxy did not fall back to the by-hash copy"
grep -q "disagrees with InRelease" "$PROXY_LOG" || fail "the fallback was not logged"
mirror_reset
log "stale index: the mirror's disagreeing by-name copy replaced by its by-hash copy"

# --- allowed_clients -----------------------------------------------------------------
proxy_stop
cat >> "$T/proxy/apt-dht.conf" <<EOC
allowed_clients: [192.0.2.0/24]
EOC
proxy_start
check_eq 403 "$(http_status "$P/fixture/dists/bookworm/InRelease")" "apt route from a client not allowed"
check_eq 403 "$(http_status "$P/fixture/pool/main/a/apt-dht-tools/x.deb")" "pool route from a client not allowed"
# loopback is still a peer client; peer sharing is off with dht.mode off
check_eq 404 "$(http_status "$P/~/sha256/$want")" "peer route from a peer client"

log "allowed_clients: apt routes refused, peer route answered"

# --- SIGHUP reloads; a broken file on reload keeps the running configuration --------
sed -i '/^allowed_clients: \[192.0.2.0\/24\]$/d' "$T/proxy/apt-dht.conf"
sed -i "s|^  fixture: \[|  late: [$MIRROR_URL/debian]\n  fixture: [|" "$T/proxy/apt-dht.conf"
kill -HUP "$PROXY_PID"
wait_for 10 grep -q "configuration reloaded" "$PROXY_LOG" || fail "SIGHUP did not reload"
check_eq 200 "$(http_status "$P/late/dists/bookworm/Release")" "a backend added by the reload"
check_eq 200 "$(http_status "$P/fixture/dists/bookworm/Release")" "allowed_clients restored by the reload"
printf 'cache:\n  max_size: lots\n' >> "$T/proxy/apt-dht.conf"
kill -HUP "$PROXY_PID"
wait_for 10 grep -q "reload failed; keeping the running configuration" "$PROXY_LOG" \
    || fail "a broken config on reload was not refused"
grep -q "apt-dht.conf:[0-9]*: key 'cache.max_size'" "$PROXY_LOG" || fail "the reload error names no file:line"
check_eq 200 "$(http_status "$P/late/dists/bookworm/Release")" "still serving after a failed reload"
log "reload: applied, and a broken file refused with file:line while serving on"
log "passed"
