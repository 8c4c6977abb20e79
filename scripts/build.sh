#!/bin/sh
# Configure (once) and build apt-dht in the source tree. Extra arguments go to configure.
set -eu
cd "$(dirname "$0")/.."
[ -x configure ] || autoreconf -fi
if [ ! -f Makefile ] || [ "$#" -gt 0 ]; then
    ./configure "$@"
fi
make -j"$(nproc)"
