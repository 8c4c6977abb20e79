#!/bin/sh
# Real-process swarm test for the DHT, in each dialect (apt-dht and bep5):
# 50 `apt-dht-node run` processes on 127.0.0.1, each bootstrapped from the
# first three nodes and from its predecessor. A one-shot node announces a
# random key with a chosen port through one node; then 50 one-shot getters,
# each bootstrapped from a different node, must all find 127.0.0.1:PORT.
#
# Environment: SWARM_NODES (default 50), SWARM_MODES (default
# "apt-dht bep5"), SWARM_PARALLEL getters at a time (default 10),
# DHT_ADDR=::1 runs the same swarm over IPv6 (test_swarm6.sh does),
# KEEP_WORK=1 keeps the logs.

. "$(dirname "$0")/lib.sh"
dht_init

NODES=${SWARM_NODES:-50}
MODES=${SWARM_MODES:-apt-dht bep5}
PARALLEL=${SWARM_PARALLEL:-10}
START_BUDGET=40    # seconds for all nodes of one dialect to answer pings
GET_TIMEOUT=20     # seconds for one one-shot get

# run_swarm MODE: the whole scenario for one dialect.
run_swarm() {
    mode=$1
    ports=$(dht_free_ports $((NODES + 1)))
    # The last free port is the one the announcer advertises; nothing
    # listens there, the DHT only carries the contact.
    peer_port=${ports##* }
    ports=${ports% *}
    set -- $ports
    first=$1 second=${2:-$1} third=${3:-$1}

    t0=$(now)
    n=0 prev=""
    pids=""
    for port in $ports; do
        if [ $n -eq 0 ]; then
            dht_start_node "$mode" "$port"
        else
            boot="$first"
            [ $n -gt 1 ] && boot="$boot $second"
            [ $n -gt 2 ] && boot="$boot $third"
            [ $n -gt 3 ] && boot="$boot $prev"
            # shellcheck disable=SC2086
            dht_start_node "$mode" "$port" $boot
        fi
        pids="$pids $LAST_PID"
        prev=$port
        n=$((n + 1))
    done

    deadline=$(($(now) + START_BUDGET))
    for port in $ports; do
        dht_wait_ping "$mode" "$port" "$deadline" ||
            fail "[$mode] node on port $port does not answer ping within ${START_BUDGET}s"
    done
    for pid in $pids; do
        kill -0 "$pid" 2>/dev/null || fail "[$mode] node pid $pid died"
    done
    log "[$mode] $NODES nodes up and answering in $(($(now) - t0))s"
    # Let the nodes' start-up lookups (own id) fill their routing tables.
    sleep 2

    key=$(dht_random_key)
    want=$(dht_hostport "$peer_port")
    # Announce through a node in the middle of the chain.
    set -- $ports
    shift $((NODES / 3))
    via=$1
    timeout 30 "$NODE" --mode "$mode" --bind "$DHT_ADDR" \
        --bootstrap "$(dht_hostport "$via")" announce "$key" "$peer_port" \
        >"$WORK/announce-$mode.log" 2>&1 ||
        fail "[$mode] announce $key $peer_port via $via failed (exit $?): $(cat "$WORK/announce-$mode.log")"
    log "[$mode] announced $key -> $want via node $via"

    # One getter per node, bootstrapped from that node only; PARALLEL at a time.
    mkdir -p "$WORK/get-$mode"
    t1=$(now)
    batch=""
    count=0
    for port in $ports; do
        (
            timeout "$GET_TIMEOUT" "$NODE" --mode "$mode" --bind "$DHT_ADDR" \
                --bootstrap "$(dht_hostport "$port")" get "$key" \
                >"$WORK/get-$mode/$port.out" 2>"$WORK/get-$mode/$port.err"
            echo $? >"$WORK/get-$mode/$port.rc"
        ) &
        track_pid $!
        batch="$batch $!"
        count=$((count + 1))
        if [ $((count % PARALLEL)) -eq 0 ]; then
            for b in $batch; do wait "$b"; untrack_pid "$b"; done
            batch=""
        fi
    done
    for b in $batch; do wait "$b"; untrack_pid "$b"; done

    ok=0 failed=""
    for port in $ports; do
        if [ "$(cat "$WORK/get-$mode/$port.rc")" = 0 ] &&
            grep -qxF "$want" "$WORK/get-$mode/$port.out"; then
            ok=$((ok + 1))
        else
            failed="$failed $port"
            log "[$mode] get via $port: exit $(cat "$WORK/get-$mode/$port.rc"), out: $(tr '\n' ' ' <"$WORK/get-$mode/$port.out") err: $(cat "$WORK/get-$mode/$port.err")"
        fi
    done
    log "[$mode] $ok/$NODES getters found $want in $(($(now) - t1))s"

    for pid in $pids; do
        kill -0 "$pid" 2>/dev/null || fail "[$mode] node pid $pid died during the test"
    done
    # Stop this dialect's nodes before the next one and check they obey SIGTERM.
    kill -TERM $pids 2>/dev/null
    for pid in $pids; do
        wait "$pid"
        rc=$?
        untrack_pid "$pid"
        [ $rc -eq 0 ] || [ $rc -eq 143 ] ||
            log "[$mode] node pid $pid exited with status $rc on SIGTERM"
    done
    [ -z "$failed" ] || fail "[$mode] getters bootstrapped from ports$failed did not find the value"
}

for m in $MODES; do
    run_swarm "$m"
done
log "PASS"
exit 0
