#!/bin/sh
# Quick start, part two: set up, build and run the whole test suite (make check).
# With CI=true, warnings are errors.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh --test
if [ "${CI:-}" = "true" ]; then
    sh scripts/build.sh --enable-werror
else
    sh scripts/build.sh
fi
make -j"$(nproc)" check || { cat tests/*/*.log 2>/dev/null | tail -200; exit 1; }
