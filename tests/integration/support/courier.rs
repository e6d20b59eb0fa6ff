//! A private Courier-IMAP 5.0 with POP3 (Debian's packages unpacked by
//! contrib/install-test-servers.sh). Courier's authlib reads compiled-in paths
//! (`/etc/courier/authdaemonrc`, `/etc/courier/userdb.dat`, the socket under `/run/courier`, its
//! modules under `/usr/lib/courier-authlib`), so each instance runs in its own mount namespace
//! (`unshare -m`, private propagation) where those directories are bind mounts of its temp dir
//! and of the unpacked packages: nothing of the machine's is read or changed, and instances run
//! side by side. Mail users are userdb entries (password "secret") owning Maildirs under the
//! temp dir; the daemons are stopped by the PIDs the start script records.

use super::{free_port, stop_by_pid};
use std::path::{Path, PathBuf};
use std::process::Command;

fn server_root() -> PathBuf {
    let base = std::env::var("ARCTERN_TEST_SERVERS")
        .unwrap_or_else(|_| "/opt/arctern-test-servers".to_string());
    PathBuf::from(base).join("courier/root")
}

/// The start script, run inside the new mount namespace: $1 package root, $2 instance dir, $3
/// IMAP port, $4 POP3 port. Each daemon's PID goes to $2/pids (couriertcpd leaves the process
/// group, so only the PIDs reach it).
const START: &str = r#"#!/bin/sh
set -e
R=$1; T=$2; IMAP=$3; POP=$4
mount --bind "$T/etc" /etc/courier
mount --bind "$T/run" /run/courier
mount --bind "$R/usr/lib/courier-authlib" /usr/lib/courier-authlib
LIB="$R/usr/lib:$R/usr/lib/x86_64-linux-gnu"
env -i LD_LIBRARY_PATH="$LIB" "$R/usr/lib/courier/courier-authlib/authdaemond" > "$T/authdaemond.log" 2>&1 &
echo $! >> "$T/pids"
TLS=""
if [ -f "$T/imapd.pem" ]; then
  # imaplogin hands the TLS to couriertls as the user "courier" (Debian's courier-base makes
  # one): an unprivileged one, in this namespace's own /etc/passwd and /etc/group only.
  if ! getent passwd courier > /dev/null; then
    cp /etc/passwd "$T/passwd"; cp /etc/group "$T/group"
    echo "courier:x:65534:65534:courier:/nonexistent:/usr/sbin/nologin" >> "$T/passwd"
    echo "courier:x:65534:" >> "$T/group"
    mount --bind "$T/passwd" /etc/passwd
    mount --bind "$T/group" /etc/group
  fi
  TLS="IMAP_STARTTLS=YES IMAP_TLS_REQUIRED=0 COURIERTLS=$R/usr/bin/couriertls TLS_CERTFILE=$T/imapd.pem TLS_VERIFYPEER=NONE"
fi
env -i LD_LIBRARY_PATH="$LIB" $TLS \
  IMAP_CAPABILITY="IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE" \
  IMAP_KEYWORDS=1 IMAP_ACL=1 IMAP_IDLE_TIMEOUT=5 IMAP_MAILBOX_SANITY_CHECK=1 IMAP_USELOCKS=1 \
  IMAP_ENHANCEDIDLE=0 IMAP_TRASHFOLDERNAME=Trash IMAP_EMPTYTRASH= IMAP_UMASK=022 MAILDIRPATH=Maildir \
  "$R/usr/sbin/couriertcpd" -address=127.0.0.1 -maxprocs=40 -maxperip=40 -nodnslookup -noidentlookup \
  "$IMAP" "$R/usr/lib/courier/courier/imaplogin" "$R/usr/bin/imapd" Maildir > "$T/imapd.log" 2>&1 &
echo $! >> "$T/pids"
env -i LD_LIBRARY_PATH="$LIB" MAILDIRPATH=Maildir POP3AUTH=LOGIN \
  "$R/usr/sbin/couriertcpd" -address=127.0.0.1 -maxprocs=40 -maxperip=40 -nodnslookup -noidentlookup \
  "$POP" "$R/usr/lib/courier/courier/courierpop3login" "$R/usr/lib/courier/courier/courierpop3d" Maildir \
  > "$T/pop3d.log" 2>&1 &
echo $! >> "$T/pids"
touch "$T/started"
wait
"#;

/// A running private Courier.
pub struct Courier {
    /// Its directory (config, users' Maildirs, logs).
    pub dir: PathBuf,
    /// Plain IMAP port.
    pub imap_port: u16,
    /// POP3 port.
    pub pop3_port: u16,
    child: Option<std::process::Child>,
    _tmp: tempfile::TempDir,
}

impl Courier {
    /// Starts one with the given mail users (password "secret"), each with an empty Maildir.
    pub fn start(users: &[&str]) -> Courier {
        Courier::start_with(users, None)
    }

    /// Starts one that offers STARTTLS on its IMAP port with this certificate and key (PEM).
    pub fn start_tls(users: &[&str], cert: &Path, key: &Path) -> Courier {
        Courier::start_with(users, Some((cert, key)))
    }

    fn start_with(users: &[&str], tls: Option<(&Path, &Path)>) -> Courier {
        let root = server_root();
        assert!(
            root.join("usr/bin/imapd").is_file(),
            "Courier is not unpacked at {} (run contrib/install-test-servers.sh)",
            root.display()
        );
        let tmp = tempfile::Builder::new()
            .prefix("arctern-courier-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_path_buf();
        for sub in ["etc", "run/authdaemon", "home"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(
            dir.join("etc/authdaemonrc"),
            "authmodulelist=\"authuserdb\"\ndaemons=3\nauthdaemonvar=/run/courier/authdaemon\nDEBUG_LOGIN=0\nDEFAULTOPTIONS=\"\"\nLOGGEROPTS=\"\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("start.sh"), START).unwrap();
        if let Some((cert, key)) = tls {
            // couriertls reads key and certificate from one file.
            let mut pem = std::fs::read(key).unwrap();
            pem.extend(std::fs::read(cert).unwrap());
            std::fs::write(dir.join("imapd.pem"), pem).unwrap();
            // Read by couriertls as the unprivileged "courier".
            use std::os::unix::fs::PermissionsExt;
            for (path, mode) in [(dir.join("imapd.pem"), 0o644), (dir.clone(), 0o755)] {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
        let lib = format!(
            "{}:{}",
            root.join("usr/lib").display(),
            root.join("usr/lib/x86_64-linux-gnu").display()
        );
        let hash = Command::new("openssl")
            .args(["passwd", "-1", "secret"])
            .output()
            .expect("openssl");
        let hash = String::from_utf8_lossy(&hash.stdout).trim().to_string();
        let mut userdb = String::new();
        let mut shadow = String::new();
        for user in users {
            let home = dir.join("home").join(user);
            std::fs::create_dir_all(&home).unwrap();
            let made = Command::new(root.join("usr/bin/maildirmake.courier"))
                .env("LD_LIBRARY_PATH", &lib)
                .arg(home.join("Maildir"))
                .status()
                .unwrap();
            assert!(made.success(), "maildirmake for {user}");
            userdb.push_str(&format!(
                "{user}\tuid=0|gid=0|home={h}|mail={h}/Maildir|_=\n",
                h = home.display()
            ));
            shadow.push_str(&format!("{user}\tsystempw={hash}\n"));
        }
        for (text, file) in [(userdb, "userdb"), (shadow, "userdbshadow")] {
            make_dat(&root, &lib, &dir.join("etc"), file, &text);
        }
        // The bind mounts need their mount points; empty directories where none exist.
        for point in ["/etc/courier", "/run/courier", "/usr/lib/courier-authlib"] {
            let _ = std::fs::create_dir_all(point);
        }
        let (imap_port, pop3_port) = (free_port(), free_port());
        let log = std::fs::File::create(dir.join("start.log")).unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private", "sh"])
            .arg(dir.join("start.sh"))
            .arg(&root)
            .arg(&dir)
            .arg(imap_port.to_string())
            .arg(pop3_port.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let mut courier = Courier {
            imap_port,
            pop3_port,
            child: Some(cmd.spawn().expect("unshare (util-linux)")),
            dir,
            _tmp: tmp,
        };
        courier.wait_ready();
        courier
    }

    fn wait_ready(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let up = |port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if self.dir.join("started").exists()
                && self.dir.join("run/authdaemon/socket").exists()
                && up(self.imap_port)
                && up(self.pop3_port)
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("Courier's start script ended ({status}): {}", self.log());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Courier did not start: {}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The start script's and daemons' output.
    pub fn log(&self) -> String {
        ["start.log", "authdaemond.log", "imapd.log", "pop3d.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Builds `etc/FILE.dat` from userdb lines with Courier's own makedatprog.
fn make_dat(root: &Path, lib: &str, etc: &Path, file: &str, lines: &str) {
    let mut child = Command::new(root.join("usr/lib/courier/courier-authlib/makedatprog"))
        .env("LD_LIBRARY_PATH", lib)
        .arg("-")
        .arg(etc.join(format!("{file}.tmp")))
        .arg(etc.join(format!("{file}.dat")))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut input = child.stdin.take().unwrap();
    input.write_all(lines.as_bytes()).unwrap();
    input.write_all(b".\n").unwrap();
    drop(input);
    assert!(child.wait().unwrap().success(), "makedatprog {file}");
}

impl Drop for Courier {
    fn drop(&mut self) {
        let pids = std::fs::read_to_string(self.dir.join("pids")).unwrap_or_default();
        for pid in pids.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            stop_by_pid(pid);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
