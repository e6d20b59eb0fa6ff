#!/usr/bin/env bash
# Unpacks the servers the integration tests run besides Dovecot into a private root, without
# installing them as Debian packages (cyrus-imapd declares Conflicts: imap-server, so apt would
# remove dovecot-imapd): `apt-get download` + `dpkg-deb -x` into $ARCTERN_TEST_SERVERS
# (default /opt/arctern-test-servers), and the conflict-free libraries they need through apt.
# Idempotent. The tests find the binaries there and skip nothing: a missing server fails them.
set -euo pipefail
ROOT=${ARCTERN_TEST_SERVERS:-/opt/arctern-test-servers}
CYRUS=$ROOT/cyrus
if [ -x "$CYRUS/root/usr/lib/cyrus/bin/master" ] && [ -x "$CYRUS/root/usr/lib/cyrus/bin/imapd" ] \
  && command -v saslpasswd2 >/dev/null 2>&1 && [ -e /usr/lib/x86_64-linux-gnu/libical.so.3 ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v saslpasswd2 >/dev/null 2>&1 || need+=(sasl2-bin)
for lib in libical3 libpcre3 libsasl2-modules; do
  dpkg -s "$lib" >/dev/null 2>&1 || need+=("$lib")
done
$sudo apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
$sudo mkdir -p "$CYRUS/debs"
$sudo chmod 755 "$ROOT" "$CYRUS"
cd "$CYRUS/debs"
# apt's sandbox user cannot write here; the download then runs as the caller (a warning only).
$sudo apt-get download cyrus-imapd cyrus-common cyrus-pop3d 2>&1 | grep -v "^W: Download is performed unsandboxed" || true
for deb in ./*.deb; do
  $sudo dpkg-deb -x "$deb" "$CYRUS/root"
done
echo "Cyrus unpacked into $CYRUS/root"
