#!/bin/sh
# The LAN lab asking at once with one liar: test_lab_parallel.sh with host2's
# proxy corrupting every upload (test hook APT_DHT_TEST_CORRUPT_UPLOADS=1).
# apt gets correct files everywhere, the others ban host2, and the mirror
# serves each .deb at most twice. Needs root; SKIP otherwise.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
LAB_LIAR=h2
. "$top_srcdir/tests/lab/test_lab_parallel.sh"
