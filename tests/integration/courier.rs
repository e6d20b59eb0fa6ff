//! Against Courier-IMAP 5.0 (a private instance, tests/integration/support/courier.rs): personal
//! folders live under its namespace prefix `INBOX.` with `.` as delimiter, and it has no
//! CONDSTORE. A pull, changes on both sides (a folder created locally at the top level included),
//! a sync that changes nothing, a state an earlier arctern left with the prefix in its folder
//! names, a migration from Dovecot with verify, POP3; and Dovecot configured with the same
//! prefix.

use crate::support::*;
use std::path::{Path, PathBuf};

const QUIET: &str = "+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑";

/// A Courier with users alice and bob, an empty local side and a config for alice (plain IMAP
/// on loopback), with a target `courier` for bob.
struct CourierWorld {
    courier: Courier,
    maildir: PathBuf,
    config: PathBuf,
    local: tempfile::TempDir,
}

impl CourierWorld {
    fn new() -> CourierWorld {
        let courier = Courier::start(&["alice", "bob"]);
        let local = tempfile::tempdir().unwrap();
        let maildir = local.path().join("Mail");
        let config = local.path().join("config.toml");
        let text = format!(
            "state_dir = \"{}/state\"\n\n[accounts.c]\nmaildir = \"{}\"\n\n[accounts.c.imap]\nhost = \"127.0.0.1\"\nport = {p}\ntls = \"none\"\nuser = \"alice\"\npassword = \"secret\"\ntimeout_seconds = 20\n\n[targets.courier]\n[targets.courier.imap]\nhost = \"127.0.0.1\"\nport = {p}\ntls = \"none\"\nuser = \"bob\"\npassword = \"secret\"\ntimeout_seconds = 20\n",
            local.path().display(),
            maildir.display(),
            p = courier.imap_port
        );
        std::fs::write(&config, text).unwrap();
        CourierWorld {
            courier,
            maildir,
            config,
            local,
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout_ok(
            arctern_with(&self.config, args),
            &format!("{args:?}"),
            &self.courier.log(),
        )
    }

    fn client(&self, user: &str) -> Client {
        Client::connect(self.courier.imap_port, user)
    }

    fn dir(&self, folder: &str) -> PathBuf {
        folder_dir(&self.maildir, folder)
    }
}

fn folder_dir(root: &Path, folder: &str) -> PathBuf {
    if folder == "INBOX" {
        root.to_path_buf()
    } else {
        root.join(format!(".{}", folder.replace('/', ".")))
    }
}

fn local_dirs(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            (name.starts_with('.') && name.len() > 1).then_some(name)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn courier_folders_lose_the_namespace_prefix_locally_and_get_it_on_the_server() {
    let w = CourierWorld::new();
    let mut c = w.client("alice");
    for n in 0..5 {
        c.append(
            "INBOX",
            &message(n, "INBOX", 400 + n * 50),
            if n % 2 == 0 { "\\Seen" } else { "" },
        );
    }
    c.create("INBOX.Archive");
    c.create("INBOX.Archive.2023");
    for n in 10..13 {
        c.append(
            "INBOX.Archive.2023",
            &message(n, "Archive/2023", 800),
            "\\Seen",
        );
    }
    let out = w.ok(&["check"]);
    assert!(
        out.contains("personal folders under \"INBOX.\" (local folder names leave it out)"),
        "{out}"
    );
    let out = w.ok(&["sync"]);
    assert!(out.contains("+8 ↓"), "{out}");
    assert_eq!(
        local_dirs(&w.maildir),
        vec![".Archive", ".Archive.2023"],
        "no INBOX. in local names"
    );
    assert_same(&mut c, "INBOX", &w.dir("INBOX"));
    assert_same(&mut c, "INBOX.Archive.2023", &w.dir("Archive/2023"));
    let out = w.ok(&["sync"]);
    assert!(out.contains(QUIET), "{out}");

    // Both sides change; a folder made locally at the top level is created under the prefix
    // (Courier refuses `CREATE Projects`: NO Invalid mailbox name).
    let projects = w.dir("Projects");
    make_maildir(&projects);
    write_local(
        &projects,
        "1700000000.p1.host",
        &message(40, "Projects", 500),
        "S",
    );
    let files = local_files(&w.dir("INBOX"));
    std::fs::remove_file(&files[0]).unwrap();
    c.store("INBOX.Archive.2023", "1", "+FLAGS (\\Flagged)");
    c.append("INBOX.Archive", &message(41, "Archive", 500), "");
    let out = w.ok(&["sync"]);
    assert!(out.contains("+1 ↓ +1 ↑"), "{out}");
    assert!(
        c.folders().iter().any(|f| f == "INBOX.Projects"),
        "{:?}",
        c.folders()
    );
    assert_same(&mut c, "INBOX.Projects", &projects);
    assert_same(&mut c, "INBOX", &w.dir("INBOX"));
    assert_same(&mut c, "INBOX.Archive", &w.dir("Archive"));
    assert_same(&mut c, "INBOX.Archive.2023", &w.dir("Archive/2023"));
    let out = w.ok(&["sync"]);
    assert!(out.contains(QUIET), "{out}");
}

#[test]
fn a_state_with_the_prefix_in_folder_names_is_renamed_not_downloaded_again() {
    let w = CourierWorld::new();
    let mut c = w.client("alice");
    c.create("INBOX.Lists");
    c.create("INBOX.Lists.rust");
    for n in 0..3 {
        c.append("INBOX.Lists", &message(n, "Lists", 500), "\\Seen");
        c.append(
            "INBOX.Lists.rust",
            &message(10 + n, "Lists/rust", 500),
            "\\Seen",
        );
    }
    w.ok(&["sync"]);
    // What an arctern that did not read NAMESPACE left: INBOX/Lists, INBOX/Lists/rust.
    for name in ["Lists", "Lists/rust"] {
        std::fs::rename(w.dir(name), w.dir(&format!("INBOX/{name}"))).unwrap();
    }
    let db = rusqlite::Connection::open(w.local.path().join("state/c.sqlite3")).unwrap();
    db.execute(
        "UPDATE folders SET name = 'INBOX/' || name WHERE name LIKE 'Lists%'",
        [],
    )
    .unwrap();
    drop(db);
    let out = w.ok(&["sync"]);
    assert!(out.contains("+0 ↓"), "nothing downloaded again: {out}");
    assert!(
        out.contains("renamed local folder .INBOX.Lists to .Lists"),
        "{out}"
    );
    assert_eq!(local_dirs(&w.maildir), vec![".Lists", ".Lists.rust"]);
    assert_same(&mut c, "INBOX.Lists.rust", &w.dir("Lists/rust"));
    let out = w.ok(&["sync"]);
    assert!(out.contains(QUIET), "{out}");
}

#[test]
fn migration_from_dovecot_to_courier_verifies() {
    let w = CourierWorld::new();
    let dovecot = World::new("", "");
    let mut d = dovecot.client();
    d.create("Lists.rust");
    d.create("Sent");
    for n in 0..4 {
        d.append("INBOX", &message(n, "INBOX", 600), "\\Seen");
        d.append("Lists.rust", &message(20 + n, "Lists/rust", 900), "");
    }
    d.append("Sent", &message(30, "Sent", 700), "\\Seen");
    // The Dovecot account, with the Courier target.
    let text = std::fs::read_to_string(&dovecot.config).unwrap();
    let target = std::fs::read_to_string(&w.config).unwrap();
    let target = &target[target.find("[targets.courier]").unwrap()..];
    std::fs::write(&dovecot.config, format!("{text}\n{target}")).unwrap();
    let out = stdout_ok(
        dovecot.arctern(&["migrate", "test", "--to", "courier"]),
        "migrate",
        &w.courier.log(),
    );
    assert!(out.contains("+9 ↑"), "{out}");
    let mut bob = w.client("bob");
    let folders = bob.folders();
    for f in ["INBOX", "INBOX.Lists.rust", "INBOX.Sent"] {
        assert!(folders.iter().any(|x| x == f), "{f} in {folders:?}");
    }
    assert_eq!(bob.messages("INBOX.Lists.rust").len(), 4);
    let out = stdout_ok(
        dovecot.arctern(&["verify", "test", "--to", "courier"]),
        "verify",
        &w.courier.log(),
    );
    assert!(
        out.contains("the target holds exactly the local messages"),
        "{out}"
    );
    let out = stdout_ok(
        dovecot.arctern(&["push", "test", "--to", "courier"]),
        "push again",
        &w.courier.log(),
    );
    assert!(
        out.contains("+0 ↑") && out.contains("9 pushed before"),
        "{out}"
    );
}

#[test]
fn pop3_from_courier_pulls_and_keeps_mail_and_says_login_delay_once() {
    let w = CourierWorld::new();
    let mut c = w.client("alice");
    for n in 0..3 {
        c.append("INBOX", &message(n, "INBOX", 700), "");
    }
    let pop = w.config.with_file_name("pop.toml");
    write_pop3_config(
        &pop,
        &w.local.path().join("pop-state"),
        &w.local.path().join("PopMail"),
        w.courier.pop3_port,
    );
    let run = || stdout_ok(arctern_with(&pop, &["sync"]), "POP3 sync", &w.courier.log());
    let out = run();
    assert!(out.contains("+3 ↓"), "{out}");
    assert!(out.contains("LOGIN-DELAY"), "said the first time: {out}");
    let got = local_messages(&w.local.path().join("PopMail")).len();
    assert_eq!(got, 3);
    assert_eq!(c.messages("INBOX").len(), 3, "kept on the server");
    // Courier allows one login every 10 s: the next run right away does not log in.
    let out = run();
    assert!(out.contains("next pull possible in"), "{out}");
    assert_eq!(out.matches("LOGIN-DELAY").count(), 1, "{out}");
}

#[test]
fn dovecot_with_the_inbox_prefix_is_mirrored_without_it() {
    let w = World::new(
        "namespace inbox {\n  inbox = yes\n  prefix = INBOX.\n  separator = .\n}\n",
        "",
    );
    let mut c = w.client();
    c.create("INBOX.Lists.rust");
    c.append("INBOX.Lists.rust", &message(1, "Lists/rust", 500), "\\Seen");
    c.append("INBOX", &message(2, "INBOX", 500), "");
    let out = w.sync_ok();
    assert!(out.contains("+2 ↓"), "{out}");
    assert!(w.local_dir("Lists/rust").join("cur").is_dir());
    assert!(!w.maildir.join(".INBOX.Lists.rust").exists());
    let local = w.local_dir("Notes");
    make_maildir(&local);
    write_local(&local, "1700000000.n.host", &message(3, "Notes", 400), "S");
    let out = w.sync_ok();
    assert!(out.contains("+1 ↑"), "{out}");
    assert!(
        c.folders().iter().any(|f| f == "INBOX.Notes"),
        "{:?}",
        c.folders()
    );
    assert_same(&mut c, "INBOX.Notes", &local);
    let out = w.sync_ok();
    assert!(out.contains(QUIET), "{out}");
}

#[test]
fn courier_normalising_line_ends_is_reported_and_never_uploaded_twice() {
    let w = CourierWorld::new();
    make_maildir(&w.maildir);
    // A bare CR inside, no newline at the end: Courier removes the one and adds the other.
    std::fs::write(
        w.maildir.join("cur/1700000000.odd.host:2,S"),
        b"From: a@example.org\nSubject: odd\nMessage-ID: <odd.1@test.arctern>\n\nline\rwith a CR\nno end",
    )
    .unwrap();
    write_local(
        &w.maildir,
        "1700000000.ok.host",
        &message(1, "INBOX", 500),
        "S",
    );
    let out = w.ok(&["push", "c", "--to", "courier"]);
    assert!(out.contains("+2 ↑"), "{out}");
    let out = w.ok(&["verify", "c", "--to", "courier"]);
    assert!(
        out.contains(
            "<odd.1@test.arctern> stored 1 byte(s) longer: bare CRs removed or a final CRLF added"
        ),
        "{out}"
    );
    // Another target on the same account has no records: the copies are recognised, also the
    // normalised one, and nothing is uploaded again.
    let text = std::fs::read_to_string(&w.config).unwrap();
    let again =
        text[text.find("[targets.courier]").unwrap()..].replace("targets.courier", "targets.again");
    std::fs::write(&w.config, format!("{text}\n{again}")).unwrap();
    let out = w.ok(&["push", "c", "--to", "again"]);
    assert!(
        out.contains("+0 ↑") && out.contains("2 already there"),
        "{out}"
    );
    assert_eq!(w.client("bob").messages("INBOX").len(), 2);
}

#[test]
fn migration_from_cyrus_to_courier_verifies_and_reruns_upload_nothing() {
    let w = CourierWorld::new();
    let cyrus = Cyrus::start();
    cyrus.add_user("carol");
    let mut src = Client::connect(cyrus.imap_port, "carol");
    src.create("Archive/2023");
    for n in 0..3 {
        src.append("INBOX", &message(n, "INBOX", 700), "\\Seen");
        src.append("Archive/2023", &message(10 + n, "Archive/2023", 1500), "");
    }
    src.append("Archive", &message(20, "Archive", 400), "\\Flagged");
    let text = std::fs::read_to_string(&w.config).unwrap();
    let target = &text[text.find("[targets.courier]").unwrap()..];
    let config = w.local.path().join("cyrus-to-courier.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{d}/state-m\"\n[accounts.m]\nmaildir = \"{d}/FromCyrus\"\n[accounts.m.imap]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"carol\"\npassword = \"secret\"\ntimeout_seconds = 20\n\n{target}",
            cyrus.imap_port,
            d = w.local.path().display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = arctern_with(&config, args);
        stdout_ok(
            out,
            &format!("{args:?}"),
            &format!("{}\n{}", cyrus.log(), w.courier.log()),
        )
    };
    let out = run(&["migrate", "m", "--to", "courier"]);
    assert!(out.contains("+7 ↑"), "{out}");
    let mut bob = w.client("bob");
    assert_eq!(bob.messages("INBOX.Archive.2023").len(), 3);
    let flagged: Vec<_> = bob.messages("INBOX.Archive");
    assert!(flagged.len() == 1 && flagged[0].flags.contains("\\Flagged"));
    let out = run(&["verify", "m", "--to", "courier"]);
    assert!(
        out.contains("the target holds exactly the local messages"),
        "{out}"
    );
    let out = run(&["migrate", "m", "--to", "courier"]);
    assert!(
        out.contains("+0 ↑") && out.contains("7 pushed before"),
        "{out}"
    );
}
