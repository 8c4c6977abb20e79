#!/bin/sh
# Expiry by reference (cache.keep_unreferenced, here 3 s). The real apt fetches every
# package through the proxy; while nobody asks for an index nothing expires (the clock of
# expiry is the latest sighting of an index, not the wall clock). Then the archive
# changes: apt-dht-hello leaves its Packages; the new InRelease and Packages.xz go
# through the proxy. Within seconds the daemon removes hello's .deb and the superseded
# by-hash Packages.xz (no index seen lists them) and logs the space freed; every .deb
# still listed, the source package and the InRelease stay. The state stays bounded and
# is reported: the hash index has no row left of hello's .deb (neither a record of the
# cached file nor the old Packages' entry), its WAL is checkpointed, and /metrics and
# status.json give the state's size beside the cache's.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3 timeout xz gzip
fixture_build
fixture_copy "$T/archive"
mirror_start
PROXY_PORT=$(free_port)
mkdir -p "$T/proxy"
cat > "$T/proxy/apt-dht.conf" <<EOC
listen: {address: 127.0.0.1, port: $PROXY_PORT}
dht: {mode: off}
backends: {fixture: [$MIRROR_URL/debian]}
cache: {keep_unreferenced: 3}
EOC
proxy_start

C="$T/client"
apt_sandbox "$C"
apt_sources "$C" backend fixture "$PROXY_URL"
apt_update "$C"
apt_download_all "$C" || fail "apt through the proxy"
K="$PROXY_CACHE/fixture"
debs() { find "$K/pool" -name '*.deb' | wc -l; }
n=$(debs)
hello=$(find "$K/pool" -name 'apt-dht-hello_*.deb')
[ -n "$hello" ] || fail "apt-dht-hello's .deb is not cached"
old_byhash=$(find "$K/dists/bookworm/main/binary-amd64/by-hash" -type f | head -n 1)
[ -n "$old_byhash" ] || fail "no by-hash Packages in the cache"

sleep 5 # past keep_unreferenced, with no index asked for: nothing may go
check_eq "$n" "$(debs)" "cached .debs after an idle spell longer than keep_unreferenced"

# the archive changes: apt-dht-hello leaves Packages (no signature: the proxy's parsers
# do not check one, apt is not asked again)
python3 - "$FIXTURE_ROOT/dists/bookworm" <<'EOP'
import gzip, hashlib, lzma, os, sys
d = sys.argv[1]
b = os.path.join(d, "main/binary-amd64")
stanzas = open(os.path.join(b, "Packages")).read().strip("\n").split("\n\n")
kept = [s for s in stanzas if not s.startswith("Package: apt-dht-hello\n")]
assert len(kept) == len(stanzas) - 1, "apt-dht-hello not found once"
body = ("\n\n".join(kept) + "\n").encode()
files = {"Packages": body, "Packages.gz": gzip.compress(body), "Packages.xz": lzma.compress(body)}
for name, data in files.items():
    open(os.path.join(b, name), "wb").write(data)
    h = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(b, "by-hash/SHA256"), exist_ok=True)
    open(os.path.join(b, "by-hash/SHA256", h), "wb").write(data)
out, section = [], None
for line in open(os.path.join(d, "Release")).read().splitlines():
    if not line.startswith(" "):
        section = line.rstrip(":")
        out.append(line)
        continue
    digest, size, path = line.split()
    rel = path.split("/", 2)
    full = os.path.join(d, path)
    if path.startswith("main/binary-amd64/Packages") and section in ("MD5Sum", "SHA256"):
        data = open(full, "rb").read()
        h = (hashlib.md5 if section == "MD5Sum" else hashlib.sha256)(data).hexdigest()
        line = " %s %16d %s" % (h, len(data), path)
    out.append(line)
rel = "\n".join(out) + "\n"
open(os.path.join(d, "Release"), "w").write(rel)
open(os.path.join(d, "InRelease"), "w").write(
    "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n" + rel +
    "-----BEGIN PGP SIGNATURE-----\n\nnone\n-----END PGP SIGNATURE-----\n")
EOP
B="$PROXY_URL/fixture/dists/bookworm"
tcurl -f -o "$T/InRelease" "$B/InRelease" || fail "the new InRelease through the proxy"
grep -q "$(sha256_of "$FIXTURE_ROOT/dists/bookworm/main/binary-amd64/Packages.xz")" "$T/InRelease" \
    || fail "the proxy served the old InRelease"
tcurl -f -o "$T/Packages.xz" "$B/main/binary-amd64/Packages.xz" || fail "the new Packages.xz"
cmp -s "$T/Packages.xz" "$FIXTURE_ROOT/dists/bookworm/main/binary-amd64/Packages.xz" \
    || fail "the proxy served another Packages.xz"

# A sweep between the two fetches saw hello still listed (by the old Packages) at the
# latest sighting: it goes keep_unreferenced after that. The suite is seen again later
# (a new InRelease: its Date changes), as apt's daily updates would.
sleep 4
sed -i 's/^Date: .*/Date: Fri, 04 Dec 2026 00:00:00 +0000/' "$FIXTURE_ROOT/dists/bookworm/InRelease"
touch "$FIXTURE_ROOT/dists/bookworm/InRelease"
tcurl -f -o "$T/InRelease2" "$B/InRelease" || fail "the InRelease again"
grep -q "^Date: Fri, 04 Dec" "$T/InRelease2" || fail "the proxy served the InRelease before"
wait_for 20 sh -c "[ ! -e '$hello' ]" || fail "apt-dht-hello's .deb was not removed"
wait_for 10 sh -c "[ ! -e '$old_byhash' ]" || fail "the superseded by-hash Packages was not removed"
check_eq $((n - 1)) "$(debs)" "cached .debs after the change"
[ -f "$K/dists/bookworm/InRelease" ] || fail "the InRelease was removed"
[ -n "$(find "$K/pool" -name '*.dsc')" ] || fail "the source package was removed"
grep "expiry: " "$PROXY_LOG" | tail -n 3
grep -q "expiry: [0-9]* files that no index seen in 3 s lists removed, [0-9]* KiB freed" "$PROXY_LOG" \
    || fail "the expiry was not logged with the space freed"

key="fixture/${hello#"$K"/}"
rows=$(python3 - "$PROXY_STATE/hashes.db" "$key" <<'EOP'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=10)
n = sum(c.execute("SELECT count(*) FROM %s WHERE key = ?" % t, (sys.argv[2],)).fetchone()[0]
        for t in ("files", "cached"))
print(n)
EOP
)
check_eq 0 "$rows" "rows of the expired .deb in the hash index"
tcurl -f -o "$T/metrics" "$PROXY_URL/metrics" || fail "/metrics"
state=$(sed -n 's/^apt_dht_state_bytes \([0-9]*\)$/\1/p' "$T/metrics")
wal=$(sed -n 's/^apt_dht_state_wal_bytes \([0-9]*\)$/\1/p' "$T/metrics")
cache=$(sed -n 's/^apt_dht_cache_bytes \([0-9]*\)$/\1/p' "$T/metrics")
log "state $state bytes (WAL $wal) for a cache of $cache bytes"
[ -n "$state" ] && [ "$state" -gt 0 ] || fail "no apt_dht_state_bytes in /metrics"
[ "$wal" -le 4194304 ] || fail "the WAL is $wal bytes: not checkpointed"
expired=$(sed -n 's/^apt_dht_cache_expired_files_total \([0-9]*\)$/\1/p' "$T/metrics")
[ -n "$expired" ] && [ "$expired" -ge 2 ] || fail "apt_dht_cache_expired_files_total: '$expired'"
tcurl -f "$PROXY_URL/~/status.json" | grep -q '"state_bytes":[1-9]' || fail "no state_bytes in status.json"
proxy_stop
