#!/bin/sh
# Install what building and testing apt-dht needs, from Debian's packages.
# Idempotent: does nothing when everything is already there. Needs root to install.
set -eu
pkgs="autoconf automake make gcc pkg-config
 libmicrohttpd-dev libcurl4-openssl-dev libssl-dev libyaml-dev libcunit1-dev
 libsqlite3-dev zlib1g-dev liblzma-dev"
if [ "${1:-}" = "--test" ]; then
    # The tests build a real Debian archive, sign it, serve it and run the real apt.
    pkgs="$pkgs dpkg-dev apt-utils gnupg xz-utils python3 curl iproute2 clang"
    # scripts/check-deb.sh builds the .deb, lints it and checks its systemd unit.
    pkgs="$pkgs build-essential debhelper dh-autoreconf lintian systemd"
    # The status page is read by a real headless browser; /metrics is linted by
    # promtool, which Debian ships only in the prometheus package (19 MB).
    pkgs="$pkgs chromium prometheus"
fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
case $missing in
    *prometheus*)
        # Only promtool is wanted: stop the server the package starts where systemd
        # runs the machine (it would listen on port 9090).
        if [ -d /run/systemd/system ]; then
            systemctl stop prometheus.service 2>/dev/null || true
            systemctl disable prometheus.service 2>/dev/null || true
        fi
        ;;
esac
