#!/bin/sh
# Bad cache entries are never served; each is dropped and fetched again.
#  A. At run time: two .debs are cached before their index is known, one with a byte
#     flipped by the mirror, one with 1000 bytes too many; once `apt update` has taught
#     the proxy their hashes and sizes, apt gets good copies.
#  B. After a restart: cached files are damaged behind the proxy's back: one replaced by
#     a 40 MB file (its index says 67 KB), one cut short by a byte, two (one of them the
#     40 MB package) with a byte flipped and their size kept. apt gets good copies; each
#     damaged file is fetched once more, the intact ones not at all, and after another
#     restart everything is served from the cache.
#  C. `apt-dht-proxy verify` finds two more damaged files, drops them, exits 1; run
#     again it exits 0.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3
fixture_build
mirror_start
proxy_start

B="$PROXY_URL/fixture"
ENTRY="$PROXY_CACHE/fixture"
TOOLS=$(cd "$FIXTURE_ROOT" && echo pool/main/a/apt-dht-tools/*.deb)
DATA=$(cd "$FIXTURE_ROOT" && echo pool/main/a/apt-dht-hello/apt-dht-hello-data_*.deb)
PLUS=$(cd "$FIXTURE_ROOT" && echo pool/main/a/apt-dht-plus+extra/*.deb)
HELLO=$(cd "$FIXTURE_ROOT" && echo pool/main/a/apt-dht-hello/apt-dht-hello_*_amd64.deb)
BIG=$FIXTURE_BIG
size_of() { stat -c %s "$FIXTURE_ROOT/$1"; }

# flip FILE: invert the byte in the middle of FILE, keeping its size and times.
flip() {
    python3 -c 'import os, sys
p = sys.argv[1]
st = os.stat(p)
with open(p, "r+b") as f:
    f.seek(st.st_size // 2)
    b = f.read(1)
    f.seek(st.st_size // 2)
    f.write(bytes([b[0] ^ 0xFF]))
os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))' "$1"
}

# downloads CLIENT: a fresh apt client downloads every package through the proxy.
downloads() {
    _c="$T/client-$1"
    apt_sandbox "$_c"
    apt_sources "$_c" backend fixture "$PROXY_URL"
    apt_update "$_c"
    apt_download_all "$_c" "$_c/downloads" || fail "$1: apt-get download failed"
    apt_check_downloads "$_c/downloads"
}

# ---- A: cached before the index knew them ----
mirror_fault "{\"path_glob\": \"$TOOLS\", \"mode\": \"corrupt\", \"count\": 1}"
extra=$(($(size_of "$DATA") + 1000))
mirror_fault "{\"path_glob\": \"$DATA\", \"mode\": \"lie\", \"content_length\": $extra, \"after_bytes\": $extra, \"count\": 1}"
check_eq 200 "$(http_status "$B/$TOOLS")" "fetch tools before the index"
check_eq 200 "$(http_status "$B/$DATA")" "fetch hello-data before the index"
wait_for 10 test -f "$ENTRY/$DATA" || fail "hello-data was not cached"
check_eq "$extra" "$(stat -c %s "$ENTRY/$DATA")" "the wrong hello-data is what is cached"
downloads a
grep -q "cache: .*apt-dht-tools.* does not have the SHA-256 the index gives; dropped" \
    "$PROXY_LOG" || fail "the corrupt tools package was not dropped"
grep -q "cache: .*apt-dht-hello-data.* has $extra bytes, the index says $(size_of "$DATA"); dropped" \
    "$PROXY_LOG" || fail "the oversized hello-data package was not dropped"
log "A: both bad entries dropped and fetched again"

# ---- B: damaged while the proxy was stopped ----
proxy_stop
cp "$FIXTURE_ROOT/$BIG" "$ENTRY/$DATA"  # 40 MB where the index says 67 KB
truncate -s -1 "$ENTRY/$TOOLS"
flip "$ENTRY/$PLUS"
flip "$ENTRY/$BIG"
: > "$MIRROR_LOG"
proxy_start
downloads b
for f in "$DATA" "$TOOLS" "$PLUS" "$BIG"; do
    check_eq "1 $(size_of "$f")" "$(mirror_tally "*/$f" "" GET 200)" "B: ${f##*/} fetched again once"
done
check_eq 0 "$(mirror_requests "*/$HELLO")" "B: the intact hello package served from the cache"
check_cache_not_corrupt "$PROXY_CACHE"
proxy_stop
: > "$MIRROR_LOG"
proxy_start
downloads c
check_eq 0 "$(mirror_requests '*.deb')" "B: after another restart every package is a hit"
log "B: damaged entries dropped after a restart and fetched again"

# ---- C: apt-dht-proxy verify ----
proxy_stop
flip "$ENTRY/$HELLO"
truncate -s +1 "$ENTRY/$PLUS"
rc=0
"$(proxy_bin)" -c "$PROXY_CONF" --cache-dir "$PROXY_CACHE" --state-dir "$PROXY_STATE" verify \
    > "$T/verify.out" 2> "$T/verify.err" || rc=$?
cat "$T/verify.out" "$T/verify.err" | sed 's/^/    /'
check_eq 1 "$rc" "verify exit status with two damaged files"
grep -q "2 failed and dropped" "$T/verify.out" || fail "verify did not count two failures"
[ ! -e "$ENTRY/$HELLO" ] && [ ! -e "$ENTRY/$PLUS" ] || fail "verify left a damaged file"
[ -e "$ENTRY/$BIG" ] || fail "verify dropped an intact file"
rc=0
"$(proxy_bin)" -c "$PROXY_CONF" --cache-dir "$PROXY_CACHE" --state-dir "$PROXY_STATE" verify \
    > "$T/verify.out" 2>&1 || rc=$?
check_eq 0 "$rc" "verify exit status on an intact cache ($(cat "$T/verify.out"))"
grep -q " 0 failed" "$T/verify.out" || fail "verify: $(cat "$T/verify.out")"
log "passed"
