#!/bin/sh
# Out of file descriptors: the proxy runs with an open-file limit of 40 (soft and hard,
# so raising the soft limit at start does not help) and 40 clients each ask for a
# different file at once, from a mirror that waits 3 s before answering, so every
# download holds its temp file and its socket. Those that cannot get a descriptor are
# answered 503 with a one-line reason, never 500, and the log names EMFILE; afterwards
# the proxy serves as before.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool curl python3
fixture_build
mirror_start

real=$(proxy_bin)
[ -x "$real" ] || skip "apt-dht-proxy not built ($real)"
cat > "$T/lowfd" <<EOF
#!/bin/sh
ulimit -n 40 || exit 1
exec "$real" "\$@"
EOF
chmod +x "$T/lowfd"
APT_DHT_PROXY="$T/lowfd" proxy_start

mirror_fault '{"path_glob": "pool/main/z/*", "mode": "delay", "delay_ms": 3000}'
i=0
pids=""
while [ $i -lt 40 ]; do
    i=$((i + 1))
    TCURL_MAX_TIME=30 tcurl -o "$T/body.$i" -w '%{http_code}\n' \
        "$PROXY_URL/fixture/pool/main/z/zz$i/zz${i}_1.0_all.deb" > "$T/code.$i" 2>/dev/null &
    pids="$pids $!"
done
for p in $pids; do wait "$p" || true; done

n503=0 n500=0 other=""
i=0
while [ $i -lt 40 ]; do
    i=$((i + 1))
    c=$(cat "$T/code.$i")
    case $c in
        503) n503=$((n503 + 1))
             grep -qx "proxy out of file descriptors; try again shortly" "$T/body.$i" \
                 || fail "503 without the reason: $(cat "$T/body.$i")" ;;
        500) n500=$((n500 + 1)) ;;
        404) ;;
        *) other="$other $c" ;;
    esac
done
log "40 downloads at once under 40 open files: $n503 answered 503, $n500 answered 500, others:${other:- none}"
check_eq 0 "$n500" "answers 500"
[ "$n503" -gt 0 ] || fail "no download ran out of descriptors (the test did not reach the limit)"
grep -q "EMFILE" "$PROXY_LOG" || fail "EMFILE is not in the log"

mirror_reset
check_eq 200 "$(http_status "$PROXY_URL/fixture/dists/bookworm/InRelease")" "served afterwards"
kill -0 "$PROXY_PID" || fail "the proxy died"
proxy_stop
log "passed"
