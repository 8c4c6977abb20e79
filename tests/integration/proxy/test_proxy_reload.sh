#!/bin/sh
# A reload (SIGHUP) reaches the transfers that start after it: the proxy starts with
# upstream timeouts of 30 s, the configuration is rewritten with 2 s, and after the reload
#  - a mirror that accepts the request and then stays silent (mirror.py's "stall") fails
#    the download after about 2 s, so curl gets an error well before 30 s;
#  - a mirror that never completes a TCP connect (a loopback listener whose accept queue
#    is full: the kernel drops further SYNs) fails it after about 2 s too.
# The bound checked is 12 s: far from the old 30 s, loose enough for a busy machine.
# Afterwards the stalled file, with the fault gone, comes through whole.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool curl python3 timeout sha256sum
fixture_build
mirror_start

BOUND=12       # seconds; the timeouts before the reload are 30 s
OLD=30
NEW=2

# --- a loopback port that never completes a connect ---------------------------------
python3 - "$T/blackhole.port" > "$T/blackhole.log" 2>&1 <<'EOP' &
import os, socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)                     # never accepted: one connection fills the queue
port = s.getsockname()[1]
held = []
for _ in range(8):              # fill the queue until a connect no longer completes
    c = socket.socket()
    c.settimeout(0.5)
    try:
        c.connect(("127.0.0.1", port))
        held.append(c)
    except OSError:
        c.close()
        break
else:
    sys.exit("the accept queue never filled")
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d\n" % port)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(60)
EOP
track_pid "$!"
BLACKHOLE=""
if wait_for 10 test -s "$T/blackhole.port"; then
    BLACKHOLE=$(cat "$T/blackhole.port")
    # check the trick on this machine: a connect must hang, not be refused
    _rc=0
    curl -q -sS --noproxy '*' --connect-timeout 1 -o /dev/null "http://127.0.0.1:$BLACKHOLE/" \
        2>/dev/null || _rc=$?
    if [ "$_rc" -ne 28 ]; then
        log "a connect to the full listener ended with curl status $_rc, not a timeout"
        BLACKHOLE=""
    fi
else
    cat "$T/blackhole.log" >&2
fi
[ -n "$BLACKHOLE" ] || log "no never-connecting loopback port: the connect_timeout part is skipped"

# --- the proxy, with the old timeouts --------------------------------------------------
# write_config STALL CONNECT
write_config() {
    cat > "$T/proxy/apt-dht.conf.new" <<EOC
listen: {address: 127.0.0.1, port: $PROXY_PORT}
dht: {mode: off}
backends: {fixture: [$MIRROR_URL/debian]}
upstream: {stall_timeout: $1, connect_timeout: $2}
EOC
    mv "$T/proxy/apt-dht.conf.new" "$T/proxy/apt-dht.conf"
}
PROXY_PORT=$(free_port)
mkdir -p "$T/proxy"
write_config "$OLD" "$OLD"
proxy_start
# proxy form: tcurl's --noproxy '*' would send curl past -x, so --noproxy '' undoes it
check_eq 200 "$(http_status "$MIRROR_URL/debian/dists/bookworm/Release" --noproxy '' -x "$PROXY_URL")" \
    "Release through the proxy before the reload"
# the request's log line is written when libmicrohttpd completes it, which may be just
# after curl has the whole answer
wait_for 5 grep -q "GET $MIRROR_URL/debian/dists/bookworm/Release 200" "$PROXY_LOG" \
    || fail "the Release request did not go through the proxy"

# --- reload with the new timeouts ----------------------------------------------------
deb=$(sed -n 1p "$FIXTURE_DIR/packages.txt" | cut -d' ' -f4)
deb_sum=$(sed -n 1p "$FIXTURE_DIR/packages.txt" | cut -d' ' -f6)
deb_size=$(stat -c %s "$FIXTURE_ROOT/$deb")
mirror_fault "{\"path_glob\": \"$deb\", \"mode\": \"stall\", \"delay_ms\": 60000}"
write_config "$NEW" "$NEW"
kill -HUP "$PROXY_PID"
wait_for 10 grep -q "configuration reloaded" "$PROXY_LOG" || fail "SIGHUP did not reload"

# timed_get NAME URL: fetch URL through the proxy (proxy form); sets CODE, SIZE, SECS.
timed_get() {
    _s=$(now)
    CODE=$(TCURL_MAX_TIME=$((OLD + 15)) tcurl --noproxy '' -x "$PROXY_URL" -o "$T/$1" -w '%{http_code}' "$2" \
        2>>"$T/curl.err" || true)
    SECS=$(( $(now) - _s ))
    SIZE=$(stat -c %s "$T/$1" 2>/dev/null || echo 0)
    log "$1: status $CODE, $SIZE bytes, after $SECS s"
}

# is_error FULL_SIZE: the last answer was a 5xx status, or a 200 whose body is cut short
is_error() {
    case $CODE in
        5??) return 0 ;;
        200) [ "$SIZE" -lt "$1" ] ;;
        *) return 1 ;;
    esac
}

# --- stall_timeout -------------------------------------------------------------------
timed_get stalled.deb "$MIRROR_URL/debian/$deb"
is_error "$deb_size" || fail "a stalled mirror: status $CODE with $SIZE of $deb_size bytes"
[ "$SECS" -lt "$BOUND" ] \
    || fail "a stalled mirror was given up after $SECS s: stall_timeout $NEW did not reach the transfer"
wait_for 5 grep -q "GET $MIRROR_URL/debian/$deb $CODE" "$PROXY_LOG" || fail "the stalled request was not the proxy's"
log "stall_timeout: the reloaded $NEW s applied (answer $CODE after $SECS s)"

# the fault gone, the same file comes through whole (nothing partial was kept)
mirror_reset
timed_get after.deb "$MIRROR_URL/debian/$deb"
check_eq 200 "$CODE" "the file once the mirror answers"
check_eq "$deb_sum" "$(sha256_of "$T/after.deb")" "the file once the mirror answers"

# --- connect_timeout -----------------------------------------------------------------
if [ -n "$BLACKHOLE" ]; then
    timed_get unconnected.deb "http://127.0.0.1:$BLACKHOLE/debian/$deb"
    case $CODE in
        5??) ;;
        *) fail "a mirror that never connects: status $CODE" ;;
    esac
    [ "$SECS" -lt "$BOUND" ] \
        || fail "a never-connecting mirror was given up after $SECS s: connect_timeout $NEW did not reach the transfer"
    log "connect_timeout: the reloaded $NEW s applied (answer $CODE after $SECS s)"
fi
log "passed"
