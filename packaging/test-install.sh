#!/usr/bin/env bash
# The Debian package, end to end on this machine (CI runs it from .ci/run; needs root):
# build it with cargo-deb, lintian it (no errors), `dpkg -i` it, check what it
# installed (binaries, conffiles, the coexist user, folders and modes, the unit
# enabled and not started), `coexist-relay check` on the installed config as root and
# as the unit's user, `systemd-analyze verify` of the installed unit, the installed
# relay run as coexist (STARTTLS, one message queued), `dpkg -i` again (edits and mail
# kept), then `apt-get remove` (configuration and spool kept) and `apt-get purge`,
# after which no file of the package or made by it is left: the file lists of /etc, /usr, /opt,
# /srv and /var/lib before and after are compared. The coexist user is kept on purge
# on purpose (see packaging/debian/postrm) and the script says so.
#
#   bash packaging/test-install.sh            # builds target/debian/coexist_*.deb
#   bash packaging/test-install.sh FILE.deb   # tests an already built package
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'test-install: %s\n' "$*" >&2; }
fail() {
    say "FAIL: $*"
    exit 1
}

[ "$(id -u)" -eq 0 ] || fail "run as root: the package is installed on this machine"

# Tools this script drives (dpkg-dev: dpkg-shlibdeps for the $auto dependencies).
tools=(lintian systemd openssl adduser dpkg-dev python3)
missing=()
for p in "${tools[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# dpkg takes its lock without waiting; another apt on the machine is waited for.
dpkg_locked() {
    local i
    for i in $(seq 1 120); do
        if "$@" 2>/tmp/test-install.dpkg.$$; then
            rm -f /tmp/test-install.dpkg.$$
            return 0
        fi
        if grep -q "lock" /tmp/test-install.dpkg.$$; then
            sleep 1
            continue
        fi
        cat /tmp/test-install.dpkg.$$ >&2
        rm -f /tmp/test-install.dpkg.$$
        return 1
    done
    fail "dpkg stayed locked for 2 minutes"
}
apt_q() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 -y -qq "$@"; }

if dpkg-query -W -f='${Status}' coexist 2>/dev/null | grep -q "installed\|config-files"; then
    say "coexist is already on this machine (an earlier run?): purging it first"
    apt_q purge coexist >/dev/null
fi
for leftover in /etc/coexist /var/lib/coexist; do
    [ ! -e "$leftover" ] || fail "$leftover exists without the package; move it away first"
done

if [ $# -ge 1 ]; then
    deb=$1
else
    if ! command -v cargo-deb >/dev/null 2>&1; then
        say "installing cargo-deb"
        cargo install cargo-deb --locked
    fi
    say "building the package (release build of both binaries)"
    start=$(date +%s)
    # cargo-deb builds coexist-relay and coexist-migrator (the assets) in one
    # `cargo build --release --workspace` and prints the .deb's path last. --fast:
    # lighter xz (minutes less for the symbols package); the contents are the same.
    deb=$(cargo deb -p relay --fast | grep "\.deb$" | tail -n 1)
    say "built $deb in $(($(date +%s) - start)) s"
fi
[ -f "$deb" ] || fail "no package at $deb"

say "lintian"
# --fail-on error: warnings and infos are printed, only errors fail. Overrides, each
# with its reason: packaging/lintian-overrides.
lintian --fail-on error --info "$deb" || fail "lintian found errors"

# What the file system holds before, to compare after the purge.
snapshot() {
    find /etc /usr /opt /srv /var/lib -xdev \
        \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/lib/ucf \
        -o -path /var/lib/systemd/timers -o -path /etc/ld.so.cache \) -prune -o -print 2>/dev/null |
        LC_ALL=C sort
}
before=$(mktemp)
after=$(mktemp)
control=$(mktemp -d)
relay_pid=
cleanup() {
    # The relay this script started, then the package, then its own files.
    if [ -n "$relay_pid" ] && kill -0 "$relay_pid" 2>/dev/null; then
        kill -TERM "$relay_pid" 2>/dev/null || true
        wait "$relay_pid" 2>/dev/null || true
    fi
    dpkg-query -W coexist >/dev/null 2>&1 && apt_q purge coexist >/dev/null 2>&1
    rm -rf "$before" "$after" "$control"
}
trap cleanup EXIT
snapshot >"$before"

say "dpkg -i $deb"
dpkg_locked dpkg -i "$deb"

# --- what the package installed ----------------------------------------------------
[ -x /usr/bin/coexist-relay ] || fail "/usr/bin/coexist-relay missing"
[ -x /usr/bin/coexist-migrator ] || fail "/usr/bin/coexist-migrator missing"
/usr/bin/coexist-relay --version >/dev/null
/usr/bin/coexist-migrator --version >/dev/null

conffiles=$(dpkg-query -W -f='${Conffiles}\n' coexist)
for f in relay.toml migrator.toml contacts users.csv; do
    grep -q "^ /etc/coexist/$f " <<<"$conffiles" || fail "/etc/coexist/$f is not a conffile: $conffiles"
done

entry=$(getent passwd coexist) || fail "no coexist user"
IFS=: read -r _ _ uid _ _ home shell <<<"$entry"
[ "$uid" -lt 1000 ] || fail "coexist is not a system user (uid $uid)"
[ "$home" = /var/lib/coexist ] || fail "coexist's home is $home"
case "$shell" in */nologin | */false) ;; *) fail "coexist has a login shell: $shell" ;; esac

mode_owner() { stat -c '%a %U:%G' "$1"; }
[ "$(mode_owner /var/lib/coexist)" = "700 coexist:coexist" ] || fail "/var/lib/coexist: $(mode_owner /var/lib/coexist)"
[ "$(mode_owner /var/lib/coexist/spool)" = "700 coexist:coexist" ] || fail "spool: $(mode_owner /var/lib/coexist/spool)"
[ "$(mode_owner /var/lib/coexist/migrator)" = "700 root:root" ] || fail "migrator state: $(mode_owner /var/lib/coexist/migrator)"
[ "$(mode_owner /etc/coexist/tls/relay.key)" = "640 root:coexist" ] || fail "key: $(mode_owner /etc/coexist/tls/relay.key)"
openssl x509 -in /etc/coexist/tls/relay.crt -noout -checkend 86400 >/dev/null || fail "the generated certificate does not last a day"

unit=$(dpkg -L coexist | grep '/systemd/system/coexist-relay.service$') || fail "the unit is not installed"
grep -q '^ExecStartPre=/usr/bin/coexist-relay --config /etc/coexist/relay.toml check$' "$unit" || fail "no ExecStartPre check in $unit"
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$unit" || fail "no ExecReload SIGHUP in $unit"
# Enabled (deb-systemd-helper makes the link whether or not systemd runs) ...
wants=/etc/systemd/system/multi-user.target.wants/coexist-relay.service
[ -L "$wants" ] || fail "the unit is not enabled: no $wants"
# ... and never started by the package: its scripts only try-restart on upgrade
# and stop on remove.
dpkg-deb -e "$deb" "$control"
if grep -nE 'deb-systemd-invoke (\$_dh_action|start|restart)|systemctl (start|restart)' "$control"/post* "$control"/pre* 2>/dev/null; then
    fail "a maintainer script starts the relay"
fi
# (Only the installed binary counts: test suites run their own builds meanwhile.)
if pgrep -f '^/usr/bin/coexist-relay' >/dev/null; then
    fail "the installed coexist-relay runs after the install"
fi

say "coexist-relay check, as root and as the unit's user"
/usr/bin/coexist-relay --config /etc/coexist/relay.toml check
runuser -u coexist -- /usr/bin/coexist-relay --config /etc/coexist/relay.toml check
/usr/bin/coexist-migrator --config /etc/coexist/migrator.toml status >/dev/null

say "systemd-analyze verify $unit"
verify=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify warns: $verify"

# --- the installed relay runs as its user, on the installed spool and certificate --
# The packaged config with the listener and /metrics moved to free loopback ports
# (port 25 needs the unit's capability) and the on-premises next hop to a closed
# loopback port, so that the message stays queued (deferred); the rest as installed.
say "coexist-relay run as coexist on /var/lib/coexist/spool, one message over STARTTLS"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chmod 0755 "$control" # the relay runs as coexist and reads its config here
install -d -m 0755 "$control/run"
sed -e "s|^bind = \"0.0.0.0:25\"|bind = \"127.0.0.1:$port\"|" \
    -e 's|^bind = "127.0.0.1:9125"|bind = "127.0.0.1:0"|' \
    -e 's|^contacts = "contacts"|contacts = "/etc/coexist/contacts"|' \
    -e 's|^smarthost = \["mail.corp.example:25"\]|smarthost = ["127.0.0.1:9"]|' \
    /etc/coexist/relay.toml >"$control/run/relay.toml"
chmod 0644 "$control/run/relay.toml"
# setpriv execs the relay itself (runuser would stand between it and the SIGTERM).
setpriv --reuid coexist --regid coexist --init-groups -- \
    /usr/bin/coexist-relay --config "$control/run/relay.toml" run >"$control/run/relay.log" 2>&1 &
relay_pid=$!
for _ in $(seq 1 300); do
    grep -q "listening" "$control/run/relay.log" && break
    kill -0 "$relay_pid" 2>/dev/null || fail "the relay exited: $(cat "$control/run/relay.log")"
    sleep 0.1
done
grep -q "listening" "$control/run/relay.log" || fail "the relay never listened: $(cat "$control/run/relay.log")"
# STARTTLS with the certificate postinst made (its key readable by group coexist).
python3 - "$port" <<'PY' || fail "SMTP to the installed relay failed: $(cat "$control/run/relay.log")"
import smtplib, ssl, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30) as s:
    s.starttls(context=ssl._create_unverified_context())
    s.sendmail("alice@sender.example", ["bob@corp.example"],
               b"Subject: test-install\r\nMessage-ID: <test-install@x>\r\n\r\nhello\r\n")
PY
queued=$(runuser -u coexist -- /usr/bin/coexist-relay --config "$control/run/relay.toml" queue list --json)
grep -q '"bob@corp.example"' <<<"$queued" || fail "the message is not in the queue: $queued $(cat "$control/run/relay.log")"
kill -TERM "$relay_pid"
wait "$relay_pid" || fail "the relay did not exit 0 on SIGTERM: $(cat "$control/run/relay.log")"
relay_pid=

# --- an upgrade (the same package again) keeps the admin's edits and the mail -----
echo "# edited by test-install.sh" >>/etc/coexist/relay.toml
say "dpkg -i again (upgrade path)"
dpkg_locked dpkg -i "$deb"
grep -q "^# edited by test-install.sh" /etc/coexist/relay.toml || fail "the upgrade replaced the edited relay.toml"
[ -n "$(ls -A /var/lib/coexist/spool/queue)" ] || fail "the upgrade emptied the spool"
[ "$(mode_owner /etc/coexist/tls/relay.key)" = "640 root:coexist" ] || fail "the upgrade changed the key"

# --- remove keeps configuration and mail, purge keeps nothing ---------------------
# More of what a running system has: the migrator's lock beside the contacts table,
# a checkpoint.
: >/etc/coexist/contacts.lock
echo '{}' >/var/lib/coexist/migrator/alice@corp.example.json

say "apt-get remove coexist"
apt_q remove coexist >/dev/null
[ ! -e /usr/bin/coexist-relay ] || fail "remove left the binary"
[ -f /etc/coexist/relay.toml ] || fail "remove deleted the configuration"
[ -n "$(ls -A /var/lib/coexist/spool/queue)" ] || fail "remove deleted the spool (and the message in it)"

say "apt-get purge coexist"
apt_q purge coexist >/dev/null
snapshot >"$after"
if ! diff -u "$before" "$after"; then
    fail "purge left the files above (+) behind"
fi
for gone in /etc/coexist /var/lib/coexist "$wants"; do
    [ ! -e "$gone" ] && [ ! -L "$gone" ] || fail "$gone is still there"
done
owned=$(find /etc /usr /opt /srv /var -xdev -user coexist -print -quit 2>/dev/null)
[ -z "$owned" ] || fail "a file of the coexist user is left: $owned"
if getent passwd coexist >/dev/null; then
    say "the coexist system user is kept on purge (as Debian does); it owns no file now"
fi
say "OK: built, lintian clean of errors, installed, checked, verified, removed, purged"
