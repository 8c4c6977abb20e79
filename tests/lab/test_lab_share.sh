#!/bin/sh
# The LAN lab, sharing: four hosts, each with its own apt-dht-proxy (LAN
# discovery, no bootstrap list, dht.mode from LAB_DHT_MODE, apt-dht by
# default). host1 runs apt-get update + download of every fixture package,
# then hosts 2-4 one after the other. Every apt run succeeds with correct
# files, and the mirror's log shows each .deb served exactly once for the
# whole lab: the other hosts got them from peers. Needs root; SKIP otherwise.
#
# LAB_P2P_OPTIONAL=1 reports the peer-to-peer assertions instead of failing
# on them (to check the rest of the lab on a daemon without sharing).

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/lab/lab.sh"

lab_require_node
t0=$(now)
lab_up 4
lab_mcast_check h1 h4 || fail "multicast does not cross the lab bridge"
lab_proxies_start h1 h2 h3 h4

# host1 first: everything from the mirror.
lab_apt h1 update || fail "apt-get update in h1 failed"
lab_apt h1 download || fail "apt-get download in h1 failed"
apt_check_downloads "$(lab_apt_dest h1)"
log "h1 has the set ($(( $(now) - t0 )) s); its proxy: $(lab_proxy_sources h1)"

# host1 announces what it holds; wait (bounded) until a lookup finds it.
big_key=$(lab_key_of "$FIXTURE_ROOT/$FIXTURE_BIG")
lab_p2p_check 'lab_wait_announced h2 "$big_key" h3 h1 15' \
    "a DHT lookup from h2 finds h1 holding the big package"

# hosts 2-4, one after the other.
for h in h2 h3 h4; do
    ts=$(now)
    lab_apt "$h" update || fail "apt-get update in $h failed"
    lab_apt "$h" download || fail "apt-get download in $h failed"
    apt_check_downloads "$(lab_apt_dest "$h")"
    log "$h has the set ($(( $(now) - ts )) s); its proxy: $(lab_proxy_sources "$h")"
done

for h in h1 h2 h3 h4; do lab_proxy_stop "$h"; done
for h in h1 h2 h3 h4; do check_cache_not_corrupt "$T/lab/$h/cache"; done

# The mirror, for the whole lab: each .deb once.
lab_deb_served_counts > "$T/counts"
sed 's/^/    mirror served /' "$T/counts"
set -- $(lab_mirror_served '*.deb')
total_debs=$(wc -l < "$FIXTURE_DIR/packages.txt")
set_bytes=$(awk '{ s += $5 } END { print s }' "$FIXTURE_DIR/packages.txt")
log "mirror: $1 .deb answers ($total_debs packages), $2 bytes (set: $set_bytes bytes)"
while read -r cnt path; do
    lab_p2p_check '[ "$cnt" -eq 1 ]' "the mirror served $path exactly once for the lab (got $cnt)"
done < "$T/counts"

log "done in $(( $(now) - t0 )) s${LAB_P2P_MISSING:+; $LAB_P2P_MISSING peer-to-peer assertions not met}"
