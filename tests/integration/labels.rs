//! A label-model account on the real Dovecot: its virtual plugin makes "[Gmail]/All Mail" (SPECIAL-USE
//! `\All`) over the folder `Store`, which holds one copy of every message, as Gmail's All
//! Mail does; INBOX and Work hold copies, as Gmail's labels do (TEST-SERVERS.md). Every folder
//! is mirrored, each message stored once: the other files are hard links.

use crate::support::*;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;

const GMAIL_LIKE: &str = "mail_plugins = $mail_plugins virtual
namespace inbox {
  inbox = yes
  separator = .
}
namespace gmail {
  prefix = [Gmail].
  separator = .
  location = virtual:~/virtual
  list = yes
  subscriptions = no
  mailbox \"All Mail\" {
    special_use = \\All
  }
}
";

fn gmail_like() -> World {
    let w = World::new(GMAIL_LIKE, "");
    let home = w.dovecot.dir.join("mail").join(&w.user);
    let all = home.join("virtual").join("All Mail");
    std::fs::create_dir_all(&all).unwrap();
    std::fs::write(all.join("dovecot-virtual"), "Store\n  all\n").unwrap();
    w.dovecot.hand_over(&home);
    w
}

/// (inode, links) of every message file of a folder.
fn inodes(dir: &std::path::Path) -> Vec<(u64, u64)> {
    local_files(dir)
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).unwrap();
            (m.ino(), m.nlink())
        })
        .collect()
}

#[test]
fn a_label_model_account_stores_each_message_once_and_links_the_rest() {
    let w = gmail_like();
    let mut c = w.client();
    c.create("Store");
    c.create("Work");
    let msgs: Vec<Vec<u8>> = (1..=4).map(|n| message(n, "mail", 700 + n * 100)).collect();
    for m in &msgs {
        c.append("Store", m, "");
    }
    for m in &msgs[..3] {
        c.append("INBOX", m, "\\Seen");
    }
    for m in &msgs[..2] {
        c.append("Work", m, "");
    }
    assert!(
        c.folders().iter().any(|f| f == "[Gmail].All Mail"),
        "{:?}",
        c.folders()
    );
    let out = w.sync_ok();
    assert!(
        out.contains("+4 ↓") && out.contains("9 already stored (linked)"),
        "{out}"
    );
    let all_mail = w.local_dir("[Gmail]/All Mail");
    for (folder, wire) in [
        ("[Gmail]/All Mail", "[Gmail].All Mail"),
        ("Store", "Store"),
        ("INBOX", "INBOX"),
        ("Work", "Work"),
    ] {
        assert_same(&mut c, wire, &w.local_dir(folder));
    }
    let stored: BTreeSet<u64> = inodes(&all_mail).iter().map(|(i, _)| *i).collect();
    assert_eq!(stored.len(), 4);
    for folder in ["Store", "INBOX", "Work"] {
        for (ino, _) in inodes(&w.local_dir(folder)) {
            assert!(
                stored.contains(&ino),
                "{folder}: a file of its own, not a link"
            );
        }
    }
    // Flags stay per file: INBOX's copies are seen, Work's are not.
    assert!(
        local_messages(&w.local_dir("INBOX"))
            .iter()
            .all(|m| m.flags.contains("\\Seen"))
    );
    assert!(
        local_messages(&w.local_dir("Work"))
            .iter()
            .all(|m| m.flags.is_empty())
    );
    let out = w.sync_ok();
    assert!(
        out.contains("+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑"),
        "{out}"
    );

    // A label added on the server: a link, not a download. A label removed: one link less.
    c.append("Work", &msgs[2], "");
    let out = w.sync_ok();
    assert!(
        out.contains("+0 ↓") && out.contains("1 already stored (linked)"),
        "{out}"
    );
    let work_uids: Vec<u32> = c.messages("Work").iter().map(|m| m.uid).collect();
    c.expunge("Work", &work_uids[0].to_string());
    let out = w.sync_ok();
    assert!(out.contains("deleted 1 ↓"), "{out}");
    assert_same(&mut c, "Work", &w.local_dir("Work"));
    assert_eq!(inodes(&all_mail).len(), 4, "the stored copy stays");

    // New mail: downloaded once (All Mail first), linked in its labels.
    let fifth = message(5, "mail", 900);
    c.append("Store", &fifth, "");
    c.append("INBOX", &fifth, "");
    let out = w.sync_ok();
    assert!(
        out.contains("+1 ↓") && out.contains("2 already stored (linked)"),
        "{out}"
    );

    // Same Message-ID and size, another header: downloaded, never linked to the wrong message.
    let mut twin = msgs[0].clone();
    let at = twin.windows(9).position(|x| x == b"message 1").unwrap();
    twin[at] = b'M';
    c.append("INBOX", &twin, "");
    let out = w.sync_ok();
    assert!(out.contains("+1 ↓") && !out.contains("linked"), "{out}");
    assert_same(&mut c, "INBOX", &w.local_dir("INBOX"));
}
