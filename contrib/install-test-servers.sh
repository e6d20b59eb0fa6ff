#!/usr/bin/env bash
# Unpacks the servers the integration tests run besides Dovecot into a private root, without
# installing them as Debian packages (cyrus-imapd and courier-imap declare Conflicts:
# imap-server, so apt would remove dovecot-imapd): `apt-get download` + `dpkg-deb -x` into
# $ARCTERN_TEST_SERVERS (default /opt/arctern-test-servers), and the conflict-free libraries
# they need through apt. Courier's authlib is unpacked too (its packages would start a system
# authdaemond); the tests run it in a private mount namespace (tests/integration/support/
# courier.rs). Idempotent. The tests find the binaries there and skip nothing: a missing
# server fails them.
set -euo pipefail
ROOT=${ARCTERN_TEST_SERVERS:-/opt/arctern-test-servers}
CYRUS=$ROOT/cyrus
COURIER=$ROOT/courier
have_cyrus() {
  [ -x "$CYRUS/root/usr/lib/cyrus/bin/master" ] && [ -x "$CYRUS/root/usr/lib/cyrus/bin/imapd" ] \
    && command -v saslpasswd2 >/dev/null 2>&1 && [ -e /usr/lib/x86_64-linux-gnu/libical.so.3 ]
}
have_courier() {
  [ -x "$COURIER/root/usr/bin/imapd" ] && [ -x "$COURIER/root/usr/lib/courier/courier-authlib/authdaemond" ] \
    && [ -e /usr/lib/x86_64-linux-gnu/libfam.so.0 ] && [ -e /usr/lib/x86_64-linux-gnu/libltdl.so.7 ]
}
have_mock() {
  [ -f "$ROOT/oauth2-mock/node_modules/oauth2-mock-server/package.json" ]
}
if have_cyrus && have_courier && have_mock; then
  exit 0
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v saslpasswd2 >/dev/null 2>&1 || need+=(sasl2-bin)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
for lib in libical3 libpcre3 libsasl2-modules libfam0 libltdl7 libidn12 libgdbm6 libgnutls30; do
  dpkg -s "$lib" >/dev/null 2>&1 || need+=("$lib")
done
$sudo apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
$sudo mkdir -p "$ROOT"
$sudo chmod 755 "$ROOT"
# unpack DIR PACKAGE...: downloads the packages into DIR/debs and unpacks them into DIR/root.
unpack() {
  local dir=$1
  shift
  $sudo mkdir -p "$dir/debs"
  $sudo chmod 755 "$dir"
  (
    cd "$dir/debs"
    # apt's sandbox user cannot write here; the download then runs as the caller (a warning only).
    $sudo apt-get download "$@" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true
    for deb in ./*.deb; do
      $sudo dpkg-deb -x "$deb" "$dir/root"
    done
  )
  echo "unpacked into $dir/root: $*"
}
have_cyrus || unpack "$CYRUS" cyrus-imapd cyrus-common cyrus-pop3d
have_courier || unpack "$COURIER" courier-imap courier-pop courier-base courier-authlib \
  courier-authdaemon courier-authlib-userdb libcourier-unicode4
# The OAuth2 tests' authorization server: oauth2-mock-server from the npm registry (8.x needs
# node >= 20.19), run by tests/integration/support/oauth2-mock.mjs.
MOCK=$ROOT/oauth2-mock
if [ ! -f "$MOCK/node_modules/oauth2-mock-server/package.json" ]; then
  command -v npm >/dev/null 2>&1 || { echo "npm is needed for oauth2-mock-server" >&2; exit 1; }
  $sudo mkdir -p "$MOCK"
  $sudo npm install --prefix "$MOCK" --no-audit --no-fund --silent oauth2-mock-server@8
  echo "oauth2-mock-server installed into $MOCK"
fi
