#!/bin/sh
# The IPv6-only LAN lab (test_lab_ipv6.sh) with every proxy's DHT speaking
# bep5, whose IPv6 contacts travel as BEP 32 nodes6. Needs root; SKIP otherwise.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
LAB_DHT_MODE=bep5
. "$top_srcdir/tests/lab/test_lab_ipv6.sh"
