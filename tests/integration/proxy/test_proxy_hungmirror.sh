#!/bin/sh
# Mirror health: a backend whose first mirror accepts connections and never answers
# (a mirror.py "stall" before the status line) and whose second mirror is good. The
# first request of an apt-get update pays the first-byte deadline (min(10 s,
# stall_timeout) after connecting) once; the hung mirror is then backed off and every
# later request goes to the good mirror first, so the hung one sees one request, not one
# per file. A second update in the back-off window does not touch it at all.
# stall_timeout is 30 s (the default) to show the deadline is the first-byte one.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3
fixture_build

# the hung mirror first, its URL kept; then the good one (mirror_start's variables)
mirror_start --stall-max 60
HUNG_URL=$MIRROR_URL HUNG_LOG=$MIRROR_LOG
mirror_fault '{"path_glob": "*", "mode": "stall", "delay_ms": 60000}'
mirror_start
GOOD_URL=$MIRROR_URL

mkdir -p "$T/proxy"
PROXY_PORT=$(free_port)
cat > "$T/proxy/apt-dht.conf" <<EOF
listen: {address: 127.0.0.1, port: $PROXY_PORT}
dht: {mode: off}
backends: {fixture: [$HUNG_URL/debian, $GOOD_URL/debian]}
upstream: {stall_timeout: 30}
EOF
proxy_start

apt_sandbox "$T/c1" > /dev/null
apt_sources "$T/c1" backend fixture "$PROXY_URL"
t0=$(now)
APT_TIME_LIMIT=120 apt_update "$T/c1"
t1=$(now)
tries=$(grep -c "trying the next mirror" "$PROXY_LOG" || true)
log "apt-get update: $((t1 - t0)) s; requests that waited on the hung mirror: $tries"
[ "$tries" -eq 1 ] || fail "$tries requests waited on the hung mirror (expected 1: the first)"
grep -q "mirror http://127.0.0.1:${HUNG_URL##*:} failed: tried after the others" "$PROXY_LOG" \
    || fail "the hung mirror was not backed off"
grep -q "no answer within 10000 ms" "$PROXY_LOG" || fail "the first-byte deadline is not 10 s"

# a second client within the back-off: nothing waits on the hung mirror
apt_sandbox "$T/c2" > /dev/null
apt_sources "$T/c2" backend fixture "$PROXY_URL"
APT_TIME_LIMIT=60 apt_update "$T/c2"
apt_download_all "$T/c2" || fail "apt-get download with the hung mirror backed off"
apt_check_downloads "$T/c2/downloads"
tries2=$(grep -c "trying the next mirror" "$PROXY_LOG" || true)
[ "$tries2" -eq 1 ] || fail "the second update waited on the hung mirror ($tries2 in all)"
log "second update and every package: no request waited on the hung mirror"
: "$HUNG_LOG" # kept for KEEP_TMP readers
log "PASS"
