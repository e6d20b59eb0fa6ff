//! Adopting a Maildir another tool kept, with fresh arctern state: the real mbsync (Debian's
//! isync) and offlineimap pull the test Dovecot and change mail on both sides, then arctern
//! takes their Maildir over. With the tool's records (mbsync's state in each folder or under
//! `~/.mbsync/`, offlineimap's status under `~/.offlineimap/`) pairs are exact and a local flag
//! change the tool had not synced yet is kept; without records pairing is by content
//! (Message-ID and size less the copies' sync-marker lines) and the server's flags win. The
//! folder the tools keep under its modified UTF-7 name is renamed to the server folder's.

use crate::support::*;
use std::path::Path;
use std::process::Command;

/// Where mbsync keeps its sync state.
#[derive(Clone, Copy, PartialEq)]
enum StateAt {
    /// `SyncState *`: `.mbsyncstate` in each Maildir folder.
    InFolder,
    /// mbsync's default: files under `~/.mbsync/`.
    Home,
}

/// Runs mbsync once over every folder (both ways), HOME being `home`.
fn mbsync(w: &World, home: &Path, state: StateAt) {
    let rc = home.join("mbsyncrc");
    let sync_state = if state == StateAt::InFolder {
        "SyncState *\n"
    } else {
        ""
    };
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount t\nHost 127.0.0.1\nPort {}\nUser {}\nPass secret\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore t-far\nAccount t\n\n\
             MaildirStore t-near\nInbox {}\nSubFolders Maildir++\n\n\
             Channel t\nFar :t-far:\nNear :t-near:\nPatterns *\nCreate Both\nExpunge Both\n{sync_state}Sync All\n",
            w.dovecot.imap_port,
            w.user,
            w.maildir.display()
        ),
    )
    .unwrap();
    let out = Command::new("mbsync")
        .arg("-c")
        .arg(&rc)
        .args(["-a", "-q"])
        .env("HOME", home)
        .output()
        .expect("mbsync runs (contrib/install-deps.sh installs isync)");
    assert!(
        out.status.success(),
        "mbsync failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        w.dovecot.log()
    );
}

/// Runs offlineimap once (both ways) into the Maildir root, one directory per folder, HOME
/// being `home` (its metadata goes to `~/.offlineimap/`).
fn offlineimap(w: &World, home: &Path) {
    let rc = home.join(".offlineimaprc");
    std::fs::write(
        &rc,
        format!(
            "[general]\naccounts = T\n\n[Account T]\nlocalrepository = L\nremoterepository = R\n\n\
             [Repository L]\ntype = Maildir\nlocalfolders = {}\n\n\
             [Repository R]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = {}\nremoteuser = {}\n\
             remotepass = secret\nssl = no\nstarttls = no\n",
            w.maildir.display(),
            w.dovecot.imap_port,
            w.user
        ),
    )
    .unwrap();
    let out = Command::new("offlineimap")
        .arg("-c")
        .arg(&rc)
        .args(["-o", "-u", "quiet"])
        .env("HOME", home)
        .output()
        .expect("offlineimap runs (contrib/install-deps.sh installs offlineimap3)");
    assert!(
        out.status.success(),
        "offlineimap failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        w.dovecot.log()
    );
}

/// `arctern sync` with HOME at `home` (where the other tool keeps its records); stdout.
fn sync_at_home(w: &World, home: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_arctern"))
        .arg("-c")
        .arg(&w.config)
        .arg("sync")
        .env("HOME", home)
        .output()
        .unwrap();
    stdout_ok(out, "sync", &w.dovecot.log())
}

/// Gives a local file the info letters `letters` (a mail reader's flag change).
fn set_letters(file: &Path, letters: &str) {
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let base = name.split(":2,").next().unwrap();
    let dir = file.parent().unwrap().parent().unwrap();
    std::fs::rename(file, dir.join("cur").join(format!("{base}:2,{letters}"))).unwrap();
}

/// The local file holding the message with Message-ID number `n`.
fn file_of(dir: &Path, n: usize) -> std::path::PathBuf {
    let needle = format!("Message-ID: <{n}.");
    local_files(dir)
        .into_iter()
        .find(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).contains(&needle))
        .unwrap_or_else(|| panic!("no local file holds message {n}"))
}

/// The server flags of the message with Message-ID number `n`.
fn server_flags_of(c: &mut Client, wire: &str, n: usize) -> Vec<String> {
    let needle = format!("Message-ID: <{n}.");
    let m = c
        .messages(wire)
        .into_iter()
        .find(|m| String::from_utf8_lossy(&m.body).contains(&needle))
        .unwrap_or_else(|| panic!("no server message {n} in {wire}"));
    system_flags(m.flags)
}

/// The system flags (`\\Seen`, …) among `flags`, sorted.
fn system_flags(flags: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut f: Vec<String> = flags.into_iter().filter(|f| f.starts_with('\\')).collect();
    f.sort();
    f
}

/// (folder, number of messages, sorted flag lists) on the server.
fn server_state(w: &World, wires: &[&str]) -> Vec<(String, Vec<Vec<String>>)> {
    let mut c = w.client();
    wires
        .iter()
        .map(|wire| {
            let mut flags: Vec<Vec<String>> = c
                .messages(wire)
                .into_iter()
                .map(|m| system_flags(m.flags))
                .collect();
            flags.sort();
            (wire.to_string(), flags)
        })
        .collect()
}

/// Like `assert_same`, but each side's bodies without the `X-TUID:` header line mbsync adds to
/// the copies it stores (arctern keeps files as they are: the line stays on disk).
fn assert_same_but_markers(c: &mut Client, wire: &str, local: &Path) {
    let strip = |body: &[u8]| -> Vec<u8> {
        let text = String::from_utf8_lossy(&to_lf(body)).to_string();
        let (head, rest) = text.split_once("\n\n").unwrap_or((&text, ""));
        let head: Vec<&str> = head
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                !l.starts_with("x-tuid:") && !l.starts_with("x-offlineimap:")
            })
            .collect();
        format!("{}\n\n{rest}", head.join("\n")).into_bytes()
    };
    let mut server: Vec<(Vec<u8>, Vec<String>)> = c
        .messages(wire)
        .into_iter()
        .map(|m| (strip(&m.body), system_flags(m.flags)))
        .collect();
    let mut near: Vec<(Vec<u8>, Vec<String>)> = local_messages(local)
        .into_iter()
        .map(|m| (strip(&m.body), m.flags.into_iter().collect()))
        .collect();
    server.sort();
    near.sort();
    assert_eq!(server.len(), near.len(), "{wire}: counts differ");
    assert!(server == near, "{wire}: contents or flags differ");
}

/// The mbsync adoption case: `state` where mbsync keeps it, `None`: its state deleted before
/// arctern comes (pairing by content).
fn adopt_mbsync(state: Option<StateAt>) {
    let w = World::new("", "");
    let mut c = w.client();
    c.create("Entw&APw-rfe");
    c.create("Archive");
    let mix = ["", "\\Seen", "\\Seen \\Flagged", "\\Answered \\Seen"];
    for n in 0..24 {
        c.append(
            "INBOX",
            &message(n, "INBOX", 300 + n * 90),
            mix[n % mix.len()],
        );
    }
    for n in 100..106 {
        c.append("Entw&APw-rfe", &message(n, "Entwürfe", 500), "\\Draft");
    }
    for n in 200..208 {
        c.append("Archive", &message(n, "Archive", 2_000), "\\Seen");
    }
    let home = tempfile::tempdir().unwrap();
    let at = state.unwrap_or(StateAt::InFolder);
    mbsync(&w, home.path(), at);
    // A change made with mbsync too: a message written locally and pushed by mbsync (its server
    // copy then carries mbsync's X-TUID line, the local file does not).
    write_local(
        &w.maildir,
        "1700000000.local1.host",
        &message(300, "INBOX", 700),
        "S",
    );
    mbsync(&w, home.path(), at);
    let utf7_dir = w.maildir.join(".Entw&APw-rfe");
    assert!(
        utf7_dir.join("cur").is_dir(),
        "mbsync keeps the UTF-7 name on disk"
    );
    // Changes after mbsync's last sync: message 0 flagged locally, message 1 marked unread on
    // the server (UID 2).
    set_letters(&file_of(&w.maildir, 0), "F");
    c.store("INBOX", "2", "-FLAGS (\\Seen)");
    if state.is_none() {
        for dir in [w.maildir.clone(), utf7_dir.clone(), w.local_dir("Archive")] {
            let _ = std::fs::remove_file(dir.join(".mbsyncstate"));
        }
        let _ = std::fs::remove_dir_all(home.path().join(".mbsync"));
    }
    let wires = ["INBOX", "Entw&APw-rfe", "Archive"];
    let mut before = server_state(&w, &wires);
    let local_before = local_files(&w.maildir).len()
        + local_files(&utf7_dir).len()
        + local_files(&w.maildir.join(".Archive")).len();
    assert_eq!(local_before, 25 + 6 + 8);

    // A dry run says what adoption will do, and does nothing.
    let dry = Command::new(env!("CARGO_BIN_EXE_arctern"))
        .arg("-c")
        .arg(&w.config)
        .args(["sync", "--dry-run"])
        .env("HOME", home.path())
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(dry.status.success(), "{plan}");
    assert!(
        plan.contains("rename local folder .Entw&APw-rfe to .Entwürfe"),
        "{plan}"
    );
    let evidence = if state.is_some() {
        "by mbsync's records"
    } else {
        "by Message-ID and size"
    };
    assert_eq!(plan.matches(evidence).count(), 3, "{plan}");
    assert!(
        !plan.contains("download UID") && !plan.contains("upload "),
        "{plan}"
    );
    assert!(utf7_dir.is_dir(), "the dry run renamed");

    // arctern with fresh state: everything is linked, nothing copied, the folder renamed.
    let out = sync_at_home(&w, home.path());
    assert!(out.contains("test: +0 ↓ +0 ↑"), "{out}");
    match state {
        Some(_) => {
            // mbsync's records: its pairs, and the local change it had not synced is kept.
            assert!(out.contains("by mbsync's records"), "{out}");
            assert!(out.contains("flags 1 ↓ 1 ↑"), "{out}");
            assert_eq!(server_flags_of(&mut c, "INBOX", 0), vec!["\\Flagged"]);
            let (index, _) = before[0]
                .1
                .iter()
                .enumerate()
                .find(|(_, f)| f.is_empty())
                .unwrap();
            before[0].1[index] = vec!["\\Flagged".to_string()];
            before[0].1.sort();
        }
        None => {
            // By content: the server's flags win where the two sides differ.
            assert!(out.contains("by Message-ID and size"), "{out}");
            assert!(out.contains("flags 2 ↓ 0 ↑"), "{out}");
            assert!(server_flags_of(&mut c, "INBOX", 0).is_empty());
        }
    }
    assert!(
        out.contains("renamed local folder .Entw&APw-rfe to .Entwürfe"),
        "{out}"
    );
    assert!(!utf7_dir.exists(), "the UTF-7 directory is still there");
    let renamed = w.local_dir("Entwürfe");
    assert_eq!(local_files(&renamed).len(), 6);
    assert_eq!(server_state(&w, &wires), before, "the server changed");
    assert_eq!(c.folders().len(), 3, "{:?}", c.folders());
    assert_same_but_markers(&mut c, "INBOX", &w.maildir);
    assert_same_but_markers(&mut c, "Entw&APw-rfe", &renamed);
    assert_same_but_markers(&mut c, "Archive", &w.local_dir("Archive"));
    assert!(sync_at_home(&w, home.path()).contains("+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑"));

    // Later changes on both sides sync as usual.
    c.append("Archive", &message(400, "Archive", 900), "");
    let file = local_files(&renamed).remove(0);
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let base = name.split(":2,").next().unwrap();
    std::fs::rename(&file, renamed.join("cur").join(format!("{base}:2,DF"))).unwrap();
    let out = sync_at_home(&w, home.path());
    assert!(out.contains("test: +1 ↓ +0 ↑ flags 0 ↓ 1 ↑"), "{out}");
    assert_same_but_markers(&mut c, "Entw&APw-rfe", &renamed);
    assert_same_but_markers(&mut c, "Archive", &w.local_dir("Archive"));
}

#[test]
fn an_mbsync_maildir_with_state_in_each_folder_is_adopted_by_its_records() {
    adopt_mbsync(Some(StateAt::InFolder));
}

#[test]
fn an_mbsync_maildir_with_state_under_home_is_adopted_by_its_records() {
    adopt_mbsync(Some(StateAt::Home));
}

#[test]
fn an_mbsync_maildir_without_state_is_adopted_by_content() {
    adopt_mbsync(None);
}

#[test]
fn an_offlineimap_maildir_is_adopted_by_its_records() {
    let w = World::new("", "layout = \"verbatim\"");
    let mut c = w.client();
    c.create("Entw&APw-rfe");
    c.create("Archive");
    // A subfolder: offlineimap keeps it as one directory `Lists.rust` (its default sep).
    c.create("Lists.rust");
    for n in 500..503 {
        c.append("Lists.rust", &message(n, "Lists/rust", 600), "\\Seen");
    }
    let mix = ["", "\\Seen", "\\Seen \\Flagged", "\\Answered \\Seen"];
    for n in 0..16 {
        c.append(
            "INBOX",
            &message(n, "INBOX", 300 + n * 70),
            mix[n % mix.len()],
        );
    }
    for n in 100..104 {
        c.append("Entw&APw-rfe", &message(n, "Entwürfe", 500), "\\Draft");
    }
    for n in 200..205 {
        c.append("Archive", &message(n, "Archive", 1_500), "\\Seen");
    }
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(&w.maildir).unwrap();
    offlineimap(&w, home.path());
    // A message written locally and uploaded by offlineimap.
    let inbox = w.maildir.join("INBOX");
    write_local(
        &inbox,
        "1700000000.local1.host",
        &message(300, "INBOX", 700),
        "S",
    );
    offlineimap(&w, home.path());
    let utf7_dir = w.maildir.join("Entw&APw-rfe");
    assert!(
        utf7_dir.join("cur").is_dir(),
        "offlineimap keeps the UTF-7 name"
    );
    // Changes after offlineimap's last sync: message 0 flagged locally, message 1 marked unread
    // on the server (UID 2).
    set_letters(&file_of(&inbox, 0), "F");
    c.store("INBOX", "2", "-FLAGS (\\Seen)");
    assert!(
        w.maildir.join("Lists.rust").join("cur").is_dir(),
        "offlineimap's flat subfolder"
    );
    let wires = ["INBOX", "Entw&APw-rfe", "Archive", "Lists.rust"];
    let before = server_state(&w, &wires);
    let folders_before = c.folders();
    assert_eq!(before[0].1.len(), 17);

    let out = sync_at_home(&w, home.path());
    assert!(out.contains("test: +0 ↓ +0 ↑ flags 1 ↓ 1 ↑"), "{out}");
    assert!(out.contains("by offlineimap's records"), "{out}");
    assert!(
        out.contains("renamed local folder Entw&APw-rfe to Entwürfe"),
        "{out}"
    );
    assert_eq!(server_flags_of(&mut c, "INBOX", 0), vec!["\\Flagged"]);
    assert!(
        out.contains("renamed local folder Lists.rust to Lists/rust"),
        "{out}"
    );
    assert_eq!(
        c.folders(),
        folders_before,
        "a folder appeared on the server"
    );
    assert_eq!(
        server_state(&w, &wires)[3],
        before[3],
        "the subfolder changed"
    );
    assert_same_but_markers(&mut c, "Lists.rust", &w.maildir.join("Lists").join("rust"));
    let renamed = w.maildir.join("Entwürfe");
    assert!(!utf7_dir.exists());
    assert_same_but_markers(&mut c, "INBOX", &inbox);
    assert_same_but_markers(&mut c, "Entw&APw-rfe", &renamed);
    assert_same_but_markers(&mut c, "Archive", &w.maildir.join("Archive"));
    assert!(sync_at_home(&w, home.path()).contains("+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑"));

    // Later changes on both sides sync as usual.
    c.append("Archive", &message(400, "Archive", 900), "");
    std::fs::remove_file(file_of(&renamed, 101)).unwrap();
    let out = sync_at_home(&w, home.path());
    assert!(
        out.contains("test: +1 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 1 ↑"),
        "{out}"
    );
    assert_same_but_markers(&mut c, "Entw&APw-rfe", &renamed);
    assert_same_but_markers(&mut c, "Archive", &w.maildir.join("Archive"));
}

#[test]
fn with_utf7_names_the_other_tools_folder_names_stay_on_disk() {
    let w = World::new("", "utf7_names = true");
    let mut c = w.client();
    c.create("Entw&APw-rfe");
    for n in 0..4 {
        c.append("Entw&APw-rfe", &message(n, "Entwürfe", 400), "\\Seen");
    }
    c.append("INBOX", &message(10, "INBOX", 400), "");
    let home = tempfile::tempdir().unwrap();
    mbsync(&w, home.path(), StateAt::InFolder);
    let utf7_dir = w.maildir.join(".Entw&APw-rfe");
    let out = sync_at_home(&w, home.path());
    assert!(out.contains("test: +0 ↓ +0 ↑"), "{out}");
    assert!(!out.contains("renamed"), "{out}");
    assert!(utf7_dir.join("cur").is_dir());
    assert!(!w.maildir.join(".Entwürfe").exists());
    // New mail lands under the UTF-7 name, and a local change there reaches the server.
    c.append("Entw&APw-rfe", &message(20, "Entwürfe", 400), "");
    std::fs::remove_file(file_of(&utf7_dir, 1)).unwrap();
    let out = sync_at_home(&w, home.path());
    assert!(
        out.contains("test: +1 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 1 ↑"),
        "{out}"
    );
    assert_same_but_markers(&mut c, "Entw&APw-rfe", &utf7_dir);
    assert_eq!(c.folders().len(), 2, "{:?}", c.folders());
}

#[test]
fn a_message_id_on_both_sides_with_different_text_is_kept_twice_and_named() {
    let w = World::new("", "");
    let mut c = w.client();
    c.append("INBOX", &message(1, "INBOX", 300), "\\Seen");
    c.append("INBOX", &message(50, "INBOX", 300), "");
    make_maildir(&w.maildir);
    write_local(
        &w.maildir,
        "1600000000.a.host",
        &message(1, "INBOX", 300),
        "S",
    );
    // Same Message-ID as the server's second message, other text (edited, or another copy).
    write_local(
        &w.maildir,
        "1600000000.b.host",
        &message(50, "INBOX", 900),
        "",
    );
    let out = w.sync_ok();
    assert!(out.contains("1 message(s) already present"), "{out}");
    assert!(
        out.contains("1 Message-ID(s) on both sides with different text")
            && out.contains("<50.INBOX@test.arctern> (local 1600000000.b.host; server UID 2)"),
        "{out}"
    );
    assert!(out.contains("test: +1 ↓ +1 ↑"), "{out}");
    assert_eq!(c.messages("INBOX").len(), 3);
    assert_same(&mut c, "INBOX", &w.maildir);
}
