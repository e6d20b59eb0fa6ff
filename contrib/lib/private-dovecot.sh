# Shared by contrib/demo.sh and contrib/bench.sh (sourced, not run): a private, plain-text IMAP
# Dovecot on 127.0.0.1 whose config, state, mail and log all live under one directory.

# Sets MAILUSER, MUID, MGID, LOGIN_USER, INTERNAL_USER. Dovecot refuses mail access as root, so
# root uses the unprivileged arctern-test user (created if missing).
private_dovecot_users() {
  if [ "$(id -u)" -eq 0 ]; then
    id arctern-test >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin arctern-test
    MAILUSER=arctern-test; LOGIN_USER=dovenull; INTERNAL_USER=dovecot
  else
    MAILUSER=$(id -un); LOGIN_USER=$MAILUSER; INTERNAL_USER=$MAILUSER
  fi
  MUID=$(id -u "$MAILUSER"); MGID=$(id -g "$MAILUSER")
}

# write_private_dovecot_conf DIR PORT INSTANCE [POP3PORT]: DIR/dovecot.conf for users in
# DIR/passwd with mail under DIR/mail/<user>; plain POP3 too when POP3PORT is given. Call
# private_dovecot_users first.
write_private_dovecot_conf() {
  local dir=$1 port=$2 instance=$3 pop3port=${4:-}
  local protocols=imap
  [ -n "$pop3port" ] && protocols="imap pop3"
  cat > "$dir/dovecot.conf" <<CONF
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
instance_name = $instance
protocols = $protocols
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:$dir/mail/%n
first_valid_uid = $MUID
first_valid_gid = 0
default_login_user = $LOGIN_USER
default_internal_user = $INTERNAL_USER
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n $dir/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%n $dir/passwd
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
CONF
  if [ -n "$pop3port" ]; then
    cat >> "$dir/dovecot.conf" <<CONF
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $pop3port
  }
  inet_listener pop3s {
    port = 0
  }
}
CONF
  fi
}

# start_private_dovecot DIR: starts it (stdio to a file, or a pipe never closes) and waits for
# its PID file.
start_private_dovecot() {
  local dir=$1
  dovecot -c "$dir/dovecot.conf" </dev/null >"$dir/dovecot.stdio" 2>&1
  for _ in $(seq 100); do [ -f "$dir/run/master.pid" ] && break; sleep 0.05; done
}
