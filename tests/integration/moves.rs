//! Messages that change names or folders without changing: a file a mail reader renamed under a
//! new key (mu4e with `mu4e-change-filenames-when-moving`) is the same message, relinked, never
//! uploaded again with its server copy deleted.

use crate::support::*;

/// The local file in folder `dir` whose message contains `marker`.
fn file_containing(dir: &std::path::Path, marker: &str) -> std::path::PathBuf {
    local_files(dir)
        .into_iter()
        .find(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).contains(marker))
        .unwrap_or_else(|| panic!("no file with {marker:?} in {}", dir.display()))
}

/// Renames the local file of the message whose body contains `marker` to a new key with info
/// `letters`, as mu4e does; returns the new path.
fn rename_with_new_key(dir: &std::path::Path, marker: &str, new_key: &str, letters: &str) {
    let file = file_containing(dir, marker);
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
    let file = file_containing(&w.maildir, "message 3 in INBOX");
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

/// Files arctern kept in `tmp/` for a run (`MaildirFolder::depart`).
fn departed_left(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("tmp"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("arctern-departed."))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn messages_the_server_moved_between_folders_are_linked_not_downloaded_again() {
    let w = World::new("", "");
    let mut c = w.client();
    c.create("Archive");
    // Ten in INBOX: four going stay under the deletion guard's 50 %.
    for n in 1..=10 {
        c.append("INBOX", &message(n, "INBOX", 6000), "");
    }
    for n in 11..=12 {
        c.append("Archive", &message(n, "Archive", 6000), "\\Seen");
    }
    w.sync_ok();
    let archive = w.maildir.join(".Archive");
    // Both directions, so that one folder is synced before the other and one after: UID MOVE
    // INBOX 1 and 2 to Archive, Archive 1 to INBOX, COPY and EXPUNGE INBOX 3 to Archive.
    c.move_to("INBOX", "1:2", "Archive");
    c.move_to("Archive", "1", "INBOX");
    c.copy_to("INBOX", "3", "Archive");
    c.expunge("INBOX", "3");
    // A new message with message 4's Message-ID and size but another header, and message 4
    // gone: another message, downloaded.
    let mut other = message(4, "INBOX", 6000);
    let at = other.windows(9).position(|x| x == b"message 4").unwrap();
    other[at] = b'M';
    c.append("Archive", &other, "");
    c.expunge("INBOX", "4");
    let out = w.sync_ok();
    assert!(
        out.contains("+1 ↓ +0 ↑"),
        "only the new message fetched: {out}"
    );
    assert!(out.contains("4 already stored (linked)"), "{out}");
    assert!(out.contains("deleted 5 ↓ 0 ↑"), "{out}");
    assert_same(&mut c, "INBOX", &w.maildir);
    assert_same(&mut c, "Archive", &archive);
    assert!(departed_left(&w.maildir).is_empty());
    assert!(departed_left(&archive).is_empty());
    // The state agrees: nothing to do, and the moved messages' flags still sync.
    let out = w.sync_ok();
    assert!(
        out.contains("+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑"),
        "{out}"
    );
    c.store("Archive", "1:*", "+FLAGS (\\Flagged)");
    let out = w.sync_ok();
    assert!(out.contains("flags 5 ↓ 0 ↑"), "{out}");
    assert_same(&mut c, "Archive", &archive);
}

#[test]
fn a_departed_file_left_by_an_interrupted_run_is_removed() {
    let w = World::new("", "");
    let mut c = w.client();
    c.append("INBOX", &message(1, "INBOX", 500), "");
    w.sync_ok();
    let stale = w
        .maildir
        .join("tmp")
        .join("arctern-departed.1700000000.x.host");
    std::fs::write(&stale, message(9, "INBOX", 500)).unwrap();
    c.append("INBOX", &message(2, "INBOX", 500), "");
    w.sync_ok();
    assert!(!stale.exists());
    assert_same(&mut c, "INBOX", &w.maildir);
}

#[test]
fn files_the_mail_reader_moved_between_folders_are_moved_on_the_server() {
    let w = World::new("", "");
    let mut c = w.client();
    c.create("Archive");
    for n in 1..=10 {
        c.append("INBOX", &message(n, "INBOX", 3000), "\\Seen");
    }
    c.append("Archive", &message(20, "Archive", 3000), "");
    w.sync_ok();
    let archive = w.maildir.join(".Archive");
    let uidnext_before = c.messages("Archive").last().unwrap().uid;
    // mutt keeps the file name; another reader gives a new name and changes a flag with it.
    let file_of = |marker: &str| file_containing(&w.maildir, marker);
    for marker in ["message 1 in INBOX", "message 2 in INBOX"] {
        let file = file_of(marker);
        std::fs::rename(&file, archive.join("cur").join(file.file_name().unwrap())).unwrap();
    }
    let third = file_of("message 3 in INBOX");
    std::fs::rename(
        &third,
        archive.join("cur").join("1800000002.aerc.host:2,FS"),
    )
    .unwrap();
    // And one the other way, from Archive to INBOX.
    let back = file_containing(&archive, "message 20");
    std::fs::rename(&back, w.maildir.join("cur").join("1800000003.x.host:2,")).unwrap();

    let out = w.sync_ok();
    assert!(
        out.contains("3 message(s) moved here from INBOX in the Maildir: moved on the server too"),
        "{out}"
    );
    assert!(
        out.contains("1 message(s) moved here from Archive"),
        "{out}"
    );
    assert!(
        out.contains("+0 ↓ +0 ↑ flags 0 ↓ 1 ↑ deleted 0 ↓ 0 ↑"),
        "nothing uploaded or deleted, the \\Flagged pushed: {out}"
    );
    let on_server = c.messages("Archive");
    assert_eq!(on_server.len(), 3, "moved, not copied: {on_server:?}");
    assert!(
        on_server.iter().all(|m| m.uid > uidnext_before),
        "new UIDs of a move"
    );
    assert_eq!(c.messages("INBOX").len(), 8);
    assert_same(&mut c, "INBOX", &w.maildir);
    assert_same(&mut c, "Archive", &archive);
    let out = w.sync_ok();
    assert!(
        out.contains("+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑"),
        "{out}"
    );
}

#[test]
fn a_run_killed_after_the_server_move_finds_the_moved_copy_and_duplicates_nothing() {
    use sha2::Digest;
    let w = World::new("", "");
    let mut c = w.client();
    c.create("Archive");
    for n in 1..=4 {
        c.append("INBOX", &message(n, "INBOX", 2000), "\\Seen");
    }
    w.sync_ok();
    let archive = w.maildir.join(".Archive");
    let file = file_containing(&w.maildir, "message 1 in");
    let moved = archive.join("cur").join("1800000004.moved.host:2,S");
    std::fs::rename(&file, &moved).unwrap();
    // What a run killed right after its UID MOVE leaves: the upload intent it announced in
    // Archive, the server copy moved, the state not yet told.
    let crlf = std::fs::read(&moved)
        .unwrap()
        .split(|b| *b == b'\n')
        .map(|l| l.to_vec())
        .collect::<Vec<_>>()
        .join(&b"\r\n"[..]);
    let db = rusqlite::Connection::open(w.state_dir.join("test.sqlite3")).unwrap();
    let (folder, uidnext): (i64, i64) = db
        .query_row(
            "SELECT id, uidnext FROM folders WHERE name = 'Archive'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let uidvalidity: i64 = db
        .query_row(
            "SELECT uidvalidity FROM folders WHERE id = ?1",
            [folder],
            |r| r.get(0),
        )
        .unwrap();
    db.execute(
        "INSERT INTO intents (folder_id, kind, far_uid, near_key, uidvalidity, uidnext, flags, message_id, size, sha256)
         VALUES (?1, 'upload', NULL, '1800000004.moved.host', ?2, ?3, '\\Seen', '1.INBOX@test.arctern', ?4, ?5)",
        rusqlite::params![
            folder,
            uidvalidity,
            uidnext,
            crlf.len() as i64,
            sha2::Sha256::digest(&crlf).to_vec()
        ],
    )
    .unwrap();
    drop(db);
    c.move_to("INBOX", "1", "Archive");
    let out = w.sync_ok();
    assert!(out.contains("+0 ↓ +0 ↑"), "nothing copied again: {out}");
    assert_eq!(c.messages("Archive").len(), 1, "one copy on the server");
    assert_eq!(c.messages("INBOX").len(), 3);
    assert_same(&mut c, "INBOX", &w.maildir);
    assert_same(&mut c, "Archive", &archive);
    let out = w.sync_ok();
    assert!(
        out.contains("+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑"),
        "{out}"
    );
}
