#!/bin/sh
# Flat repositories ("deb URI ./", made by dpkg-scanpackages and apt-ftparchive) with the
# real apt, in all three request forms, signed and [trusted=yes]: apt asks for URI/./InRelease
# and URI/./x.deb; the proxy drops the "./", caches the files and verifies the packages
# against the flat Packages (a corrupted copy from the mirror is refused, not served).

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get apt-ftparchive dpkg-scanpackages gpg curl python3
fixture_build
fixture_copy "$T/archive"

# ---- the flat repository, next to the fixture's debian/ ----
F="$FIXTURE_DIR/flat"
mkdir -p "$F"
for p in $(fixture_packages); do
    find "$FIXTURE_ROOT/pool" -name "${p}_*.deb" -exec cp {} "$F"/ \;
done
ls "$F"/*.deb > /dev/null 2>&1 || hard_error "no .deb copied into the flat repository"
(cd "$F" && dpkg-scanpackages -m . /dev/null > Packages 2>/dev/null && gzip -9kn Packages &&
    apt-ftparchive release . > Release) || hard_error "cannot build the flat repository"
grep -q '^Filename: \./' "$F/Packages" || hard_error "dpkg-scanpackages wrote no ./ names"
export GNUPGHOME="$T/gnupg"
mkdir -p "$GNUPGHOME"; chmod 700 "$GNUPGHOME"
gpg -q --batch --pinentry-mode loopback --passphrase '' --quick-gen-key \
    'apt-dht flat test <flat@example.org>' ed25519 sign never 2> "$T/gpg.err" \
    || { cat "$T/gpg.err" >&2; hard_error "gpg key generation failed"; }
gpg -q --batch --pinentry-mode loopback --passphrase '' --clearsign -o "$F/InRelease" "$F/Release"
gpg -q --batch --export > "$T/flat-key.gpg"
chmod a+r "$T/flat-key.gpg"
mirror_start
mkdir -p "$T/proxy"
PROXY_PORT=$(free_port)
cat > "$T/proxy/apt-dht.conf" <<EOF
listen: {address: 127.0.0.1, port: $PROXY_PORT}
dht: {mode: off}
backends: {flatrepo: [$MIRROR_URL/flat]}
EOF
proxy_start
HP=${MIRROR_URL#http://}

# flat_client NAME FORM OPTS: an apt sandbox whose only source is the flat repository
flat_client() {
    apt_sandbox "$T/$1" > /dev/null
    case $2 in
        proxy)   uri="$MIRROR_URL/flat"; px="$PROXY_URL/" ;;
        rewrite) uri="$PROXY_URL/$HP/flat"; px=DIRECT ;;
        backend) uri="$PROXY_URL/flatrepo"; px=DIRECT ;;
    esac
    echo "deb [$3] $uri ./" > "$T/$1/etc/apt/sources.list"
    printf 'Acquire::http::Proxy "%s";\n' "$px" > "$T/$1/etc/apt/apt.conf.d/50proxy"
    chmod a+r "$T/$1/etc/apt/sources.list" "$T/$1/etc/apt/apt.conf.d/50proxy"
}

# fetch_all NAME: apt-get update + download of every package; checks the bytes
fetch_all() {
    apt_run "$T/$1" update || fail "$1: apt-get update of the flat repository"
    mkdir -p "$T/$1/dl"; chmod a+rwx "$T/$1/dl"
    # shellcheck disable=SC2046
    (cd "$T/$1/dl" && apt_run "$T/$1" download $(fixture_packages)) || fail "$1: apt-get download"
    got=$(check_against_pool "$T/$1/dl") # every file byte-identical to one of the pool's
    [ "$got" -ge 6 ] || fail "$1: $got packages downloaded"
}

n=0
for form in proxy rewrite backend; do
    for trust in "trusted=yes" "signed-by=$T/flat-key.gpg"; do
        n=$((n + 1))
        flat_client "c$n" "$form" "$trust"
        fetch_all "c$n"
        log "flat repository, $form form, [$trust]: update and every package through the proxy"
    done
done
grep -q 'GET .*/flat/\./InRelease\|GET .*flat.*InRelease 200' "$PROXY_LOG" || fail "no InRelease of the flat repository went through the proxy"
cached=$(find "$PROXY_CACHE" -name '*.deb' | wc -l)
[ "$cached" -gt 0 ] || fail "no package of the flat repository was cached"

# ---- verified: a copy the mirror corrupts is refused; apt gets it right after ----
deb=$(basename "$(ls "$F"/apt-dht-tools_*.deb)")
find "$PROXY_CACHE" -name "$deb" -delete
mirror_fault "{\"path_glob\": \"*flat/$deb\", \"mode\": \"corrupt\"}"
# the hash is known from the flat Packages, so the last byte is held back until it checks:
# the transfer is cut short (or refused), never completed with the wrong bytes
rc=0
tcurl -f -o "$T/bad.deb" "$PROXY_URL/flatrepo/./$deb" 2> "$T/bad.err" || rc=$?
[ "$rc" -ne 0 ] || fail "a corrupted $deb from the mirror was served whole"
if [ -f "$T/bad.deb" ] && [ "$(stat -c %s "$T/bad.deb")" -ge "$(stat -c %s "$F/$deb")" ]; then
    fail "the proxy delivered every byte of a corrupted $deb"
fi
log "a corrupted $deb from the mirror: curl exit $rc, $(stat -c %s "$T/bad.deb" 2>/dev/null || echo 0) of $(stat -c %s "$F/$deb") bytes, not cached"
find "$PROXY_CACHE" -name "$deb" | grep -q . && fail "the corrupted $deb was cached"
mirror_reset
tcurl -f -o "$T/again.deb" "$PROXY_URL/flatrepo/./$deb" || fail "the clean copy after the fault"
cmp -s "$T/again.deb" "$F/$deb" || fail "the clean copy differs"
log "PASS ($cached packages cached from the flat repository)"
