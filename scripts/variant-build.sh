#!/bin/sh
# Build a variant of apt-dht (fuzzing, ASan, ...) in build-NAME/ without touching the
# main build: the working tree's files (tracked and new, not ignored) are copied to
# build-NAME/src and configured there with the given arguments.
# usage: scripts/variant-build.sh NAME [CONFIGURE-ARGS...]; prints the build directory.
set -eu
cd "$(dirname "$0")/.."
name=$1
shift
top=$(pwd)
src="$top/build-$name/src"
mkdir -p "$src"
if git rev-parse --git-dir >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -p -t "$src" 2>/dev/null || true
else
    tar -C "$top" --exclude='./build-*' -cf - . | tar -C "$src" -xf -
fi
cd "$src"
[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi >/dev/null 2>&1
if [ ! -f Makefile ] || [ "$(cat .variant-args 2>/dev/null)" != "$*" ]; then
    ./configure "$@" >/dev/null
    printf '%s' "$*" > .variant-args
fi
make -j"$(nproc)" >/dev/null
echo "$src"
