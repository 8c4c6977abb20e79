#!/bin/sh
# The swarm test over IPv6: 20 apt-dht-node processes on ::1 per dialect,
# store on one, find from all (the peer printed as [::1]:PORT). Skipped
# when the host has no IPv6 loopback.
if ! python3 -c 'import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))' 2>/dev/null; then
    echo "test_swarm6.sh: SKIP: no IPv6 loopback (::1)" >&2
    exit 77
fi
DHT_ADDR=::1 SWARM_NODES=${SWARM_NODES:-20} exec sh "$(dirname "$0")/test_swarm.sh"
