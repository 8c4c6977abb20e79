#!/bin/sh
# Mainline (bep5) interoperability with libtorrent, on 127.0.0.1 only.
#
# Part 1, a DHT made only of libtorrent sessions (tests/dht/lt_node.py):
#   a) libtorrent announces KEY_A (a magnet torrent with that info-hash);
#      `apt-dht-node --mode bep5 get KEY_A`, bootstrapped from a libtorrent
#      node, must print the announcing session's 127.0.0.1:PORT;
#   b) `apt-dht-node --mode bep5 announce KEY_B PORT`, bootstrapped from a
#      libtorrent node, must succeed (only libtorrent nodes can store it);
#      a fresh libtorrent session's get_peers must then find 127.0.0.1:PORT.
# Part 2, a mixed DHT: three `apt-dht-node --mode bep5 run` nodes join the
#   libtorrent sessions; a libtorrent getter bootstrapped only from one of
#   our nodes must find KEY_A and KEY_B, and our getter bootstrapped only
#   from our own node must find KEY_A.
#
# Needs Debian's python3-libtorrent. When it is missing, the test installs
# it if it runs as root with apt-get (LT_NO_INSTALL=1 prevents that), and
# otherwise exits 77 (skipped). LT_PYTHON=/path/to/python3 chooses the
# interpreter that must import libtorrent.

. "$(dirname "$0")/lib.sh"
dht_init

LT_SESSIONS=${LT_SESSIONS:-6}
LT=$(dirname "$0")/lt_node.py

LTPY=$(dht_python_with_libtorrent)
if [ -z "$LTPY" ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 ||
        [ "${LT_NO_INSTALL:-0}" = 1 ]; then
        skip "python3-libtorrent is not installed (and this test installs it only as root with apt-get)"
    fi
    log "installing python3-libtorrent"
    export DEBIAN_FRONTEND=noninteractive
    if ! timeout 300 apt-get install -y -q python3-libtorrent >"$WORK/apt.log" 2>&1; then
        timeout 300 apt-get update -q >>"$WORK/apt.log" 2>&1
        timeout 300 apt-get install -y -q python3-libtorrent >>"$WORK/apt.log" 2>&1
    fi
    LTPY=$(dht_python_with_libtorrent)
    if [ -z "$LTPY" ]; then
        skip "could not install python3-libtorrent: $(tail -n 1 "$WORK/apt.log")"
    fi
fi
log "libtorrent $("$LTPY" -c 'import libtorrent as lt; print(lt.__version__)') via $LTPY"

KEY_A=$(dht_random_key)
KEY_B=$(dht_random_key)
set -- $(dht_free_ports 4)
PEER_PORT=$1
OUR1=$2 OUR2=$3 OUR3=$4

# --- Part 1: libtorrent-only DHT -----------------------------------------
"$LTPY" "$LT" serve --sessions "$LT_SESSIONS" --announce "$KEY_A" \
    --ready "$WORK/lt.ready" --deadline 150 >"$WORK/lt-serve.log" 2>&1 &
LT_PID=$!
track_pid $LT_PID
wait_file "$LT_PID" "$WORK/lt.ready" 60
case $? in
1) fail "libtorrent sessions not ready (bootstrapped and announced) within 60s" ;;
2) fail "lt_node.py serve exited early" ;;
esac
LT_PORTS=$(cut -d: -f2 "$WORK/lt.ready" | tr '\n' ' ')
set -- $LT_PORTS
LT_ANNOUNCER=$1     # session 0 announced KEY_A with its listen port
LT_OTHER=$2
log "libtorrent sessions on ports: $LT_PORTS; KEY_A=$KEY_A announced by :$LT_ANNOUNCER"

# 1a: libtorrent announced, we look it up.
if ! timeout 40 "$NODE" --mode bep5 --bind 127.0.0.1 \
        --bootstrap "127.0.0.1:$LT_OTHER" get "$KEY_A" \
        >"$WORK/get-a.out" 2>"$WORK/get-a.err"; then
    fail "1a: apt-dht-node get KEY_A via libtorrent failed: $(cat "$WORK/get-a.err")"
fi
grep -qx "127.0.0.1:$LT_ANNOUNCER" "$WORK/get-a.out" ||
    fail "1a: apt-dht-node get printed '$(tr '\n' ' ' <"$WORK/get-a.out")', expected 127.0.0.1:$LT_ANNOUNCER"
log "1a: apt-dht-node found libtorrent's announce: $(tr '\n' ' ' <"$WORK/get-a.out")"

# 1b: we announce into a libtorrent-only DHT, libtorrent looks it up.
if ! timeout 40 "$NODE" --mode bep5 --bind 127.0.0.1 \
        --bootstrap "127.0.0.1:$LT_OTHER" announce "$KEY_B" "$PEER_PORT" \
        >"$WORK/announce-b.log" 2>&1; then
    fail "1b: apt-dht-node announce KEY_B to libtorrent nodes failed: $(cat "$WORK/announce-b.log")"
fi
if ! timeout 60 "$LTPY" "$LT" get "$KEY_B" --bootstrap "127.0.0.1:$LT_OTHER" \
        --expect "127.0.0.1:$PEER_PORT" --timeout 45 \
        >"$WORK/lt-get-b.out" 2>"$WORK/lt-get-b.err"; then
    fail "1b: libtorrent did not find our announce: $(cat "$WORK/lt-get-b.err")"
fi
log "1b: libtorrent found apt-dht-node's announce: $(tr '\n' ' ' <"$WORK/lt-get-b.out")"

# --- Part 2: our nodes join the libtorrent DHT ---------------------------
dht_start_node bep5 "$OUR1" "$LT_ANNOUNCER" "$LT_OTHER"
dht_start_node bep5 "$OUR2" "$OUR1" "$LT_OTHER"
dht_start_node bep5 "$OUR3" "$OUR2" "$LT_ANNOUNCER"
deadline=$(($(now) + 20))
for p in $OUR1 $OUR2 $OUR3; do
    dht_wait_ping bep5 "$p" "$deadline" || fail "our node on :$p does not answer ping"
done
# Let our nodes' start-up lookups reach the libtorrent sessions.
sleep 3

for k in "$KEY_A 127.0.0.1:$LT_ANNOUNCER" "$KEY_B 127.0.0.1:$PEER_PORT"; do
    set -- $k
    if ! timeout 60 "$LTPY" "$LT" get "$1" --bootstrap "127.0.0.1:$OUR3" \
            --expect "$2" --timeout 45 >"$WORK/lt-get2.out" 2>"$WORK/lt-get2.err"; then
        fail "2: libtorrent bootstrapped from our node did not find $2 under $1: $(cat "$WORK/lt-get2.err")"
    fi
    log "2: libtorrent via our node :$OUR3 found $2"
done

if ! timeout 40 "$NODE" --mode bep5 --bind 127.0.0.1 \
        --bootstrap "127.0.0.1:$OUR3" get "$KEY_A" \
        >"$WORK/get-a2.out" 2>"$WORK/get-a2.err" ||
    ! grep -qx "127.0.0.1:$LT_ANNOUNCER" "$WORK/get-a2.out"; then
    fail "2: apt-dht-node get KEY_A via our node: '$(tr '\n' ' ' <"$WORK/get-a2.out")' $(cat "$WORK/get-a2.err")"
fi
log "2: apt-dht-node via our node :$OUR3 found 127.0.0.1:$LT_ANNOUNCER"

for pid in $LIB_PIDS; do
    kill -0 "$pid" 2>/dev/null || fail "a process (pid $pid) died during the test"
done
log "PASS"
exit 0
