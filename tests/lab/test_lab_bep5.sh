#!/bin/sh
# The LAN lab in mainline mode: the sharing test (test_lab_share.sh) with
# every proxy's DHT speaking bep5 (BitTorrent mainline dialect) instead of
# apt-dht. Needs root; SKIP otherwise.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
LAB_DHT_MODE=bep5
. "$top_srcdir/tests/lab/test_lab_share.sh"
