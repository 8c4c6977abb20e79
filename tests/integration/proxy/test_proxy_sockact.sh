#!/bin/sh
# Socket activation (issue: "a restart loses no apt request"): sockact.py holds the
# listening socket the way systemd's apt-dht.socket does and starts the daemon with
# LISTEN_FDS=1; a client loop requests index and package files, each on a new
# connection, while the daemon is restarted three times (SIGTERM, wait, start again).
# No request may fail: connections made while the daemon is down wait in the socket's
# queue. Then the bad inputs: a LISTEN_FDS socket that is not a listening TCP socket
# stops the start-up with a clear error, and LISTEN_FDS meant for another process
# (LISTEN_PID) is ignored.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3
fixture_build
mirror_start
mkdir -p "$T/proxy"
PROXY_PORT=$(free_port) # the config's port: not the one served (the socket decides)
proxy_config "$T/proxy/apt-dht.conf"
B=$(proxy_bin)
[ -x "$B" ] || skip "apt-dht-proxy not built ($B)"

{
    echo /fixture/dists/bookworm/InRelease
    awk '{ print "/fixture/" $4 }' "$FIXTURE_DIR/packages.txt"
} > "$T/urls"

: > "$T/pids"
on_exit 'for p in $(cat "$T/pids" 2>/dev/null); do kill -TERM "$p" 2>/dev/null || true; done'
python3 "$top_srcdir/tests/integration/proxy/sockact.py" --urls "$T/urls" --restarts 3 \
    --pid-file "$T/pids" -- "$B" -f -c "$T/proxy/apt-dht.conf" --cache-dir "$T/proxy/cache" \
    --state-dir "$T/proxy/state" > "$T/sockact.out" 2> "$T/daemon.log" &
SA=$!
track_pid "$SA"
rc=0
wait "$SA" || rc=$?
untrack_pid "$SA"
sed 's/^/    /' "$T/sockact.out"
grep -q "socket activation: serving on 1 socket passed by systemd" "$T/daemon.log" \
    || { tail -n 20 "$T/daemon.log" >&2; fail "the daemon did not take the passed socket"; }
starts=$(grep -c "socket activation: serving" "$T/daemon.log")
[ "$rc" -eq 0 ] || { tail -n 30 "$T/daemon.log" >&2; fail "requests failed across restarts (sockact.py exit $rc)"; }
set -- $(grep '^requests ' "$T/sockact.out")
log "3 restarts under socket activation ($starts starts): $2 requests served, $3 failed"

# ---- bad input: fd 3 a regular file; LISTEN_PID another process's ----
rc=0
(exec 3< "$T/urls"; LISTEN_FDS=1 LISTEN_PID=$$ exec sh -c 'export LISTEN_PID=$$; exec "$0" "$@"' \
    "$B" -f -c "$T/proxy/apt-dht.conf" --cache-dir "$T/c2" --state-dir "$T/s2") \
    > "$T/bad.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "a non-socket LISTEN_FDS exited $rc, expected 1"
grep -q "socket activation: a socket passed in LISTEN_FDS is not a listening TCP socket" \
    "$T/bad.out" || { cat "$T/bad.out" >&2; fail "no clear error for a non-socket LISTEN_FDS"; }
log "LISTEN_FDS on a regular file: exit 1, $(grep -o 'socket activation.*' "$T/bad.out")"
LISTEN_FDS=1 LISTEN_PID=1 proxy_start
grep -q "socket activation" "$PROXY_LOG" && fail "LISTEN_FDS for another pid was taken"
st=$(http_status "$PROXY_URL/fixture/dists/bookworm/InRelease")
[ "$st" = 200 ] || fail "with a foreign LISTEN_PID the daemon answered $st on its own port"
log "LISTEN_PID of another process: ignored, the daemon binds listen.port itself"
proxy_stop
log "PASS"
