#!/bin/sh
# The LAN lab, a dishonest peer: host3 runs no proxy but a fake peer
# (fake-peer.py) that answers /~/sha256/<hex> for every pool file with the
# right length and wrong bytes (the real file with its last byte inverted),
# and announces itself in the DHT as a holder of each of them (apt-dht-node
# announce, key = SHA-256 truncated to 160 bits). host2 then fetches every
# fixture package through its proxy: apt must get correct files all the
# same (from the mirror), and host2's proxy must log that it banned the fake
# peer. Needs root; SKIP otherwise. LAB_P2P_OPTIONAL=1: see test_lab_share.sh.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/lab/lab.sh"

lab_require_node
t0=$(now)
lab_up 3
lab_proxies_start h1 h2

# The fake peer, on the port a proxy would use.
bad=$(lab_addr h3)
lab_bg h3 "$T/lab/fake-peer.out" python3 "$top_srcdir/tests/lab/fake-peer.py" \
    --bind "$bad" --port "$LAB_PROXY_PORT" --root "$FIXTURE_ROOT" \
    --map "$FIXTURE_DIR/pool.sha256" --log "$T/lab/fake-peer.log" --corrupt tail
lab_wait_tcp h3 "$bad" "$LAB_PROXY_PORT" 10 || fail "the fake peer did not start"
: >> "$T/lab/fake-peer.log"

# It claims every pool file, through the proxies' DHT nodes (in parallel,
# each bounded).
LAB_DHT_VIA="h1 h2"
pids=""
n=0
while read -r sum path; do
    n=$((n + 1))
    key=$(printf '%s' "$sum" | cut -c1-40)
    lab_dht_announce h3 "$key" "$LAB_PROXY_PORT" 10 > "$T/lab/announce.$n" 2>&1 &
    pids="$pids $!"
done < "$FIXTURE_DIR/pool.sha256"
stored=0
for p in $pids; do
    if wait "$p"; then stored=$((stored + 1)); fi
done
log "fake peer announcements stored: $stored of $n ($(head -n 1 "$T/lab/announce.1"))"
big_key=$(lab_key_of "$FIXTURE_ROOT/$FIXTURE_BIG")
lab_p2p_check 'lab_dht_get h2 "$big_key" h1 5 | grep -q "$bad:$LAB_PROXY_PORT"' \
    "a DHT lookup through h1 finds the fake peer's announcement"

# host2 asks for everything: correct files whatever the fake peer sends.
lab_apt h2 update || fail "apt-get update in h2 failed"
lab_apt h2 download || fail "apt-get download in h2 failed"
apt_check_downloads "$(lab_apt_dest h2)"
log "h2 has a correct set; its proxy: $(lab_proxy_sources h2)"

asked=$(grep -c ' GET ' "$T/lab/fake-peer.log" || true)
log "the fake peer answered $asked GET requests"
sed 's/^/    fake peer: /' "$T/lab/fake-peer.log" | head -n 20
lab_p2p_check '[ "$asked" -ge 1 ]' "h2's proxy tried the fake peer"
bans=$(grep -i 'ban' "$(lab_proxy_log h2)" | grep -c "$bad" || true)
grep -i 'ban' "$(lab_proxy_log h2)" | sed 's/^/    h2 proxy: /' | head -n 5
lab_p2p_check '[ "$bans" -ge 1 ]' "h2's proxy logged that it banned the fake peer $bad"

# Once banned, the peer is not asked again: h1 fetching the same set may
# try it, but h2 asking again (fresh apt, cached files) must not.
before=$asked
rm -rf "$(lab_apt_dest h2)"
lab_apt h2 download || fail "second apt-get download in h2 failed"
apt_check_downloads "$(lab_apt_dest h2)"
after=$(grep -c ' GET ' "$T/lab/fake-peer.log" || true)
check_eq "$before" "$after" "fake peer requests after h2 had everything cached"

for h in h1 h2; do lab_proxy_stop "$h"; done
check_cache_not_corrupt "$T/lab/h2/cache"

# The mirror served each .deb once: to h2, after (or instead of) the bad peer.
lab_deb_served_counts > "$T/counts"
while read -r cnt path; do
    check_eq 1 "$cnt" "times the mirror served $path"
done < "$T/counts"

log "done in $(( $(now) - t0 )) s${LAB_P2P_MISSING:+; $LAB_P2P_MISSING peer-to-peer assertions not met}"
