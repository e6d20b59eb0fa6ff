//! A label-model account on the real Dovecot: its virtual plugin makes "[Gmail]/All Mail" (SPECIAL-USE
//! `\All`) over the folder `Store`, which holds one copy of every message, as Gmail's All
//! Mail does; INBOX and Work hold copies, as Gmail's labels do (TEST-SERVERS.md). Every folder
//! is mirrored, each message stored once: the other files are hard links.

use crate::support::*;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;

/// Gmail's model on Dovecot (TEST-SERVERS.md): one real copy of every message in a namespace
/// LIST does not show (`Store.Everything`), "[Gmail]/All Mail" a virtual folder over it, the
/// labels (INBOX, Work) real folders holding copies, "[Gmail]/Starred" a virtual folder of
/// INBOX's flagged messages, "Sent Mail" marked `\Sent`.
const GMAIL_LIKE: &str = "mail_plugins = $mail_plugins virtual
namespace inbox {
  inbox = yes
  separator = .
  mailbox \"Sent Mail\" {
    special_use = \\Sent
  }
}
namespace store {
  prefix = Store.
  separator = .
  location = maildir:~/store
  hidden = yes
  list = no
  subscriptions = no
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
  mailbox Starred {
    special_use = \\Flagged
  }
}
";

fn gmail_like() -> World {
    let w = World::new(GMAIL_LIKE, "");
    let home = w.dovecot.dir.join("mail").join(&w.user);
    for (name, def) in [
        ("All Mail", "Store.Everything\n  all\n"),
        ("Starred", "INBOX\n  flagged\n"),
    ] {
        let dir = home.join("virtual").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("dovecot-virtual"), def).unwrap();
    }
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
fn a_label_model_account_is_stored_once_and_pushed_by_label() {
    let w = gmail_like();
    let mut c = w.client();
    c.create("Store.Everything");
    c.create("Work");
    c.create("Sent Mail");
    // Four received messages (the fourth archived: in no label), one sent.
    let msgs: Vec<Vec<u8>> = (1..=5).map(|n| message(n, "mail", 700 + n * 100)).collect();
    for m in &msgs {
        c.append("Store.Everything", m, "");
    }
    c.append("INBOX", &msgs[0], "\\Seen \\Flagged");
    c.append("INBOX", &msgs[1], "\\Seen");
    c.append("INBOX", &msgs[2], "\\Seen");
    c.append("Work", &msgs[0], "");
    c.append("Work", &msgs[1], "");
    c.append("Sent Mail", &msgs[4], "\\Seen");
    let folders = c.folders();
    assert!(
        folders.iter().any(|f| f == "[Gmail].All Mail"),
        "{folders:?}"
    );
    assert!(
        !folders.iter().any(|f| f.starts_with("Store")),
        "hidden: {folders:?}"
    );
    let out = w.sync_ok();
    // All Mail downloaded (5); INBOX 3, Work 2, Starred 1, Sent Mail 1 linked.
    assert!(
        out.contains("+5 ↓") && out.contains("7 already stored (linked)"),
        "{out}"
    );
    let all_mail = w.local_dir("[Gmail]/All Mail");
    for (folder, wire) in [
        ("[Gmail]/All Mail", "[Gmail].All Mail"),
        ("[Gmail]/Starred", "[Gmail].Starred"),
        ("INBOX", "INBOX"),
        ("Work", "Work"),
        ("Sent Mail", "Sent Mail"),
    ] {
        assert_same(&mut c, wire, &w.local_dir(folder));
    }
    let stored: BTreeSet<u64> = inodes(&all_mail).iter().map(|(i, _)| *i).collect();
    assert_eq!(stored.len(), 5);
    for folder in ["INBOX", "Work", "Sent Mail", "[Gmail]/Starred"] {
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

    // Push to an ordinary server: each label once, All Mail's archived message into Archive,
    // Sent Mail into Sent, Starred not at all (its message arrives flagged in INBOX).
    let target = World::new("", "");
    target.dovecot.add_user("bob");
    add_imap_target(&w.config, "plain", target.dovecot.imap_port, "bob", "");
    let out = stdout_ok(
        w.arctern(&["push", "test", "--to", "plain"]),
        "push",
        &target.dovecot.log(),
    );
    assert!(out.contains("+7 ↑"), "{out}");
    assert!(out.contains("[Gmail]/Starred not pushed: Starred"), "{out}");
    let mut bob = Client::connect(target.dovecot.imap_port, "bob");
    let mut folders = bob.folders();
    folders.sort();
    assert_eq!(folders, vec!["Archive", "INBOX", "Sent", "Work"]);
    assert_eq!(bob.messages("INBOX").len(), 3);
    assert_eq!(bob.messages("Work").len(), 2);
    let archived = bob.messages("Archive");
    assert_eq!(archived.len(), 1);
    assert_eq!(to_lf(&archived[0].body), to_lf(&msgs[3]));
    assert!(
        bob.messages("INBOX")
            .iter()
            .any(|m| m.flags.contains("\\Flagged"))
    );
    let out = stdout_ok(
        w.arctern(&["verify", "test", "--to", "plain"]),
        "verify",
        "",
    );
    assert!(
        out.contains("the target holds exactly the local messages"),
        "{out}"
    );
    let out = stdout_ok(
        w.arctern(&["push", "test", "--to", "plain"]),
        "push again",
        "",
    );
    assert!(out.contains("+0 ↑"), "{out}");

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
    assert_eq!(inodes(&all_mail).len(), 5, "the stored copy stays");

    // New mail: downloaded once (All Mail first), linked in its label.
    let sixth = message(6, "mail", 900);
    c.append("Store.Everything", &sixth, "");
    c.append("INBOX", &sixth, "");
    let out = w.sync_ok();
    assert!(
        out.contains("+1 ↓") && out.contains("1 already stored (linked)"),
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
