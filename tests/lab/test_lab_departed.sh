#!/bin/sh
# The LAN lab, a holder departs without a word (issue 11): host1 fetches the set
# from the mirror, host3 fetches it from host1, then host1 departs while the DHT
# still lists it as a holder of every file; then host2 fetches the set, and
# host4, whose proxy runs with dht.mode off, fetches it as the baseline.
# LAB_DEPART says how host1 departs:
#   stop  its proxy stops (the kernel answers with RST)
#   link  its link dies (its veth in the bridge goes down: packets vanish)
#   both  (default) one lab per kind, one after the other
# Asserted: every apt run succeeds with correct files, and host2 got every pool
# file from host3. Printed: host2's and host4's times (apt-get update and
# download), and how long host2's proxy waited on host1. Wrappers run it for
# each kind and dialect (test_lab_departed_*.sh). Needs root; SKIP otherwise.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/lab/lab.sh"

lab_require_node
: "${LAB_DEPART:=both}"
if [ "$LAB_DEPART" = both ]; then
    rc=0
    for kind in stop link; do
        LAB_DEPART=$kind sh "$0" || rc=$?
        [ "$rc" -eq 0 ] || exit "$rc"
    done
    exit 0
fi
case $LAB_DEPART in stop|link) ;; *) hard_error "LAB_DEPART: stop, link or both" ;; esac

now_ms() { date +%s%3N; }

# timed_apt HOST: apt-get update and download in HOST; prints the ms they took.
timed_apt() {
    _t0=$(now_ms)
    lab_apt "$1" update >&2 || fail "apt-get update in $1 failed"
    lab_apt "$1" download >&2 || fail "apt-get download in $1 failed"
    _t1=$(now_ms)
    apt_check_downloads "$(lab_apt_dest "$1")" >&2
    echo $((_t1 - _t0))
}

t0=$(now)
lab_up 4
lab_proxies_start h1 h2 h3
dht_mode=$LAB_DHT_MODE
LAB_DHT_MODE=off
lab_proxy_start h4
LAB_DHT_MODE=$dht_mode

big_key=$(lab_key_of "$FIXTURE_ROOT/$FIXTURE_BIG")
log "h1 fetched the set in $(timed_apt h1) ms"
lab_wait_announced h2 "$big_key" h3 h1 15 || fail "h1's announcement never reached h3's node"
log "h3 fetched the set in $(timed_apt h3) ms; its proxy: $(lab_proxy_sources h3 '*pool/*')"
lab_wait_announced h2 "$big_key" h1 h3 15 || fail "h3's announcement never reached h1's node"

case $LAB_DEPART in
    stop) lab_proxy_stop h1; log "h1's proxy stopped" ;;
    link) ip -n "$LAB_ID-br" link set v-h1 down || hard_error "cannot take h1's link down"
          log "h1's link is down" ;;
esac

h2_ms=$(timed_apt h2)
h4_ms=$(timed_apt h4)
h1a=$(lab_addr h1) h3a=$(lab_addr h3)
pool=$(grep -c " GET /fixture/pool/.* 200 " "$(lab_proxy_log h2)" || true)
from3=$(grep -c " GET /fixture/pool/.* 200 [0-9]* peer $h3a:$LAB_PROXY_PORT " \
        "$(lab_proxy_log h2)" || true)
tried1=$(grep -c "peer $h1a:$LAB_PROXY_PORT" "$(lab_proxy_log h2)" || true)
log "h1 departed ($LAB_DEPART, $LAB_DHT_MODE): h2 ${h2_ms} ms, h4 (no DHT) ${h4_ms} ms;" \
    "h2's pool files: $from3 of $pool from h3; h2's log names h1 on $tried1 lines"
grep "peer $h1a:$LAB_PROXY_PORT" "$(lab_proxy_log h2)" | sed 's/^/    h2 proxy: /' | head -n 8

[ "$pool" -ge 6 ] || fail "h2's proxy served only $pool pool files"
check_eq "$pool" "$from3" "pool files h2 got from h3"
# Not a benchmark (the cores are shared): a liveness bound that catches a departed holder
# costing its timeouts again (12.3 s against 2.9 s before), far above the issue's
# 1.2 x h4 + 0.2 s, which the log line above reports.
[ "$h2_ms" -le $(( 3 * h4_ms + 2000 )) ] ||
    fail "h2 took ${h2_ms} ms against h4's ${h4_ms} ms: the departed holder still costs its timeouts"

for h in h2 h3 h4; do lab_proxy_stop "$h"; done
[ "$LAB_DEPART" = stop ] || lab_proxy_stop h1
for h in h2 h3 h4; do check_cache_not_corrupt "$T/lab/$h/cache"; done
log "done in $(( $(now) - t0 )) s"
