#!/bin/sh
# The status page read by a real browser (headless Chromium) after real apt runs, with a
# peer and a lying peer on loopback (as test_p2p_loopback.sh): host a's proxy meets the
# lying peer (rejects its bytes, bans it) and gets everything from the mirror; host b's
# proxy gets every pool file from peer a. Then:
#  - the figures on each page (read from Chromium's DOM) agree with the mirror's log, the
#    proxies' request logs and what apt saved: bytes from mirrors, bytes to apt by
#    source, peer bytes = what apt got = what a uploaded, the banned liar, the mismatch;
#  - /metrics of both proxies passes promtool (when installed) and adds up the same way;
#  - a script payload in a request path, a User-Agent, a peer's label and the explain
#    query shows as text: nothing is injected into the DOM and no script runs;
#  - a screenshot of each page is kept beside the test's log for a person to look at.

: "${top_srcdir:=$(cd "$(dirname "$0")/../../.." && pwd)}"
. "$top_srcdir/tests/integration/lib.sh"

require_tool apt-get curl python3 timeout chromium
NODE_BIN=$(node_bin)
[ -x "$NODE_BIN" ] || skip "apt-dht-node not built"
fixture_build
mirror_start

SHOTS=${STATUS_SHOT_DIR:-$top_builddir/tests/integration/p2p}
mkdir -p "$SHOTS"

# log_total NAME [SOURCE-RE [PATH-RE]]: body bytes the proxy's request log says went to
# apt (status < 400, source cache, peer or mirror), or only those of one source and path;
# log_count: the number of such answers.
log_total() {
    awk -v src="${2:-^(cache|peer|mirror)}" -v path="${3:-.}" \
        '$3 == "info:" && $7 ~ /^[0-9]+$/ && $7 < 400 && $9 ~ src && $6 ~ path \
        { s += $8 } END { print s + 0 }' "$T/$1/log"
}
log_count() {
    awk -v src="$2" '$3 == "info:" && $7 ~ /^[0-9]+$/ && $7 < 400 && $9 ~ src { n++ } \
        END { print n + 0 }' "$T/$1/log"
}

# chromium_run ARGS...: headless Chromium with a new, empty profile, bounded in time.
chromium_run() {
    _ud=$(mktemp -d "$T/chromium.XXXXXX")
    timeout -k 5 90 chromium --headless --no-sandbox --disable-gpu --disable-quic \
        --no-first-run --disable-background-networking --disable-component-update \
        --disable-sync --no-proxy-server --user-data-dir="$_ud" --window-size=1280,3200 "$@"
}

# browse URL NAME [SCREENSHOT]: Chromium's DOM of URL into $T/NAME.dom, and a picture
# of the page into $SHOTS/SCREENSHOT.
browse() {
    chromium_run --dump-dom "$1" > "$T/$2.dom" 2>> "$T/chromium.log" \
        || { tail -20 "$T/chromium.log"; fail "chromium could not load $1"; }
    [ -s "$T/$2.dom" ] || fail "chromium gave an empty DOM for $1"
    [ -z "${3:-}" ] || chromium_run --screenshot="$SHOTS/$3" "$1" >> "$T/chromium.log" 2>&1 \
        || log "chromium could not take the screenshot $3"
}

# A browser that cannot start on this machine is not what this test is about.
chromium_run --dump-dom 'data:text/html,<p id="probe">ok</p>' > "$T/probe.dom" 2> "$T/probe.err" \
    || true
grep -q 'id="probe"' "$T/probe.dom" || skip "chromium cannot run here: $(tail -n 1 "$T/probe.err")"

PA=$(free_port); PB=$(free_port)
P2P_LOG_LEVEL=info # the page shows the log ring: its default level
p2p_node_start a "$PA"
p2p_node_start b "$PB" "$PA"
wait_for 20 grep -q "dht: alone -> active" "$T/b/log" || fail "node b never joined the DHT"

pool_total=$(find "$FIXTURE_ROOT/pool" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
pool_files=$(find "$FIXTURE_ROOT/pool" -type f | wc -l)
big_size=$(stat -c %s "$FIXTURE_ROOT/$FIXTURE_BIG")
big_key=$(sha256_of "$FIXTURE_ROOT/$FIXTURE_BIG" | cut -c1-40)

# --- the lying peer, then host a ------------------------------------------------------
FAKE_PORT=$(free_port)
python3 - "$FAKE_PORT" "$big_size" > "$T/fake.log" 2>&1 <<'EOP' &
import http.server, sys
port, size = int(sys.argv[1]), int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk, left = b"\x5a" * 65536, size
        try:
            while left > 0:
                n = min(left, len(chunk))
                self.wfile.write(chunk[:n])
                left -= n
        except OSError:
            pass
    def log_message(self, *a):
        sys.stderr.write("fake peer: %s\n" % (a,))
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
EOP
track_pid "$!"
wait_port "$FAKE_PORT" 10 || fail "fake peer did not start"
"$NODE_BIN" --mode apt-dht --bind 127.0.0.1 --bootstrap "127.0.0.1:$PA" \
    --timeout 20 announce "$big_key" "$FAKE_PORT" > "$T/announce.log" 2>&1 \
    || { cat "$T/announce.log"; fail "could not announce the lying peer"; }

p2p_client a "$PA"
grep -q "peer 127.0.0.1:$FAKE_PORT served data that failed verification: banned" "$T/a/log" \
    || fail "the lying peer was not banned"
lies=$(grep -c "GET /~/sha256/" "$T/fake.log" || true)
mirror_after_a=$(mirror_tally '*' "" GET 200)
mirror_after_a=${mirror_after_a#* }

# --- host b, from peer a ------------------------------------------------------------
p2p_client b "$PB"
check_eq "$pool_total" "$(mirror_bytes '*/pool/*')" "pool bytes from the mirror after host b"
b_apt=$(find "$T/client-b/downloads" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
# b took the pool and the by-hash indices from peer a; what apt saved is the pool part
check_eq "$b_apt" "$(log_total b '^peer' '/pool/')" "b: pool bytes from peers (request log) vs apt's files"
b_peer_log=$(log_total b '^peer')
b_peer_files=$(log_count b '^peer')
mirror_all=$(mirror_tally '*' "" GET 200)
mirror_all=${mirror_all#* }

# --- hostile text from the network --------------------------------------------------
# raw_get PORT TARGET USER-AGENT: one request, bytes as given (no client-side encoding).
raw_get() {
    python3 - "$@" <<'PY'
import socket, sys
port, target, ua = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=20)
s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: %s\r\nConnection: close\r\n\r\n"
           % (target, ua)).encode())
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print(data.split(b" ", 2)[1].decode())
PY
}
XSS_PATH='<svg/onload=document.body.dataset.xss=1>'
XSS_UA='<script>document.body.dataset.xss=2</script>'
XSS_PEER='<img src=x onerror=document.body.dataset.xss=3>'
check_eq 404 "$(raw_get "$PB" "/fixture/pool/main/$XSS_PATH.deb" "$XSS_UA")" "the hostile path"
hello=$(find "$FIXTURE_ROOT/pool" -name 'apt-dht-hello_*.deb' | head -n 1)
check_eq 200 "$(raw_get "$PB" "/~/sha256/$(sha256_of "$hello")" "$XSS_PEER")" \
    "a peer request with a hostile User-Agent"

# --- the pages, in a browser --------------------------------------------------------
browse "http://127.0.0.1:$PA/~/status" a test_p2p_status-a.png
browse "http://127.0.0.1:$PB/~/status" b test_p2p_status-b.png
XSS_EXPLAIN='/fixture/pool/main/"><svg/onload=document.body.dataset.xss=4>.deb'
browse "http://127.0.0.1:$PB/~/status/explain?u=$(python3 -c 'import sys, urllib.parse
print(urllib.parse.quote(sys.argv[1], safe=""))' "$XSS_EXPLAIN")" explain

tcurl -f -o "$T/a.metrics" "http://127.0.0.1:$PA/metrics"
tcurl -f -o "$T/b.metrics" "http://127.0.0.1:$PB/metrics"
if command -v promtool >/dev/null 2>&1; then
    for n in a b; do promtool check metrics < "$T/$n.metrics" || fail "promtool rejects $n's /metrics"; done
    log "promtool check metrics: passed for both proxies"
else
    log "promtool not installed (Debian package prometheus): the lint of /metrics is skipped"
fi

# the liar's answers in all, counted now: b may have tried it too (it is still announced)
# the liar's bodies each proxy received and rejected (a request of its asked beside
# another holder may lose the race before any of its bytes counts)
lies=$(cat "$T/a/log" "$T/b/log" | grep -c "peer 127.0.0.1:$FAKE_PORT sent bad data" || true)
python3 - "$T" "$PA" "$FAKE_PORT" "$pool_total" "$pool_files" "$big_size" "$lies" \
    "$mirror_after_a" "$mirror_all" "$b_peer_log" "$b_peer_files" "$(log_total a)" "$(log_total b)" \
    "$XSS_PATH" "$XSS_UA" "$XSS_PEER" "$XSS_EXPLAIN" <<'PY' || fail "the pages disagree with the logs"
import html.parser, re, sys
(T, pa, fake, pool, pool_files, big, lies, mirror_a, mirror_all, b_peer_log, b_peer_files, log_a,
 log_b, xss_path, xss_ua, xss_peer, xss_explain) = sys.argv[1:]
pool, pool_files, big, lies = int(pool), int(pool_files), int(big), int(lies)
mirror_a, mirror_all, log_a, log_b = map(int, (mirror_a, mirror_all, log_a, log_b))
b_peer_log, b_peer_files = int(b_peer_log), int(b_peer_files)

class Page(html.parser.HTMLParser):
    """Elements by id (their attributes), peers' rows (their cells' text), all text."""
    def __init__(self, text):
        super().__init__()
        self.ids, self.peers, self.text, self.tags = {}, {}, [], []
        self.row, self.cell = None, None
        self.feed(text)
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a:
            self.ids[a["id"]] = a
        if tag == "tr" and a.get("class") == "peer":
            self.row = [a, []]
            self.peers[a["data-label"]] = self.row
        if tag == "td" and self.row is not None:
            self.cell = []
    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.row[1].append("".join(self.cell))
            self.cell = None
        if tag == "tr":
            self.row = None
    def handle_data(self, d):
        self.text.append(d)
        if self.cell is not None:
            self.cell.append(d)
    def num(self, id, attr="data-bytes"):
        return int(self.ids[id][attr])

def metrics(path):
    m = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        m[name] = float(value)
    return m

doms = {n: open("%s/%s.dom" % (T, n), encoding="utf-8").read() for n in ("a", "b", "explain")}
a, b, ex = (Page(doms[n]) for n in ("a", "b", "explain"))
ma, mb = metrics(T + "/a.metrics"), metrics(T + "/b.metrics")
def check(what, want, got):
    if want != got:
        sys.exit("%s: expected %r, got %r" % (what, want, got))
    print("ok: %s = %r" % (what, got))

# host a: everything from the mirror, the liar's bytes rejected
check("a: bytes from mirrors (page) = the mirror's log during a's run", mirror_a, a.num("from-mirror-start"))
check("a + b: bytes from mirrors = the mirror's log", mirror_all,
      a.num("from-mirror-start") + b.num("from-mirror-start"))
check("a: bytes to apt (page) = a's request log", log_a, a.num("served-total-start"))
check("a: bytes to apt from peers", 0, a.num("served-peer-start"))
check("a: cache + peers + mirrors = in all", a.num("served-total-start"),
      a.num("served-cache-start") + a.num("served-peer-start") + a.num("served-mirror-start"))
assert a.num("served-mirror-start") >= pool, "a: fewer pool bytes than the pool"
# the liar is still announced when b looks up the big package: b may try it too
check("a + b: peer mismatches = the liar's rejected bodies", lies,
      a.num("mismatch-peer", "data-count") + b.num("mismatch-peer", "data-count"))
assert a.num("mismatch-peer", "data-count") >= 1, "a never rejected the liar"
check("a: the liar's state", "banned", a.peers["127.0.0.1:" + fake][0]["data-state"])
check("a: DHT state", "ACTIVE", a.ids["dht-state"]["data-state"])
check("a: bytes uploaded to peers = what b got from peers", b.num("served-peer-start"),
      a.num("uploaded-start"))
# host b: every pool file from peer a, as apt saved it
check("b: bytes to apt from peers (page) = b's request log", b_peer_log, b.num("served-peer-start"))
check("b: bytes to apt (page) = b's request log", log_b, b.num("served-total-start"))
check("b: files from peers that verified = answers from peers", b_peer_files,
      b.num("verified-peer", "data-count"))
assert b_peer_files >= pool_files, "b: fewer files from peers than the pool has"
check("b: peer a usable", "usable", b.peers["127.0.0.1:" + pa][0]["data-state"])
check("a: health", "200", a.ids["health"]["data-status"])
# /metrics says the same
for name, page, m, log in (("a", a, ma, log_a), ("b", b, mb, log_b)):
    served = sum(v for k, v in m.items() if k.startswith("apt_dht_served_bytes_total{"))
    check(name + ": /metrics bytes to apt = the request log", log, int(served))
    for src in ("cache", "peer", "mirror"):
        check("%s: /metrics %s bytes = the page" % (name, src), page.num("served-%s-start" % src),
              int(m['apt_dht_served_bytes_total{source="%s"}' % src]))
check("a: /metrics bytes from mirrors", mirror_a, int(ma['apt_dht_upstream_bytes_total{source="mirror"}']))
for name, page, m, good in (("a", a, ma, 0), ("b", b, mb, b_peer_log)):
    lied = page.num("mismatch-peer", "data-count")
    check(name + ": /metrics bytes from peers = verified + the liar's", good + lied * big,
          int(m['apt_dht_upstream_bytes_total{source="peer"}']))
    check(name + ": /metrics peer verification failures", lied,
          int(m['apt_dht_verification_failures_total{source="peer"}']))
    check(name + ": /metrics banned peers", 1 if lied else 0, int(m['apt_dht_peers{state="banned"}']))
check("b: /metrics DHT active", 1, int(mb['apt_dht_dht_state{state="active"}']))

# hostile text: shown as text, nothing injected, nothing ran
for name, page, dom in (("a", a, doms["a"]), ("b", b, doms["b"]), ("explain", ex, doms["explain"])):
    assert "data-xss" not in dom, name + ": a payload ran"
    assert not re.search(r"<script|<img|onload=\"|onerror=\"", dom, re.I), name + ": markup injected"
    svgs = [t for t, at in page.tags if t == "svg"]
    check(name + ": svg elements (the chart only)", 1 if name != "explain" else 0, len(svgs))
btext = "".join(b.text)
for payload in (xss_path, xss_ua, xss_peer):
    assert payload in btext, "b: the payload %r is not shown as text" % payload
check("b: peer a's label (its User-Agent)", xss_peer, b.peers["127.0.0.1:" + pa][1][1])
assert xss_explain in "".join(ex.text), "explain: the query is not shown as text"
check("explain: the form keeps the query as its value", xss_explain,
      [at for t, at in ex.tags if t == "input"][0]["value"])
PY
for n in a b; do
    [ -s "$SHOTS/test_p2p_status-$n.png" ] && log "screenshot: $SHOTS/test_p2p_status-$n.png"
done
log "passed"
