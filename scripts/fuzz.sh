#!/bin/sh
# Build every libFuzzer target (tests/fuzz/fuzz_*.c) with clang in build-fuzz/ and run
# each for FUZZ_SECONDS (default 20) on its seed corpus tests/fuzz/corpus/NAME/.
# A crash, leak or sanitizer report fails the run and leaves the reproducer in build-fuzz/.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
secs=${FUZZ_SECONDS:-20}
[ -x configure ] || autoreconf -fi
mkdir -p build-fuzz
cd build-fuzz
[ -f Makefile ] || "$top/configure" CC=clang --enable-fuzzing >/dev/null
make -j"$(nproc)" all >/dev/null
targets=$(find tests/fuzz -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x | sort)
[ -n "$targets" ] || { echo "fuzz.sh: no fuzz targets built" >&2; exit 1; }
for t in $targets; do
    name=$(basename "$t")
    work="corpus-$name"
    mkdir -p "$work"
    seeds="$top/tests/fuzz/corpus/$name"
    [ -d "$seeds" ] || seeds=""
    echo "fuzz: $name for ${secs}s"
    "$t" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=0 "$work" $seeds >"$name.log" 2>&1 \
        || { tail -40 "$name.log"; echo "fuzz: $name FAILED" >&2; exit 1; }
done
echo "fuzz: all targets ran clean"
