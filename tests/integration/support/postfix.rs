//! A private Postfix for one test: config, queue and log under a temp dir, SMTP on free
//! 127.0.0.1 ports (plain+STARTTLS, and implicit TLS), delivering every accepted message to the
//! test Dovecot over LMTP and nothing anywhere else; logins are checked by that Dovecot's auth
//! service. Stopped by the master's PID when dropped. Needs root (Postfix's master does).

use super::Dovecot;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running Postfix.
pub struct Postfix {
    /// The temp dir holding everything.
    pub dir: PathBuf,
    /// SMTP port: plain, STARTTLS offered, AUTH only after STARTTLS.
    pub smtp_port: u16,
    /// Implicit-TLS submission port (AUTH offered).
    pub smtps_port: u16,
    /// SMTP port without STARTTLS (and without AUTH): for the "refuse to downgrade" test.
    pub plain_port: u16,
    pid: Option<u32>,
    _tmp: tempfile::TempDir,
}

impl Postfix {
    /// Starts a Postfix that delivers mail for `example.org` to `dovecot` over LMTP (the local
    /// part is the Dovecot user); `main_extra` is appended to main.cf (e.g. a size limit), with
    /// `{etc}` standing for the config directory, where `files` (name, content) are written.
    pub fn start(dovecot: &Dovecot, main_extra: &str, files: &[(&str, &str)]) -> Postfix {
        assert!(
            Command::new("id")
                .arg("-u")
                .output()
                .map(|o| o.stdout.starts_with(b"0"))
                .unwrap_or(false),
            "the SMTP tests start a private Postfix, which needs root"
        );
        let tmp = tempfile::Builder::new()
            .prefix("arctern-postfix-")
            .tempdir_in("/tmp")
            .unwrap();
        let dir = tmp.path().to_path_buf();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for d in ["etc", "queue", "data", "log"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let chown = Command::new("chown")
            .arg("postfix")
            .arg(dir.join("data"))
            .status()
            .unwrap();
        assert!(chown.success());
        let (smtp_port, smtps_port, plain_port) =
            (super::free_port(), super::free_port(), super::free_port());
        for (name, content) in files {
            std::fs::write(dir.join("etc").join(name), content).unwrap();
        }
        let main_extra = main_extra.replace("{etc}", &dir.join("etc").display().to_string());
        let d = dir.display();
        let cert = dovecot.dir.join("server.crt");
        let key = dovecot.dir.join("server.key");
        let main = format!(
            r#"compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = arctern-test.localdomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains =
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = example.org
virtual_mailbox_maps = static:ok
virtual_transport = lmtp:inet:127.0.0.1:{lmtp}
default_transport = error:nothing leaves this test machine
relay_transport = error:nothing leaves this test machine
local_transport = error:nothing leaves this test machine
# Messages pass unchanged: no header rewriting, no added Message-ID or Date.
local_header_rewrite_clients =
maillog_file = {d}/log/postfix.log
maillog_file_prefixes = {d}/log
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{auth}
smtpd_sasl_auth_enable = yes
smtpd_relay_restrictions = permit_sasl_authenticated, permit_mynetworks, reject_unauth_destination
biff = no
{main_extra}
"#,
            lmtp = dovecot.lmtp_port,
            auth = dovecot.auth_port,
            cert = cert.display(),
            key = key.display(),
        );
        std::fs::write(dir.join("etc/main.cf"), main).unwrap();
        let master = format!(
            "127.0.0.1:{smtp_port} inet n - n - - smtpd
127.0.0.1:{smtps_port} inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
127.0.0.1:{plain_port} inet n - n - - smtpd
  -o smtpd_tls_security_level=none
  -o smtpd_sasl_auth_enable=no
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"
        );
        std::fs::write(dir.join("etc/master.cf"), master).unwrap();
        let stdio = std::fs::File::create(dir.join("postfix.stdio")).unwrap();
        let status = Command::new("postfix")
            .arg("-c")
            .arg(dir.join("etc"))
            .arg("start")
            .stdin(std::process::Stdio::null())
            .stdout(stdio.try_clone().unwrap())
            .stderr(stdio)
            .status()
            .unwrap();
        let mut me = Postfix {
            dir: dir.clone(),
            smtp_port,
            smtps_port,
            plain_port,
            pid: None,
            _tmp: tmp,
        };
        assert!(status.success(), "postfix failed to start: {}", me.log());
        me.pid = Some(super::wait_for_master(
            &dir.join("queue/pid/master.pid"),
            smtp_port,
            None,
            || me.log(),
        ));
        me
    }

    /// The Postfix log.
    pub fn log(&self) -> String {
        let stdio = std::fs::read_to_string(self.dir.join("postfix.stdio")).unwrap_or_default();
        let log = std::fs::read_to_string(self.dir.join("log/postfix.log")).unwrap_or_default();
        format!("{stdio}{log}")
    }

    /// Waits until nothing is queued any more (every accepted message delivered or bounced).
    pub fn wait_until_delivered(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if queue_is_empty(&self.dir.join("queue")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Postfix still has mail queued after {limit:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn queue_is_empty(queue: &Path) -> bool {
    ["incoming", "active", "deferred", "maildrop", "hold"]
        .iter()
        .all(|q| count_files(&queue.join(q)) == 0)
}

fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() { count_files(&p) } else { 1 }
        })
        .sum()
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            super::stop_by_pid(pid);
        }
    }
}
