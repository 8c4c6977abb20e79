#!/bin/sh
# Build every libFuzzer target (tests/fuzz/fuzz_*.c) with clang in build-fuzz/ and run
# each for FUZZ_SECONDS (default 20) on its seed corpus tests/fuzz/corpus/NAME/.
# A crash, leak or sanitizer report fails the run and leaves the reproducer and the log
# in build-fuzz/.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
secs=${FUZZ_SECONDS:-20}
dir=$(sh scripts/variant-build.sh fuzz CC=clang --enable-fuzzing)
out="$top/build-fuzz"
targets=$(find "$dir/tests/fuzz" -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x | sort)
[ -n "$targets" ] || { echo "fuzz.sh: no fuzz targets built" >&2; exit 1; }
for t in $targets; do
    name=$(basename "$t")
    work="$out/corpus-$name"
    mkdir -p "$work"
    seeds="$top/tests/fuzz/corpus/$name"
    [ -d "$seeds" ] || seeds=""
    echo "fuzz: $name for ${secs}s"
    (cd "$out" && "$t" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "$work" $seeds >"$name.log" 2>&1) \
        || { tail -40 "$out/$name.log"; echo "fuzz: $name FAILED" >&2; exit 1; }
    grep -E '^stat::number_of_executed_units' "$out/$name.log" | sed "s/^/fuzz: $name /" || true
done
echo "fuzz: all targets ran clean"
