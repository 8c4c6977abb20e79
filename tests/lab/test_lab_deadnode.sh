#!/bin/sh
# The LAN lab, a holder whose link dies (the DHT side of a departed host):
# h1 fetches the set from the mirror, h3 from h1; then h1's veth goes down in
# the bridge namespace, so its packets vanish without an answer of any kind.
# h2 then fetches the set. Its DHT node finds h1 out within a few round trips
# of its first lookup (two missed deadlines) and from then on its lookups do
# not ask h1 (every lookup for a .deb asks at most the two live nodes, h3 and
# h4) and hand the download h3 only: h2 gets every .deb from a peer and the
# mirror serves each .deb once for the lab. dht.mode from LAB_DHT_MODE.
# Needs root; SKIP otherwise.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
LAB_LOG_LEVEL=debug
. "$top_srcdir/tests/lab/lab.sh"

lab_require
t0=$(now)
lab_up 4
lab_proxies_start h1 h2 h3 h4

for h in h1 h3; do
    lab_apt "$h" update || fail "apt-get update in $h failed"
    lab_apt "$h" download || fail "apt-get download in $h failed"
    apt_check_downloads "$(lab_apt_dest "$h")"
    log "$h has the set; its proxy: $(lab_proxy_sources "$h")"
    sleep 2 # its announcements go out as each file is committed
done

ip -n "$LAB_ID-br" link set v-h1 down || hard_error "cannot take h1's link down"
log "h1's link is down"
log_mark=$(wc -l < "$(lab_proxy_log h2)")
lab_apt h2 update || fail "apt-get update in h2 failed"
lab_apt h2 download || fail "apt-get download in h2 failed"
apt_check_downloads "$(lab_apt_dest h2)"
src2=$(lab_proxy_sources h2)
log "h2 has the set; its proxy: $src2"

tail -n +"$((log_mark + 1))" "$(lab_proxy_log h2)" | grep 'dht: lookup .*done' > "$T/lookups" || true
sed 's/^/    h2: /' "$T/lookups"
[ -s "$T/lookups" ] || fail "h2's log shows no finished DHT lookup"
tail -n 6 "$T/lookups" > "$T/last"
while read -r line; do
    q=$(printf '%s\n' "$line" | sed -n 's/.*(\([0-9]*\) queries.*/\1/p')
    [ -n "$q" ] && [ "$q" -le 2 ] || fail "a later lookup of h2 asked more than the live nodes: $line"
done < "$T/last"
for h in h2 h3 h4; do lab_proxy_stop "$h"; done

case " $src2" in
    *" mirror="*) fail "h2 got .deb files from the mirror: $src2" ;;
    *" peer="*) ;;
    *) fail "h2's proxy names no peer source: $src2" ;;
esac
lab_deb_served_counts > "$T/counts"
while read -r cnt path; do
    [ "$cnt" -eq 1 ] || fail "the mirror served $path $cnt times (want once for the lab)"
done < "$T/counts"
log "done in $(( $(now) - t0 )) s"
