#!/bin/sh
# Range, If-Range and HEAD on cached files, and what the request log counts for each:
# a HEAD sends no body bytes; a 206 counts its range, not the file; If-Range with an
# entity tag (the proxy sends none) or with a date other than Last-Modified gives the
# whole file; a range end beyond the size is cut at the size; a malformed range (a sign,
# spaces) is ignored, never read as a huge number; bytes=-0 is unsatisfiable.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool curl python3
fixture_build
mirror_start
proxy_start

P="$PROXY_URL/fixture/$FIXTURE_BIG"
size=$(stat -c %s "$FIXTURE_ROOT/$FIXTURE_BIG")
check_eq 200 "$(http_status "$P")" "the big package is fetched and cached"
wait_for 10 test -f "$PROXY_CACHE/fixture/$FIXTURE_BIG" \
    || fail "the big package was not cached"

# The request log line ends "STATUS BYTES SOURCE MSms".
n=0
# req EXPECTED-STATUS EXPECTED-LOGGED-BYTES WHAT CURL-ARGS...: one request for the big
# package; its log line is the newest one that names it.
req() {
    _want=$1 _bytes=$2 _what=$3
    shift 3
    n=$((n + 1))
    before=$(grep -c "$FIXTURE_BIG" "$PROXY_LOG" || true)
    code=$(tcurl -o "$T/body.$n" -w '%{http_code}' "$@" "$P" 2>/dev/null || true)
    check_eq "$_want" "$code" "$_what: status"
    wait_for 5 sh -c "[ \$(grep -c '$FIXTURE_BIG' '$PROXY_LOG') -gt $before ]" \
        || fail "$_what: no log line"
    line=$(grep "$FIXTURE_BIG" "$PROXY_LOG" | tail -n 1)
    got=$(echo "$line" | awk '{ print $(NF-3), $(NF-2) }')
    check_eq "$_want $_bytes" "$got" "$_what: logged status and bytes ($line)"
}

lm=$(tcurl -I "$P" | tr -d '\r' | sed -n 's/^[Ll]ast-[Mm]odified: //p')
[ -n "$lm" ] || fail "no Last-Modified on a cached file"
later=$(python3 -c 'import email.utils, sys
t = email.utils.parsedate_to_datetime(sys.argv[1]).timestamp()
print(email.utils.formatdate(t + 86400, usegmt=True))' "$lm")

req 200 0 "HEAD" -I
req 206 0 "HEAD with a range" -I -r 0-99
req 206 100 "a range" -r 100-199
tail -c +101 "$FIXTURE_ROOT/$FIXTURE_BIG" | head -c 100 | cmp -s - "$T/body.$n" \
    || fail "range content"
req 206 10 "a range ending beyond the size" -r "$((size - 10))-$((size + 1000))"
tcurl -D "$T/h" -o /dev/null -r "$((size - 10))-$((size + 1000))" "$P"
tr -d '\r' < "$T/h" | grep -qi "^content-range: bytes $((size - 10))-$((size - 1))/$size\$" \
    || fail "Content-Range of a range ending beyond the size: $(cat "$T/h")"
req 206 5 "a suffix range" -r -5
req 206 "$size" "a suffix range longer than the file" -r "-$((size + 5))"
req 416 0 "the suffix range bytes=-0" -H "Range: bytes=-0"
req 206 10 "If-Range with Last-Modified" -r 0-9 -H "If-Range: $lm"
req 200 "$size" "If-Range with a later date" -r 0-9 -H "If-Range: $later"
req 200 "$size" "If-Range with an entity tag" -r 0-9 -H 'If-Range: "abc"'
req 200 "$size" "a range with a negative end" -H "Range: bytes=0--5"
req 200 "$size" "a range with a sign" -H "Range: bytes=+1-5"
req 206 "$size" "a range whose end is past any size" -H "Range: bytes=0-99999999999999999999999"
req 416 0 "a range starting at the size" -r "$size-"

proxy_stop
log "passed"
