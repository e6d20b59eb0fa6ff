//! Test support: a private Dovecot, a second IMAP client, mail fixtures, running the arctern
//! binary, and comparing a Maildir with the server.

pub mod client;
pub mod courier;
pub mod cyrus;
pub mod dovecot;
pub mod fakegmail;
pub mod fakepop;
pub mod fakesmtp;
pub mod oauth2;
pub mod postfix;

pub use client::Client;
pub use courier::Courier;
pub use cyrus::Cyrus;
pub use dovecot::Dovecot;

use std::collections::{BTreeSet, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// One test's world: a server, a user, a Maildir, a state dir and a config file.
pub struct World {
    /// The server.
    pub dovecot: Dovecot,
    /// The mail user.
    pub user: String,
    /// Local Maildir root.
    pub maildir: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// The state dir.
    pub state_dir: PathBuf,
    _local: tempfile::TempDir,
}

impl World {
    /// A fresh server (with `extra` Dovecot config) and an empty local side, synced over plain
    /// IMAP on loopback (`tls = "none"`) with `account_extra` added to the account table.
    pub fn new(extra: &str, account_extra: &str) -> World {
        let dovecot = Dovecot::start(extra);
        let user = "alice".to_string();
        dovecot.add_user(&user);
        let local = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(local.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let maildir = local.path().join("Mail");
        dovecot.add_reader_of("reader", &maildir);
        let state_dir = local.path().join("state");
        let config = local.path().join("config.toml");
        let w = World {
            dovecot,
            user,
            maildir,
            config,
            state_dir,
            _local: local,
        };
        w.write_config(
            &format!("tls = \"none\"\nport = {}", w.dovecot.imap_port),
            account_extra,
        );
        w
    }

    /// Rewrites the config with `imap_extra` lines in the imap table.
    pub fn write_config(&self, imap_extra: &str, account_extra: &str) {
        std::fs::write(
            &self.config,
            format!(
                "state_dir = \"{}\"\n\n[accounts.test]\nmaildir = \"{}\"\n{account_extra}\n\n[accounts.test.imap]\nhost = \"127.0.0.1\"\nuser = \"{}\"\npassword = \"secret\"\ntimeout_seconds = 20\n{imap_extra}\n",
                self.state_dir.display(),
                self.maildir.display(),
                self.user
            ),
        )
        .unwrap();
    }

    /// A second client on the server.
    pub fn client(&self) -> Client {
        Client::connect(self.dovecot.imap_port, &self.user)
    }

    /// Runs `arctern -c CONFIG args...`.
    pub fn arctern(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_arctern"))
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs `arctern sync` and asserts it succeeded; returns stdout.
    pub fn sync_ok(&self) -> String {
        stdout_ok(self.arctern(&["sync"]), "sync", &self.dovecot.log())
    }

    /// The local directory of a folder in the default Maildir++ layout.
    pub fn local_dir(&self, canonical: &str) -> PathBuf {
        if canonical == "INBOX" {
            self.maildir.clone()
        } else {
            self.maildir
                .join(format!(".{}", canonical.replace('/', ".")))
        }
    }
}

/// Runs `arctern -c CONFIG args...`.
pub fn arctern_with(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arctern"))
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// The TOML of an IMAP target `name` (plain text to 127.0.0.1:`port`, `user` / secret), with
/// `extra` lines in its `[targets.NAME]` table.
pub fn imap_target_toml(name: &str, port: u16, user: &str, extra: &str) -> String {
    format!(
        "\n[targets.{name}]\n{extra}\n[targets.{name}.imap]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nuser = \"{user}\"\npassword = \"secret\"\ntimeout_seconds = 20\n"
    )
}

/// Appends [`imap_target_toml`] to the config at `config`.
pub fn add_imap_target(config: &Path, name: &str, port: u16, user: &str, extra: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, text + &imap_target_toml(name, port, user, extra)).unwrap();
}

/// Writes a config at `path` with one POP3 account `p` (alice / secret, plain text on
/// 127.0.0.1:`port`) pulling into `maildir`, its state under `state_dir`.
pub fn write_pop3_config(path: &Path, state_dir: &Path, maildir: &Path, port: u16) {
    std::fs::write(
        path,
        format!(
            "state_dir = \"{}\"\n[accounts.p]\nmaildir = \"{}\"\n[accounts.p.pop3]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nuser = \"alice\"\npassword = \"secret\"\ntimeout_seconds = 20\n",
            state_dir.display(),
            maildir.display(),
        ),
    )
    .unwrap();
}

/// Asserts that a run of `what` succeeded (showing its output and `server_log` when not);
/// returns its stdout.
pub fn stdout_ok(out: Output, what: &str, server_log: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{stdout}\n{}\nserver log:\n{server_log}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
    );
    stdout
}

/// A test message with a unique Message-ID.
pub fn message(n: usize, folder: &str, size_hint: usize) -> Vec<u8> {
    let mut body = format!(
        "From: Sender {n} <s{n}@example.org>\r\nTo: alice@example.org\r\nSubject: message {n} in {folder}\r\nMessage-ID: <{n}.{}@test.arctern>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\n",
        folder.replace(['/', ' '], "_")
    );
    let mut i = 0;
    while body.len() < size_hint {
        body.push_str(&format!(
            "line {i} of message {n}: lorem ipsum dolor sit amet\r\n"
        ));
        i += 1;
    }
    body.push_str("-- \r\nend\r\n");
    body.into_bytes()
}

/// One local message: its file body and flags (IMAP spelling of the standard letters).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalMessage {
    /// Flags.
    pub flags: BTreeSet<String>,
    /// Bytes (LF).
    pub body: Vec<u8>,
}

/// Reads a Maildir folder by hand (independently of arctern's own scanner).
pub fn local_messages(dir: &Path) -> Vec<LocalMessage> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            let letters = name
                .rsplit_once(":2,")
                .map(|(_, l)| l.to_string())
                .unwrap_or_default();
            let flags = letters
                .chars()
                .filter_map(|c| match c {
                    'D' => Some("\\Draft"),
                    'F' => Some("\\Flagged"),
                    'P' => Some("$Forwarded"),
                    'R' => Some("\\Answered"),
                    'S' => Some("\\Seen"),
                    'T' => Some("\\Deleted"),
                    _ => None,
                })
                .map(str::to_string)
                .collect();
            out.push(LocalMessage {
                flags,
                body: std::fs::read(e.path()).unwrap(),
            });
        }
    }
    out.sort();
    out
}

/// CRLF → LF, as a Maildir stores messages.
pub fn to_lf(b: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(b)
        .replace("\r\n", "\n")
        .into_bytes()
}

/// Asserts that a server folder and a local folder hold the same messages with the same flags
/// (keywords aside), with no duplicates.
pub fn assert_same(client: &mut Client, wire: &str, local: &Path) {
    let mut server: Vec<LocalMessage> = client
        .messages(wire)
        .into_iter()
        .map(|m| LocalMessage {
            flags: m
                .flags
                .into_iter()
                .filter(|f| f.starts_with('\\') || f.eq_ignore_ascii_case("$Forwarded"))
                .collect(),
            body: to_lf(&m.body),
        })
        .collect();
    server.sort();
    let local_msgs = local_messages(local);
    assert_eq!(
        server.len(),
        local_msgs.len(),
        "{wire}: {} on the server, {} locally",
        server.len(),
        local_msgs.len()
    );
    assert!(server == local_msgs, "{wire}: contents or flags differ");
}

/// Makes `dir` an empty Maildir folder (as a mail reader or another sync tool would).
pub fn make_maildir(dir: &Path) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
}

/// Writes a new local message file into `dir/cur` with info letters.
pub fn write_local(dir: &Path, name: &str, body: &[u8], letters: &str) {
    let path = if letters.is_empty() {
        dir.join("new").join(name)
    } else {
        dir.join("cur").join(format!("{name}:2,{letters}"))
    };
    std::fs::write(path, to_lf(body)).unwrap();
}

/// The file names in a folder's `cur/` and `new/`.
pub fn local_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            out.extend(entries.map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

/// Waits (at most 15 s) until a server's master writes a PID other than `old` to `pid_file`
/// and 127.0.0.1:`port` accepts connections; returns that PID. `log` explains a failure.
pub fn wait_for_master(
    pid_file: &Path,
    port: u16,
    old: Option<u32>,
    log: impl Fn() -> String,
) -> u32 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let pid: Option<u32> = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if let Some(pid) = pid
            && Some(pid) != old
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            return pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} did not start: {}",
            pid_file.display(),
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sends SIGTERM to a server master we started and waits (at most 5 s) until it is gone (or a
/// zombie: PID 1 here does not reap orphans).
pub fn stop_by_pid(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.contains(") Z ") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Ports this test process has handed out, never handed out twice.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A free 127.0.0.1 port for a server a test starts. Binding port 0 and dropping the listener
/// lets the kernel give the same port to the next caller (a CI run started two Dovecots with the
/// same listener port): ports come instead from below the kernel's ephemeral range (so no client
/// connection can be holding one), start from a place that depends on the process id, and are
/// never handed out twice in one test run. A server restarted on its ports keeps them.
pub fn free_port() -> u16 {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000; // 20000..32000, below Linux's default ephemeral 32768..60999
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let taken = guard.get_or_insert_with(HashSet::new);
    let start = (std::process::id() * 7919) % SPAN;
    for i in 0..SPAN {
        let port = (LOW + (start + i) % SPAN) as u16;
        if taken.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return port;
        }
    }
    panic!("no free port in 20000..32000");
}
