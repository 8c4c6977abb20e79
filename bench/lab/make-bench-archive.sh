#!/bin/sh
# A signed Debian archive of COUNT packages of SIZE MiB of incompressible data
# each, for the LAN lab benchmark (bench/lab/run.sh).
#
#   make-bench-archive.sh OUTDIR [COUNT [SIZE_MIB]]   (default 10 x 20 MiB)
#   make-bench-archive.sh --cached [COUNT [SIZE_MIB]] build or reuse a per-user
#                                  directory under ${TMPDIR:-/tmp}; print its path
#
# The layout is the one of tests/fixture/make-archive.sh, so the lab helpers
# work on it unchanged: OUTDIR/debian/{dists/bookworm,pool/main}, the binary
# public keyring OUTDIR/archive-key.gpg, OUTDIR/packages.txt ("name version
# arch pool-path size sha256" per .deb) and OUTDIR/pool.sha256. Binary
# packages only (no source package); stored uncompressed (-Znone) so every
# .deb is as big as its data.
set -eu

me=$0
case $me in */*) ;; *) me=./$me ;; esac
die() { echo "make-bench-archive.sh: $*" >&2; exit 1; }

if [ "${1:-}" = "--cached" ]; then
    count=${2:-10} size=${3:-20}
    sum=$(sha256sum "$me" | cut -c1-12)
    out="${TMPDIR:-/tmp}/apt-dht-bench-archive-$(id -u)-${count}x${size}-$sum"
    if [ -f "$out/.complete" ] && [ -O "$out" ]; then
        echo "$out"
        exit 0
    fi
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/apt-dht-bench-build.XXXXXX")
    sh "$me" "$tmp/out" "$count" "$size" >&2 || { rm -rf "$tmp"; exit 1; }
    rm -rf "$out"
    mv -T "$tmp/out" "$out" || { rm -rf "$tmp"; die "cannot move the archive to $out"; }
    rm -rf "$tmp"
    echo "$out"
    exit 0
fi

[ $# -ge 1 ] || die "usage: make-bench-archive.sh OUTDIR|--cached [COUNT [SIZE_MIB]]"
out=$1 count=${2:-10} size=${3:-20}
for tool in dpkg-deb apt-ftparchive gpg python3 sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "missing tool: $tool"
done

rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/apt-dht-bench-work.XXXXXX")
GNUPGHOME=""
cleanup() {
    [ -z "$GNUPGHOME" ] || gpgconf --homedir "$GNUPGHOME" --kill all >/dev/null 2>&1 || true
    [ -z "$GNUPGHOME" ] || rm -rf "$GNUPGHOME"
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
export SOURCE_DATE_EPOCH=1700000000 LC_ALL=C TZ=UTC
umask 022

root="$out/debian"
mkdir -p "$root/pool/main/a" "$root/dists/bookworm/main/binary-amd64"
: > "$out/packages.txt"
i=1
while [ "$i" -le "$count" ]; do
    name=$(printf 'apt-dht-bench%02d' "$i")
    tree="$work/$name"
    mkdir -p "$tree/DEBIAN" "$tree/usr/share/$name"
    python3 -c 'import hashlib, sys
seed, n = sys.argv[1].encode(), int(sys.argv[2])
out = sys.stdout.buffer
block = 1 << 20
for k in range(0, n, block):
    out.write(hashlib.shake_256(seed + k.to_bytes(8, "big")).digest(min(block, n - k)))' \
        "$name" $((size * 1024 * 1024)) > "$tree/usr/share/$name/data"
    cat > "$tree/DEBIAN/control" <<EOF
Package: $name
Version: 1.0-1
Architecture: all
Maintainer: apt-dht benchmarks <bench@mirror.example>
Installed-Size: $((size * 1024))
Section: misc
Priority: optional
Description: apt-dht benchmark package $i of $count
 Incompressible data for the apt-dht LAN lab benchmark.
EOF
    mkdir -p "$root/pool/main/a/$name"
    deb="$root/pool/main/a/$name/${name}_1.0-1_all.deb"
    dpkg-deb --root-owner-group -Znone -b "$tree" "$deb" >/dev/null
    rm -rf "$tree"
    printf '%s 1.0-1 all %s %s %s\n' "$name" "${deb#"$root"/}" "$(stat -c %s "$deb")" \
        "$(sha256sum "$deb" | cut -d' ' -f1)" >> "$out/packages.txt"
    i=$((i + 1))
done

(cd "$root" && apt-ftparchive -q=2 packages pool > dists/bookworm/main/binary-amd64/Packages) \
    || die "apt-ftparchive packages failed"
# An empty source index: the lab's apt sources carry a deb-src line too.
mkdir -p "$root/dists/bookworm/main/source"
: > "$root/dists/bookworm/main/source/Sources"
for idx in binary-amd64/Packages source/Sources; do
    xz -k9 "$root/dists/bookworm/main/$idx"
    gzip -k9n "$root/dists/bookworm/main/$idx"
done
cat > "$work/release.conf" <<'EOF'
APT::FTPArchive::Release {
  Origin "apt-dht-bench";
  Label "apt-dht-bench";
  Suite "stable";
  Codename "bookworm";
  Architectures "amd64 source";
  Components "main";
  Description "apt-dht LAN lab benchmark archive";
};
APT::FTPArchive::SHA1 "false";
APT::FTPArchive::SHA512 "false";
EOF
(cd "$root/dists/bookworm" && apt-ftparchive -q=2 -c "$work/release.conf" release . > "$work/Release") \
    || die "apt-ftparchive release failed"
mv "$work/Release" "$root/dists/bookworm/Release"

GNUPGHOME=$(mktemp -d "${TMPDIR:-/tmp}/apt-dht-bench-gpg.XXXXXX")
export GNUPGHOME
chmod 700 "$GNUPGHOME"
gpg -q --batch --pinentry-mode loopback --passphrase '' \
    --quick-gen-key "apt-dht bench archive <archive@mirror.example>" ed25519 sign never 2>/dev/null \
    || die "gpg key generation failed"
gpg -q --batch --pinentry-mode loopback --passphrase '' --digest-algo SHA256 \
    --clearsign -o "$root/dists/bookworm/InRelease" "$root/dists/bookworm/Release"
gpg -q --batch --export > "$out/archive-key.gpg"
[ -s "$out/archive-key.gpg" ] || die "key export failed"

(cd "$root" && find pool -type f | sort | xargs -d '\n' sha256sum) > "$out/pool.sha256"
chmod -R a+rX "$out"
date +%s > "$out/.complete"
