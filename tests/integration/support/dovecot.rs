//! A private Dovecot for one test: its own config, users, mail, certificates and log under a temp
//! dir, listening on free 127.0.0.1 ports, stopped by PID when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The unprivileged user that owns test mail when tests run as root (Dovecot refuses uid 0).
const MAIL_USER: &str = "arctern-test";

/// A running Dovecot.
pub struct Dovecot {
    /// The temp dir holding everything.
    pub dir: PathBuf,
    /// Plain IMAP (also STARTTLS) port.
    pub imap_port: u16,
    /// Implicit-TLS IMAP port.
    pub imaps_port: u16,
    /// Plain POP3 (also STLS) port.
    pub pop3_port: u16,
    /// Implicit-TLS POP3 port.
    pub pop3s_port: u16,
    /// LMTP port (Postfix delivers here).
    pub lmtp_port: u16,
    /// The auth service's port (Postfix's SASL logins check passwords here).
    pub auth_port: u16,
    /// The test CA certificate (PEM).
    pub ca_file: PathBuf,
    conf: PathBuf,
    uid: u32,
    gid: u32,
    pid: Option<u32>,
    _tmp: tempfile::TempDir,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn id_of(flag: &str, user: &str) -> Option<u32> {
    let out = Command::new("id").arg(flag).arg(user).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn mail_ids() -> (u32, u32, String) {
    let me = id_of("-u", "").or_else(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
    });
    if me == Some(0) {
        if id_of("-u", MAIL_USER).is_none() {
            // Tests run in parallel: another one may create the user first, so only the result
            // counts, not useradd's exit status (contrib/test.sh creates it beforehand anyway).
            let _ = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                ])
                .arg(MAIL_USER)
                .output();
        }
        (
            id_of("-u", MAIL_USER).expect("test user"),
            id_of("-g", MAIL_USER).expect("test group"),
            MAIL_USER.to_string(),
        )
    } else {
        let out = run(Command::new("id").arg("-un"));
        let name = out.trim().to_string();
        (
            id_of("-u", &name).expect("uid"),
            id_of("-g", &name).expect("gid"),
            name,
        )
    }
}

fn make_certs(dir: &Path) {
    let ossl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir));
    ossl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "3",
        "-subj",
        "/CN=arctern test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    ossl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    ossl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "3",
        "-extfile",
        "ext.cnf",
    ]);
}

impl Dovecot {
    /// Starts a Dovecot; `extra` is appended to its config (e.g. an `imap_capability` line).
    pub fn start(extra: &str) -> Dovecot {
        let tmp = tempfile::Builder::new()
            .prefix("arctern-dovecot-")
            .tempdir_in("/tmp")
            .unwrap();
        let dir = tmp.path().to_path_buf();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (uid, gid, user) = mail_ids();
        for d in ["run", "state", "mail"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        make_certs(&dir);
        run(Command::new("chown")
            .arg(format!("{uid}:{gid}"))
            .arg(dir.join("mail")));
        let (login_user, internal_user) = if user == MAIL_USER {
            ("dovenull".to_string(), "dovecot".to_string())
        } else {
            (user.clone(), user.clone())
        };
        let (imap_port, imaps_port, pop3_port, pop3s_port) = (
            super::free_port(),
            super::free_port(),
            super::free_port(),
            super::free_port(),
        );
        let (lmtp_port, auth_port) = (super::free_port(), super::free_port());
        std::fs::write(dir.join("passwd"), "").unwrap();
        let d = dir.display();
        let conf = format!(
            r#"
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
instance_name = arctern-test-{imap_port}
protocols = imap pop3 lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <{d}/server.crt
ssl_key = <{d}/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{d}/mail/%n
first_valid_uid = {uid}
last_valid_uid = 0
first_valid_gid = 0
default_login_user = {login_user}
default_internal_user = {internal_user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {d}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s_port}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service auth {{
  inet_listener {{
    address = 127.0.0.1
    port = {auth_port}
  }}
}}
{extra}
"#
        );
        let conf_path = dir.join("dovecot.conf");
        std::fs::write(&conf_path, conf).unwrap();
        // The master forks and keeps its stdio: give it files, or reading a pipe never ends.
        let log = std::fs::File::create(dir.join("dovecot.stdio")).unwrap();
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(&conf_path)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "dovecot failed to start: {}",
            std::fs::read_to_string(dir.join("dovecot.stdio")).unwrap_or_default()
        );
        let mut me = Dovecot {
            dir: dir.clone(),
            imap_port,
            imaps_port,
            pop3_port,
            pop3s_port,
            lmtp_port,
            auth_port,
            ca_file: dir.join("ca.crt"),
            conf: conf_path,
            uid,
            gid,
            pid: None,
            _tmp: tmp,
        };
        me.pid = Some(super::wait_for_master(
            &dir.join("run/master.pid"),
            imap_port,
            None,
            || me.log(),
        ));
        me
    }

    /// Adds a mail user with password `secret`.
    pub fn add_user(&self, user: &str) {
        use std::io::Write;
        let home = self.dir.join("mail").join(user);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("passwd"))
            .unwrap();
        writeln!(
            f,
            "{user}:{{PLAIN}}secret:{}:{}::{}::",
            self.uid,
            self.gid,
            home.display()
        )
        .unwrap();
    }

    /// Adds a user whose mail is the Maildir at `maildir` (made readable by the mail uid), so
    /// Dovecot can be asked how it reads a Maildir that arctern wrote.
    /// (Added when the test starts: Dovecot may miss a passwd-file change made within the same
    /// second as its last read.) Call [`Dovecot::hand_over`] before reading.
    pub fn add_reader_of(&self, user: &str, maildir: &Path) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("passwd"))
            .unwrap();
        writeln!(
            f,
            "{user}:{{PLAIN}}secret:{}:{}::{}::userdb_mail=maildir:{}",
            self.uid,
            self.gid,
            maildir.display(),
            maildir.display()
        )
        .unwrap();
    }

    /// Gives the mail uid ownership of a Maildir so a reader user can open it.
    pub fn hand_over(&self, maildir: &Path) {
        run(Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(maildir));
    }

    /// Drops `count` messages straight into a user's Maildir `new/` (as a delivery agent would),
    /// owned by the mail uid; `body(i)` gives each message. Fast enough for big maildrops.
    pub fn deliver_files(&self, user: &str, count: usize, body: impl Fn(usize) -> Vec<u8>) {
        let root = self.dir.join("mail").join(user);
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        for i in 0..count {
            std::fs::write(root.join("new").join(format!("{stamp}.T{i}.test")), body(i)).unwrap();
        }
        run(Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(&root));
    }

    /// Runs doveadm against this instance.
    pub fn doveadm(&self, args: &[&str]) -> String {
        run(Command::new("doveadm").arg("-c").arg(&self.conf).args(args))
    }

    /// The server log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }
}

impl Dovecot {
    /// Stops the server (by PID) and starts it again with the same config, ports and mail, as
    /// a server restart would.
    pub fn restart(&mut self, down_for: Duration) {
        self.stop();
        std::thread::sleep(down_for);
        let log = std::fs::File::create(self.dir.join("dovecot.stdio")).unwrap();
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(&self.conf)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "dovecot failed to restart: {}",
            self.log()
        );
        let pid = super::wait_for_master(
            &self.dir.join("run/master.pid"),
            self.imap_port,
            self.pid,
            || self.log(),
        );
        self.pid = Some(pid);
    }

    fn stop(&mut self) {
        if let Some(pid) = self.pid {
            super::stop_by_pid(pid);
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}
