#!/bin/sh
# Bad input gets a clear answer and nothing is lost: path traversal in every
# spelling -> 400, non-archive paths -> 403, CONNECT and other methods -> 405,
# CR/LF never reaches a response header, over-long request lines -> 414,
# oversized headers -> 431; the proxy keeps serving, and nothing outside its
# cache dir is touched.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool curl python3
fixture_build
mirror_start
proxy_start

M=${MIRROR_URL#http://}            # 127.0.0.1:PORT, for the rewrite form
P=$PROXY_URL
good="$P/fixture/dists/bookworm/InRelease"
check_eq 200 "$(http_status "$good")" "a good request"

# Scratch files go to $S; a sentinel outside the cache dir, and the list of
# what exists under $T (apart from the proxy's own directories and $S).
S="$T/scratch"
mkdir -p "$S"
echo sentinel > "$T/sentinel"
list_outside() { (cd "$T" && find . \( -path ./proxy -o -path ./scratch \) -prune -o -print | sort); }
list_outside > "$S/before.list"

# expect CODE DESCRIPTION CURL-ARGS... (URL last): status must be CODE.
expect() {
    _want=$1 _what=$2; shift 2
    _got=$(http_status "$@" --path-as-is)
    [ "$_got" = "$_want" ] || fail "$_what: expected $_want, got $_got"
}
# expect_raw CODE DESCRIPTION: stdin is the raw request.
expect_raw() {
    _got=$(raw_request "$PROXY_PORT")
    [ "$_got" = "$1" ] || fail "$2: expected $1, got $_got"
}

# --- traversal, all three forms -----------------------------------------------
for base in "$P/fixture" "$P/$M/debian"; do
    expect 400 "dot-dot ($base)"            "$base/dists/../../../../etc/passwd"
    expect 400 "dot-dot at the end"         "$base/pool/.."
    expect 400 "encoded dot-dot"            "$base/dists/%2e%2e/%2e%2e/%2e%2e/etc/passwd"
    expect 400 "upper-case encoded dot-dot" "$base/dists/%2E%2E/%2E%2E/etc/passwd"
    expect 400 "half-encoded dot-dot"       "$base/dists/.%2e/.%2e/etc/passwd"
    expect 400 "encoded slash and dot-dot"  "$base/dists/..%2f..%2f..%2fetc/passwd"
    expect 400 "double-encoded dot-dot"     "$base/dists/%252e%252e/etc/passwd"
    expect 400 "empty segment"              "$base//etc/passwd"
    expect 400 "empty segment inside"       "$base/pool//main/a/x.deb"
    expect 400 "backslash"                  "$base/pool\\..\\..\\etc\\passwd"
    expect 400 "encoded backslash"          "$base/pool/%5c..%5c..%5cetc/passwd"
    expect 400 "NUL"                        "$base/pool/main/a/x.deb%00.txt"
    expect 404 "a dot segment is dropped (flat repositories), the rest routed as usual" "$base/./pool/main/a/x.deb"
done
printf 'GET http://%s/debian/dists/../../../etc/passwd HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$M" "$M" \
    | expect_raw 400 "dot-dot in proxy mode"
printf 'GET /fixture/pool/\\../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
    | expect_raw 400 "raw backslash"

# --- not archive-shaped, or not allowed ---------------------------------------
expect 403 "non-archive path (backend)"  "$P/fixture/index.html"
expect 403 "non-archive path (rewrite)"  "$P/$M/etc/passwd"
expect 403 "unknown backend or host"     "$P/nosuchbackend/index.html"
expect 403 "root"                        "$P/"
printf 'GET http://%s/some/page.html HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$M" "$M" \
    | expect_raw 403 "non-archive absolute URL (open proxy attempt)"

# --- methods -----------------------------------------------------------------
printf 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n' | expect_raw 405 "CONNECT"
expect 405 "POST"   "$good" -X POST --data x
expect 405 "PUT"    "$good" -X PUT --data x
expect 405 "DELETE" "$good" -X DELETE

# --- response splitting: CR/LF never reaches a header -------------------------
for u in "$P/fixture/pool/x%0d%0aSet-Cookie:%20injected=1.deb" \
         "$P/$M/debian/pool/x%0aX-Injected:%201.deb" \
         "$P/fixture%0d%0aX-Injected:%201/dists/bookworm/InRelease"; do
    code=$(tcurl --path-as-is -D "$S/h" -o /dev/null -w '%{http_code}' "$u" 2>/dev/null || true)
    case $code in 400|403|404) ;; *) fail "CR/LF in the path: status $code" ;; esac
    if grep -qi '^\(set-cookie\|x-injected\)' "$S/h"; then fail "CR/LF reached a response header"; fi
done
printf 'GET /fixture/dists/bookworm/InRelease HTTP/1.1\r\nHost: x\r\nX-A: a\rX-Injected: 1\r\nConnection: close\r\n\r\n' \
    | raw_request "$PROXY_PORT" > "$S/code"
case $(cat "$S/code") in 400|200) ;; *) fail "bare CR in a header: status $(cat "$S/code")" ;; esac

# --- sizes --------------------------------------------------------------------
long=$(python3 -c 'print("a" * 20000)')
expect 414 "over-long request line" "$P/fixture/pool/$long.deb"
big_header=$(python3 -c 'print("b" * 70000)')
expect 431 "oversized header" "$good" -H "X-Big: $big_header"
python3 -c 'print("".join("X-H%d: %s\n" % (i, "c" * 100) for i in range(600)), end="")' > "$S/many"
code=$(http_status "$good" -H "@$S/many")   # 600 headers of 100 bytes
case $code in 431|400) ;; *) fail "too many headers: status $code" ;; esac

# --- garbage on the wire -------------------------------------------------------
printf 'GARBAGE\r\n\r\n' | raw_request "$PROXY_PORT" > "$S/code"
case $(cat "$S/code") in 400|405|501|000) ;; *) fail "garbage request line: $(cat "$S/code")" ;; esac
printf 'GET /fixture/dists/bookworm/InRelease HTTP/9.9\r\n\r\n' | raw_request "$PROXY_PORT" > "$S/code"
case $(cat "$S/code") in 400|505|000) ;; *) fail "bad HTTP version: $(cat "$S/code")" ;; esac

# --- still alive, still correct, nothing outside the cache touched ------------
kill -0 "$PROXY_PID" 2>/dev/null || fail "the proxy died"
check_eq 200 "$(http_status "$good")" "a good request after the bad ones"
check_eq sentinel "$(cat "$T/sentinel")" "file outside the cache"
list_outside > "$S/after.list"
cmp -s "$S/before.list" "$S/after.list" \
    || fail "files appeared outside the proxy's directories: $(diff "$S/before.list" "$S/after.list" | grep '^>' | head -5)"
[ "$(mirror_requests '*etc/passwd*')" -eq 0 ] || fail "a traversal request reached the mirror"

proxy_stop
log "passed"
