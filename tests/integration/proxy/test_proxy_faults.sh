#!/bin/sh
# Mirror faults seen by the real apt through apt-dht-proxy: apt gets an error
# (or a transfer it detects as bad) or succeeds after a clean retry, and the
# proxy never caches nor serves wrong content. Also: concurrent clients share
# one upstream transfer, and a client that hangs up disturbs no one.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3 timeout
fixture_build
mirror_start
mkdir -p "$T/proxy"
proxy_config "$T/proxy/apt-dht.conf" 3       # negative_ttl: 3 s
proxy_start

big_size=$(stat -c %s "$FIXTURE_ROOT/$FIXTURE_BIG")
big_sum=$(sha256_of "$FIXTURE_ROOT/$FIXTURE_BIG")
BIGP="$PROXY_URL/fixture/$FIXTURE_BIG"

# new_client NAME: a sandbox using the backend form, updated.
new_client() {
    apt_sandbox "$T/$1"
    apt_sources "$T/$1" backend fixture "$PROXY_URL"
    apt_update "$T/$1"
}

# download_into CLIENT DEST PACKAGE...: apt-get download, returns apt's status.
download_into() {
    _c=$1 _dest=$2; shift 2
    mkdir -p "$_dest"; chmod a+rwx "$_dest"
    (cd "$_dest" && apt_run "$T/$_c" download "$@")
}

# Every non-.FAILED file apt left in DIR is a pool file or a prefix of one
# (apt-get download leaves a partial file after a cut transfer).
check_apt_dir() {
    for _f in "$1"/*; do
        [ -f "$_f" ] || continue
        case $_f in *.FAILED) continue ;; esac
        _sz=$(stat -c %s "$_f")
        _ok=0
        while read -r _s _p; do
            if head -c "$_sz" "$FIXTURE_ROOT/$_p" | cmp -s - "$_f"; then _ok=1; break; fi
        done < "$FIXTURE_DIR/pool.sha256"
        [ "$_ok" -eq 1 ] || fail "apt kept a file that is no prefix of any pool file: $_f"
    done
}

# proxy_serves_big_intact: what the proxy serves for the big file now is
# either an error or exactly the right bytes.
proxy_serves_big_intact() {
    _rc=0
    _code=$(tcurl -o "$T/big.check" -w '%{http_code}' "$BIGP" 2>/dev/null) || _rc=$?
    if [ "$_rc" -eq 0 ] && [ "$_code" = 200 ]; then
        check_eq "$big_sum" "$(sha256_of "$T/big.check")" "big file served by the proxy"
    fi
    rm -f "$T/big.check"
}

new_client a

# --- concurrent cold downloads share one upstream transfer -------------------
mirror_ctl rate '{"bytes_per_sec": 10000000}' >/dev/null   # about 4 s for the big file
new_client b
download_into a "$T/a/c1" apt-dht-big > "$T/c1.out" 2>&1 &
p1=$!; track_pid "$p1"
download_into b "$T/b/c2" apt-dht-big > "$T/c2.out" 2>&1 &
p2=$!; track_pid "$p2"
# a third client hangs up after one second
tcurl --max-time 1 -o /dev/null "$BIGP" 2>/dev/null || true
wait "$p1" || { cat "$T/c1.out"; fail "first concurrent client failed"; }
wait "$p2" || { cat "$T/c2.out"; fail "second concurrent client failed"; }
untrack_pid "$p1"; untrack_pid "$p2"
mirror_ctl rate '{"bytes_per_sec": 0}' >/dev/null
same_as_big() { cmp -s "$1" "$FIXTURE_ROOT/$FIXTURE_BIG" || fail "$1 differs from the pool"; }
same_as_big "$T/a/c1/$(basename "$FIXTURE_BIG")"
same_as_big "$T/b/c2/$(basename "$FIXTURE_BIG")"
check_eq "$big_size" "$(mirror_bytes "*/$FIXTURE_BIG")" "big file bytes from the mirror for 3 clients"
log "three concurrent clients, one upstream transfer"

# --- 500 ----------------------------------------------------------------------
mirror_fault '{"path_glob": "pool/*hello_*", "mode": "500"}'
if download_into a "$T/a/f500" apt-dht-hello; then fail "apt succeeded through a mirror 500"; fi
check_apt_dir "$T/a/f500"
mirror_reset
download_into a "$T/a/f500" apt-dht-hello || fail "apt failed after the 500 went away"
check_apt_dir "$T/a/f500"
check_cache_not_corrupt "$PROXY_CACHE"

# --- 404 and negative caching ------------------------------------------------
mirror_fault '{"path_glob": "pool/*tools_*", "mode": "404"}'
if download_into a "$T/a/f404" apt-dht-tools; then fail "apt succeeded through a mirror 404"; fi
n1=$(mirror_requests '*/pool/*tools_*')
check_eq 404 "$(http_status "$PROXY_URL/fixture/pool/main/a/apt-dht-tools/apt-dht-tools_2.3-1_amd64.deb")" \
    "404 passed on"
check_eq "$n1" "$(mirror_requests '*/pool/*tools_*')" "a 404 within negative_ttl is answered from the negative cache"
mirror_reset
sleep 4   # > negative_ttl
download_into a "$T/a/f404" apt-dht-tools || fail "apt failed after negative_ttl"
check_apt_dir "$T/a/f404"

# --- stall --------------------------------------------------------------------
mirror_fault '{"path_glob": "pool/*plus*", "mode": "stall", "delay_ms": 60000}'
s=$(now)
if APT_TIME_LIMIT=90 download_into a "$T/a/stall" -o Acquire::http::Timeout=10 apt-dht-plus+extra; then
    fail "apt succeeded through a stalled mirror"
fi
[ $(( $(now) - s )) -le 75 ] || fail "a stalled mirror held apt too long"
mirror_reset
download_into a "$T/a/stall" apt-dht-plus+extra || fail "apt failed after the stall"
check_apt_dir "$T/a/stall"
check_cache_not_corrupt "$PROXY_CACHE"

# --- cut mid-body and corruption of the big file (cold cache needed) ----------
# A cold cache: restart the proxy with its cache dir emptied (the state dir,
# with the hash knowledge, is kept; a fresh client updates through it again).
proxy_stop
rm -rf "$T/proxy/cache"
proxy_start
new_client c

mirror_fault '{"path_glob": "pool/*big*", "mode": "cut", "after_bytes": 10000000, "count": 1}'
rc=0
download_into c "$T/c/cut" apt-dht-big || rc=$?
check_apt_dir "$T/c/cut"
if [ "$rc" -eq 0 ]; then
    cmp -s "$T/c/cut/$(basename "$FIXTURE_BIG")" "$FIXTURE_ROOT/$FIXTURE_BIG" \
        || fail "apt reported success for a cut download with wrong content"
fi
check_cache_not_corrupt "$PROXY_CACHE"
proxy_serves_big_intact
log "cut mid-body: apt status $rc, nothing corrupt cached or served"

proxy_stop
rm -rf "$T/proxy/cache"
proxy_start
mirror_reset
new_client d      # the indices pass through the proxy again: the big file's hash is known
mirror_fault '{"path_glob": "pool/*big*", "mode": "corrupt", "after_bytes": 30000000, "count": 1}'
# The hash is known from Packages: the corrupt copy must not reach apt as good.
rc=0
code=$(tcurl -o "$T/corrupt" -w '%{http_code}' "$BIGP" 2>/dev/null) || rc=$?
if [ "$rc" -eq 0 ] && [ "$code" = 200 ] && [ "$(stat -c %s "$T/corrupt")" -eq "$big_size" ]; then
    check_eq "$big_sum" "$(sha256_of "$T/corrupt")" "the proxy delivered a corrupt file as complete"
fi
check_cache_not_corrupt "$PROXY_CACHE"
download_into c "$T/c/after" apt-dht-big || fail "apt failed after the corruption went away"
cmp -s "$T/c/after/$(basename "$FIXTURE_BIG")" "$FIXTURE_ROOT/$FIXTURE_BIG" || fail "big file after corruption"
check_cache_not_corrupt "$PROXY_CACHE"

kill -0 "$PROXY_PID" || fail "the proxy died during the fault tests"
proxy_stop
log "passed"
