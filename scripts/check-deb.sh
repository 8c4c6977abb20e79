#!/bin/sh
# check-deb.sh - build the apt-dht .deb from a clean copy of the tree and check it the way
# a Debian maintainer reviewing it would, on this machine:
#
#   1. dpkg-buildpackage -us -uc -b on a copy of HEAD (git archive) in a temporary
#      directory, so build products and uncommitted changes in the tree do not leak in;
#      this runs make check (dh_auto_test).
#   2. lintian on the .changes: no error, no warning; every override carries a reason.
#   3. the .deb's contents, conffiles, packaged config paths and hardening flags.
#   4. apt-get install of the .deb; systemd-analyze verify and an offline security
#      review of the installed unit.
#   5. the daemon started the way apt-dht.service starts it: as the unit's (dynamic)
#      user, with the unit's directory layout and the main parts of its sandbox, in a
#      private network namespace (loopback only). With the integration library
#      (tests/integration/lib.sh) it fetches the fixture archive through the proxy with
#      the real apt; otherwise it checks that the daemon runs as that user.
#   6. apt-get remove keeps cache, state and conffiles; apt-get purge leaves nothing:
#      no files, no account, no systemd enablement state.
#
# Needs root. Leaves the machine as it found it: it refuses to start when apt-dht is
# installed or any of its paths or its user name exist, and it undoes what it did on
# any exit. Every step has a time limit. KEEP_TMP=1 keeps the work directory on failure.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

PKG=apt-dht
UNIT=/lib/systemd/system/apt-dht.service
UNIT_USER=apt-dht           # DynamicUser=yes names the user after the unit
PORT=9977
CONF=/etc/apt-dht/apt-dht.conf
DETECT=/etc/apt-dht/apt-dht-detect
PROXY=/usr/sbin/apt-dht-proxy
PKG_PATHS="/etc/apt-dht /etc/apt/apt.conf.d/30apt-dht /var/cache/apt-dht /var/lib/apt-dht
 /var/cache/private/apt-dht /var/lib/private/apt-dht"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
# apt-get with a time limit, waiting for the dpkg lock rather than failing at once.
aptget() { timeout -k 10 600 apt-get -o DPkg::Lock::Timeout=300 -y -q "$@"; }
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

t0=$(date +%s)
say() { printf 'check-deb: %s\n' "$*"; }
die() { printf 'check-deb: FAIL: %s\n' "$*" >&2; exit 1; }
step() { say "[$(( $(date +%s) - t0 ))s] $*"; }

[ "$(id -u)" -eq 0 ] || die "needs root (it installs, removes and purges the package)"

# --- what this run changes, so that cleanup undoes exactly that -------------------
work=""
installed=0
created_user=0
created_private=""
stage_pid=""

cleanup() {
    rc=$?
    set +e
    if [ -n "$stage_pid" ] && kill -0 "$stage_pid" 2>/dev/null; then
        kill -TERM "$stage_pid"; wait "$stage_pid" 2>/dev/null
    fi
    if [ "$installed" -eq 1 ] && dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null \
         | grep -qv '^not-installed$'; then
        say "cleanup: purging $PKG"
        aptget purge "$PKG" >/dev/null 2>&1 || dpkg --purge "$PKG" >/dev/null 2>&1
    fi
    if [ "$created_user" -eq 1 ] && getent passwd "$UNIT_USER" >/dev/null; then
        # Processes of the user this run created are this run's own daemon.
        for p in $(ps -o pid= -u "$UNIT_USER"); do kill -TERM "$p"; done
        sleep 2
        for p in $(ps -o pid= -u "$UNIT_USER"); do kill -KILL "$p"; done
        userdel "$UNIT_USER"
    fi
    if [ "$created_user" -eq 1 ] && getent group "$UNIT_USER" >/dev/null; then
        groupdel "$UNIT_USER"
    fi
    # shellcheck disable=SC2086
    [ "$installed" -eq 0 ] || rm -rf $PKG_PATHS
    for d in $created_private; do rmdir "$d" 2>/dev/null; done
    if [ -n "$work" ] && [ -s "$work/pulled-in" ]; then
        extra=$(tr '\n' ' ' <"$work/pulled-in")
        if [ -n "$extra" ]; then
            say "cleanup: purging what the install pulled in: $extra"
            # shellcheck disable=SC2086
            aptget purge $extra >/dev/null 2>&1
        fi
    fi
    if [ -n "$work" ]; then
        if [ "$rc" -ne 0 ] && [ -n "${KEEP_TMP:-}" ]; then
            say "kept $work"
        else
            rm -rf "$work"
        fi
    fi
    [ "$rc" -eq 0 ] || say "FAILED after $(( $(date +%s) - t0 ))s"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- preflight --------------------------------------------------------------------
step "preflight"
sh scripts/deps.sh --test
for tool in dpkg-buildpackage dh lintian apt-get unshare setpriv useradd userdel ip readelf timeout; do
    command -v "$tool" >/dev/null 2>&1 || die "missing tool: $tool (scripts/deps.sh --test installs it)"
done
st=$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null || true)
case $st in
    ""|not-installed) ;;
    *) die "$PKG is on this machine ($st); this check installs and purges it itself and will not touch an existing installation" ;;
esac
for p in $PKG_PATHS; do
    if [ -e "$p" ] || [ -L "$p" ]; then die "$p exists; remove it first (this check must find the machine clean)"; fi
done
getent passwd "$UNIT_USER" >/dev/null && die "a user named $UNIT_USER exists"
getent group "$UNIT_USER" >/dev/null && die "a group named $UNIT_USER exists"

work=$(mktemp -d /tmp/check-deb.XXXXXX)
chmod 755 "$work"     # apt's _apt sandbox user reads the .deb and the fixture from here
mkdir "$work/tmp" && chmod 1777 "$work/tmp"

# --- 1. build from a clean copy -------------------------------------------------------
src="$work/src"
mkdir "$src"
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
    step "copy: git archive HEAD ($(git -C "$top" rev-parse --short HEAD))"
    [ -z "$(git -C "$top" status --porcelain --untracked-files=no)" ] \
        || say "note: uncommitted changes in the tree are not part of this check"
    git -C "$top" archive HEAD | tar -x -C "$src"
else
    step "copy: the tree without version-control files and build products"
    tar -C "$top" --exclude-vcs --exclude-vcs-ignores -cf - . | tar -x -C "$src"
fi
(cd "$src" && dpkg-checkbuilddeps) || die "build dependencies missing (see above)"
step "build: dpkg-buildpackage -us -uc -b (runs make check; log $work/build.log)"
if ! (cd "$src" && timeout -k 10 1800 dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
    tail -n 80 "$work/build.log" >&2
    die "dpkg-buildpackage failed"
fi
grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR):' "$work/build.log" | sed 's/^/    make check /' || true
arch=$(dpkg --print-architecture)
version=$(cd "$src" && dpkg-parsechangelog -S Version)
deb="$work/${PKG}_${version}_${arch}.deb"
changes="$work/${PKG}_${version}_${arch}.changes"
{ [ -f "$deb" ] && [ -f "$changes" ]; } || die "no $deb / $changes after the build"

# --- 2. lintian -----------------------------------------------------------------------
step "lintian"
for f in "$src"/debian/*lintian-overrides "$src"/debian/source/lintian-overrides; do
    [ -f "$f" ] || continue
    awk -v f="${f#"$src"/}" '
        /^[ \t]*$/ { next }
        /^#/ { reason = 1; next }
        !reason { printf "override without a written reason in %s:%d: %s\n", f, NR, $0; bad = 1 }
        { reason = 0 }
        END { exit bad }' "$f" || die "every lintian override needs a comment above it saying why"
done
set +e
timeout 600 lintian --fail-on error,warning --display-info --show-overrides "$changes" \
    >"$work/lintian.log" 2>&1
lrc=$?
set -e
grep -v 'running with root privileges is not recommended' "$work/lintian.log" | sed 's/^/    /' || true
[ "$lrc" -eq 0 ] || die "lintian reported errors or warnings (exit $lrc)"
say "lintian: no errors, no warnings"

# --- 3. what the package contains -----------------------------------------------------
step "contents"
dpkg-deb -x "$deb" "$work/root"
for f in /usr/sbin/apt-dht-proxy "$CONF" "$DETECT" /etc/apt/apt.conf.d/30apt-dht "$UNIT" \
         /usr/share/man/man8/apt-dht-proxy.8.gz /usr/share/man/man1/apt-dht-node.1.gz \
         /usr/share/man/man5/apt-dht.conf.5.gz /usr/share/doc/apt-dht/README.Debian \
         /usr/share/doc/apt-dht/copyright; do
    [ -f "$work/root$f" ] || die "$f is not in the package"
done
if [ -x "$src/dht/apt-dht-node" ]; then
    [ -x "$work/root/usr/bin/apt-dht-node" ] || die "/usr/bin/apt-dht-node is built but not packaged"
else
    say "note: this tree does not build apt-dht-node yet, so /usr/bin/apt-dht-node is not packaged"
fi
dpkg-deb -f "$deb" Depends | sed 's/^/    Depends: /'
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$work/conffiles"
for f in "$CONF" "$DETECT" /etc/apt/apt.conf.d/30apt-dht; do
    grep -qx "$f" "$work/conffiles" || die "$f is not a conffile"
done
grep -Eq '^state_dir:[ \t]+/var/lib/apt-dht([ \t]|$)' "$work/root$CONF" \
    || die "$CONF does not set state_dir: /var/lib/apt-dht"
awk '/^[A-Za-z_]/ { s = $0 } s ~ /^cache:/ && $1 == "dir:" && $2 == "/var/cache/apt-dht" { ok = 1 }
     END { exit !ok }' "$work/root$CONF" || die "$CONF does not set cache.dir: /var/cache/apt-dht"
bin="$work/root$PROXY"
readelf -hW "$bin" | grep -q 'Type:[[:space:]]*DYN' || die "$PROXY is not PIE"
readelf -lW "$bin" | grep -q 'GNU_RELRO' || die "$PROXY has no RELRO"
readelf -dW "$bin" | grep -Eq 'BIND_NOW|FLAGS_1.*NOW' || die "$PROXY is not linked with -z now"
say "contents, conffiles, config paths and hardening (PIE, RELRO, BIND_NOW) as expected"

# --- 4. install, unit checks ----------------------------------------------------------
step "install: apt-get install $(basename "$deb")"
installed=1
aptget install --no-install-recommends "$deb" >"$work/install.log" 2>&1 \
    || { cat "$work/install.log" >&2; die "apt-get install failed"; }
# What apt installed besides apt-dht (its run-time libraries, when the build
# dependencies did not bring them): purged again at the end.
sed -n '/^The following NEW packages will be installed:/,/^[^ ]/p' "$work/install.log" \
    | sed -n 's/^  //p' | tr ' ' '\n' | grep -v -e '^$' -e "^$PKG\$" >"$work/pulled-in" || true
[ "$(dpkg-query -W -f='${db:Status-Status}' "$PKG")" = installed ] || die "$PKG is not installed"

step "systemd-analyze verify $UNIT"
if ! command -v systemd-analyze >/dev/null 2>&1; then
    say "SKIP: systemd-analyze is not installed (package systemd) and could not be installed"
else
    printf '[Service]\nExecStart=/bin/true\n' >"$work/probe.service"
    if ! systemd-analyze verify "$work/probe.service" >"$work/probe.log" 2>&1; then
        say "SKIP: systemd-analyze cannot run here; it fails on a trivial unit too:"
        sed 's/^/    /' "$work/probe.log"
    else
        systemd-analyze verify "$UNIT" || die "systemd-analyze verify rejects $UNIT"
        say "systemd-analyze verify: no complaints"
        # Exposure 0.0 (locked down) .. 10.0 (none); threshold 20 = 2.0.
        systemd-analyze security --offline=true --threshold=20 "$UNIT" >"$work/security.log" 2>&1 \
            || { cat "$work/security.log" >&2; die "the unit's exposure is above 2.0"; }
        tail -n 1 "$work/security.log" | sed 's/^[^O]*Overall/    Overall/'
    fi
fi

if [ -d /run/systemd/system ]; then
    # A booted systemd: the package's postinst has started the real service.
    step "systemd is running: the installed service"
    sleep 2
    if grep -q 'not yet runnable' "$PROXY"; then
        say "note: the placeholder daemon cannot stay up; not checking systemctl is-active"
    else
        systemctl is-active --quiet apt-dht || { systemctl status apt-dht >&2 || true; die "apt-dht.service is not active"; }
        say "apt-dht.service is active under systemd"
    fi
    systemctl stop apt-dht || true
fi

step "proxy auto-detect helper, nothing listening: expect DIRECT"
out=$(timeout 10 unshare --net sh -c "ip link set lo up && $DETECT http://mirror.example/debian/")
[ "$out" = DIRECT ] || die "$DETECT printed '$out' with no proxy running"

# --- 5. the daemon as the unit runs it --------------------------------------------------
step "run as the unit: transient user $UNIT_USER, StateDirectory/CacheDirectory layout"
useradd --system --user-group --no-create-home --home-dir / --shell /usr/sbin/nologin "$UNIT_USER"
created_user=1
uid=$(id -u "$UNIT_USER")
gid=$(id -g "$UNIT_USER")
for base in /var/lib /var/cache; do
    if [ ! -d "$base/private" ]; then
        mkdir -m 0700 "$base/private"
        created_private="$created_private $base/private"
    fi
    mkdir -p "$base/private/apt-dht"
    chown -R "$UNIT_USER:$UNIT_USER" "$base/private/apt-dht"
    chmod 0755 "$base/private/apt-dht"
    [ -L "$base/apt-dht" ] || ln -s private/apt-dht "$base/apt-dht"
done

# The daemon's own mount namespace, built like systemd builds it for this unit: the
# private/ directories hidden under a tmpfs that holds only this unit's directory
# (DynamicUser), / read-only (ProtectSystem=strict), private /tmp and /var/tmp
# (PrivateTmp), no homes (ProtectHome), no capabilities, no_new_privs, umask 0077.
# Not reproduced here: the seccomp filter, RestrictAddressFamilies, MemoryDenyWriteExecute
# and PrivateDevices, which only systemd itself applies.
cat >"$work/unit-exec.sh" <<'EOF'
set -eu
w=$1; shift
for base in /var/lib /var/cache; do
    mkdir -p "$w/stash$base"
    mount --bind "$base/private/apt-dht" "$w/stash$base"
    mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$base/private"
    mkdir "$base/private/apt-dht"
    mount --bind "$w/stash$base" "$base/private/apt-dht"
done
mount -o remount,bind,ro /
for d in /tmp /var/tmp; do mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$d"; done
for d in /home /root /run/user; do
    [ ! -d "$d" ] || mount -t tmpfs -o mode=0000,nosuid,nodev tmpfs "$d"
done
umask 0077
cd /
exec setpriv --reuid=apt-dht --regid=apt-dht --clear-groups --no-new-privs \
    --inh-caps=-all --bounding-set=-all --reset-env -- "$@"
EOF

# The stage runs in its own network namespace: only loopback, port 9977 free whatever
# runs on this machine, and no LAN discovery packet leaves it.
cat >"$work/stage.sh" <<'EOF'
set -eu
w=$1 mode=$2 src=$3 proxy=$4 conf=$5 detect=$6 port=$7
trap 'exit 143' TERM HUP
trap 'exit 130' INT
say() { printf 'check-deb: %s\n' "$*"; }
die() { printf 'check-deb: FAIL: %s\n' "$*" >&2; exit 1; }
ip link set lo up
# unshare, sh and setpriv each exec the next: the PID below is the daemon's.
if [ "$mode" = version ]; then
    out=$(unshare --mount --propagation private sh "$w/unit-exec.sh" "$w" "$proxy" --version) \
        || die "$proxy --version failed as the unit's user"
    say "as the unit's user: $out"
    exit 0
fi

unshare --mount --propagation private sh "$w/unit-exec.sh" "$w" "$proxy" -f -c "$conf" \
    </dev/null >"$w/daemon.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
i=0
until [ "$("$detect")" = "http://127.0.0.1:$port" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$w/daemon.log" >&2; die "the daemon exited at start-up"; }
    i=$((i + 1))
    [ "$i" -lt 300 ] || { cat "$w/daemon.log" >&2; die "the daemon did not answer on port $port in 30 s"; }
    sleep 0.1
done
user=$(ps -o user= -p "$pid")
[ "$user" = apt-dht ] || die "the daemon runs as '$user', not as the unit's user apt-dht"
# The sandbox really is in place around it.
awk '$5 == "/" && $6 !~ /^ro/ { bad = 1 } $5 == "/tmp" { tmp = 1 } END { exit bad || !tmp }' \
    "/proc/$pid/mountinfo" || die "the daemon's / is not read-only or its /tmp is not private"
say "daemon up (pid $pid, user $user); $detect prints http://127.0.0.1:$port"

if [ -f "$src/tests/integration/lib.sh" ]; then
    cat >"$w/fetch.sh" <<'EOS'
set -eu
. "$top_srcdir/tests/integration/lib.sh"
fixture_build
mirror_start
apt_sandbox "$T/apt"
apt_sources "$T/apt" proxy "$MIRROR_URL" "http://127.0.0.1:9977"
# apt finds the proxy the way an admin enables it: the package's auto-detect helper.
printf 'Acquire::http::Proxy-Auto-Detect "/etc/apt-dht/apt-dht-detect";\n' \
    >"$T/apt/etc/apt/apt.conf.d/50proxy"
apt_update "$T/apt"
apt_download_all "$T/apt" || fail "apt could not download the fixture through apt-dht"
apt_check_downloads "$T/apt/downloads"
log "apt fetched every fixture package through the installed apt-dht-proxy"
EOS
    top_srcdir=$src top_builddir=$src TMPDIR=$w/tmp APT_TIME_LIMIT=300 \
        sh "$w/fetch.sh" || { tail -n 40 "$w/daemon.log" >&2; die "fetching the fixture through the proxy failed"; }
    n=$(find /var/cache/private/apt-dht -type f | wc -l)
    [ "$n" -gt 0 ] || die "nothing was cached in /var/cache/apt-dht"
    say "$n files cached in /var/cache/apt-dht"
else
    say "note: no tests/integration/lib.sh in this tree: no fixture fetch; the daemon answered HTTP"
fi

# ExecReload: SIGHUP re-reads the config and the daemon keeps serving.
kill -HUP "$pid"
sleep 1
kill -0 "$pid" 2>/dev/null || { cat "$w/daemon.log" >&2; die "the daemon died on SIGHUP (ExecReload)"; }
[ "$("$detect")" = "http://127.0.0.1:$port" ] || die "the daemon stopped answering after SIGHUP"
say "SIGHUP (reload): still up and answering"

# systemctl stop: SIGTERM, graceful.
kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -lt 200 ] || die "the daemon did not stop within 20 s of SIGTERM"
    sleep 0.1
done
rc=0; wait "$pid" || rc=$?
trap - EXIT
case $rc in 0|143) say "SIGTERM: stopped (exit $rc)" ;; *) cat "$w/daemon.log" >&2; die "the daemon exited $rc on SIGTERM" ;; esac
EOF

if grep -q 'not yet runnable' "$PROXY"; then
    mode=version
    say "note: $PROXY is still the placeholder; checking that it runs as the unit's user only"
else
    mode=full
fi
timeout -k 10 1200 unshare --net --mount --propagation private \
    sh "$work/stage.sh" "$work" "$mode" "$src" "$PROXY" "$CONF" "$DETECT" "$PORT" &
stage_pid=$!
wait "$stage_pid" || { stage_pid=""; die "running the daemon as the unit failed"; }
stage_pid=""
if [ "$mode" = full ]; then
    owner=$(find /var/cache/private/apt-dht /var/lib/private/apt-dht -mindepth 1 ! -uid "$uid" -print -quit)
    [ -z "$owner" ] || die "$owner is not owned by the unit's user"
fi
# The service stopped: the dynamic user disappears, its files stay (as under systemd).
userdel "$UNIT_USER"
getent group "$UNIT_USER" >/dev/null && groupdel "$UNIT_USER"
created_user=0

# --- 6. remove keeps, purge cleans --------------------------------------------------------
step "apt-get remove: conffiles, cache and state stay"
find /var/cache/private/apt-dht /var/lib/private/apt-dht | sort >"$work/data.before"
aptget remove "$PKG" >"$work/remove.log" 2>&1 \
    || { cat "$work/remove.log" >&2; die "apt-get remove failed"; }
[ "$(dpkg-query -W -f='${db:Status-Status}' "$PKG")" = config-files ] || die "$PKG not in config-files state"
[ ! -e "$PROXY" ] || die "$PROXY is still there after remove"
for f in "$CONF" "$DETECT" /etc/apt/apt.conf.d/30apt-dht /var/cache/apt-dht /var/lib/apt-dht; do
    [ -e "$f" ] || die "$f went away on remove"
done
find /var/cache/private/apt-dht /var/lib/private/apt-dht | sort >"$work/data.after"
cmp -s "$work/data.before" "$work/data.after" || die "remove changed the cache or the state"
out=$(timeout 10 unshare --net sh -c "ip link set lo up && $DETECT http://mirror.example/debian/")
[ "$out" = DIRECT ] || die "after remove, $DETECT printed '$out'"
say "removed; $(wc -l <"$work/data.after") cache/state paths kept; the helper still prints DIRECT"

step "apt-get purge: nothing left"
aptget purge "$PKG" >"$work/purge.log" 2>&1 \
    || { cat "$work/purge.log" >&2; die "apt-get purge failed"; }
installed=0
st=$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null || true)
case $st in ""|not-installed) ;; *) die "$PKG is still known to dpkg after purge ($st)" ;; esac
for p in $PKG_PATHS; do
    if [ -e "$p" ] || [ -L "$p" ]; then die "$p is left after purge"; fi
done
left=$(find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
            /var/lib/systemd/deb-systemd-helper-masked -name '*apt-dht*' 2>/dev/null || true)
[ -z "$left" ] || die "systemd enablement state left after purge: $left"
getent passwd "$UNIT_USER" >/dev/null && die "user $UNIT_USER left behind"
left=$(find /etc /var /run -xdev \( -uid "$uid" -o -gid "$gid" \) -print 2>/dev/null | head -n 5)
[ -z "$left" ] || die "files of the unit's user left behind: $left"
say "purged: no files, no user, no enablement state"

for d in $created_private; do rmdir "$d" 2>/dev/null || true; done
created_private=""
step "PASS ($mode) in $(( $(date +%s) - t0 ))s"
