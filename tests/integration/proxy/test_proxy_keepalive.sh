#!/bin/sh
# Persistent connections: two requests on one connection are answered on that one
# connection (cache hits, errors and a download in progress alike), and the real apt,
# with its default pipelining, fetches a whole update and every package over a handful
# of connections instead of one per file. The daemon's own count of accepted
# connections (its SIGUSR1 state line) is what is checked.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3
fixture_build
mirror_start
mkdir -p "$T/proxy"
proxy_config "$T/proxy/apt-dht.conf"
proxy_start

# state_lines: how many state lines the daemon has logged
state_lines() { grep -c 'state: [0-9]* connections' "$PROXY_LOG" || true; }
more_state_lines() { [ "$(state_lines)" -gt "$1" ]; }

# connections: the daemon's count of accepted connections, from its state line
connections() {
    _before=$(state_lines)
    kill -USR1 "$PROXY_PID"
    wait_for 10 more_state_lines "$_before" || fail "no state line after SIGUSR1"
    grep -o 'state: [0-9]* connections' "$PROXY_LOG" | tail -n 1 | awk '{print $2}'
}

U="$PROXY_URL/fixture/$FIXTURE_BIG"
tcurl -f -o /dev/null "$U" || fail "first fetch"
c0=$(connections)
# a cache hit, a refusal and another hit, on one connection
out=$(tcurl -s -o /dev/null -o /dev/null -o /dev/null -w '%{http_code} %{num_connects}\n' \
    "$U" "$PROXY_URL/" "$U")
log "three requests on one connection: $(echo $out)"
check_eq "200 1 403 0 200 0" "$(echo $out)" "status and new connections of each request"
c1=$(connections)
check_eq 1 $((c1 - c0)) "connections the daemon accepted for three requests"

# the real apt, proxy mode, default pipelining: update + every package
apt_sandbox "$T/a"
apt_sources "$T/a" proxy "$PROXY_URL"
apt_update "$T/a"
apt_download_all "$T/a" "$T/a/dl" || fail "apt-get download through the proxy"
apt_check_downloads "$T/a/dl"
c2=$(connections)
files=$(grep -c ' GET ' "$PROXY_LOG" || true)
log "apt: $((c2 - c1)) connections for about $files requests in all"
[ $((c2 - c1)) -le 6 ] || fail "apt opened $((c2 - c1)) connections (one per file?)"
log "PASS"
