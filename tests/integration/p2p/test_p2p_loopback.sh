#!/bin/sh
# Peer-to-peer on loopback, with the real apt-get: three apt-dht-proxy processes form a
# DHT (apt-dht dialect, bootstrapped from the first) on 127.0.0.1.
#  1. A lying peer is announced for the big package before anyone has it: host a's
#     proxy tries it, rejects its bytes, bans it, and apt still gets the right file
#     from the mirror.
#  2. Host b gets every package from peers: zero pool bytes from the mirror.
#  3. Host a's proxy is stopped; host c still gets everything (from b), again with zero
#     pool bytes from the mirror.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3 timeout
NODE_BIN=$(node_bin)
[ -x "$NODE_BIN" ] || skip "apt-dht-node not built"
fixture_build
mirror_start

PA=$(free_port); PB=$(free_port); PC=$(free_port)
p2p_node_start a "$PA"
p2p_node_start b "$PB" "$PA"
p2p_node_start c "$PC" "$PA"
wait_for 20 grep -q "dht: alone -> active" "$T/b/log" || fail "node b never joined the DHT"
wait_for 20 grep -q "dht: alone -> active" "$T/c/log" || fail "node c never joined the DHT"

pool_total=$(find "$FIXTURE_ROOT/pool" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
big_size=$(stat -c %s "$FIXTURE_ROOT/$FIXTURE_BIG")
big_key=$(sha256_of "$FIXTURE_ROOT/$FIXTURE_BIG" | cut -c1-40)

# --- 1. a lying peer -----------------------------------------------------------
FAKE_PORT=$(free_port)
python3 - "$FAKE_PORT" "$big_size" > "$T/fake.log" 2>&1 <<'EOP' &
import http.server, sys
port, size = int(sys.argv[1]), int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk = b"\x5a" * 65536
        left = size
        try:
            while left > 0:
                n = min(left, len(chunk))
                self.wfile.write(chunk[:n])
                left -= n
        except OSError:
            pass
    def log_message(self, *a):
        sys.stderr.write("fake peer: %s\n" % (a,))
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
EOP
track_pid "$!"
wait_port "$FAKE_PORT" 10 || fail "fake peer did not start"
"$NODE_BIN" --mode "${P2P_MODE:-apt-dht}" --bind 127.0.0.1 --bootstrap "127.0.0.1:$PA" \
    --timeout 20 announce "$big_key" "$FAKE_PORT" > "$T/announce.log" 2>&1 \
    || { cat "$T/announce.log"; fail "could not announce the lying peer"; }

p2p_client a "$PA"
grep -q "fake peer:" "$T/fake.log" || fail "the lying peer was never asked"
grep -q "peer 127.0.0.1:$FAKE_PORT served data that failed verification: banned" "$T/a/log" \
    || fail "the lying peer was not banned"
check_eq "$big_size" "$(mirror_bytes "*/$FIXTURE_BIG")" "big package bytes from the mirror"
check_eq "$pool_total" "$(mirror_bytes '*/pool/*')" "pool bytes from the mirror after host a"
log "host a: lying peer rejected and banned; apt got every file right"

# --- 2. host b: everything from peers ------------------------------------------------
p2p_client b "$PB"
check_eq "$pool_total" "$(mirror_bytes '*/pool/*')" "pool bytes from the mirror after host b"
n_peer=$(grep -c "GET /fixture/pool/.* 200 [0-9]* peer 127.0.0.1:$PA " "$T/b/log" || true)
[ "$n_peer" -ge 6 ] || fail "host b got only $n_peer pool files from peer a"
log "host b: $n_peer pool files from peer a, zero pool bytes from the mirror"

# --- 3. host a gone: host c still served, by b ------------------------------------
stop_pid "$PID_a" 10
p2p_client c "$PC"
check_eq "$pool_total" "$(mirror_bytes '*/pool/*')" "pool bytes from the mirror after host c"
grep -q "GET /fixture/pool/.* 200 [0-9]* peer 127.0.0.1:$PB " "$T/c/log" \
    || fail "host c got nothing from peer b"
check_cache_not_corrupt "$T/c/cache"
log "host c: served by b with a stopped; the mirror served each pool file once in all"
log "passed"
