#!/bin/sh
# The LAN lab over IPv6 only (LAB_IPV6=only: unique-local addresses on the
# bridge, no IPv4 on the lab link): three hosts, each with its own
# apt-dht-proxy, LAN discovery over IPv6 multicast and no bootstrap list.
# host1 runs apt-get update + download of every fixture package; then host2
# does, and gets every .deb from a peer: the mirror serves each .deb once for
# the whole lab. dht.mode from LAB_DHT_MODE (apt-dht by default;
# test_lab_ipv6_bep5.sh runs bep5, whose IPv6 is BEP 32). Needs root and
# IPv6; SKIP otherwise.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
LAB_IPV6=only
. "$top_srcdir/tests/lab/lab.sh"

lab_require_node
[ -e /proc/net/if_inet6 ] || skip "the kernel has no IPv6"
t0=$(now)
lab_up 3
lab_mcast_check h1 h3 || fail "IPv6 multicast does not cross the lab bridge"
for h in h1 h2 h3; do
    if lab_exec "$h" ip -4 addr show dev eth0 | grep -q inet; then
        fail "$h has an IPv4 address on the lab link"
    fi
done
lab_proxies_start h1 h2 h3

lab_apt h1 update || fail "apt-get update in h1 failed"
lab_apt h1 download || fail "apt-get download in h1 failed"
apt_check_downloads "$(lab_apt_dest h1)"
log "h1 has the set ($(( $(now) - t0 )) s); its proxy: $(lab_proxy_sources h1)"

# h1 announces what it holds; wait (bounded) until a lookup over IPv6 from h3
# through h2's node finds it.
big_key=$(lab_key_of "$FIXTURE_ROOT/$FIXTURE_BIG")
lab_wait_announced h3 "$big_key" h2 h1 15 ||
    fail "a DHT lookup from h3 does not find h1 holding the big package"

ts=$(now)
lab_apt h2 update || fail "apt-get update in h2 failed"
lab_apt h2 download || fail "apt-get download in h2 failed"
apt_check_downloads "$(lab_apt_dest h2)"
src2=$(lab_proxy_sources h2)
log "h2 has the set ($(( $(now) - ts )) s); its proxy: $src2"

for h in h1 h2 h3; do lab_proxy_stop "$h"; done
for h in h1 h2; do check_cache_not_corrupt "$T/lab/$h/cache"; done
grep -q "http://\[$LAB_NET6" "$(lab_proxy_log h2)" ||
    log "note: h2's log names no peer URL (log level $LAB_LOG_LEVEL)"

lab_deb_served_counts > "$T/counts"
sed 's/^/    mirror served /' "$T/counts"
while read -r cnt path; do
    [ "$cnt" -eq 1 ] || fail "the mirror served $path $cnt times (want once: h2 from h1)"
done < "$T/counts"
case " $src2" in
    *" mirror="*) fail "h2 got .deb files from the mirror: $src2" ;;
    *" peer="*) ;;
    *) fail "h2's proxy names no peer source: $src2" ;;
esac
log "done in $(( $(now) - t0 )) s"
