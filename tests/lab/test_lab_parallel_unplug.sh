#!/bin/sh
# The LAN lab asking at once, a relay unplugged: test_lab_parallel.sh with the
# mirror at 8 MB/s (the big package takes about 5 s) and the first host that
# relays it to a peer losing its link mid-transfer (its veth set down in the
# bridge namespace). The other hosts finish from another source with no apt
# error; the mirror serves each .deb at most twice. Needs root; SKIP otherwise.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
LAB_UNPLUG=1
LAB_MIRROR_ARGS="--rate 8000000"
. "$top_srcdir/tests/lab/test_lab_parallel.sh"
