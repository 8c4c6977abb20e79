#!/bin/sh
# Regressions, each once a real bug:
#  - a mirror that ignores If-Modified-Since (answers 200 with the same date): the cached
#    InRelease must stay whole and apt must get it, not an empty file or a 502;
#  - SIGTERM while a request that joined a slow download later is waiting: a clean exit,
#    not a crash;
#  - a transfer started while libmicrohttpd runs a resumed request must start at once
#    (the by-hash fallback once waited for the loop's one-minute tick).

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool curl python3 timeout sha256sum
fixture_build
mirror_start
proxy_start
P=$PROXY_URL
rel=dists/bookworm/InRelease
want=$(sha256_of "$FIXTURE_ROOT/$rel")

# --- a mirror that ignores conditional requests -------------------------------------
tcurl -o "$T/r1" "$P/fixture/$rel" || fail "InRelease (first)"
mirror_fault '{"path_glob": "dists/bookworm/InRelease", "mode": "fresh"}'
for i in 1 2; do
    code=$(tcurl -o "$T/r2" -w '%{http_code}' "$P/fixture/$rel") || fail "InRelease (revalidation $i)"
    check_eq 200 "$code" "revalidation $i against a mirror that ignores If-Modified-Since"
    check_eq "$want" "$(sha256_of "$T/r2")" "InRelease after revalidation $i"
done
check_eq "$want" "$(sha256_of "$PROXY_CACHE/fixture/$rel")" "cached InRelease"
mirror_reset
log "a mirror ignoring If-Modified-Since: InRelease stays whole"

# --- a transfer started from a resumed request is not delayed -------------------------
idx=dists/bookworm/main/binary-amd64/Packages.xz
mirror_fault '{"path_glob": "dists/bookworm/main/binary-amd64/Packages.xz", "mode": "corrupt"}'
s=$(now)
TCURL_MAX_TIME=20 tcurl -o "$T/p" "$P/fixture/$idx" || fail "by-name index with by-hash fallback"
[ $(( $(now) - s )) -le 5 ] || fail "the by-hash fallback took $(( $(now) - s )) s"
mirror_reset

# --- SIGTERM with a late joiner waiting ----------------------------------------------------
mirror_fault '{"path_glob": "pool/*tools_*", "mode": "delay", "delay_ms": 8000}'
url="$P/fixture/pool/main/a/apt-dht-tools/apt-dht-tools_2.3-1_amd64.deb"
tcurl -o /dev/null "$url" 2>/dev/null &
c1=$!
sleep 1.5
tcurl -o /dev/null "$url" 2>/dev/null &
c2=$!
sleep 1
kill -TERM "$PROXY_PID"
rc=0
wait "$PROXY_PID" || rc=$?
untrack_pid "$PROXY_PID"
PROXY_PID=""
wait "$c1" "$c2" 2>/dev/null || true
check_eq 0 "$rc" "exit status after SIGTERM with waiting requests"
grep -q "signal 15: stopping" "$PROXY_LOG" || fail "no orderly stop logged"
log "SIGTERM with waiting requests: clean exit"
log "passed"
