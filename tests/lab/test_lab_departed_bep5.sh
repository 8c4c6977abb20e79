#!/bin/sh
# The LAN lab, a holder departs (test_lab_departed.sh, both kinds) with every
# proxy's DHT speaking bep5 (BitTorrent mainline dialect). Needs root; SKIP
# otherwise.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
LAB_DHT_MODE=bep5
. "$top_srcdir/tests/lab/test_lab_departed.sh"
