#!/usr/bin/env bash
# Installs the Debian packages arctern's tests need (Dovecot for IMAP/POP3/LMTP, Postfix as the
# loopback SMTP server for re-upload tests, openssl for the test CA) without starting or
# configuring the system services. Idempotent: does nothing when
# everything is present. Usage: contrib/install-deps.sh [--bench|--search] (--bench adds the sync
# peers, --search notmuch and mu).
set -euo pipefail

need=()
[ -x /usr/lib/dovecot/imap ] || need+=(dovecot-imapd)
[ -x /usr/lib/dovecot/pop3 ] || need+=(dovecot-pop3d)
[ -x /usr/lib/dovecot/lmtp ] || need+=(dovecot-lmtpd)
[ -x /usr/sbin/postfix ] || need+=(postfix)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# A real mail reader drives the Maildir side of one test (flags set on unread mail in new/).
command -v neomutt >/dev/null 2>&1 || need+=(neomutt)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
# The adoption tests hand arctern a Maildir the real mbsync and offlineimap kept.
command -v mbsync >/dev/null 2>&1 || need+=(isync)
command -v offlineimap >/dev/null 2>&1 || need+=(offlineimap3)
if [ "${1:-}" = "--bench" ]; then
  command -v mbsync >/dev/null 2>&1 || need+=(isync)
  command -v offlineimap >/dev/null 2>&1 || need+=(offlineimap3)
  command -v hyperfine >/dev/null 2>&1 || need+=(hyperfine)
  command -v getmail >/dev/null 2>&1 || need+=(getmail6)
fi
if [ "${1:-}" = "--search" ]; then
  command -v notmuch >/dev/null 2>&1 || need+=(notmuch)
  command -v mu >/dev/null 2>&1 || need+=(maildir-utils)
fi
# Cyrus and Courier run privately from unpacked packages (they conflict with Dovecot); the
# OAuth2 tests' authorization server comes from the npm registry.
if [ "${1:-}" = "" ]; then
  "$(dirname "$0")/install-test-servers.sh"
fi
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

# Keep the packages' maintainer scripts from starting system daemons while installing.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  created_policy=1
fi
# (An `if`, not `&&`: under `set -e` a false test as the trap's last command made the script
# exit 1 after a successful install whenever policy-rc.d already existed.)
cleanup() { if [ "$created_policy" = 1 ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
# Postfix asks how to configure the system instance: "No configuration" (the tests run their own).
if printf '%s\n' "${need[@]}" | grep -qx postfix; then
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
