#!/bin/sh
# kill -9 of apt-dht-proxy while its indexer parses a big Packages.gz: after a restart
# the cached index is parsed again (before, its hashes were lost for good), a second
# restart does not parse it a third time, and files that arrive during the parse get
# their records (the loop never waits on the indexer's write lock, and no record of a
# cached file is dropped).

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool curl python3 gzip
fixture_build
fixture_copy "$T/archive"

# A Packages.gz shaped like Debian's biggest (random hashes, so it inflates about 3x),
# big enough that its parse takes seconds: the kill lands inside it.
STANZAS=${STANZAS:-200000}
big=dists/bookworm/main/binary-big/Packages.gz
mkdir -p "$FIXTURE_ROOT/$(dirname "$big")"
python3 - "$FIXTURE_ROOT/${big%.gz}" "$STANZAS" <<'PY'
import hashlib, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        h = hashlib.sha256(b"%d" % i).hexdigest()
        f.write("Package: big%d\nVersion: 1.%d\nArchitecture: all\nFilename: "
                "pool/main/b/big%d/big%d_1.%d_all.deb\nSize: %d\nSHA256: %s\n"
                "Description: generated stanza %d\n\n" % (i, i, i, i, i, 1000 + i, h, i))
PY
gzip -1 "$FIXTURE_ROOT/${big%.gz}"
last=$((STANZAS - 1))
mirror_start
proxy_start -v
DB="$PROXY_STATE/hashes.db"

# db_has TABLE KEY: the proxy's hash database has KEY in TABLE (files or cached).
db_has() {
    python3 - "$DB" "$1" "$2" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=10)
r = c.execute("SELECT 1 FROM %s WHERE key = ?" % sys.argv[2], (sys.argv[3],)).fetchone()
sys.exit(0 if r else 1)
PY
}
# The cache key of a path of the archive (a backend route is keyed by its mirror).
key_of() { echo "fixture/$1"; }
listed=$(key_of "pool/main/b/big$last/big${last}_1.${last}_all.deb")

tcurl -f -o "$T/Packages.gz" "$PROXY_URL/fixture/$big" || fail "the big Packages.gz through the proxy"
wait_for 30 test -f "$PROXY_CACHE/$(key_of "$big")" || fail "the big Packages.gz was not cached"
sleep 0.5
proxy_kill9
db_has files "$listed" && fail "the parse finished before the kill (make STANZAS larger)"
log "proxy killed while it parsed $STANZAS stanzas"

# After the restart the cached Packages.gz is parsed again, in the background: requests
# meanwhile are answered, and the files they bring are recorded.
proxy_start -v
grep -q "whose parse did not finish are parsed again" "$PROXY_LOG" \
    || fail "the start-up did not queue the unfinished index"
for f in dists/bookworm/Release.gpg dists/bookworm/InRelease; do
    t=$(tcurl -f -o /dev/null -w '%{time_total}' "$PROXY_URL/fixture/$f") || fail "$f during the parse"
    log "$f answered in $t s while the index was parsed"
done
wait_for 90 db_has files "$listed" || fail "the big Packages.gz was never parsed again"
for f in dists/bookworm/Release.gpg dists/bookworm/InRelease; do
    wait_for 10 db_has cached "$(key_of "$f")" || fail "the record of $f was lost"
done
db_has files "$(key_of dists/bookworm/main/binary-amd64/Packages.xz)" \
    || fail "the InRelease fetched during the parse was not learnt"

# Parsed to its end now: an orderly restart leaves it alone.
proxy_stop
proxy_start -v
check_eq 1 "$(grep -c "whose parse did not finish are parsed again" "$PROXY_LOG")" \
    "start-ups that parsed the index again"
proxy_stop
log "passed"
