//! Adopting a Maildir another tool kept, with fresh arctern state and no records read: the real
//! mbsync (Debian's isync) pulls the test Dovecot, then arctern takes its Maildir over. Pairing
//! by content (Message-ID and size less the copies' sync-marker lines) links every message,
//! and the folder mbsync keeps under its modified UTF-7 name is renamed to the server folder's.

use crate::support::*;
use std::path::Path;
use std::process::Command;

/// Runs mbsync once over every folder (both ways, state in each Maildir folder).
fn mbsync(w: &World, home: &Path) {
    let rc = home.join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount t\nHost 127.0.0.1\nPort {}\nUser {}\nPass secret\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore t-far\nAccount t\n\n\
             MaildirStore t-near\nInbox {}\nSubFolders Maildir++\n\n\
             Channel t\nFar :t-far:\nNear :t-near:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\nSync All\n",
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
            .filter(|l| !l.to_ascii_lowercase().starts_with("x-tuid:"))
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

#[test]
fn an_mbsync_maildir_is_adopted_without_one_upload_download_or_second_folder() {
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
    mbsync(&w, home.path());
    // A change made with mbsync too: a message written locally and pushed by mbsync (its server
    // copy then carries mbsync's X-TUID line, the local file does not).
    write_local(
        &w.maildir,
        "1700000000.local1.host",
        &message(300, "INBOX", 700),
        "S",
    );
    mbsync(&w, home.path());
    let utf7_dir = w.maildir.join(".Entw&APw-rfe");
    assert!(
        utf7_dir.join("cur").is_dir(),
        "mbsync keeps the UTF-7 name on disk"
    );
    let wires = ["INBOX", "Entw&APw-rfe", "Archive"];
    let before = server_state(&w, &wires);
    let local_before = local_files(&w.maildir).len()
        + local_files(&utf7_dir).len()
        + local_files(&w.maildir.join(".Archive")).len();
    assert_eq!(local_before, 25 + 6 + 8);

    // arctern with fresh state: everything is linked, nothing copied, the folder renamed.
    let out = w.sync_ok();
    assert!(out.contains("test: +0 ↓ +0 ↑"), "{out}");
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
    assert!(
        w.sync_ok()
            .contains("+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑")
    );

    // Later changes on both sides sync as usual.
    c.append("Archive", &message(400, "Archive", 900), "");
    let file = local_files(&renamed).remove(0);
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let base = name.split(":2,").next().unwrap();
    std::fs::rename(&file, renamed.join("cur").join(format!("{base}:2,DF"))).unwrap();
    let out = w.sync_ok();
    assert!(out.contains("test: +1 ↓ +0 ↑ flags 0 ↓ 1 ↑"), "{out}");
    assert_same_but_markers(&mut c, "Entw&APw-rfe", &renamed);
    assert_same_but_markers(&mut c, "Archive", &w.local_dir("Archive"));
}
