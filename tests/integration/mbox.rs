//! `arctern import mbox` and `arctern export mbox`: Google Takeout and Thunderbird files made
//! here in their formats (Takeout: one mbox, `X-Gmail-Labels`; Thunderbird: one mbox per
//! folder, `.sbd` directories, `X-Mozilla-Status`), a kill -9 in the middle of a
//! 100,000-message import, and a round trip through a pipe, byte for byte.

use crate::support::*;
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A config with one IMAP account whose Maildir is `root/Mail` (no server is contacted).
fn offline_config(root: &Path) -> PathBuf {
    let config = root.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}/state\"\n\n[accounts.a]\nmaildir = \"{}/Mail\"\n\n[accounts.a.imap]\nhost = \"127.0.0.1\"\nport = 1\nuser = \"u\"\npassword = \"p\"\n\n\
             [accounts.b]\nmaildir = \"{}/Other\"\n\n[accounts.b.imap]\nhost = \"127.0.0.1\"\nport = 1\nuser = \"u\"\npassword = \"p\"\n",
            root.display(),
            root.display(),
            root.display()
        ),
    )
    .unwrap();
    config
}

fn ok(out: std::process::Output) -> String {
    stdout_ok(out, "arctern", "(no server)")
}

/// (flags, body) of every message in a Maildir folder, sorted.
fn folder(dir: &Path) -> Vec<(Vec<String>, String)> {
    let mut v: Vec<(Vec<String>, String)> = local_messages(dir)
        .into_iter()
        .map(|m| {
            (
                m.flags.into_iter().collect(),
                String::from_utf8(m.body).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn takeout_message(n: usize, labels: &str) -> String {
    format!(
        "X-GM-THRID: 17{n:05}\nX-Gmail-Labels: {labels}\nFrom: Ann <ann@example.org>\nTo: me@example.org\nSubject: takeout {n}\nMessage-ID: <t{n}@example.org>\nDate: Mon, 2 Nov 2026 10:00:00 +0000\n\nbody {n}\nFrom the start of a line\n>From a quoted line\n"
    )
}

/// Writes `messages` as mboxrd the way Takeout does (quoting `>*From ` lines).
fn mboxrd(messages: &[String]) -> String {
    let mut out = String::new();
    for (i, m) in messages.iter().enumerate() {
        out.push_str(&format!(
            "From 17{i:017}@xxx Sat Oct 07 10:31:49 +0000 2023\n"
        ));
        for line in m.split_inclusive('\n') {
            if line.trim_start_matches('>').starts_with("From ") {
                out.push('>');
            }
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[test]
fn a_takeout_mbox_goes_into_one_folder_per_label_once_per_label() {
    let dir = tempfile::tempdir().unwrap();
    let config = offline_config(dir.path());
    let messages = vec![
        takeout_message(1, "Inbox,Opened,Category Updates"),
        takeout_message(2, "Sent,Opened"),
        takeout_message(3, "Archived,Unread"),
        takeout_message(4, "Inbox,\"Work, old\",Starred,Unread,Important"),
        takeout_message(5, "Work/2020,Opened"),
    ];
    let file = dir.path().join("All mail Including Spam and Trash.mbox");
    std::fs::write(&file, mboxrd(&messages)).unwrap();
    let out = ok(arctern_with(
        &config,
        &["import", "mbox", file.to_str().unwrap(), "--account", "a"],
    ));
    assert!(out.contains("a: 5 message(s) read"), "{out}");
    let mail = dir.path().join("Mail");
    let inbox = folder(&mail);
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    assert!(
        inbox.contains(&(vec!["\\Seen".to_string()], messages[0].clone())),
        "stored as in the mbox, quoting undone: {inbox:?}"
    );
    let flags: BTreeMap<&str, Vec<String>> = [
        (
            "INBOX",
            folder(&mail).into_iter().flat_map(|m| m.0).collect(),
        ),
        (
            "Sent",
            folder(&mail.join(".Sent"))
                .into_iter()
                .flat_map(|m| m.0)
                .collect(),
        ),
        (
            "Archive",
            folder(&mail.join(".Archive"))
                .into_iter()
                .flat_map(|m| m.0)
                .collect(),
        ),
    ]
    .into();
    assert_eq!(
        flags["INBOX"],
        vec!["\\Flagged", "\\Seen"],
        "Starred and Opened"
    );
    assert_eq!(flags["Sent"], vec!["\\Seen"]);
    assert!(flags["Archive"].is_empty(), "Unread");
    assert_eq!(folder(&mail.join(".Work, old")).len(), 1);
    assert_eq!(folder(&mail.join(".Work.2020")).len(), 1);
    // Category and Important labels make no folder.
    let dirs: BTreeSet<String> = std::fs::read_dir(&mail)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("cur").is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = [".Archive", ".Sent", ".Work, old", ".Work.2020"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(dirs, expected);
    // A rerun stores nothing again.
    let again = ok(arctern_with(
        &config,
        &["import", "mbox", file.to_str().unwrap(), "--account", "a"],
    ));
    assert!(
        again.contains("a: INBOX: 0 stored, 2 already there"),
        "{again}"
    );
    assert_eq!(folder(&mail).len(), 2);
}

#[test]
fn thunderbird_folders_map_by_file_name_and_deleted_messages_stay_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = offline_config(dir.path());
    let profile = dir.path().join("Local Folders");
    std::fs::create_dir_all(profile.join("Archives.sbd")).unwrap();
    let tb = |n: usize, status: &str| {
        format!(
            "From - Mon Nov  2 10:00:00 2026\nX-Mozilla-Status: {status}\nX-Mozilla-Status2: 00000000\nFrom: b@example.org\nSubject: tb {n}\nMessage-ID: <tb{n}@example.org>\n\nbody {n}\n>From here\n\n"
        )
    };
    std::fs::write(
        profile.join("Inbox"),
        format!("{}{}", tb(1, "0001"), tb(2, "0000")),
    )
    .unwrap();
    std::fs::write(
        profile.join("Sent"),
        format!("{}{}", tb(3, "0003"), tb(4, "0009")),
    )
    .unwrap();
    std::fs::write(profile.join("Archives.sbd").join("2019"), tb(5, "0005")).unwrap();
    // Thunderbird's index files sit beside them; they are not named on the command line.
    std::fs::write(
        profile.join("Inbox.msf"),
        "// <!-- <mdb:mork:z v=\"1.4\"/> -->",
    )
    .unwrap();
    let files: Vec<String> = ["Inbox", "Sent", "Archives.sbd/2019"]
        .iter()
        .map(|f| profile.join(f).display().to_string())
        .collect();
    let mut args = vec!["import", "mbox", "--account", "a", "--format", "mboxo"];
    args.extend(files.iter().map(String::as_str));
    let out = ok(arctern_with(&config, &args));
    assert!(
        out.contains("1 marked deleted by Thunderbird left out"),
        "{out}"
    );
    let mail = dir.path().join("Mail");
    let inbox = folder(&mail);
    assert_eq!(inbox.len(), 2);
    assert_eq!(inbox[0].0, Vec::<String>::new());
    assert_eq!(inbox[1].0, vec!["\\Seen"]);
    assert!(inbox[1].1.contains("\nFrom here\n"), "mboxo quoting undone");
    let sent = folder(&mail.join(".Sent"));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, vec!["\\Answered", "\\Seen"]);
    let archived = folder(&mail.join(".Archives.2019"));
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0].0, vec!["\\Flagged", "\\Seen"]);
}

#[test]
fn an_import_killed_midway_and_rerun_stores_each_message_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = offline_config(dir.path());
    let file = dir.path().join("big.mbox");
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for n in 0..100_000 {
            write!(
                w,
                "From a@example.org Mon Nov  2 10:00:00 2026\nFrom: a@example.org\nSubject: m {n}\nMessage-ID: <big{n}@example.org>\n\nmessage number {n}\n\n"
            )
            .unwrap();
        }
        // The same message twice is two messages, and stays two.
        for _ in 0..2 {
            write!(w, "From a@example.org Mon Nov  2 10:00:00 2026\nFrom: a@example.org\nSubject: twin\nMessage-ID: <twin@example.org>\n\ntwin\n\n").unwrap();
        }
    }
    let mail = dir.path().join("Mail");
    let published = |mail: &Path| {
        ["new", "cur"]
            .iter()
            .map(|s| std::fs::read_dir(mail.join(s)).map_or(0, |d| d.count()))
            .sum::<usize>()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_arctern"))
        .arg("-c")
        .arg(&config)
        .args([
            "import",
            "mbox",
            file.to_str().unwrap(),
            "--account",
            "a",
            "--folder",
            "INBOX",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while published(&mail) < 5_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the import made no progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before the kill"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = published(&mail);
    assert!(
        before < 100_002,
        "killed too late to test anything ({before})"
    );
    let out = ok(arctern_with(
        &config,
        &[
            "import",
            "mbox",
            file.to_str().unwrap(),
            "--account",
            "a",
            "--folder",
            "INBOX",
        ],
    ));
    assert!(
        out.contains(&format!(
            "a: INBOX: {} stored, {before} already there",
            100_002 - before
        )),
        "{out}"
    );
    // Each message exactly once (by Message-ID and number), the twin twice.
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(mail.join(sub)).unwrap() {
            let body = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let id = body
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .unwrap()
                .to_string();
            *ids.entry(id).or_default() += 1;
        }
    }
    assert_eq!(ids.len(), 100_001);
    assert_eq!(ids.remove("<twin@example.org>"), Some(2));
    assert!(ids.values().all(|n| *n == 1));
}

#[test]
fn export_then_import_round_trips_byte_for_byte_with_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let config = offline_config(dir.path());
    let mail = dir.path().join("Mail");
    make_maildir(&mail);
    make_maildir(&mail.join(".Archive"));
    let bodies: Vec<Vec<u8>> = vec![
        b"From: a@example.org\nSubject: one\n\nFrom the start\n>From quoted\n>>From twice\n"
            .to_vec(),
        b"From: a@example.org\nSubject: ends with a blank line\n\nx\n\n".to_vec(),
        b"From: a@example.org\r\nSubject: crlf\r\n\r\nFrom here\r\n".to_vec(),
        b"From: a@example.org\nSubject: empty body\n\n".to_vec(),
    ];
    for (i, b) in bodies.iter().enumerate() {
        let dest = if i % 2 == 0 {
            &mail
        } else {
            &mail.join(".Archive")
        };
        std::fs::write(dest.join("cur").join(format!("17000000{i}.x.host:2,S")), b).unwrap();
    }
    // Through a pipe: export | import -.
    let mut export = Command::new(env!("CARGO_BIN_EXE_arctern"))
        .arg("-c")
        .arg(&config)
        .args(["export", "mbox", "a"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let import = Command::new(env!("CARGO_BIN_EXE_arctern"))
        .arg("-c")
        .arg(&config)
        .args([
            "import",
            "mbox",
            "-",
            "--account",
            "b",
            "--folder",
            "Restored",
        ])
        .stdin(export.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(export.wait().unwrap().success());
    let out = ok(import);
    assert!(out.contains("b: Restored: 4 stored"), "{out}");
    let restored: BTreeSet<Vec<u8>> = local_messages(&dir.path().join("Other").join(".Restored"))
        .into_iter()
        .map(|m| m.body)
        .collect();
    let original: BTreeSet<Vec<u8>> = bodies.iter().cloned().collect();
    assert_eq!(restored, original, "not byte for byte");

    // To a file: the manifest beside it names every message's SHA-256 and the mbox's.
    let file = dir.path().join("a.mbox");
    ok(arctern_with(
        &config,
        &["export", "mbox", "a", "-o", file.to_str().unwrap()],
    ));
    let manifest = std::fs::read_to_string(dir.path().join("a.mbox.sha256")).unwrap();
    let whole = hex(&sha2::Sha256::digest(std::fs::read(&file).unwrap()));
    assert!(manifest.contains(&format!("{whole}  a.mbox")), "{manifest}");
    for b in &bodies {
        assert!(
            manifest.contains(&hex(&sha2::Sha256::digest(b))),
            "{manifest}"
        );
    }
    // Only some folders.
    let only = dir.path().join("archive.mbox");
    ok(arctern_with(
        &config,
        &[
            "export",
            "mbox",
            "a",
            "--folders",
            "Archive",
            "-o",
            only.to_str().unwrap(),
        ],
    ));
    let text = std::fs::read_to_string(&only).unwrap();
    assert_eq!(text.matches("\nSubject: ").count(), 2, "{text}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
