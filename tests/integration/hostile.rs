//! A scripted, misbehaving IMAP server: hostile folder names never become paths outside the
//! Maildir root, and a broken or short listing is an error, never "the server deleted everything".

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

const GOOD: u8 = 0;
const GARBAGE: u8 = 1;
const SHORT: u8 = 2;
const EOF_MID_FETCH: u8 = 3;

fn body(n: u32) -> String {
    format!("Message-ID: <{n}@fake>\r\nSubject: fake {n}\r\n\r\nhello {n}\r\n")
}

fn serve(listener: TcpListener, mode: Arc<AtomicU8>) {
    for stream in listener.incoming() {
        let Ok(mut out) = stream else { continue };
        let mut input = BufReader::new(out.try_clone().unwrap());
        let _ = out.write_all(b"* OK fake ready\r\n");
        let mut line = String::new();
        loop {
            line.clear();
            if input.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let tag = line.split(' ').next().unwrap_or("*").to_string();
            let upper = line.to_ascii_uppercase();
            let reply = if upper.contains(" LOGIN ") {
                format!("{tag} OK logged in\r\n")
            } else if upper.contains(" CAPABILITY") {
                format!("* CAPABILITY IMAP4rev1 UIDPLUS\r\n{tag} OK\r\n")
            } else if upper.contains(" LIST ") {
                let long = "x".repeat(300);
                format!(
                    "* LIST () \"/\" \"INBOX\"\r\n* LIST () \"/\" \"../../escape\"\r\n* LIST () \"/\" \"a/../../b\"\r\n* LIST () \"/\" \"/etc/cron.d\"\r\n* LIST () \"/\" \"ok/..\"\r\n* LIST () \"/\" \"{long}\"\r\n{tag} OK\r\n"
                )
            } else if upper.contains(" SELECT ") {
                format!(
                    "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 3] ok\r\n{tag} OK [READ-WRITE] selected\r\n"
                )
            } else if upper.contains("BODY.PEEK[]") {
                let mut r = String::new();
                for n in 1..=2u32 {
                    let b = body(n);
                    r.push_str(&format!(
                        "* {n} FETCH (UID {n} FLAGS () INTERNALDATE \"01-Jan-2024 00:00:00 +0000\" RFC822.SIZE {} BODY[] {{{}}}\r\n{b})\r\n",
                        b.len(),
                        b.len()
                    ));
                }
                format!("{r}{tag} OK\r\n")
            } else if upper.contains("UID FETCH 1:* (UID FLAGS)") {
                match mode.load(Ordering::SeqCst) {
                    GARBAGE => format!(
                        "* 1 FETCH (UID 1 FLAGS ())\r\n* 2 FETCH UID 2 garbage\r\n{tag} OK\r\n"
                    ),
                    SHORT => format!("* 1 FETCH (UID 1 FLAGS ())\r\n{tag} OK\r\n"),
                    EOF_MID_FETCH => {
                        let _ = out.write_all(b"* 1 FETCH (UID 1 FLAGS ())\r\n");
                        break;
                    }
                    _ => format!(
                        "* 1 FETCH (UID 1 FLAGS ())\r\n* 2 FETCH (UID 2 FLAGS ())\r\n{tag} OK\r\n"
                    ),
                }
            } else if upper.contains(" LOGOUT") {
                let _ = out.write_all(format!("* BYE bye\r\n{tag} OK\r\n").as_bytes());
                break;
            } else {
                format!("{tag} OK\r\n")
            };
            if out.write_all(reply.as_bytes()).is_err() {
                break;
            }
        }
    }
}

fn all_dirs(root: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(root).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.push(e.path().display().to_string());
            all_dirs(&e.path(), out);
        }
    }
}

#[test]
fn hostile_names_and_broken_listings_never_cost_mail() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mode = Arc::new(AtomicU8::new(GOOD));
    let m = mode.clone();
    std::thread::spawn(move || serve(listener, m));

    let top = tempfile::tempdir().unwrap();
    let base = top.path().join("a/b");
    std::fs::create_dir_all(&base).unwrap();
    let maildir = base.join("Mail");
    let config = base.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}/state\"\n[accounts.fake]\nmaildir = \"{}\"\n[accounts.fake.imap]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nuser = \"u\"\npassword = \"p\"\ntimeout_seconds = 5\n",
            base.display(),
            maildir.display()
        ),
    )
    .unwrap();
    let sync = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_arctern"))
            .arg("-c")
            .arg(&config)
            .arg("sync")
            .output()
            .unwrap()
    };

    let out = sync();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    // INBOX synced; every hostile name refused and reported: a partial run.
    assert_eq!(out.status.code(), Some(1), "{err}");
    for bad in ["escape", "a/../../b", "/etc/cron.d", "ok/..", "xxxxxxxx"] {
        assert!(err.contains(bad), "{bad} not reported: {err}");
    }
    assert_eq!(crate::support::local_files(&maildir).len(), 2);
    let mut dirs = Vec::new();
    all_dirs(top.path(), &mut dirs);
    let expected: Vec<String> = [
        "a",
        "a/b",
        "a/b/Mail",
        "a/b/Mail/cur",
        "a/b/Mail/new",
        "a/b/Mail/tmp",
        "a/b/state",
        "a/b/state/index",
        "a/b/state/index/tantivy",
    ]
    .iter()
    .map(|d| top.path().join(d).display().to_string())
    .collect();
    dirs.sort();
    assert_eq!(dirs, expected, "a directory was created outside the plan");

    for (m, needle) in [
        (GARBAGE, "unreadable response"),
        (SHORT, "listed 1 of the 2"),
        (EOF_MID_FETCH, "closed the connection"),
    ] {
        mode.store(m, Ordering::SeqCst);
        let out = sync();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(needle), "mode {m}: {err}");
        assert_eq!(
            crate::support::local_files(&maildir).len(),
            2,
            "mode {m}: local mail was deleted after a broken listing"
        );
    }
}
