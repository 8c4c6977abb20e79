#!/bin/sh
# The loopback peer-to-peer test in the mainline (bep5) dialect.
: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
P2P_MODE=bep5
export P2P_MODE
. "$top_srcdir/tests/integration/p2p/test_p2p_loopback.sh"
