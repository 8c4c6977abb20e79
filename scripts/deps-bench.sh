#!/bin/sh
# Install what the benchmarks under bench/ need, from Debian's packages, on top
# of scripts/deps.sh --test (the fixture archive, the test mirror, curl, apt).
# Idempotent: does nothing when everything is already there. Needs root to
# install.
#
# apt-cacher-ng is the comparison in bench/proxy. Its package starts a system
# service on port 3142; the benchmark never uses that instance (it runs its own,
# in the foreground, with a private configuration), so right after installing
# it this script stops the instance the package started, by its PID file.
set -eu
pkgs="apt-cacher-ng curl python3 procps"
if [ "${1:-}" = "--profile" ]; then
    # Optional: to find out where apt-dht-proxy spends its time.
    pkgs="$pkgs strace linux-perf valgrind"
fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "deps-bench.sh: missing packages:$missing (run as root to install them)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Keep the package's own answers (no question about https tunnelling).
echo "apt-cacher-ng apt-cacher-ng/tunnelenable boolean false" | debconf-set-selections 2>/dev/null || true
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
case $missing in
    *apt-cacher-ng*)
        # Stop the system instance the package may have started (by its PID
        # file; through systemd when systemd runs this machine).
        if [ -d /run/systemd/system ]; then
            systemctl stop apt-cacher-ng.service 2>/dev/null || true
            systemctl disable apt-cacher-ng.service 2>/dev/null || true
        fi
        for pidfile in /run/apt-cacher-ng/pid /var/run/apt-cacher-ng/pid; do
            [ -s "$pidfile" ] || continue
            pid=$(cat "$pidfile")
            case $pid in ''|*[!0-9]*) continue ;; esac
            if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "apt-cacher-ng" ]; then
                kill -TERM "$pid" 2>/dev/null || true
                i=0
                while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
            fi
        done
        ;;
esac
