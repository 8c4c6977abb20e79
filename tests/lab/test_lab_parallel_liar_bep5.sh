#!/bin/sh
# The LAN lab asking at once with one liar, in mainline mode: test_lab_parallel_liar.sh
# with every proxy's DHT speaking bep5. Needs root; SKIP otherwise.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
LAB_DHT_MODE=bep5
LAB_LIAR=h2
. "$top_srcdir/tests/lab/test_lab_parallel.sh"
