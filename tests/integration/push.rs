//! Re-upload to an IMAP target (a second Dovecot user): bytes, flags and internal dates arrive,
//! special-use folders map, a rerun uploads nothing, a kill -9 midway leaves one copy of each,
//! and verify finds a planted missing and a planted duplicate message.

use crate::support::*;
use std::collections::BTreeMap;
use std::time::Duration;

const FOLDERS: [(&str, &str); 6] = [
    ("INBOX", ""),
    ("Archive", ".Archive"),
    ("Sent", ".Sent"),
    ("Lists/rust", ".Lists.rust"),
    ("Lists/debian", ".Lists.debian"),
    ("Entwürfe", ".Entwürfe"),
];

/// The target's Sent folder is "Sent Items", marked \Sent: local Sent must land there.
const TARGET_SPECIAL_USE: &str = r#"
namespace inbox {
  inbox = yes
  separator = .
  mailbox "Sent Items" {
    special_use = \Sent
    auto = create
  }
}
"#;

fn target_wire(folder: &str) -> &str {
    match folder {
        "Sent" => "Sent Items",
        "Lists/rust" => "Lists.rust",
        "Lists/debian" => "Lists.debian",
        "Entwürfe" => "Entw&APw-rfe",
        other => other,
    }
}

/// Writes `count` local messages spread over the six folders; returns, per folder, the
/// expected (flags, CRLF body) set.
fn seed_local(w: &World, count: usize) -> BTreeMap<&'static str, Vec<LocalMessage>> {
    let mut expected: BTreeMap<&str, Vec<LocalMessage>> = BTreeMap::new();
    for (i, _) in (0..count).enumerate() {
        let (name, dir) = FOLDERS[i % FOLDERS.len()];
        let path = if dir.is_empty() {
            w.maildir.clone()
        } else {
            w.maildir.join(dir)
        };
        make_maildir(&path);
        if !dir.is_empty() {
            std::fs::write(path.join("maildirfolder"), b"").unwrap();
        }
        let letters = ["S", "", "FS", "RS", "D"][i % 5];
        let body = message(i, name, 600 + (i % 13) * 150);
        write_local(&path, &format!("1700000000.push{i}.host"), &body, letters);
        let flags = letters
            .chars()
            .map(|c| match c {
                'S' => "\\Seen",
                'F' => "\\Flagged",
                'R' => "\\Answered",
                'D' => "\\Draft",
                _ => unreachable!(),
            })
            .map(str::to_string)
            .collect();
        expected.entry(name).or_default().push(LocalMessage {
            flags,
            body: to_lf(&body),
        });
    }
    for v in expected.values_mut() {
        v.sort();
    }
    expected
}

fn target_messages(c: &mut Client, folder: &str) -> Vec<LocalMessage> {
    messages_in(c, target_wire(folder))
}

/// A target folder's messages as (standard flags, LF body), sorted.
fn messages_in(c: &mut Client, wire: &str) -> Vec<LocalMessage> {
    let mut v: Vec<LocalMessage> = c
        .messages(wire)
        .into_iter()
        .map(|m| LocalMessage {
            flags: m
                .flags
                .into_iter()
                .filter(|f| f.starts_with('\\'))
                .collect(),
            body: to_lf(&m.body),
        })
        .collect();
    v.sort();
    v
}

fn add_target(w: &World, target_user: &str) {
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        format!(
            "{text}\n[targets.newhost]\n[targets.newhost.imap]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"{target_user}\"\npassword = \"secret\"\ntimeout_seconds = 20\n",
            w.dovecot.imap_port
        ),
    )
    .unwrap();
}

fn push_ok(w: &World) -> String {
    let out = w.arctern(&["push", "test", "--to", "newhost"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "push failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn push_2000_messages_across_six_folders_then_rerun_uploads_nothing() {
    let w = World::new(TARGET_SPECIAL_USE, "");
    w.dovecot.add_user("bob");
    add_target(&w, "bob");
    let expected = seed_local(&w, 2000);
    // Internal dates come from the files' mtimes.
    let dated = w.maildir.join("cur").join("1700000000.push0.host:2,S");
    let when = std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(&dated)
        .unwrap()
        .set_modified(when)
        .unwrap();

    let out = w.arctern(&["push", "test", "--to", "newhost", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("would") && text.contains("(dry run)"),
        "{text}"
    );
    let mut bob = Client::connect(w.dovecot.imap_port, "bob");
    assert!(bob.messages("INBOX").is_empty(), "dry run uploaded");

    let out = push_ok(&w);
    assert!(out.contains("+2000 ↑"), "{out}");
    let mut bob = Client::connect(w.dovecot.imap_port, "bob");
    for (folder, want) in &expected {
        assert_eq!(
            &target_messages(&mut bob, folder),
            want,
            "{folder} differs on the target"
        );
    }
    let received = w.dovecot.doveadm(&[
        "fetch",
        "-u",
        "bob",
        "date.received",
        "mailbox",
        "INBOX",
        "header",
        "Message-ID",
        "<0.INBOX@test.arctern>",
    ]);
    assert!(
        received.contains("2020-09-13"),
        "internal date not kept: {received}"
    );

    let out = push_ok(&w);
    assert!(
        out.contains("+0 ↑") && out.contains("2000 pushed before"),
        "{out}"
    );
    let out = w.arctern(&["verify", "test", "--to", "newhost"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Plant a missing and a duplicated message: verify says so and fails.
    let inbox = bob.messages("INBOX");
    bob.expunge("INBOX", &inbox[0].uid.to_string());
    bob.append("Archive", &message(1, "Archive", 600 + 150), "");
    let out = w.arctern(&["verify", "test", "--to", "newhost"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("INBOX → INBOX: 333 matched, 1 missing, 0 extra, 0 duplicated"),
        "{text}"
    );
    assert!(
        text.contains("Archive → Archive: 334 matched, 0 missing, 0 extra, 1 duplicated"),
        "{text}"
    );
    assert!(text.contains("Sent → Sent Items: 333 matched"), "{text}");
    // push repairs what verify found missing: the record of the deleted copy is not trusted.
    let out = push_ok(&w);
    assert!(
        out.contains("+1 ↑") && out.contains("recorded as pushed were no longer on the target"),
        "{out}"
    );
    let out = w.arctern(&["verify", "test", "--to", "newhost"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("INBOX → INBOX: 334 matched, 0 missing"),
        "{text}"
    );
    assert!(push_ok(&w).contains("+0 ↑"));
    // Messages already on the target are recognised: a fresh state uploads only the one missing.
    let inbox = bob.messages("INBOX");
    bob.expunge("INBOX", &inbox[0].uid.to_string());
    for f in ["test.sqlite3", "test.sqlite3-wal", "test.sqlite3-shm"] {
        let _ = std::fs::remove_file(w.state_dir.join(f));
    }
    let out = push_ok(&w);
    assert!(
        out.contains("+1 ↑") && out.contains("1999 already there"),
        "{out}"
    );
}

#[test]
fn push_killed_midway_then_rerun_gives_exactly_one_copy_of_each() {
    let w = World::new("", "");
    w.dovecot.add_user("carol");
    add_target(&w, "carol");
    let expected = seed_local(&w, 1200);
    let mut kills = 0;
    for delay_ms in [150u64, 400, 800] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_arctern"))
            .arg("-c")
            .arg(&w.config)
            .args(["push", "test", "--to", "newhost"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let _ = child.wait();
    }
    assert!(kills >= 1, "no push was killed mid-way");
    push_ok(&w);
    let mut carol = Client::connect(w.dovecot.imap_port, "carol");
    for (folder, want) in &expected {
        let wire = match *folder {
            "Sent" => "Sent",
            f => target_wire(f),
        };
        let got = messages_in(&mut carol, wire);
        if &got != want {
            let subject = |m: &LocalMessage| {
                String::from_utf8_lossy(&m.body)
                    .lines()
                    .find(|l| l.starts_with("Subject:"))
                    .unwrap_or("")
                    .to_string()
            };
            let extra: Vec<String> = got
                .iter()
                .filter(|m| !want.contains(m))
                .map(subject)
                .collect();
            let lost: Vec<String> = want
                .iter()
                .filter(|m| !got.contains(m))
                .map(subject)
                .collect();
            panic!(
                "{folder}: target has {} messages, local {}; not local: {extra:?}; not on target: {lost:?}",
                got.len(),
                want.len()
            );
        }
    }
    let out = w.arctern(&["verify", "test", "--to", "newhost"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn push_reports_a_refused_message_by_folder_and_file_and_uploads_the_rest() {
    // The target refuses messages over 100 KB (Dovecot's quota plugin). In a batch sent as one
    // MULTIAPPEND that refusal fails the whole command: the rest must still arrive.
    let w = World::new(
        "mail_plugins = $mail_plugins quota\nplugin {\n  quota = maildir:User quota\n  quota_max_mail_size = 100k\n}\n",
        "",
    );
    w.dovecot.add_user("dora");
    add_target(&w, "dora");
    make_maildir(&w.maildir);
    for i in 0..30 {
        write_local(
            &w.maildir,
            &format!("1700000000.small{i}.host"),
            &message(i, "INBOX", 800),
            "S",
        );
    }
    write_local(
        &w.maildir,
        "1700000000.huge.host",
        &message(999, "INBOX", 300_000),
        "S",
    );
    let out = w.arctern(&["push", "test", "--to", "newhost"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("+30 ↑") && stdout.contains("1 rejected"),
        "{stdout}"
    );
    assert!(
        stderr.contains("INBOX/1700000000.huge.host")
            && stderr.contains("larger than the maximum size"),
        "{stderr}"
    );
    let mut dora = Client::connect(w.dovecot.imap_port, "dora");
    assert_eq!(dora.messages("INBOX").len(), 30);
    // A rerun tries the refused one again and nothing else.
    let out = w.arctern(&["push", "test", "--to", "newhost"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.contains("+0 ↑") && stdout.contains("30 pushed before"),
        "{stdout}"
    );
    assert_eq!(dora.messages("INBOX").len(), 30);
}

#[test]
fn push_over_several_connections_keeps_merged_folders_on_one() {
    // Three connections at once; two local folders mapped onto one target folder must still
    // arrive whole (they go up on one connection, one after the other).
    let w = World::new("", "");
    w.dovecot.add_user("carol");
    add_target(&w, "carol");
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        text.replace(
            "[targets.newhost.imap]",
            "connections = 3\n[targets.newhost.folder_map]\n\"Lists/rust\" = \"Lists\"\n\"Lists/debian\" = \"Lists\"\n[targets.newhost.imap]",
        ),
    )
    .unwrap();
    let expected = seed_local(&w, 600);
    let out = push_ok(&w);
    // Counted before this test's own client logs in.
    let logins = w.dovecot.log().matches("Login: user=<carol>").count();
    assert!(
        logins >= 2,
        "{logins} login(s): the push used one connection"
    );
    let mut c = Client::connect(w.dovecot.imap_port, "carol");
    let mut lists = expected["Lists/rust"].clone();
    lists.extend(expected["Lists/debian"].clone());
    lists.sort();
    assert_eq!(messages_in(&mut c, "Lists"), lists, "{out}");
    for folder in ["INBOX", "Archive", "Entwürfe"] {
        assert_eq!(messages_in(&mut c, target_wire(folder)), expected[folder]);
    }
    // A rerun uploads nothing.
    push_ok(&w);
    assert_eq!(messages_in(&mut c, "Lists").len(), 200);
    assert_eq!(messages_in(&mut c, "INBOX").len(), 100);
}

#[test]
fn verify_says_how_a_copy_the_server_stored_changed_differs() {
    let w = World::new("", "");
    w.dovecot.add_user("erin");
    add_target(&w, "erin");
    make_maildir(&w.maildir);
    for i in 0..3 {
        write_local(
            &w.maildir,
            &format!("1700000000.v{i}.host"),
            &message(i, "INBOX", 500),
            "S",
        );
    }
    push_ok(&w);
    // The target's copy of message 1 is stored changed, as Courier adds a final newline to
    // what it stores: the same message, two bytes longer (CRLF).
    let mut erin = Client::connect(w.dovecot.imap_port, "erin");
    let copy = erin
        .messages("INBOX")
        .into_iter()
        .find(|m| String::from_utf8_lossy(&m.body).contains("Message-ID: <1.INBOX@"))
        .unwrap();
    erin.expunge("INBOX", &copy.uid.to_string());
    let mut changed = message(1, "INBOX", 500);
    changed.extend_from_slice(b"\r\n");
    erin.append("INBOX", &changed, "\\Seen");
    let out = w.arctern(&["verify", "test", "--to", "newhost"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("INBOX → INBOX: 2 matched, 0 missing, 0 extra, 0 duplicated, 1 stored changed by the server"),
        "{text}"
    );
    assert!(
        text.contains("<1.INBOX@test.arctern> stored 2 byte(s) longer"),
        "{text}"
    );
}
