#!/bin/sh
# The LAN lab asking at once: four hosts, each with its own apt-dht-proxy,
# run apt-get update + download of every fixture package at the same moment
# (one barrier: they all wait for one file to appear). Every apt run must
# succeed with correct files, and the mirror's log must show each .deb served
# exactly once for the whole lab: the hosts that missed at the same instant
# asked the file's owner among the LAN nodes, which fetched it once and
# relayed it while it arrived. Needs root; SKIP otherwise.
#
# Variants (sourced by test_lab_parallel_*.sh): LAB_DHT_MODE (bep5),
# LAB_LIAR=HOST (that host's proxy corrupts every upload, with the test hook
# APT_DHT_TEST_CORRUPT_UPLOADS=1: apt must still get correct files
# everywhere, the others must ban it, and the mirror may serve a .deb twice),
# LAB_UNPLUG=1 (with a rate-limited mirror, LAB_MIRROR_ARGS="--rate N": the
# first host that starts relaying the big package to a peer has its veth set
# down in the bridge namespace mid-transfer; the others must finish from
# another source with no apt error; the unplugged host is not checked).

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$top_srcdir/tests/lab/lab.sh"

: "${LAB_LIAR:=}"
: "${LAB_UNPLUG:=}"
LAB_APT_QUIET=1
lab_require_node
t0=$(now)
lab_up 4 ${LAB_MIRROR_ARGS:-}
lab_mcast_check h1 h4 || fail "multicast does not cross the lab bridge"
# The liar must be asked: it owns some of the keys (random ids may give it none).
[ -z "$LAB_LIAR" ] || lab_owner_ids "$LAB_LIAR" 2 h1 h2 h3 h4
for h in h1 h2 h3 h4; do
    if [ "$h" = "$LAB_LIAR" ]; then
        export APT_DHT_TEST_CORRUPT_UPLOADS=1
        lab_proxy_start "$h"
        unset APT_DHT_TEST_CORRUPT_UPLOADS
    else
        lab_proxy_start "$h"
    fi
done
sleep "${LAB_SETTLE:-3}" # LAN discovery: every node in every routing table

# One barrier for all four: each waits for $T/go, then update + download.
for h in h1 h2 h3 h4; do
    (
        wait_every 0.02 60 test -f "$T/go" || exit 99
        if lab_apt "$h" update && lab_apt "$h" download; then
            echo 0 > "$T/rc.$h"
        else
            echo 1 > "$T/rc.$h"
        fi
    ) &
    track_pid $!
    eval "job_$h=\$!"
done
: > "$T/go"
log "go: h1..h4 ask at once${LAB_LIAR:+ ($LAB_LIAR lies)}${LAB_UNPLUG:+ ($LAB_UNPLUG will be unplugged)}"

if [ -n "$LAB_UNPLUG" ]; then
    # The first host that relays the big package while it still arrives loses its link.
    big_name=$(basename "$FIXTURE_BIG")
    _relaying() {
        for _r in h1 h2 h3 h4; do
            if grep -q "relaying .*$big_name" "$(lab_proxy_log "$_r")"; then
                LAB_UNPLUG=$_r
                return 0
            fi
        done
        return 1
    }
    wait_every 0.05 60 _relaying || fail "no host relayed $big_name"
    ip -n "$LAB_ID-br" link set "v-$LAB_UNPLUG" down || fail "cannot unplug $LAB_UNPLUG"
    log "$LAB_UNPLUG unplugged while it relayed $big_name"
fi

for h in h1 h2 h3 h4; do
    [ "$h" = "$LAB_UNPLUG" ] || eval "wait \$job_$h" || true
done
for h in h1 h2 h3 h4; do
    [ "$h" = "$LAB_UNPLUG" ] && continue
    rc=$(cat "$T/rc.$h" 2>/dev/null || echo 1)
    if [ "$rc" != 0 ]; then
        tail -n 30 "$(_lab_apt_dir "$h")/log/all.log" >&2
        fail "apt in $h failed"
    fi
    apt_check_downloads "$(lab_apt_dest "$h")"
    log "$h has a correct set; its proxy: $(lab_proxy_sources "$h")"
done
log "all hosts done in $(( $(now) - t0 )) s"

if [ -n "$LAB_LIAR" ]; then
    bad=$(lab_addr "$LAB_LIAR"):$LAB_PROXY_PORT
    banned=0
    for h in h1 h2 h3 h4; do
        [ "$h" = "$LAB_LIAR" ] && continue
        if grep -q "peer $bad sent bad data" "$(lab_proxy_log "$h")"; then
            banned=$((banned + 1))
            log "$h banned the liar: $(grep -c "peer $bad sent bad data" "$(lab_proxy_log "$h")") bad transfers"
        fi
    done
    [ "$banned" -ge 1 ] || fail "no host banned the liar $bad"
fi

for h in h1 h2 h3 h4; do lab_proxy_stop "$h"; done
for h in h1 h2 h3 h4; do check_cache_not_corrupt "$T/lab/$h/cache"; done

lab_deb_served_counts > "$T/counts"
sed 's/^/    mirror served /' "$T/counts"
most=1
[ -z "$LAB_LIAR$LAB_UNPLUG" ] || most=2
while read -r cnt path; do
    [ "$cnt" -ge 1 ] && [ "$cnt" -le "$most" ] ||
        fail "the mirror served $path $cnt times (at most $most)"
done < "$T/counts"
log "the mirror served each .deb at most $most time(s); done in $(( $(now) - t0 )) s"
