#!/bin/sh
# The peer route of one proxy on loopback, as another host's proxy would use it:
#  1. bad pull-through requests (X-Apt-Dht-Fetch: KEY) each get 404 with a one-line
#     reason and fetch nothing: no such request header, a key its own indices do not
#     list, a key they list with another SHA-256, an index file (volatile), a key that
#     is not a cache key at all;
#  2. a good one (its own index gives that SHA-256 and size under KEY) makes it fetch
#     the file once from the mirror and relay it while it arrives, to that requester
#     and to two more that ask meanwhile (one with a Range), all with the right bytes;
#  3. a fourth request for the same file while three go to peers is 503 naming them
#     (X-Apt-Dht-Relays);
#  4. afterwards the file is a cache entry: served with Range, the mirror not asked.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3 timeout
fixture_build
mirror_start

P=$(free_port)
mkdir -p "$T/o/cache" "$T/o/state"
cat > "$T/o/apt-dht.conf" <<EOC
listen: {address: 127.0.0.1, port: $P}
backends: {fixture: [$MIRROR_URL/debian]}
dht: {mode: apt-dht, lan_discovery: false, bootstrap: []}
log: {level: debug}
EOC
"$(proxy_bin)" -f -c "$T/o/apt-dht.conf" --cache-dir "$T/o/cache" --state-dir "$T/o/state" \
    >> "$T/o/log" 2>&1 &
track_pid "$!"
wait_port "$P" 15 || { tail -20 "$T/o/log"; fail "the proxy did not start"; }

# Its own apt runs update only: the hash index knows every package, nothing is cached.
c="$T/client"
apt_sandbox "$c"
apt_sources "$c" backend fixture "http://127.0.0.1:$P"
apt_update "$c"
wait_for 10 grep -q "apt-dht-tools" "$T/o/log" || true # the indexer's parse (logged or not)
sleep 1

# a backend's files are keyed by its name
tools_path=$(awk '$1 == "apt-dht-tools" { print $4 }' "$FIXTURE_DIR/packages.txt")
tools_sum=$(awk '$1 == "apt-dht-tools" { print $6 }' "$FIXTURE_DIR/packages.txt")
hello_sum=$(awk '$1 == "apt-dht-hello" { print $6 }' "$FIXTURE_DIR/packages.txt")
tools_key="fixture/$tools_path"
peer_url="http://127.0.0.1:$P/~/sha256/$tools_sum"

# ask WANT-STATUS WANT-TEXT [CURL-ARGS...]: one peer request for the tools package.
ask() {
    _want=$1 _text=$2; shift 2
    _st=$(tcurl -o "$T/body" -w '%{http_code}' "$@" "$peer_url")
    check_eq "$_want" "$_st" "status of a peer request ($*)"
    [ -z "$_text" ] || grep -q "$_text" "$T/body" || fail "answer to ($*): $(cat "$T/body")"
}

# --- 1. refusals ---------------------------------------------------------------
ask 404 "not shared by this peer"
ask 404 "do not list that key" -H "X-Apt-Dht-Fetch: fixture/pool/main/n/nope/nope_1_all.deb"
ask 404 "another SHA-256" -H "X-Apt-Dht-Fetch: fixture/$(awk '$1 == "apt-dht-hello" { print $4 }' "$FIXTURE_DIR/packages.txt")"
ask 404 "do not list that key" -H "X-Apt-Dht-Fetch: ../../etc/passwd"
ask 404 "do not list that key" -H "X-Apt-Dht-Fetch: $(printf 'x%.0s' $(seq 1 300))/a"
# an index file by name is volatile: listed (by its Release) with a SHA-256, never pulled
pk_rel=$(ls "$FIXTURE_ROOT/dists/bookworm/main/binary-amd64/" | grep -m1 '^Packages')
pk_sum=$(sha256_of "$FIXTURE_ROOT/dists/bookworm/main/binary-amd64/$pk_rel")
st=$(tcurl -o "$T/body" -w '%{http_code}' \
    -H "X-Apt-Dht-Fetch: fixture/dists/bookworm/main/binary-amd64/$pk_rel" \
    "http://127.0.0.1:$P/~/sha256/$pk_sum")
check_eq 404 "$st" "status of a pull-through request for $pk_rel"
grep -q "immutable" "$T/body" || fail "answer for $pk_rel: $(cat "$T/body")"
set -- $(mirror_tally "*/pool/*" "" GET)
check_eq 0 "$1" "pool files the mirror served for refused requests"

# --- 2. a good pull, relayed while it arrives ----------------------------------
mirror_ctl rate '{"bytes_per_sec": 100000}' >/dev/null # the package takes about 3 s
tcurl -o "$T/r1" -H "X-Apt-Dht-Fetch: $tools_key" "$peer_url" &
j1=$!
wait_for 10 grep -q "relaying $tools_key" "$T/o/log" || fail "no relay started"
tcurl -o "$T/r2" "$peer_url" &
j2=$!
tcurl -o "$T/r3" -H "Range: bytes=1000-" "$peer_url" &
j3=$!
sleep 0.5
# --- 3. a fourth while three go to peers: 503 naming relays --------------------
st=$(tcurl -D "$T/h4" -o "$T/body" -w '%{http_code}' -H "X-Apt-Dht-Fetch: $tools_key" \
    --interface 127.0.0.2 "$peer_url" || true)
check_eq 503 "$st" "status of a fourth request while the file goes to three peers"
grep -qi '^X-Apt-Dht-Relays: 127.0.0.1:' "$T/h4" || fail "no relays named: $(cat "$T/h4")"
wait "$j1" || fail "relay 1 failed"
wait "$j2" || fail "relay 2 failed"
wait "$j3" || fail "relay 3 (range) failed"
mirror_ctl rate '{"bytes_per_sec": 0}' >/dev/null
want=$FIXTURE_ROOT/$tools_path
check_eq "$tools_sum" "$(sha256_of "$T/r1")" "SHA-256 of the pulled relay"
check_eq "$tools_sum" "$(sha256_of "$T/r2")" "SHA-256 of the joined relay"
tail -c +1001 "$want" > "$T/want3"
cmp -s "$T/want3" "$T/r3" || fail "the ranged relay differs from bytes 1000- of the file"
# the mirror logs a request once it has sent all of it: wait for the line
logged() { set -- $(mirror_tally "*/$tools_path" "" GET); [ "$1" -ge 1 ]; }
wait_for 5 logged || true
set -- $(mirror_tally "*/$tools_path" "" GET)
check_eq 1 "$1" "times the mirror served the pulled package"

# --- 4. now a cache entry -------------------------------------------------------
wait_for 10 test -f "$T/o/cache/$tools_key" || fail "the pulled package was not cached"
ask 206 "" -H "Range: bytes=0-99"
check_eq 100 "$(stat -c %s "$T/body")" "bytes of a ranged answer from the cache"
set -- $(mirror_tally "*/$tools_path" "" GET)
check_eq 1 "$1" "times the mirror served the package after it was cached"
log "ok: refusals, one pull relayed to three, 503 with relays, cached afterwards"
