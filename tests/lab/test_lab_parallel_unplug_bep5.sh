#!/bin/sh
# The LAN lab asking at once, a relay unplugged, in mainline mode:
# test_lab_parallel_unplug.sh with every proxy's DHT speaking bep5. Needs root; SKIP
# otherwise.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
LAB_DHT_MODE=bep5
LAB_UNPLUG=1
LAB_MIRROR_ARGS="--rate 8000000"
. "$top_srcdir/tests/lab/test_lab_parallel.sh"
