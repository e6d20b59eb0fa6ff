//! A private Cyrus IMAP 3.6 (Debian's packages unpacked by contrib/install-test-servers.sh):
//! its own imapd.conf/cyrus.conf, spool, sasldb and ports under a temp dir, `master` run as an
//! unprivileged user (arctern-test when the tests run as root), stopped by PID on drop.

use super::{free_port, stop_by_pid, wait_for_master};
use std::path::{Path, PathBuf};
use std::process::Command;

fn server_root() -> PathBuf {
    let base = std::env::var("ARCTERN_TEST_SERVERS")
        .unwrap_or_else(|_| "/opt/arctern-test-servers".to_string());
    PathBuf::from(base).join("cyrus/root")
}

/// A running private Cyrus.
pub struct Cyrus {
    /// Its directory (config, spool, sasldb, logs).
    pub dir: PathBuf,
    /// Plain IMAP port.
    pub imap_port: u16,
    /// POP3 port.
    pub pop3_port: u16,
    /// Implicit-TLS IMAP port (only when started with a certificate).
    pub imaps_port: u16,
    pid: Option<u32>,
    /// The process we spawned (`master`, or `runuser` running it), reaped on drop.
    child: Option<std::process::Child>,
    _tmp: tempfile::TempDir,
}

fn as_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

impl Cyrus {
    /// Starts one (IMAP with IDLE, POP3), with the admin `cyrusadm` and no users.
    pub fn start() -> Cyrus {
        Cyrus::start_with(None)
    }

    /// Starts one that also serves implicit TLS on `imaps_port` and STARTTLS on the plain port,
    /// with this certificate and key (PEM files).
    pub fn start_tls(cert: &Path, key: &Path) -> Cyrus {
        Cyrus::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&Path, &Path)>) -> Cyrus {
        let root = server_root();
        let bin = root.join("usr/lib/cyrus/bin");
        assert!(
            bin.join("master").is_file(),
            "Cyrus is not unpacked at {} (run contrib/install-test-servers.sh)",
            root.display()
        );
        let tmp = tempfile::Builder::new()
            .prefix("arctern-cyrus-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_path_buf();
        for sub in [
            "conf/db",
            "conf/socket",
            "conf/proc",
            "conf/log",
            "conf/msg",
            "conf/quota",
            "conf/user",
            "conf/sieve",
            "conf/ptclient",
            "conf/lock",
            "spool",
        ] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let (imap_port, pop3_port, imaps_port) = (free_port(), free_port(), free_port());
        let user = if as_root() {
            "arctern-test".to_string()
        } else {
            String::from_utf8_lossy(&Command::new("id").arg("-un").output().unwrap().stdout)
                .trim()
                .to_string()
        };
        let d = dir.display();
        let conf = format!(
            "configdirectory: {d}/conf\npartition-default: {d}/spool\nsasl_pwcheck_method: auxprop\n\
             sasl_auxprop_plugin: sasldb\nsasl_sasldb_path: {d}/sasldb2\nsasl_mech_list: PLAIN LOGIN\n\
             allowplaintext: yes\nadmins: cyrusadm\nunixhierarchysep: yes\ncyrus_user: {user}\n\
             syslog_prefix: arctern-cyrus\nidlesocket: {d}/conf/socket/idle\nservername: localhost\n\
             popminpoll: 0\n"
        );
        let conf = match tls {
            Some((cert, key)) => {
                std::fs::copy(cert, dir.join("server.crt")).unwrap();
                std::fs::copy(key, dir.join("server.key")).unwrap();
                format!("{conf}tls_server_cert: {d}/server.crt\ntls_server_key: {d}/server.key\n")
            }
            None => conf,
        };
        std::fs::write(dir.join("imapd.conf"), conf).unwrap();
        let b = bin.display();
        let imaps = if tls.is_some() {
            format!(
                "  imaps cmd=\"{b}/imapd -s -C {d}/imapd.conf\" listen=\"127.0.0.1:{imaps_port}\" prefork=0\n"
            )
        } else {
            String::new()
        };
        let services = format!(
            "START {{\n}}\nSERVICES {{\n  imap cmd=\"{b}/imapd -C {d}/imapd.conf\" listen=\"127.0.0.1:{imap_port}\" prefork=0\n  \
             pop3 cmd=\"{b}/pop3d -C {d}/imapd.conf\" listen=\"127.0.0.1:{pop3_port}\" prefork=0\n{imaps}}}\n\
             EVENTS {{\n}}\nDAEMON {{\n  idled cmd=\"{b}/idled -C {d}/imapd.conf\"\n}}\n"
        );
        std::fs::write(dir.join("cyrus.conf"), services).unwrap();
        let mut cyrus = Cyrus {
            dir,
            imap_port,
            pop3_port,
            imaps_port,
            pid: None,
            child: None,
            _tmp: tmp,
        };
        cyrus.set_password("cyrusadm");
        if as_root() {
            let _ = Command::new("chown")
                .args(["-R", &user])
                .arg(&cyrus.dir)
                .status();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cyrus.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let lib = root.join("usr/lib/x86_64-linux-gnu");
        let log = std::fs::File::create(cyrus.dir.join("master.log")).unwrap();
        let mut cmd = if as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", &user, "--", "env"]);
            c.arg(format!("LD_LIBRARY_PATH={}", lib.display()));
            c.arg(bin.join("master"));
            c
        } else {
            let mut c = Command::new(bin.join("master"));
            c.env("LD_LIBRARY_PATH", &lib);
            c
        };
        cmd.arg("-C")
            .arg(cyrus.dir.join("imapd.conf"))
            .arg("-M")
            .arg(cyrus.dir.join("cyrus.conf"))
            .arg("-p")
            .arg(cyrus.dir.join("master.pid"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // `master` stays in the foreground; its PID file names it. Its own process group: on
        // SIGTERM it signals its whole group, which would otherwise take down every other
        // server this test process started.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        cyrus.child = Some(cmd.spawn().unwrap());
        let pid = wait_for_master(&cyrus.dir.join("master.pid"), imap_port, None, || {
            std::fs::read_to_string(cyrus.dir.join("master.log")).unwrap_or_default()
        });
        cyrus.pid = Some(pid);
        cyrus
    }

    /// Sets `user`'s password to "secret" in the private sasldb.
    fn set_password(&self, user: &str) {
        let mut child = Command::new("saslpasswd2")
            .args(["-p", "-c", "-u", "localhost", "-f"])
            .arg(self.dir.join("sasldb2"))
            .arg(user)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("saslpasswd2 (sasl2-bin, installed by contrib/install-test-servers.sh)");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"secret\n").unwrap();
        assert!(child.wait().unwrap().success());
    }

    /// Adds a mail user (password "secret") with an INBOX.
    pub fn add_user(&self, user: &str) {
        self.set_password(user);
        if as_root() {
            let _ = Command::new("chown")
                .arg("arctern-test")
                .arg(self.dir.join("sasldb2"))
                .status();
        }
        let mut admin = super::Client::connect(self.imap_port, "cyrusadm");
        admin.create(&format!("user/{user}"));
    }

    /// The master's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("master.log")).unwrap_or_default()
    }
}

impl Drop for Cyrus {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            stop_by_pid(pid);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
