#!/bin/sh
# Every download has a ceiling, and nothing is evicted for bytes that have not arrived.
#  - A mirror announces a Content-Length that fits under the ceiling but would fill the
#    cache, and sends 1 file's worth: no cached package is evicted.
#  - A Content-Length above cache.max_object fails the download at once (502, a reason).
#  - An "InRelease" that never ends stops at apt's own 10 MB limit, an index by name at
#    cache.max_index; neither is cached; the next apt update works.
# The hash index is empty throughout the first part (no apt update yet), so the files
# have no index-declared size and the configured ceilings apply.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3
fixture_build
mirror_start
PROXY_PORT=$(free_port)
mkdir -p "$T/proxy"
cat > "$T/proxy/apt-dht.conf" <<EOF
listen: {address: 127.0.0.1, port: $PROXY_PORT}
dht: {mode: off}
backends: {fixture: [$MIRROR_URL/debian]}
cache: {max_size: 100M, max_object: 50M, max_index: 20M}
EOF
proxy_start

B="$PROXY_URL/fixture"
# Every .deb, cached before any index is known (41 MB, the big one last used).
find "$FIXTURE_ROOT/pool" -name '*.deb' ! -name '*big*' | sort > "$T/debs"
echo "$FIXTURE_ROOT/$FIXTURE_BIG" >> "$T/debs"
while read -r f; do
    check_eq 200 "$(http_status "$B/${f#"$FIXTURE_ROOT"/}")" "fetch ${f##*/}"
done < "$T/debs"
cached() { find "$PROXY_CACHE" -path "$PROXY_CACHE/.tmp" -prune -o -type f -name '*.deb' -print | wc -l; }
n_debs=$(wc -l < "$T/debs")
wait_for 10 sh -c "[ \$(find '$PROXY_CACHE' -name '*.deb' | wc -l) -eq $n_debs ]" \
    || fail "the packages were not all cached"
debs_bytes=$(mirror_bytes '*.deb')

# 1. A Content-Length of 90 MiB (under max_object, and with the 41 MB cached more than
#    the 100 MiB cache holds) for a file of a few KB, cut at its real end.
ORIG=pool/main/a/apt-dht-hello/apt-dht-hello_1.0.orig.tar.gz
mirror_fault "{\"path_glob\": \"$ORIG\", \"mode\": \"lie\", \"content_length\": 94371840}"
code=$(http_status "$B/$ORIG")
log "a 90 MiB Content-Length for a small file: status $code"
check_eq "$n_debs" "$(cached)" "cached packages after a lying Content-Length (none evicted)"

# 2. A Content-Length of 10 GiB: above the 50 MiB ceiling, refused before a body byte.
DSC=pool/main/a/apt-dht-hello/apt-dht-hello_1.0-1.dsc
mirror_fault "{\"path_glob\": \"$DSC\", \"mode\": \"lie\", \"content_length\": 10737418240}"
code=$(tcurl -o "$T/dsc" -w '%{http_code}' "$B/$DSC" || true)
check_eq 502 "$code" "a Content-Length above cache.max_object"
grep -q "more than the 52428800 allowed" "$T/dsc" || fail "no reason given: $(cat "$T/dsc")"
check_eq "$n_debs" "$(cached)" "cached packages after a 10 GiB Content-Length"
[ ! -e "$PROXY_CACHE/fixture/$DSC" ] || fail "the refused file was cached"

# The packages are all still served from the cache: not one byte more from the mirror.
while read -r f; do
    check_eq 200 "$(http_status "$B/${f#"$FIXTURE_ROOT"/}")" "again ${f##*/}"
done < "$T/debs"
check_eq "$debs_bytes" "$(mirror_bytes '*.deb')" "mirror bytes for packages (all served as hits)"

# 3. An InRelease and a Packages whose bodies never end (200 MB each if let run).
IR=dists/bookworm/InRelease
PK=dists/bookworm/main/binary-amd64/Packages
mirror_fault "{\"path_glob\": \"$IR\", \"mode\": \"endless\", \"after_bytes\": 200000000, \"count\": 1}"
mirror_fault "{\"path_glob\": \"$PK\", \"mode\": \"endless\", \"after_bytes\": 200000000, \"count\": 1}"
TCURL_MAX_TIME=60 tcurl -o "$T/ir" "$B/$IR" 2>/dev/null || true
TCURL_MAX_TIME=60 tcurl -o "$T/pk" "$B/$PK" 2>/dev/null || true
ir_bytes=$(mirror_bytes "*/$IR")
pk_bytes=$(mirror_bytes "*/$PK")
log "endless InRelease: the mirror sent $ir_bytes bytes, the client got $(stat -c %s "$T/ir")"
log "endless Packages: the mirror sent $pk_bytes bytes, the client got $(stat -c %s "$T/pk")"
[ "$ir_bytes" -lt 25000000 ] || fail "the InRelease download went on past 10 MB ($ir_bytes)"
[ "$pk_bytes" -lt 35000000 ] || fail "the Packages download went on past max_index ($pk_bytes)"
[ "$(stat -c %s "$T/ir")" -le 10000000 ] || fail "the client got more than 10 MB of InRelease"
grep -q "fetch .*InRelease: the mirror sends more than the 10000000 bytes allowed" "$PROXY_LOG" \
    || fail "no log line for the InRelease ceiling"
grep -q "fetch .*Packages: the mirror sends more than the 20971520 bytes allowed" "$PROXY_LOG" \
    || fail "no log line for the max_index ceiling"
for f in $IR $PK; do
    [ ! -e "$PROXY_CACHE/fixture/$f" ] || fail "$f was cached"
done

# apt goes on as usual once the mirror behaves.
mirror_reset
C="$T/client"
apt_sandbox "$C"
apt_sources "$C" backend fixture "$PROXY_URL"
apt_update "$C"
apt_download_all "$C" "$C/downloads" || fail "apt-get download after the faults"
apt_check_downloads "$C/downloads"
kill -0 "$PROXY_PID" || fail "the proxy died"
proxy_stop
log "passed"
