#!/bin/sh
# The LAN lab checks itself, with the DHT off: namespaces, bridge and
# addresses are in place and isolated (no route out), multicast to the LAN
# discovery group crosses the bridge, the mirror answers from its namespace,
# every host runs its own apt-dht-proxy listening on all addresses and a real
# apt-get through it (backend and proxy forms), apt from another host is
# refused, the mirror log counts what was served, and the lab is gone after
# lab_down. Needs root; prints SKIP otherwise.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/lab/lab.sh"

lab_require
t0=$(now)
lab_up 4

# --- topology and isolation -------------------------------------------------
for h in mirror h1 h2 h3 h4; do
    ns=$(lab_ns "$h")
    [ -z "$(ip -n "$ns" route show default)" ] || fail "$h has a default route"
    ip -n "$ns" -4 addr show dev eth0 | grep -q "inet $(lab_addr "$h")/24" \
        || fail "$h lacks its address $(lab_addr "$h")"
    # Only a route lookup, no packet: an address outside the lab is unreachable.
    if ip -n "$ns" route get 192.0.2.1 >/dev/null 2>&1; then
        fail "$h has a route to 192.0.2.1 (outside the lab)"
    fi
done
ip -n "$LAB_ID-br" -d link show br0 | grep -q 'mcast_snooping 0' || fail "multicast snooping is on"
check_eq 5 "$(ip -n "$LAB_ID-br" -o link show master br0 | wc -l)" "ports on the bridge"

# --- multicast (LAN discovery group) across the bridge ----------------------
lab_mcast_check h1 h2 || fail "multicast from h1 does not reach h2"
lab_mcast_check h4 h3 || fail "multicast from h4 does not reach h3"
lab_mcast_check h2 h4 || fail "multicast from h2 does not reach h4"
log "multicast 239.192.152.143:6772 crosses the bridge"

# --- DHT nodes find each other by LAN discovery alone ------------------------
# apt-dht-node in h1..h3 with no bootstrap list. One-shot nodes are
# resolve-only (they answer no query, so the pings LAN discovery triggers
# never reach their tables): a one-shot node in h4 announces a key through
# h1's node only, another in h2 looks it up through h3's node only. The
# lookup can only succeed when h1 and h3 found each other on the LAN.
# Both dialects.
node_bin=$(node_bin)
[ -x "$node_bin" ] || skip "apt-dht-node not built ($node_bin)"
key=$(printf 'apt-dht lab %s' "$$" | sha256sum | cut -c1-40)
for mode in apt-dht bep5; do
    pids=""
    for h in h1 h2 h3; do
        lab_bg "$h" "$T/lab/node-$mode-$h.log" "$node_bin" --mode "$mode" \
            --bind "$(lab_addr "$h")" --port 9977 --lan-discovery run
        pids="$pids $LAB_BG_PID"
    done
    sleep 1
    lab_exec h4 "$node_bin" --mode "$mode" --bind "$(lab_addr h4)" --port 9977 \
        --bootstrap "$(lab_addr h1):9977" --timeout 20 announce "$key" 4242 \
        > "$T/lab/announce-$mode.out" 2>&1 \
        || { cat "$T/lab/announce-$mode.out" >&2; fail "$mode: announce from h4 failed"; }
    lab_exec h2 "$node_bin" --mode "$mode" --bind "$(lab_addr h2)" --port 9978 \
        --bootstrap "$(lab_addr h3):9977" --timeout 20 get "$key" > "$T/lab/get-$mode.out" 2>&1 \
        || { cat "$T/lab/get-$mode.out" >&2; fail "$mode: get from h2 failed"; }
    grep -q "$(lab_addr h4):4242" "$T/lab/get-$mode.out" \
        || { cat "$T/lab/get-$mode.out" >&2; fail "$mode: h2 did not find h4's announcement"; }
    for p in $pids; do lab_stop_bg "$p"; done
    log "$mode: DHT nodes joined by LAN discovery; announced through h1, found through h3"
done

# --- the mirror -------------------------------------------------------------
for h in h1 h2 h3 h4; do
    lab_wait_tcp "$h" "$LAB_MIRROR_ADDR" "$LAB_MIRROR_PORT" 10 || fail "$h cannot reach the mirror"
done
st=$(lab_curl h1 -o /dev/null -w '%{http_code}' "$LAB_MIRROR_URL/debian/dists/bookworm/InRelease")
check_eq 200 "$st" "InRelease straight from the mirror"

# --- a proxy in every host, DHT off, apt through it --------------------------
LAB_DHT_MODE=off
for h in h1 h2 h3 h4; do lab_proxy_start "$h"; done
# The proxy listens on all addresses, but apt requests from another host are refused.
st=$(lab_curl h2 -o /dev/null -w '%{http_code}' \
     "$(lab_proxy_url h1)/fixture/dists/bookworm/InRelease" || true)
case $st in 2*) fail "h1's proxy served apt for h2 (status $st)" ;; esac
log "apt request from h2 to h1's proxy: status $st (refused)"

for h in h1 h2 h3; do
    lab_apt "$h" update || fail "apt-get update in $h failed"
    lab_apt "$h" download || fail "apt-get download in $h failed"
    apt_check_downloads "$(lab_apt_dest "$h")"
done
lab_apt h4 update proxy || fail "apt-get update in h4 (proxy form) failed"
lab_apt h4 download proxy || fail "apt-get download in h4 (proxy form) failed"
apt_check_downloads "$(lab_apt_dest h4)"

# Independent caches: the mirror served every .deb once per host.
lab_deb_served_counts > "$T/counts"
while read -r cnt path; do
    check_eq 4 "$cnt" "times the mirror served $path to 4 caching hosts"
done < "$T/counts"
set -- $(lab_mirror_served '*.deb')
log "mirror served $1 .deb answers, $2 bytes"

# A peer asking h1 for a cached file by hash (the answer depends on whether
# the daemon serves peers yet; only reported).
big_sum=$(sha256_of "$FIXTURE_ROOT/$FIXTURE_BIG")
st=$(lab_curl h2 -o /dev/null -w '%{http_code}' "$(lab_proxy_url h1)/~/sha256/$big_sum" || true)
log "peer request h2 -> h1 /~/sha256/<big>: status $st"

for h in h1 h2 h3 h4; do lab_proxy_stop "$h"; done
for h in h1 h2 h3 h4; do check_cache_not_corrupt "$T/lab/$h/cache"; done

# --- clean-up removes the whole lab ----------------------------------------
id=$LAB_ID
lab_down
[ -z "$(ip netns list | grep "^$id-" || true)" ] || fail "namespaces of $id left after lab_down"
log "done in $(( $(now) - t0 )) s"
