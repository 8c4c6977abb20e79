#!/bin/sh
# The LAN lab asking at once in mainline mode: test_lab_parallel.sh with every
# proxy's DHT speaking bep5. Needs root; SKIP otherwise.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
LAB_DHT_MODE=bep5
. "$top_srcdir/tests/lab/test_lab_parallel.sh"
