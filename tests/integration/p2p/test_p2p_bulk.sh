#!/bin/sh
# An upload to a peer goes to the bulk band once it is under way: its socket's
# SO_PRIORITY becomes TC_PRIO_BULK (the last band of Linux's default qdisc), so the
# host's DHT messages, its 503s and the first bytes of its other answers are not queued
# behind it on a busy uplink. /metrics reads the priority back from the kernel
# (apt_dht_uploads_bulk): 1 while a slow peer takes the big package, 0 once it is done.
# A HEAD is not an upload of bytes and stays in the default band.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3 timeout
fixture_build
mirror_start

PA=$(free_port)
p2p_node_start a "$PA"
p2p_client a "$PA"

big_sha=$(sha256_of "$FIXTURE_ROOT/$FIXTURE_BIG")
big_size=$(stat -c %s "$FIXTURE_ROOT/$FIXTURE_BIG")
url="http://127.0.0.1:$PA/~/sha256/$big_sha"
gauge() { tcurl -fsS "http://127.0.0.1:$PA/metrics" | sed -n "s/^$1 //p"; }

[ "$(gauge apt_dht_uploads_bulk)" = 0 ] || fail "an upload is in the bulk band before any began"

# a HEAD: answered, never marked
[ "$(http_status "$url" -I)" = 200 ] || fail "HEAD of the big package from host a failed"
[ "$(gauge apt_dht_uploads_bulk)" = 0 ] || fail "a HEAD left a socket in the bulk band"

# a peer that reads slowly: about 3 s for the big package
rate=$((big_size / 3))
curl -fsS --limit-rate "$rate" -o "$T/big.got" "$url" 2> "$T/slow.err" &
slow=$!
track_pid "$slow"
wait_for 10 sh -c "[ \"\$(curl -fsS http://127.0.0.1:$PA/metrics | sed -n 's/^apt_dht_uploads_bulk //p')\" = 1 ]" ||
    fail "the slow upload never went to the bulk band (uploads_bulk: $(gauge apt_dht_uploads_bulk))"
[ "$(gauge apt_dht_uploads_active)" = 1 ] || fail "one upload should be running"
wait "$slow" || fail "the slow peer did not get the big package: $(cat "$T/slow.err")"
cmp -s "$T/big.got" "$FIXTURE_ROOT/$FIXTURE_BIG" || fail "the slow peer got a different file"
wait_for 5 sh -c "[ \"\$(curl -fsS http://127.0.0.1:$PA/metrics | sed -n 's/^apt_dht_uploads_active //p')\" = 0 ]" ||
    fail "the finished upload still counts"
[ "$(gauge apt_dht_uploads_bulk)" = 0 ] || fail "a finished upload still counts in the bulk band"
log "ok: bulk band while the upload runs, default band before and after"
