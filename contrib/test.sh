#!/usr/bin/env bash
# The one test command: installs what is missing (Dovecot, Postfix, openssl, Cyrus, Courier, the
# OAuth2 mock), then runs formatting and lint checks, the unit and property tests, and the
# integration tests against private instances of those servers.
set -euo pipefail
cd "$(dirname "$0")/.."

contrib/install-deps.sh
# Dovecot refuses to run mail processes as root: the integration tests use this user when root.
if [ "$(id -u)" -eq 0 ] && ! id arctern-test >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin arctern-test
fi

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== tests"
cargo test --all-targets -- --test-threads=2
