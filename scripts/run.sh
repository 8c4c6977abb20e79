#!/bin/sh
# Quick start, part one: set up, build and run the proxy in the foreground on
# 127.0.0.1:9977 with the shipped config and a cache under ./var/.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
sh scripts/build.sh
mkdir -p var/cache var/state
top=$(pwd)
exec ./apt-dht-proxy/apt-dht-proxy -f -c apt-dht.conf --cache-dir "$top/var/cache" --state-dir "$top/var/state" "$@"
