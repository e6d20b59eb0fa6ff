//! Against Cyrus IMAP 3.6 (a private instance, tests/integration/support/cyrus.rs): a pull,
//! changes on both sides, a sync that changes nothing, and a push (children created before
//! their parents, which Cyrus creates itself and then refuses to create again) with verify.

use crate::support::*;
use std::path::{Path, PathBuf};

/// A Cyrus with user alice, an empty local side and a config (plain IMAP on loopback).
struct CyrusWorld {
    cyrus: Cyrus,
    maildir: PathBuf,
    config: PathBuf,
    _local: tempfile::TempDir,
}

impl CyrusWorld {
    fn new(target: Option<&str>) -> CyrusWorld {
        let cyrus = Cyrus::start();
        cyrus.add_user("alice");
        let local = tempfile::tempdir().unwrap();
        let maildir = local.path().join("Mail");
        let config = local.path().join("config.toml");
        let mut text = format!(
            "state_dir = \"{}/state\"\n\n[accounts.c]\nmaildir = \"{}\"\n\n[accounts.c.imap]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"alice\"\npassword = \"secret\"\ntimeout_seconds = 20\n",
            local.path().display(),
            maildir.display(),
            cyrus.imap_port
        );
        if let Some(user) = target {
            cyrus.add_user(user);
            text.push_str(&format!(
                "\n[targets.cyrus]\n[targets.cyrus.imap]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"{user}\"\npassword = \"secret\"\ntimeout_seconds = 20\n",
                cyrus.imap_port
            ));
        }
        std::fs::write(&config, text).unwrap();
        CyrusWorld {
            cyrus,
            maildir,
            config,
            _local: local,
        }
    }

    fn arctern(&self, args: &[&str]) -> std::process::Output {
        arctern_with(&self.config, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout_ok(self.arctern(args), &format!("{args:?}"), &self.cyrus.log())
    }

    fn client(&self, user: &str) -> Client {
        Client::connect(self.cyrus.imap_port, user)
    }

    fn dir(&self, folder: &str) -> PathBuf {
        if folder == "INBOX" {
            self.maildir.clone()
        } else {
            self.maildir.join(format!(".{}", folder.replace('/', ".")))
        }
    }
}

const QUIET: &str = "+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑";

#[test]
fn cyrus_pull_changes_on_both_sides_and_a_sync_that_changes_nothing() {
    let w = CyrusWorld::new(None);
    let mut c = w.client("alice");
    for n in 0..6 {
        c.append(
            "INBOX",
            &message(n, "INBOX", 400 + n * 50),
            if n % 2 == 0 { "\\Seen" } else { "" },
        );
    }
    // Cyrus makes the parent Archive itself.
    c.create("Archive/2023");
    for n in 10..14 {
        c.append("Archive/2023", &message(n, "Archive/2023", 800), "\\Seen");
    }
    let out = w.ok(&["sync"]);
    assert!(out.contains("+10 ↓"), "{out}");
    assert_same(&mut c, "INBOX", &w.dir("INBOX"));
    assert_same(&mut c, "Archive/2023", &w.dir("Archive/2023"));
    let out = w.ok(&["sync"]);
    assert!(out.contains(QUIET), "{out}");

    // Both sides change: a local flag, a local new message, a local deletion; a server flag,
    // new server mail, a server expunge.
    let files = local_files(&w.dir("INBOX"));
    let first = files[0].clone();
    let name = first.file_name().unwrap().to_string_lossy().to_string();
    let base = name.split(":2,").next().unwrap();
    std::fs::rename(
        &first,
        w.dir("INBOX").join("cur").join(format!("{base}:2,FS")),
    )
    .unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    write_local(
        &w.dir("Archive/2023"),
        "1700000000.local.host",
        &message(50, "Archive/2023", 600),
        "S",
    );
    c.store("Archive/2023", "1", "+FLAGS (\\Flagged)");
    c.append("INBOX", &message(60, "INBOX", 500), "");
    c.expunge("Archive/2023", "2");
    let out = w.ok(&["sync"]);
    assert!(out.contains("+1 ↓ +1 ↑"), "{out}");
    assert_same(&mut c, "INBOX", &w.dir("INBOX"));
    assert_same(&mut c, "Archive/2023", &w.dir("Archive/2023"));
    let out = w.ok(&["sync"]);
    assert!(out.contains(QUIET), "{out}");
}

fn local_folder(root: &Path, folder: &str, messages: std::ops::Range<usize>, size: usize) {
    let dir = if folder == "INBOX" {
        root.to_path_buf()
    } else {
        root.join(format!(".{}", folder.replace('/', ".")))
    };
    make_maildir(&dir);
    for n in messages {
        write_local(
            &dir,
            &format!("1700000000.p{n}.host"),
            &message(n, folder, size),
            "S",
        );
    }
}

#[test]
fn push_to_cyrus_creates_children_before_parents_and_verifies() {
    let w = CyrusWorld::new(Some("bob"));
    // Archive/2023 is the biggest folder, so it goes first: Cyrus creates Archive with it and
    // answers the later CREATE "Archive" with NO Mailbox already exists.
    local_folder(&w.maildir, "INBOX", 0..3, 500);
    local_folder(&w.maildir, "Archive/2023", 10..20, 3_000);
    local_folder(&w.maildir, "Archive", 30..32, 500);
    let out = w.ok(&["push", "c", "--to", "cyrus"]);
    assert!(out.contains("+15 ↑"), "{out}");
    let mut bob = w.client("bob");
    assert_eq!(bob.messages("Archive").len(), 2);
    assert_eq!(bob.messages("Archive/2023").len(), 10);
    let out = w.ok(&["verify", "c", "--to", "cyrus"]);
    assert!(
        out.contains("the target holds exactly the local messages"),
        "{out}"
    );
    let out = w.ok(&["push", "c", "--to", "cyrus"]);
    assert!(
        out.contains("+0 ↑") && out.contains("15 pushed before"),
        "{out}"
    );
}

#[test]
fn pop3_from_cyrus_pulls_once_and_keeps_mail_on_the_server() {
    let w = CyrusWorld::new(None);
    let mut c = w.client("alice");
    for n in 0..4 {
        c.append("INBOX", &message(n, "INBOX", 700), "");
    }
    let pop = w.config.with_file_name("pop.toml");
    write_pop3_config(
        &pop,
        &w.maildir.with_file_name("pop-state"),
        &w.maildir.with_file_name("PopMail"),
        w.cyrus.pop3_port,
    );
    let run = || stdout_ok(arctern_with(&pop, &["sync"]), "POP3 sync", &w.cyrus.log());
    let out = run();
    assert!(out.contains("+4 ↓"), "{out}");
    let local = w.maildir.with_file_name("PopMail");
    let mut got: Vec<Vec<u8>> = local_messages(&local).into_iter().map(|m| m.body).collect();
    let mut want: Vec<Vec<u8>> = (0..4).map(|n| to_lf(&message(n, "INBOX", 700))).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    c.append("INBOX", &message(9, "INBOX", 700), "");
    let out = run();
    assert!(out.contains("+1 ↓"), "{out}");
    assert_eq!(c.messages("INBOX").len(), 5, "kept on the server");
}

#[test]
fn parents_cyrus_creates_with_a_folder_are_synced_in_the_same_run() {
    let w = CyrusWorld::new(None);
    // Only the child exists locally; Cyrus makes Projects real when asked for Projects/2024.
    local_folder(&w.maildir, "Projects/2024", 0..2, 500);
    let out = w.ok(&["sync"]);
    assert!(out.contains("+2 ↑"), "{out}");
    let mut c = w.client("alice");
    assert!(
        c.folders().iter().any(|f| f == "Projects"),
        "{:?}",
        c.folders()
    );
    assert!(w.dir("Projects").join("cur").is_dir(), "{out}");
    let out = w.ok(&["sync"]);
    assert!(out.contains(QUIET), "one sync was enough: {out}");
}

#[test]
fn cyrus_rewriting_8bit_headers_is_reported_by_verify_and_a_nul_message_refused_once() {
    let w = CyrusWorld::new(Some("bob"));
    make_maildir(&w.maildir);
    // Raw UTF-8 in a header (no RFC 2047 encoding), as many mailers still send.
    let eight = b"From: J\xc3\xbcrgen <j@example.org>\r\nSubject: Gr\xc3\xbc\xc3\x9fe\r\nMessage-ID: <8bit.1@test.arctern>\r\n\r\nbody\r\n";
    write_local(&w.maildir, "1700000000.eight.host", eight, "S");
    write_local(
        &w.maildir,
        "1700000000.plain.host",
        &message(1, "INBOX", 600),
        "S",
    );
    let out = w.ok(&["push", "c", "--to", "cyrus"]);
    assert!(out.contains("+2 ↑"), "{out}");
    let stored = w.client("bob").messages("INBOX");
    assert!(
        stored
            .iter()
            .any(|m| m.body.windows(11).any(|x| x == b"JXXrgen <j@")),
        "Cyrus stores raw 8-bit header bytes as X"
    );
    let out = w.ok(&["verify", "c", "--to", "cyrus"]);
    assert!(
        out.contains("<8bit.1@test.arctern> stored with 6 raw 8-bit header byte(s) replaced by X"),
        "{out}"
    );
    let json = w.ok(&["verify", "c", "--to", "cyrus", "--json"]);
    assert!(json.contains("replaced by X"), "{json}");
    // A rerun uploads nothing: the altered copy is the message.
    let out = w.ok(&["push", "c", "--to", "cyrus"]);
    assert!(out.contains("+0 ↑"), "{out}");

    // Two-way sync: Cyrus refuses a message containing NUL; said once, later syncs succeed.
    write_local(
        &w.maildir,
        "1700000000.nul.host",
        b"From: a@example.org\r\nSubject: nul\r\nMessage-ID: <nul.1@test.arctern>\r\n\r\nbefore\0after\r\n",
        "S",
    );
    let first = w.arctern(&["sync"]);
    let stderr = String::from_utf8_lossy(&first.stderr).to_string();
    assert_eq!(first.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("upload of 1700000000.nul.host refused")
            && stderr.contains("not offered again"),
        "{stderr}"
    );
    let out = w.ok(&["sync"]);
    assert!(out.contains("+0 ↓ +0 ↑"), "{out}");
    assert_eq!(w.client("alice").messages("INBOX").len(), 2);
}
