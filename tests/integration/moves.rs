//! Messages that change names or folders without changing: a file a mail reader renamed under a
//! new key (mu4e with `mu4e-change-filenames-when-moving`) is the same message, relinked, never
//! uploaded again with its server copy deleted.

use crate::support::*;

/// Renames the local file of the message whose body contains `marker` to a new key with info
/// `letters`, as mu4e does; returns the new path.
fn rename_with_new_key(dir: &std::path::Path, marker: &str, new_key: &str, letters: &str) {
    let file = local_files(dir)
        .into_iter()
        .find(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).contains(marker))
        .unwrap();
    std::fs::rename(
        &file,
        dir.join("cur").join(format!("{new_key}:2,{letters}")),
    )
    .unwrap();
}

#[test]
fn a_file_renamed_under_a_new_key_is_relinked_not_uploaded_again() {
    let w = World::new("", "");
    let mut c = w.client();
    for n in 1..=3 {
        c.append("INBOX", &message(n, "INBOX", 500), "");
    }
    w.sync_ok();
    let uids_before: Vec<u32> = c.messages("INBOX").iter().map(|m| m.uid).collect();
    // mu4e marks message 2 read and gives its file a new name.
    rename_with_new_key(
        &w.maildir,
        "message 2 in INBOX",
        "1800000000.mu4e-a.host",
        "S",
    );
    let out = w.sync_ok();
    assert!(
        out.contains("1 file(s) renamed by a mail reader are the same messages"),
        "{out}"
    );
    assert!(
        out.contains("+0 ↓ +0 ↑ flags 0 ↓ 1 ↑ deleted 0 ↓ 0 ↑"),
        "{out}"
    );
    let after = c.messages("INBOX");
    assert_eq!(
        after.iter().map(|m| m.uid).collect::<Vec<_>>(),
        uids_before,
        "no new UID"
    );
    let second = after
        .iter()
        .find(|m| String::from_utf8_lossy(&m.body).contains("message 2 in INBOX"))
        .unwrap();
    assert!(second.flags.contains("\\Seen"), "{:?}", second.flags);
    assert_same(&mut c, "INBOX", &w.maildir);
    let out = w.sync_ok();
    assert!(
        out.contains("+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑"),
        "{out}"
    );

    // A new file with the old one's Message-ID and size but another header is another
    // message: uploaded, and the vanished one deleted on the server, as before.
    let file = local_files(&w.maildir)
        .into_iter()
        .find(|p| {
            String::from_utf8_lossy(&std::fs::read(p).unwrap()).contains("message 3 in INBOX")
        })
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.windows(9).position(|x| x == b"message 3").unwrap();
    bytes[at] = b'M';
    std::fs::remove_file(&file).unwrap();
    std::fs::write(
        w.maildir.join("cur").join("1800000001.edited.host:2,"),
        &bytes,
    )
    .unwrap();
    let out = w.sync_ok();
    assert!(!out.contains("renamed by a mail reader"), "{out}");
    assert!(
        out.contains("+0 ↓ +1 ↑") && out.contains("deleted 0 ↓ 1 ↑"),
        "{out}"
    );
    assert_same(&mut c, "INBOX", &w.maildir);
}
