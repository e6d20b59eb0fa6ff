#!/usr/bin/env bash
# Quick start: a throwaway Dovecot on 127.0.0.1:10143 with sample mail, synced by arctern using
# config/demo.toml. Everything lives under /tmp/arctern-demo.
#   contrib/demo.sh          start the server (if needed), seed it, build arctern, sync, show status
#   contrib/demo.sh stop     stop the demo server (by its PID) and remove /tmp/arctern-demo
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=/tmp/arctern-demo
PORT=10143

stop() {
  if [ -f "$DEMO/run/master.pid" ]; then
    kill "$(cat "$DEMO/run/master.pid")" 2>/dev/null || true
  fi
  rm -rf "$DEMO"
}
if [ "${1:-}" = "stop" ]; then stop; echo "demo stopped"; exit 0; fi

contrib/install-deps.sh

# shellcheck source=contrib/lib/private-dovecot.sh
. contrib/lib/private-dovecot.sh
private_dovecot_users

if ! { [ -f "$DEMO/run/master.pid" ] && kill -0 "$(cat "$DEMO/run/master.pid")" 2>/dev/null; }; then
  stop
  mkdir -p "$DEMO"/{run,state,mail}
  chmod 755 "$DEMO"
  chown "$MUID:$MGID" "$DEMO/mail"
  echo "demo:{PLAIN}demo:$MUID:$MGID::$DEMO/mail/demo::" > "$DEMO/passwd"
  write_private_dovecot_conf "$DEMO" "$PORT" arctern-demo
  start_private_dovecot "$DEMO"
  D="doveadm -c $DEMO/dovecot.conf"
  for f in Archive Lists.rust Lists.debian Entwürfe; do $D mailbox create -u demo "$f"; done
  n=0
  for f in INBOX Archive Lists.rust Lists.debian Entwürfe; do
    for i in $(seq 8); do
      n=$((n+1))
      printf 'From: Demo Sender %d <sender%d@example.org>\r\nTo: demo@example.org\r\nSubject: Sample message %d in %s\r\nMessage-ID: <demo%d@arctern.example>\r\nDate: Mon, 2 Nov 2026 10:%02d:00 +0000\r\n\r\nHello! This is sample message %d, about %s.\r\n' \
        "$n" "$n" "$n" "$f" "$n" "$i" "$n" "$([ $((n % 2)) = 0 ] && echo rust || echo backups)" \
        | $D save -u demo -m "$f"
    done
  done
  $D flags add -u demo '\Seen' mailbox INBOX 1:4
  $D flags add -u demo '\Flagged' mailbox Archive 2
  echo "demo server on 127.0.0.1:$PORT with $n messages (user demo, password demo)"
fi

mkdir -p "$DEMO/local"
cargo build --release --quiet
./target/release/arctern -c config/demo.toml check
./target/release/arctern -c config/demo.toml sync
./target/release/arctern -c config/demo.toml status
echo
echo "== offline search: arctern search 'rust folder:Lists/*'"
./target/release/arctern -c config/demo.toml search 'rust folder:Lists/*'
echo
echo "== arctern search --json 'subject:sample flag:flagged'"
./target/release/arctern -c config/demo.toml search --json 'subject:sample flag:flagged'
echo
echo "Your mirror is in $DEMO/local/Mail (try: mutt -f $DEMO/local/Mail). Stop with: contrib/demo.sh stop"
