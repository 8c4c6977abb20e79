#!/bin/sh
# The status pages of one proxy (DHT on, alone) after a real apt run through it:
#  - /~/status, /~/status.json, /~/status.txt, /metrics and /~/health answer 127.0.0.1
#    (in status_clients); the JSON's bytes to apt add up to the proxy's own request log,
#    and its pool bytes to what apt saved; promtool accepts /metrics (when installed);
#  - access: from 127.0.0.2 (a peer address outside status_clients and allowed_clients)
#    the page, the JSON, /metrics, explain and health are refused, and the peer route
#    still serves it a cached file, byte for byte;
#  - a reload that adds 127.0.0.2 to status_clients lets it in;
#  - explain: a cached file is explained (expected hash, cached, served from the cache);
#    bad input gets 400 with a reason; POST gets 405; an unknown page 404;
#  - `apt-dht-proxy status` (and --json) exits 0; after the loop stalled (SIGSTOP for 6 s)
#    /~/health answers 503 and the command exits 1, and the Proxy-Auto-Detect helper
#    says DIRECT; with the daemon stopped the command exits 3;
#  - under a service manager's watchdog ($NOTIFY_SOCKET, $WATCHDOG_USEC) the daemon says
#    READY=1, then WATCHDOG=1 from its heartbeat;
#  - as root: a cache directory that turns read-only makes /~/health answer 503.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3 timeout
fixture_build
mirror_start

PROXY_PORT=$(free_port)
mkdir -p "$T/proxy"
cat > "$T/proxy/apt-dht.conf" <<EOF
listen: {address: 127.0.0.1, port: $PROXY_PORT}
allowed_clients: [127.0.0.1/32]
status_clients: [127.0.0.1/32]
dht: {mode: apt-dht, lan_discovery: false}
backends: {fixture: [$MIRROR_URL/debian]}
EOF
proxy_start

# 127.0.0.2 must be usable as a source address (it is on Linux: all of 127/8 is local).
tcurl --interface 127.0.0.2 -o /dev/null "$PROXY_URL/~/health" 2>/dev/null \
    || [ $? -eq 22 ] || skip "cannot send from 127.0.0.2 on this host"

C="$T/client"
apt_sandbox "$C"
apt_sources "$C" backend fixture "$PROXY_URL"
apt_update "$C"
apt_download_all "$C" "$C/downloads" || fail "apt could not download everything"
apt_check_downloads "$C/downloads"
pool_total=$(find "$FIXTURE_ROOT/pool" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
apt_bytes=$(find "$C/downloads" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
check_eq "$pool_total" "$apt_bytes" "bytes apt saved"

# --- the pages, from a status client -----------------------------------------------
check_eq 200 "$(http_status "$PROXY_URL/~/status")" "/~/status from 127.0.0.1"
tcurl -f -o "$T/page.html" -D "$T/page.hdr" "$PROXY_URL/~/status"
grep -q "What it saved" "$T/page.html" || fail "the status page lacks its savings"
grep -qi "^content-security-policy: default-src 'none'" "$T/page.hdr" || fail "no CSP header"
grep -qi "^content-type: text/html" "$T/page.hdr" || fail "the page is not text/html"
tcurl -f -o "$T/status.json" "$PROXY_URL/~/status.json"
tcurl -f -o "$T/metrics.txt" "$PROXY_URL/metrics"
# What apt received, by the proxy's own request log: lines with status < 400 whose
# source is the cache, a peer or a mirror (fields: date time level: client method path
# status bytes source...).
log_total=$(awk '$3 == "info:" && $7 ~ /^[0-9]+$/ && $7 < 400 && $9 ~ /^(cache|peer|mirror)/ \
    { s += $8 } END { print s + 0 }' "$PROXY_LOG")
python3 - "$T/status.json" "$log_total" "$pool_total" <<'PY' || fail "status.json disagrees"
import json, sys
j = json.load(open(sys.argv[1]))
log_total, pool = int(sys.argv[2]), int(sys.argv[3])
s = j["since_start"]
assert s["served_bytes"] == s["cache_bytes"] + s["peer_bytes"] + s["mirror_bytes"], s
assert s["served_bytes"] == log_total, (s["served_bytes"], log_total)
assert s["mirror_bytes"] >= pool, (s["mirror_bytes"], pool)
assert j["health_status"] == 200, j["health"]
assert j["verification"]["verified_from_mirrors"] >= 7, j["verification"]
assert j["verification"]["mismatches_from_mirrors"] == 0, j["verification"]
assert j["cache"]["files"] >= 7, j["cache"]
print("status.json: %d bytes to apt, as the request log says" % s["served_bytes"])
PY
python3 - "$T/metrics.txt" "$log_total" <<'PY' || fail "/metrics disagrees"
import re, sys
text = open(sys.argv[1]).read()
served = sum(int(v) for v in re.findall(r'^apt_dht_served_bytes_total\{source="[a-z]+"\} (\d+)$', text, re.M))
assert served == int(sys.argv[2]), (served, sys.argv[2])
for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
             "apt_dht_cache_bytes", "apt_dht_lookup_duration_seconds_bucket"):
    assert re.search("^" + name, text, re.M), name
PY
# Every metric the shipped Grafana dashboard queries exists.
python3 - "$top_srcdir/doc/grafana-dashboard.json" "$T/metrics.txt" <<'PY' || fail "the dashboard asks for metrics /metrics lacks"
import json, re, sys
dash, text = json.load(open(sys.argv[1])), open(sys.argv[2]).read()
have = set(re.findall(r"^([a-z_]+)(?:\{| )", text, re.M))
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
used = set(n for e in exprs for n in re.findall(r"\b((?:apt_dht|process)_[a-z_]+)", e))
missing = sorted(used - have)
assert exprs and not missing, missing
print("dashboard: %d queries, %d metrics, all in /metrics" % (len(exprs), len(used)))
PY
if command -v promtool >/dev/null 2>&1; then
    promtool check metrics < "$T/metrics.txt" || fail "promtool rejects /metrics"
    log "promtool check metrics: passed"
else
    log "promtool not installed (Debian package prometheus): the lint of /metrics is skipped"
fi
tcurl -f -o "$T/status.txt" "$PROXY_URL/~/status.txt"
grep -q "^health:   OK" "$T/status.txt" || fail "status.txt is not healthy"

# --- access: a peer address outside status_clients ---------------------------------
deb=$(find "$FIXTURE_ROOT/pool" -name '*.deb' | head -n 1)
deb_sha=$(sha256_of "$deb")
for path in /~/status /~/status.json /~/status.txt /metrics \
            "/~/status/explain?u=/fixture/pool/x.deb" /~/health; do
    check_eq 403 "$(http_status "$PROXY_URL$path" --interface 127.0.0.2)" "$path from 127.0.0.2"
done
tcurl -f --interface 127.0.0.2 -o "$T/peer.deb" "$PROXY_URL/~/sha256/$deb_sha" \
    || fail "the peer route refused 127.0.0.2"
cmp -s "$deb" "$T/peer.deb" || fail "the peer route served the wrong bytes"
log "127.0.0.2: status pages refused, the peer route served $(basename "$deb")"

# A reload that adds 127.0.0.2 to status_clients lets it read the page.
sed -i 's|^status_clients: .*|status_clients: [127.0.0.1/32, 127.0.0.2/32]|' "$PROXY_CONF"
kill -HUP "$PROXY_PID"
wait_for 5 sh -c "[ \"\$(curl -q -s --noproxy '*' --interface 127.0.0.2 -o /dev/null \
    -w '%{http_code}' '$PROXY_URL/~/status')\" = 200 ]" || fail "the reload did not apply status_clients"
log "after a reload with 127.0.0.2 in status_clients: it reads the page"

# --- explain ------------------------------------------------------------------------
rel=${deb#"$FIXTURE_ROOT"}
tcurl -f -o "$T/explain.html" "$PROXY_URL/~/status/explain?u=/fixture$rel"
grep -q 'id="explain-cached" data-cached="1"' "$T/explain.html" || fail "explain: not cached?"
grep -q 'id="explain-expect" data-known="1"' "$T/explain.html" || fail "explain: no hash known?"
grep -q "$deb_sha" "$T/explain.html" || fail "explain: the expected SHA-256 is not shown"
grep -q 'data-act="serve-cached"' "$T/explain.html" || fail "explain: not served from the cache?"
grep -q 'id="explain-lookup"' "$T/explain.html" || fail "explain: no DHT lookup"
check_eq 200 "$(http_status "$PROXY_URL/~/status/explain")" "explain without a query (the form)"
for bad in '%zz' '/fixture/../etc/passwd' 'ftp://mirror.example/x' 'no-slash' '%00'; do
    check_eq 400 "$(http_status "$PROXY_URL/~/status/explain?u=$bad")" "explain u=$bad"
done
tcurl -o "$T/bad.html" "$PROXY_URL/~/status/explain?u=%2Ffixture%2F..%2Fx"
grep -q 'id="explain-error"' "$T/bad.html" || fail "explain: bad input without a reason"
check_eq 405 "$(http_status "$PROXY_URL/~/status" -X POST)" "POST /~/status"
check_eq 404 "$(http_status "$PROXY_URL/~/status/nope")" "/~/status/nope"

# --- the command line ---------------------------------------------------------------
BIN=$(proxy_bin)
"$BIN" status -c "$PROXY_CONF" > "$T/cli.txt" || fail "apt-dht-proxy status: exit $?"
grep -q "^health:   OK" "$T/cli.txt" || fail "apt-dht-proxy status printed no health"
"$BIN" status -c "$PROXY_CONF" --json > "$T/cli.json" || fail "apt-dht-proxy status --json failed"
python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); assert j["health_status"] == 200' \
    "$T/cli.json" || fail "apt-dht-proxy status --json is not the JSON status"
rc=0; "$BIN" status --bogus > /dev/null 2>&1 || rc=$?
check_eq 2 "$rc" "apt-dht-proxy status --bogus"

# The Proxy-Auto-Detect helper, pointed at this port.
sed "s/^PORT=.*/PORT=$PROXY_PORT/" "$top_srcdir/debian/apt-dht-detect" > "$T/detect"
check_eq "http://127.0.0.1:$PROXY_PORT" "$(bash "$T/detect")" "apt-dht-detect while healthy"

# --- a stalled loop ------------------------------------------------------------------
kill -STOP "$PROXY_PID"
sleep 6
kill -CONT "$PROXY_PID"
wait_for 5 sh -c "[ \"\$(curl -q -s --noproxy '*' -o /dev/null -w '%{http_code}' \
    '$PROXY_URL/~/health')\" = 503 ]" || fail "/~/health did not report the stall"
tcurl -o "$T/health.txt" "$PROXY_URL/~/health"
grep -q "^FAIL the event loop stalled" "$T/health.txt" || fail "health: no reason"
rc=0; "$BIN" status -c "$PROXY_CONF" > /dev/null || rc=$?
check_eq 1 "$rc" "apt-dht-proxy status after a stall"
check_eq DIRECT "$(bash "$T/detect")" "apt-dht-detect while unhealthy"
grep -q "the event loop stalled for" "$PROXY_LOG" || fail "the stall was not logged"
tcurl -f -o "$T/page2.html" "$PROXY_URL/~/status"
grep -q "the event loop stalled for" "$T/page2.html" \
    || fail "the stall is not among the page's recent warnings"
log "a 6 s stall: /~/health 503, status exit 1, detect DIRECT"

proxy_stop
rc=0; "$BIN" status -c "$PROXY_CONF" > /dev/null 2> "$T/down.err" || rc=$?
check_eq 3 "$rc" "apt-dht-proxy status with the daemon stopped"
grep -q "no daemon answers" "$T/down.err" || fail "no reason given for exit 3"
check_eq DIRECT "$(bash "$T/detect")" "apt-dht-detect with the daemon stopped"

# --- the service manager's watchdog -----------------------------------------------------
P3=$(free_port)
mkdir -p "$T/wd-cache" "$T/wd-state"
printf 'listen: {address: 127.0.0.1, port: %s}\ndht: {mode: off}\n' "$P3" > "$T/wd.conf"
python3 - "$T/notify.sock" > "$T/notify.txt" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(0.5)
end = time.monotonic() + 20
seen = []
while time.monotonic() < end and seen.count("WATCHDOG=1") < 2:
    try:
        seen.append(s.recv(256).decode())
    except socket.timeout:
        pass
print("\n".join(seen), flush=True)
PY
NOTIFY_PID=$!
track_pid "$NOTIFY_PID"
wait_for 5 test -S "$T/notify.sock" || fail "the notify socket did not appear"
NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=2000000 "$BIN" -f -c "$T/wd.conf" \
    --cache-dir "$T/wd-cache" --state-dir "$T/wd-state" >> "$T/wd.log" 2>&1 &
WD_PID=$!
track_pid "$WD_PID"
wait "$NOTIFY_PID" || true
untrack_pid "$NOTIFY_PID"
stop_pid "$WD_PID" 10
check_eq "READY=1" "$(head -n 1 "$T/notify.txt")" "the first notification"
check_eq 2 "$(grep -c '^WATCHDOG=1$' "$T/notify.txt" || true)" "watchdog notifications in 20 s"
log "service manager: READY=1, then WATCHDOG=1 from the heartbeat"

# --- a cache directory that turns read-only (root, in a mount namespace) -------------
if [ "$(id -u)" -ne 0 ] || ! unshare -m true 2>/dev/null || ! command -v nsenter >/dev/null; then
    log "not root or no mount namespaces: the read-only cache case is skipped"
    log "passed"
    exit 0
fi
RO="$T/ro-cache"
mkdir -p "$RO" "$T/ro-state"
P2=$(free_port)
printf 'listen: {address: 127.0.0.1, port: %s}\ndht: {mode: off}\n' "$P2" > "$T/ro.conf"
unshare -m --propagation private sh -c \
    "mount --bind '$RO' '$RO' && exec '$BIN' -f -c '$T/ro.conf' --cache-dir '$RO' --state-dir '$T/ro-state'" \
    >> "$T/ro.log" 2>&1 &
RO_PID=$!
track_pid "$RO_PID"
wait_port "$P2" 15 || { cat "$T/ro.log"; fail "the second proxy did not start"; }
check_eq 200 "$(http_status "http://127.0.0.1:$P2/~/health")" "health with a writable cache"
nsenter -t "$RO_PID" -m mount -o remount,bind,ro "$RO" || fail "cannot remount the cache read-only"
check_eq 503 "$(http_status "http://127.0.0.1:$P2/~/health")" "health with a read-only cache"
tcurl -o "$T/ro-health.txt" "http://127.0.0.1:$P2/~/health"
grep -q "^FAIL cache directory .* not writable" "$T/ro-health.txt" \
    || fail "health gives no reason for the read-only cache"
stop_pid "$RO_PID" 10
log "a read-only cache: /~/health 503"
log "passed"
