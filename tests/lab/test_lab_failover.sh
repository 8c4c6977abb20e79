#!/bin/sh
# The LAN lab, a holder leaves: host1 fetches every fixture package (from the
# mirror) and host3 after it (from host1); then host1's proxy stops, while the
# DHT still lists it as a holder. host2 must still get every file, correct,
# from another peer (host3) or the mirror, and without a long wait on the
# dead peer. With sharing, the mirror still served each .deb once.
# Needs root; SKIP otherwise. LAB_P2P_OPTIONAL=1: see test_lab_share.sh.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/lab/lab.sh"

lab_require_node
t0=$(now)
lab_up 3
lab_proxies_start h1 h2 h3

big_key=$(lab_key_of "$FIXTURE_ROOT/$FIXTURE_BIG")
for h in h1 h3; do
    ts=$(now)
    lab_apt "$h" update || fail "apt-get update in $h failed"
    lab_apt "$h" download || fail "apt-get download in $h failed"
    apt_check_downloads "$(lab_apt_dest "$h")"
    log "$h has the set ($(( $(now) - ts )) s); its proxy: $(lab_proxy_sources "$h")"
    [ "$h" = h3 ] || lab_p2p_check 'lab_wait_announced h2 "$big_key" h3 h1 15' \
        "a DHT lookup from h2 finds h1 holding the big package"
done
lab_p2p_check 'lab_wait_announced h2 "$big_key" h1 h3 15' \
    "a DHT lookup from h2 finds h3 holding the big package"

# host1 leaves without a word to the DHT (its announcements stay until they expire).
lab_proxy_stop h1
log "h1's proxy stopped"

ts=$(now)
lab_apt h2 update || fail "apt-get update in h2 failed after h1 left"
lab_apt h2 download || fail "apt-get download in h2 failed after h1 left"
apt_check_downloads "$(lab_apt_dest h2)"
h2_time=$(( $(now) - ts ))
log "h2 has the set in $h2_time s with h1 gone; its proxy: $(lab_proxy_sources h2)"
dead=$(grep -c "$(lab_addr h1)" "$(lab_proxy_log h2)" || true)
log "h2's proxy log names h1 ($(lab_addr h1)) on $dead lines"

for h in h2 h3; do lab_proxy_stop "$h"; done
for h in h1 h2 h3; do check_cache_not_corrupt "$T/lab/$h/cache"; done

lab_deb_served_counts > "$T/counts"
sed 's/^/    mirror served /' "$T/counts"
while read -r cnt path; do
    lab_p2p_check '[ "$cnt" -eq 1 ]' "the mirror served $path exactly once for the lab (got $cnt)"
done < "$T/counts"

log "done in $(( $(now) - t0 )) s${LAB_P2P_MISSING:+; $LAB_P2P_MISSING peer-to-peer assertions not met}"
