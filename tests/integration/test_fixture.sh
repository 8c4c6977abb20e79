#!/bin/sh
# The integration harness checks itself: the archive fixture is a real signed
# Debian archive that the real apt-get accepts, the test mirror serves it
# correctly (conditional requests, ranges, absolute targets, logging), and
# every fault the proxy tests rely on behaves as documented.
# No proxy is involved: apt talks directly to the mirror.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get apt-cache curl python3 gpgv timeout cmp

t0=$(now)
fixture_build
log "fixture in $FIXTURE_DIR ($(( $(now) - t0 )) s)"

# --- the archive itself -----------------------------------------------------
dists="$FIXTURE_ROOT/dists/bookworm"
for f in InRelease Release Release.gpg main/binary-amd64/Packages main/binary-amd64/Packages.gz \
         main/binary-amd64/Packages.xz main/source/Sources main/source/Sources.gz main/source/Sources.xz; do
    [ -s "$dists/$f" ] || fail "archive lacks dists/bookworm/$f"
done
gpgv --keyring "$FIXTURE_KEY" "$dists/InRelease" 2>/dev/null || fail "InRelease signature does not verify"
gpgv --keyring "$FIXTURE_KEY" "$dists/Release.gpg" "$dists/Release" 2>/dev/null \
    || fail "Release.gpg does not verify"
grep -q '^Acquire-By-Hash: yes' "$dists/Release" || fail "Release lacks Acquire-By-Hash"
xzsum=$(sha256_of "$dists/main/binary-amd64/Packages.xz")
cmp -s "$dists/main/binary-amd64/by-hash/SHA256/$xzsum" "$dists/main/binary-amd64/Packages.xz" \
    || fail "by-hash copy of Packages.xz missing"
check_eq 6 "$(wc -l < "$FIXTURE_DIR/packages.txt")" "number of binary packages"
big_size=$(stat -c %s "$FIXTURE_ROOT/$FIXTURE_BIG")
[ "$big_size" -gt $((40 * 1024 * 1024)) ] || fail "the big package is only $big_size bytes"
while read -r name ver arch path size sum; do
    check_eq "$sum" "$(sha256_of "$FIXTURE_ROOT/$path")" "checksum of $path"
    grep -q "^Filename: $path\$" "$dists/main/binary-amd64/Packages" || fail "$path not in Packages"
done < "$FIXTURE_DIR/packages.txt"
grep -q '^Package: apt-dht-hello$' "$dists/main/source/Sources" || fail "no source package in Sources"

# --- the real apt-get, directly against the mirror --------------------------
mirror_start
log "mirror on port $MIRROR_PORT (pid $MIRROR_PID)"
wait_port "$MIRROR_PORT" 5 || fail "mirror port not open"

A="$T/client-a"
apt_sandbox "$A"
apt_sources "$A" direct
apt_update "$A"
[ -s "$A/state/lists/127.0.0.1:${MIRROR_PORT}_debian_dists_bookworm_InRelease" ] \
    || fail "apt did not store the InRelease in its private lists"
apt_cache "$A" show apt-dht-big >/dev/null || fail "apt-cache does not know apt-dht-big"
apt_download_all "$A" "$A/downloads" || fail "apt could not download every package"
apt_check_downloads "$A/downloads"
log "every package and source file downloaded by apt is byte-identical to the pool"

# Each pool file was served exactly once and in full.
debs_total=$(awk '{ s += $5 } END { print s }' "$FIXTURE_DIR/packages.txt")
check_eq "$debs_total" "$(mirror_bytes '*/pool/*.deb')" "bytes of .deb served by the mirror"
check_eq 6 "$(mirror_requests '*/pool/*.deb' 200)" "requests for .deb files"
check_eq 3 "$(( $(mirror_requests '*/pool/*.dsc' 200) + $(mirror_requests '*/pool/*.tar.*' 200) ))" \
    "requests for source package files"
check_eq 9 "$(mirror_requests '*/pool/*')" "requests under pool/"
[ "$(mirror_requests '*/by-hash/SHA256/*' 200)" -ge 2 ] || fail "apt did not fetch indices by hash"
check_eq 1 "$(mirror_requests '*/dists/bookworm/InRelease' 200)" "InRelease requests"
pool_json=$(mirror_stats | python3 -c 'import json, sys
d = json.load(sys.stdin)
print(sum(v["bytes"] for k, v in d["paths"].items() if k.endswith(".deb")))')
check_eq "$debs_total" "$pool_json" "bytes of .deb in /_ctl/stats"

# A second update revalidates: InRelease comes back 304.
apt_update "$A"
[ "$(mirror_requests '*/dists/bookworm/InRelease' 304)" -ge 1 ] \
    || fail "second apt-get update did not get a 304 for InRelease"
grep '/dists/bookworm/InRelease 304 ' "$MIRROR_LOG" | grep -Eq ' (ims|inm|ims\+inm)$' \
    || fail "the log does not show apt's conditional request"

# Real apt detects a corrupted and a cut package (what the proxy must pass on
# as an error, never as a good file).
B="$T/client-b"
apt_sandbox "$B"
apt_sources "$B" direct
apt_update "$B"
mirror_fault '{"path_glob": "pool/*hello_*", "mode": "corrupt", "after_bytes": 100, "count": 1}'
mkdir -p "$B/bad"
chmod a+rwx "$B/bad"
if (cd "$B/bad" && apt_run "$B" download apt-dht-hello); then
    fail "apt accepted a corrupted package"
fi
grep -qi 'hash sum mismatch\|Hashes of expected file' "$B/log/last.log" || fail "apt did not report a hash mismatch"
mirror_fault '{"path_glob": "pool/*tools_*", "mode": "cut", "after_bytes": 1000, "count": 1}'
if (cd "$B/bad" && apt_run "$B" download apt-dht-tools); then
    fail "apt accepted a cut package"
fi
# apt keeps what failed its hash check as NAME.FAILED, and a cut transfer as
# a partial file under the final name, to resume it later: a prefix.
tools_pool="$FIXTURE_ROOT/pool/main/a/apt-dht-tools/apt-dht-tools_2.3-1_amd64.deb"
part="$B/bad/apt-dht-tools_2.3-1_amd64.deb"
if [ -f "$part" ]; then
    head -c "$(stat -c %s "$part")" "$tools_pool" | cmp -s - "$part" \
        || fail "apt's partial file is not a prefix of the package"
fi
# The next attempt (apt-get download starts over, it does not resume) completes.
(cd "$B/bad" && apt_run "$B" download apt-dht-tools) || fail "apt could not retry"
cmp -s "$part" "$tools_pool" || fail "retried download differs from the pool"
mirror_reset

# --- the mirror's HTTP behaviour, with curl ---------------------------------
R="$MIRROR_URL/debian/dists/bookworm/Release"
BIG="$MIRROR_URL/debian/$FIXTURE_BIG"
HELLO="$MIRROR_URL/debian/pool/main/a/apt-dht-hello/apt-dht-hello_1.0-1_amd64.deb"
rel_size=$(stat -c %s "$dists/Release")

# HEAD
hdrs=$(tcurl -I "$BIG" | tr -d '\r')
echo "$hdrs" | grep -qi "^content-length: $big_size\$" || fail "HEAD Content-Length"
echo "$hdrs" | grep -qi '^accept-ranges: bytes$' || fail "HEAD Accept-Ranges"
etag=$(echo "$hdrs" | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
lm=$(echo "$hdrs" | sed -n 's/^[Ll]ast-[Mm]odified: //p')
[ -n "$etag" ] && [ -n "$lm" ] || fail "HEAD lacks ETag or Last-Modified"
check_eq 0 "$(grep -c "^HEAD /debian/$FIXTURE_BIG 200 [^0]" "$MIRROR_LOG" || true)" "HEAD body bytes"

# Conditional requests
check_eq 304 "$(http_status "$BIG" -H "If-None-Match: $etag")" "If-None-Match, same tag"
check_eq 200 "$(http_status "$R" -H 'If-None-Match: "nope"')" "If-None-Match, other tag"
check_eq 304 "$(http_status "$BIG" -H "If-Modified-Since: $lm")" "If-Modified-Since, same date"
check_eq 200 "$(http_status "$R" -H 'If-Modified-Since: Thu, 01 Jan 1998 00:00:00 GMT')" \
    "If-Modified-Since, older date"

# Ranges
tcurl -r 0-99 -o "$T/r1" -w '%{http_code}' "$BIG" > "$T/code"
check_eq 206 "$(cat "$T/code")" "Range 0-99 status"
head -c 100 "$FIXTURE_ROOT/$FIXTURE_BIG" | cmp -s - "$T/r1" || fail "Range 0-99 content"
tcurl -r -100 -o "$T/r2" "$BIG"
tail -c 100 "$FIXTURE_ROOT/$FIXTURE_BIG" | cmp -s - "$T/r2" || fail "suffix Range content"
tcurl -r 1000000- -o "$T/r3" "$BIG"
tail -c +1000001 "$FIXTURE_ROOT/$FIXTURE_BIG" | cmp -s - "$T/r3" || fail "open Range content"
check_eq 416 "$(http_status "$R" -r "$rel_size-")" "Range past the end"
tcurl -D "$T/h416" -o /dev/null -r "$rel_size-" "$R"
grep -qi "^content-range: bytes \*/$rel_size" "$T/h416" || fail "416 lacks Content-Range"
check_eq 206 "$(http_status "$BIG" -r 10-20 -H "If-Range: $etag")" "If-Range, same tag"
check_eq 200 "$(http_status "$R" -r 10-20 -H 'If-Range: "nope"')" "If-Range, other tag"
check_eq 206 "$(http_status "$BIG" -r 10-20 -H "If-Range: $lm")" "If-Range, same date"

# Absolute request target, as a forward proxy client sends it.
tcurl -o "$T/abs" --request-target "http://mirror.example:8080/debian/dists/bookworm/InRelease" \
    "$MIRROR_URL/"
cmp -s "$T/abs" "$dists/InRelease" || fail "absolute-form request"
grep -q '^GET /debian/dists/bookworm/InRelease 200 ' "$MIRROR_LOG" || fail "absolute-form logged path"

# Paths
check_eq 404 "$(http_status "$MIRROR_URL/debian/pool/nope.deb")" "missing file"
check_eq 404 "$(http_status "$MIRROR_URL/debian/pool/")" "directory"
check_eq 400 "$(http_status "$MIRROR_URL/debian/../../../etc/passwd" --path-as-is)" "dot-dot"
check_eq 400 "$(http_status "$MIRROR_URL/debian/%2e%2e/%2e%2e/etc/passwd" --path-as-is)" "encoded dot-dot"
tcurl -o "$T/plus" "$MIRROR_URL/debian/pool/main/a/apt-dht-plus%2bextra/apt-dht-plus%2bextra_2.0%2breally1.0-1_amd64.deb"
cmp -s "$T/plus" "$FIXTURE_ROOT/pool/main/a/apt-dht-plus+extra/apt-dht-plus+extra_2.0+really1.0-1_amd64.deb" \
    || fail "percent-encoded + in the path"
check_eq 405 "$(http_status "$R" -X PUT)" "PUT"

# Faults: status codes, with a count
mirror_fault '{"path_glob": "dists/*/Release", "mode": "500", "count": 2}'
check_eq 500 "$(http_status "$R")" "500 fault, first"
check_eq 500 "$(http_status "$R")" "500 fault, second"
check_eq 200 "$(http_status "$R")" "500 fault used up"
mirror_fault '{"path_glob": "pool/*hello_*", "mode": "404", "count": 1}'
check_eq 404 "$(http_status "$HELLO")" "404 fault"
check_eq 200 "$(http_status "$HELLO")" "404 fault used up"
mirror_fault '{"path_glob": "*", "mode": "503", "count": 1, "methods": ["HEAD"]}'
check_eq 200 "$(http_status "$HELLO")" "a HEAD-only fault leaves GET alone"
check_eq 503 "$(http_status "$HELLO" -I)" "HEAD-only fault"
check_eq 400 "$(tcurl -o /dev/null -w '%{http_code}' -X POST --data '{"mode": "melt"}' "$MIRROR_URL/_ctl/fault" || true)" \
    "bad fault mode"

# stall before the status line: silent, then closed at the bound
mirror_fault '{"path_glob": "dists/*/Release", "mode": "stall", "delay_ms": 1500, "count": 1}'
s=$(now); rc=0
tcurl --max-time 10 -o /dev/null "$R" 2>/dev/null || rc=$?
el=$(( $(now) - s ))
check_eq 52 "$rc" "stall: curl sees an empty reply"
[ "$el" -ge 1 ] && [ "$el" -le 4 ] || fail "stall lasted $el s, expected about 1.5 s"
mirror_fault '{"path_glob": "dists/*/Release", "mode": "stall", "delay_ms": 5000, "count": 1}'
rc=0
tcurl --max-time 1 -o /dev/null "$R" 2>/dev/null || rc=$?
check_eq 28 "$rc" "stall: a client timeout fires"

# stall mid-body: headers and after_bytes bytes, then silence, then close
mirror_fault '{"path_glob": "pool/*big*", "mode": "stall", "after_bytes": 4096, "delay_ms": 1000, "count": 1}'
rc=0
tcurl --max-time 10 -o "$T/stall" "$BIG" 2>/dev/null || rc=$?
check_eq 18 "$rc" "mid-body stall ends as a short transfer"
check_eq 4096 "$(stat -c %s "$T/stall")" "bytes before the mid-body stall"

# cut: full Content-Length announced, connection closed after after_bytes
mirror_fault '{"path_glob": "pool/*big*", "mode": "cut", "after_bytes": 100000, "count": 1}'
rc=0
tcurl -o "$T/cut" "$BIG" 2>/dev/null || rc=$?
check_eq 18 "$rc" "cut: curl reports a partial transfer"
check_eq 100000 "$(stat -c %s "$T/cut")" "bytes before the cut"
head -c 100000 "$FIXTURE_ROOT/$FIXTURE_BIG" | cmp -s - "$T/cut" || fail "bytes before the cut are wrong"
grep -q "^GET /debian/$FIXTURE_BIG 200 100000 cut " "$MIRROR_LOG" || fail "cut not logged with the bytes sent"
check_eq 200 "$(http_status "$BIG")" "cut fault used up"

# corrupt: full length, one byte inverted at file offset after_bytes
mirror_fault '{"path_glob": "pool/*big*", "mode": "corrupt", "after_bytes": 5000000, "count": 1}'
tcurl -o "$T/corrupt" "$BIG"
check_eq "$big_size" "$(stat -c %s "$T/corrupt")" "corrupt: size"
[ "$(sha256_of "$T/corrupt")" != "$(sha256_of "$FIXTURE_ROOT/$FIXTURE_BIG")" ] || fail "corrupt: same hash"
check_eq 1 "$(cmp -l "$T/corrupt" "$FIXTURE_ROOT/$FIXTURE_BIG" | wc -l)" "corrupt: bytes differing"
check_eq 5000001 "$(cmp -l "$T/corrupt" "$FIXTURE_ROOT/$FIXTURE_BIG" | awk '{ print $1 }')" \
    "corrupt: offset (1-based)"
# corruption applies to file offsets, also inside a range
mirror_fault '{"path_glob": "pool/*big*", "mode": "corrupt", "after_bytes": 5000000, "length": 3, "count": 1}'
tcurl -r 4999990-5000009 -o "$T/corrupt-r" "$BIG"
tail -c +4999991 "$FIXTURE_ROOT/$FIXTURE_BIG" | head -c 20 > "$T/good-r"
check_eq 3 "$(cmp -l "$T/corrupt-r" "$T/good-r" | wc -l)" "corrupt inside a range"

# delay: late but correct
mirror_fault '{"path_glob": "pool/*hello_*", "mode": "delay", "delay_ms": 1200, "count": 1}'
s=$(now)
tcurl -o "$T/delayed" "$HELLO"
[ $(( $(now) - s )) -ge 1 ] || fail "delay fault did not delay"
cmp -s "$T/delayed" "$FIXTURE_ROOT/pool/main/a/apt-dht-hello/apt-dht-hello_1.0-1_amd64.deb" \
    || fail "delayed content"

# reset drops the faults and the statistics
mirror_fault '{"path_glob": "*", "mode": "500"}'
check_eq 500 "$(http_status "$R")" "catch-all fault"
mirror_reset
check_eq 200 "$(http_status "$R")" "after reset"
check_eq 1 "$(mirror_stats | python3 -c 'import json, sys; print(json.load(sys.stdin)["total_requests"])')" \
    "statistics after reset"

# rate limit at run time
mirror_ctl rate '{"bytes_per_sec": 200000}' >/dev/null
TOOLS="$MIRROR_URL/debian/pool/main/a/apt-dht-tools/apt-dht-tools_2.3-1_amd64.deb"
s=$(now)
tcurl -o "$T/slow" "$TOOLS"
el=$(( $(now) - s ))
mirror_ctl rate '{"bytes_per_sec": 0}' >/dev/null
[ "$el" -ge 1 ] || fail "rate limit: 300 kB at 200 kB/s took $el s"
cmp -s "$T/slow" "$FIXTURE_ROOT/pool/main/a/apt-dht-tools/apt-dht-tools_2.3-1_amd64.deb" \
    || fail "rate-limited content"

# Clean, prompt shutdown on SIGTERM, even with a stalled client connected.
mirror_fault '{"path_glob": "*", "mode": "stall", "count": 1}'
tcurl --max-time 30 -o /dev/null "$R" 2>/dev/null &
curl_pid=$!
track_pid "$curl_pid"
wait_for 5 sh -c "grep -q . '$MIRROR_LOG' && true" || true
sleep 0.3
s=$(now)
kill -TERM "$MIRROR_PID"
rc=0
wait "$MIRROR_PID" || rc=$?
untrack_pid "$MIRROR_PID"
MIRROR_PID=""
check_eq 0 "$rc" "mirror exit status after SIGTERM"
[ $(( $(now) - s )) -le 5 ] || fail "mirror took too long to stop"
stop_pid "$curl_pid" 5

log "all checks passed in $(( $(now) - t0 )) s"
