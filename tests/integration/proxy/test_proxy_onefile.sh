#!/bin/sh
# One file per SHA-256 across keys. Two backends over the same mirror; the real apt
# fetches everything through the first (indices by hash, as the archive's Release
# offers), then a second apt through the second backend asks for the indices by name
# (Acquire::By-Hash "no") and for every package: whatever the cache already holds under
# the first backend's keys is served from there (the mirror sees no request for it) and
# stored once (the new keys are hard links: the cache's disk use does not grow). The
# explain page, asked first, says so without making the link.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3 timeout du
fixture_build
mirror_start
PROXY_PORT=$(free_port)
mkdir -p "$T/proxy"
cat > "$T/proxy/apt-dht.conf" <<EOC
listen: {address: 127.0.0.1, port: $PROXY_PORT}
dht: {mode: off}
backends: {fixture: [$MIRROR_URL/debian], other: [$MIRROR_URL/debian]}
EOC
proxy_start

A="$T/a"
apt_sandbox "$A"
apt_sources "$A" backend fixture "$PROXY_URL"
apt_update "$A"
apt_download_all "$A" || fail "apt through the first backend"
apt_check_downloads "$A/downloads"
pool1=$(mirror_requests '*/pool/*')
idx1=$(mirror_requests '*/by-hash/*')
[ "$idx1" -gt 0 ] || fail "the first client fetched no index by hash"
du1=$(du -sb "$PROXY_CACHE" | cut -f1)
log "first backend: $pool1 pool files, $idx1 indices by hash from the mirror; cache $du1 bytes"

# explain, which changes nothing, says what the request would find
bh=$(cd "$PROXY_CACHE/fixture" && find dists -path '*binary-amd64/by-hash/SHA256/*' | head -n 1)
tcurl -f -o "$T/explain.html" "$PROXY_URL/~/status/explain?u=/other/$bh" || fail "explain"
grep -q 'data-cached="1">yes, under another name with the expected SHA-256' "$T/explain.html" \
    || fail "explain does not see the copy under the first backend"
[ ! -e "$PROXY_CACHE/other/$bh" ] || fail "explain made the link"

B="$T/b"
apt_sandbox "$B"
apt_sources "$B" backend other "$PROXY_URL"
echo 'Acquire::By-Hash "no";' > "$B/etc/apt/apt.conf.d/60nobyhash"
chmod a+r "$B/etc/apt/apt.conf.d/60nobyhash"
apt_update "$B"
apt_download_all "$B" || fail "apt through the second backend"
apt_check_downloads "$B/downloads"
byname=$(mirror_requests '*/binary-amd64/Packages*')
check_eq 0 "$byname" "Packages by name from the mirror (the by-hash copy serves them)"
check_eq "$pool1" "$(mirror_requests '*/pool/*')" "pool requests at the mirror after the second backend"
du2=$(du -sb "$PROXY_CACHE" | cut -f1)
grow=$((du2 - du1))
log "second backend: cache $du2 bytes (+$grow)"
# the new keys are links: what grows is directories and the InRelease of the second root
[ "$grow" -lt $((du1 / 4)) ] || fail "the cache grew by $grow bytes: the files were stored twice"
n=$(find "$PROXY_CACHE/other/pool" -type f -links +1 | wc -l)
[ "$n" -eq "$pool1" ] || fail "$n of $pool1 pool files of the second backend are links"
proxy_stop
