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
if ! make -j"$(nproc)" check; then
    # The end of the log of every test that failed (the .trs files say which).
    # find -exec: with no .trs at all (a build error), grep must not wait on stdin.
    for trs in $(find tests -name '*.trs' -exec grep -lE '^:test-result: (FAIL|ERROR|XPASS)' {} +); do
        echo "=== ${trs%.trs}.log"
        tail -n 150 "${trs%.trs}.log"
    done
    exit 1
fi
