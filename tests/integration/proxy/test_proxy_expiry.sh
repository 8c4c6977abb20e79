#!/bin/sh
# Expiry by reference (cache.keep_unreferenced, here 3 s). The real apt fetches every
# package through the proxy; while nobody asks for an index nothing expires (the clock of
# expiry is the latest sighting of an index, not the wall clock). Then the archive
# changes: apt-dht-hello leaves its Packages; the new InRelease and Packages.xz go
# through the proxy. Within seconds the daemon removes hello's .deb and the superseded
# by-hash Packages.xz (no index seen lists them) and logs the space freed; every .deb
# still listed, the source package and the InRelease stay.

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

wait_for 20 sh -c "[ ! -e '$hello' ]" || fail "apt-dht-hello's .deb was not removed"
wait_for 10 sh -c "[ ! -e '$old_byhash' ]" || fail "the superseded by-hash Packages was not removed"
check_eq $((n - 1)) "$(debs)" "cached .debs after the change"
[ -f "$K/dists/bookworm/InRelease" ] || fail "the InRelease was removed"
[ -n "$(find "$K/pool" -name '*.dsc')" ] || fail "the source package was removed"
grep "expiry: " "$PROXY_LOG" | tail -n 3
grep -q "expiry: [0-9]* files that no index seen in 3 s lists removed, [0-9]* KiB freed" "$PROXY_LOG" \
    || fail "the expiry was not logged with the space freed"
proxy_stop
