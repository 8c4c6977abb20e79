#!/bin/sh
# apt-dht-proxy import DIR: the proxy learns the archive's indices (apt-get update through
# it), then a directory like /var/cache/apt/archives is imported while the daemon runs:
# good .debs (one with apt's "%3a" epoch spelling), a corrupt one (same size, one byte
# changed), one cut short, one no index lists, and a file that is no .deb. Each is
# counted under its reason; the daemon is told of the good ones at once (a HEAD for each
# makes it check and adopt them), and they are served to apt from the cache (the mirror
# sees no request for them), the corrupt one is fetched from the mirror. ("partial/" and
# "lock" are the two entries that are no .deb.) Bad input: no
# directory, a missing directory, and no hash index are clear errors (exit 2).

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3 timeout
fixture_build
mirror_start
proxy_start
BIN=$(proxy_bin)
imp() { "$BIN" -c "$PROXY_CONF" --cache-dir "$PROXY_CACHE" --state-dir "$PROXY_STATE" import "$@"; }

# bad input first: no hash index yet, no directory, a missing directory
mkdir -p "$T/empty"
rc=0; "$BIN" -c "$PROXY_CONF" --cache-dir "$T/c2" --state-dir "$T/s2" import "$T/empty" \
    > "$T/out" 2>&1 || rc=$?
check_eq 2 "$rc" "import without a hash index"
grep -q "no hash index" "$T/out" || fail "no reason given: $(cat "$T/out")"
rc=0; "$BIN" import > "$T/out" 2>&1 || rc=$?
check_eq 2 "$rc" "import without a directory"
grep -q "import needs a directory" "$T/out" || fail "no reason given: $(cat "$T/out")"
rc=0; imp "$T/nonexistent" > "$T/out" 2>&1 || rc=$?
check_eq 2 "$rc" "import of a missing directory"
grep -q "nonexistent: No such file" "$T/out" || fail "no reason given: $(cat "$T/out")"

C="$T/client"
apt_sandbox "$C"
apt_sources "$C" backend fixture "$PROXY_URL"
apt_update "$C"
check_eq 0 "$(mirror_requests '*/pool/*')" "pool requests before the import"

# the directory: every fixture .deb but the big one; hello corrupt, another cut short
D="$T/archives"
mkdir -p "$D/partial"
find "$FIXTURE_ROOT/pool" -name '*.deb' ! -name '*big*' -exec cp {} "$D/" \;
hello=$(cd "$D" && ls apt-dht-hello_*.deb)
short=$(cd "$D" && ls *.deb | grep -v "^$hello\$" | head -n 1)
good=$(($(ls "$D"/*.deb | wc -l) - 2))
python3 - "$D/$hello" <<'EOP'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0xff
open(p, "wb").write(bytes(b))
EOP
head -c 100 "$D/$short" > "$D/$short.cut" && mv "$D/$short.cut" "$D/$short"
# apt's name for a version with an epoch: NAME_EPOCH%3aVERSION_ARCH.deb
epoch=$(cd "$D" && ls *.deb | grep -v "^$hello\$" | grep -v "^$short\$" | head -n 1)
mv "$D/$epoch" "$D/$(echo "$epoch" | sed 's/_/_1%3a/')"
cp "$D/$(ls "$D" | grep '%3a')" "$D/unknown_9.9_all.deb"
echo lock > "$D/lock"

imp "$D" > "$T/import.out" 2>&1 || fail "import failed: $(cat "$T/import.out")"
# the running daemon was told: it took (checked and adopted) each added file at once
grep -q "the daemon on port $PROXY_PORT took $good of the $good files added" "$T/import.out" \
    || fail "the daemon was not told: $(cat "$T/import.out")"
check_eq "$good" "$(grep -c 'found on disk (imported)' "$PROXY_LOG")" "files the daemon adopted"
cat "$T/import.out"
line=$(grep '^import: ' "$T/import.out" | tail -n 1)
echo "$line" | grep -q " $good added, 0 already cached, 1 unknown (no index lists the name), 1 of the wrong size, 1 corrupt (SHA-256 differs), 2 not .deb, 0 unreadable" \
    || fail "unexpected counts: $line"
[ -z "$(ls -A "$PROXY_CACHE/.tmp")" ] || fail "import left files in the cache's .tmp"

# the same again: all good ones already cached
imp "$D" > "$T/import2.out" 2>&1 || fail "second import failed"
grep -q " 0 added, $good already cached" "$T/import2.out" || fail "second import: $(cat "$T/import2.out")"

# apt fetches every package: only the corrupt, the short and the big one from the mirror
mkdir -p "$C/debs"; chmod a+rwx "$C/debs"
# shellcheck disable=SC2046
(cd "$C/debs" && apt_run "$C" download $(fixture_packages)) || fail "apt download"
check_all_debs "$C/debs"
check_eq 3 "$(mirror_requests '*/pool/*.deb')" ".deb requests at the mirror after the import"

# with the daemon stopped: one file gone from the cache is imported again, and the next
# daemon serves it (found by its scan, with its record) without asking the mirror
proxy_stop
gone=$(find "$PROXY_CACHE/fixture/pool" -name 'apt-dht-tools_*.deb')
[ -n "$gone" ] || fail "apt-dht-tools is not cached"
rm -f "$gone"
imp "$D" > "$T/import3.out" 2>&1 || fail "import with the daemon stopped failed"
grep -q " 1 added, $((good - 1)) already cached" "$T/import3.out" || fail "third import: $(cat "$T/import3.out")"
grep -q "no daemon answered" "$T/import3.out" || fail "no word of the stopped daemon"
proxy_start
check_eq 200 "$(http_status "$PROXY_URL/fixture/${gone#"$PROXY_CACHE/fixture/"}")" "the re-imported file"
check_eq 3 "$(mirror_requests '*/pool/*.deb')" ".deb requests at the mirror after the restart"
proxy_stop
