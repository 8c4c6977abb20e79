#!/bin/sh
# Without -c the daemon reads /etc/apt-dht/apt-dht.conf when it exists. The file is put
# there only inside a private mount namespace (a tmpfs over /etc that holds nothing
# else), so the host's /etc is never touched. Needs root; SKIP otherwise.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool unshare curl
[ "$(id -u)" = 0 ] || skip "needs root (a private mount namespace)"
bin=$(proxy_bin)
[ -x "$bin" ] || skip "apt-dht-proxy not built"
port=$(free_port)
mkdir -p "$T/cache" "$T/state"
cat > "$T/apt-dht.conf" <<EOF
listen: {address: 127.0.0.1, port: $port}
dht: {mode: off}
cache: {dir: $T/cache}
state_dir: $T/state
EOF
unshare -m sh -c "mount --make-rprivate / && mount -t tmpfs tmpfs /etc &&
    mkdir /etc/apt-dht && cp '$T/apt-dht.conf' /etc/apt-dht/apt-dht.conf &&
    exec '$bin' -f" > "$T/log" 2>&1 &
pid=$!
track_pid "$pid"
if ! wait_port "$port" 10; then
    if grep -q "mount" "$T/log"; then skip "no private mounts here: $(head -n 1 "$T/log")"; fi
    cat "$T/log" >&2
    fail "the daemon did not listen on the port named in /etc/apt-dht/apt-dht.conf"
fi
code=$(http_status "http://127.0.0.1:$port/")
check_eq 403 "$code" "the daemon that read /etc/apt-dht/apt-dht.conf answers"
grep -q "cache $T/cache" "$T/log" || fail "the cache dir of the default config was not used"
stop_pid "$pid" 10
untrack_pid "$pid"
log "PASS"
