#!/bin/sh
# Hostile load on the HTTP side (loopback only, bounded, self-stopping):
# - 1001 clients wait on one slow download; once they are served, the proxy still
#   accepts and answers new requests (it used to stop accepting for good);
# - 2000 half-open connections from one address (slowloris) do not keep apt out: a
#   request from another address is answered within a second.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool curl python3 timeout
fixture_build
mirror_start
mkdir -p "$T/proxy"
PROXY_PORT=$(free_port)
# the flood comes from one address: its budget must hold it, the pool too
cat > "$T/proxy/apt-dht.conf" <<EOF
listen: {address: 127.0.0.1, port: $PROXY_PORT, max_connections: 1100, max_per_client: 1050}
dht: {mode: off}
backends: {fixture: [$MIRROR_URL/debian]}
EOF
proxy_start
H="$top_srcdir/tests/integration/proxy/hostile.py"
# a 300 KB package: 1001 copies of it are 300 MB on loopback, not the big file's 42 GB
DEB=pool/main/a/apt-dht-tools/apt-dht-tools_2.3-1_amd64.deb
[ -f "$FIXTURE_ROOT/$DEB" ] || hard_error "the fixture has no $DEB"
BIGP="/fixture/$DEB"

# ---- 1001 clients on one slow download, then one more ----
mirror_fault "{\"path_glob\": \"*$(basename "$DEB")\", \"mode\": \"delay\", \"delay_ms\": 4000}"
res=$(timeout 120 python3 "$H" flood 127.0.0.1 "$PROXY_PORT" "$BIGP" 1001 60 keepalive \
    2> "$T/flood.err") || { cat "$T/flood.err" >&2; fail "the flood client failed"; }
log "1001 clients: $res"
ok=${res#ok=}; ok=${ok%% *}
[ "$ok" -ge 990 ] || fail "only $ok of 1001 clients were served"
mirror_reset
t0=$(date +%s%N)
code=$(http_status "$PROXY_URL$BIGP" --max-time 10)
t1=$(date +%s%N)
check_eq 200 "$code" "a request after the flood"
log "request after the flood answered in $(( (t1 - t0) / 1000000 )) ms"

# ---- slowloris from 127.0.0.2 while apt asks from 127.0.0.1 ----
# The default budgets: 64 connections per address, 15 s to send a request head.
proxy_stop
proxy_config "$T/proxy/apt-dht.conf"
proxy_start
timeout 60 python3 "$H" slowloris 127.0.0.2 127.0.0.1 "$PROXY_PORT" 2000 12 > "$T/loris.out" &
loris=$!
track_pid "$loris"
sleep 4
t0=$(date +%s%N)
code=$(http_status "$PROXY_URL$BIGP" --max-time 5)
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
log "request during slowloris: $code in $ms ms"
check_eq 200 "$code" "a request during slowloris"
[ "$ms" -le 1000 ] || fail "a request during slowloris took $ms ms"
wait "$loris" || true
untrack_pid "$loris"
log "slowloris: $(cat "$T/loris.out") of 2000 connections from one address were kept open"
kill -0 "$PROXY_PID" || fail "the proxy died"
open=$(sed -n 's/^open=//p' "$T/loris.out")
[ "${open:-9999}" -le 64 ] || fail "$open connections from one address stayed open (budget 64)"

# ---- a header deadline: connections that never finish a request head are closed ----
timeout 60 python3 "$H" slowloris 127.0.0.3 127.0.0.1 "$PROXY_PORT" 20 22 > "$T/loris2.out" \
    || fail "the slowloris client failed"
log "after 22 s: $(cat "$T/loris2.out") of 20 dribbling connections still open (deadline 15 s)"
check_eq "open=0" "$(cat "$T/loris2.out")" "connections past the header deadline"
grep -q "no request head after 15 s" "$PROXY_LOG" || fail "the deadline was not logged"

# ---- a second instance on the port in use fails to start, with a non-zero exit ----
rc=0
timeout 20 "$(proxy_bin)" -c "$T/proxy/apt-dht.conf" -p "$PROXY_PORT" --cache-dir "$T/p2c" \
    --state-dir "$T/p2s" > "$T/second.log" 2>&1 || rc=$?
log "a second instance on port $PROXY_PORT: exit $rc"
[ "$rc" -ne 0 ] || fail "a second instance started on a port in use (or exited 0 in the background)"
code=$(http_status "$PROXY_URL$BIGP" --max-time 5)
check_eq 200 "$code" "the first instance still answers"
log "PASS"
