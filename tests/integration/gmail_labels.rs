//! Gmail's folder model on the scripted peer (support/fakegmail.rs): a message's identity is
//! its X-GM-MSGID (or RFC 8474's EMAILID), not its Message-ID; folder names are localised and
//! found by special use; CONDSTORE without QRESYNC carries the resyncs.

use crate::support::fakegmail::{ALL_MAIL, DRAFTS, FakeGmail, Identity, SENT};
use crate::support::fakesmtp::FakeSmtp;
use crate::support::*;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

struct Account {
    peer: FakeGmail,
    config: PathBuf,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

fn account(identity: Identity, target_port: Option<u16>) -> Account {
    let peer = FakeGmail::start(identity);
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let config = dir.path().join("config.toml");
    let mut text = format!(
        "state_dir = \"{}/state\"\n[accounts.gmail]\nmaildir = \"{}\"\n[accounts.gmail.imap]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"me@gmail.com\"\npassword = \"app-password\"\ntimeout_seconds = 10\n",
        dir.path().display(),
        maildir.display(),
        peer.port
    );
    if let Some(port) = target_port {
        text.push_str(&imap_target_toml("plain", port, "bob", ""));
    }
    std::fs::write(&config, text).unwrap();
    Account {
        peer,
        config,
        maildir,
        _dir: dir,
    }
}

/// The local directory of a folder (default Maildir++ layout).
fn local(root: &Path, canonical: &str) -> PathBuf {
    if canonical == "INBOX" {
        root.to_path_buf()
    } else {
        root.join(format!(".{}", canonical.replace('/', ".")))
    }
}

fn inodes(dir: &Path) -> BTreeSet<u64> {
    local_files(dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().ino())
        .collect()
}

fn bodies(dir: &Path) -> BTreeSet<Vec<u8>> {
    local_messages(dir).into_iter().map(|m| m.body).collect()
}

fn lf_set(messages: &[&Vec<u8>]) -> BTreeSet<Vec<u8>> {
    messages.iter().map(|m| to_lf(m)).collect()
}

/// A message without a Message-ID header.
fn anonymous(n: usize) -> Vec<u8> {
    format!("From: a@example.org\r\nSubject: note {n}, no Message-ID\r\n\r\nbody {n}\r\n")
        .into_bytes()
}

#[test]
fn gmail_labels_link_by_x_gm_msgid_resync_by_condstore_and_push_by_special_use() {
    let target = World::new("", "");
    target.dovecot.add_user("bob");
    let a = account(Identity::GmailMsgId, Some(target.dovecot.imap_port));
    let work = "Arbeit";
    // Two messages alike in Message-ID, size and header, unlike in body: Gmail keeps them apart
    // (two X-GM-MSGIDs); Message-ID evidence alone would link one to the other's file.
    let twin_a = message(5, "mail", 800);
    let mut twin_b = twin_a.clone();
    let at = twin_b.windows(5).position(|w| w == b"lorem").unwrap();
    twin_b[at..at + 5].copy_from_slice(b"LOREM");
    let m = [
        message(1, "mail", 900),
        anonymous(2),
        message(3, "mail", 700), // archived: in All Mail only
        message(4, "mail", 600),
        twin_a.clone(),
        twin_b.clone(),
        message(7, "mail", 500),
        message(8, "mail", 400),
    ];
    let idx: Vec<usize> = {
        let mut st = a.peer.state.lock().unwrap();
        vec![
            st.add(m[0].clone(), "\\Seen", &["INBOX", work]),
            st.add(m[1].clone(), "\\Seen", &["INBOX", work]),
            st.add(m[2].clone(), "\\Seen", &[]),
            st.add(m[3].clone(), "\\Seen", &[SENT]),
            st.add(m[4].clone(), "", &["INBOX"]),
            st.add(m[5].clone(), "", &[work]),
            st.add(m[6].clone(), "\\Flagged", &["INBOX"]),
            st.add(m[7].clone(), "\\Draft", &[DRAFTS]),
        ]
    };
    let spam = message(9, "spam", 300);
    a.peer.state.lock().unwrap().add_spam(spam.clone());
    let out = stdout_ok(arctern_with(&a.config, &["sync"]), "pull", "");
    // All Mail downloads each message once (and Spam its own); INBOX 4, Arbeit 3, Gesendet 1,
    // Entwürfe 1 and Markiert 1 are links.
    assert!(
        out.contains("+9 ↓") && out.contains("10 already stored (linked)"),
        "{out}"
    );
    {
        let st = a.peer.state.lock().unwrap();
        assert_eq!(st.bodies_sent, 9, "each message fetched once");
        assert!(st.commands.iter().any(|c| c.contains("X-GM-MSGID")));
        assert!(!st.commands.iter().any(|c| c.contains("QRESYNC")));
    }
    let all = inodes(&local(&a.maildir, ALL_MAIL));
    assert_eq!(all.len(), 8);
    for folder in ["INBOX", work, SENT, "[Gmail]/Markiert"] {
        let dir = local(&a.maildir, folder);
        assert!(
            inodes(&dir).is_subset(&all),
            "{folder}: a file of its own, not a link"
        );
    }
    assert_eq!(bodies(&a.maildir), lf_set(&[&m[0], &m[1], &m[4], &m[6]]));
    assert_eq!(
        bodies(&local(&a.maildir, work)),
        lf_set(&[&m[0], &m[1], &m[5]]),
        "the twin in Arbeit is its own message"
    );

    // Push: labels once each, the archived message into Archive, Gesendet into Sent and
    // Entwürfe into Drafts (found by special use), no All Mail, no Markiert.
    let out = stdout_ok(
        arctern_with(&a.config, &["push", "gmail", "--to", "plain"]),
        "push",
        &target.dovecot.log(),
    );
    assert!(out.contains("+10 ↑"), "{out}");
    assert!(out.contains("[Gmail]/Spam not pushed: spam"), "{out}");
    let mut bob = Client::connect(target.dovecot.imap_port, "bob");
    let mut folders = bob.folders();
    folders.sort();
    assert_eq!(folders, ["Arbeit", "Archive", "Drafts", "INBOX", "Sent"]);
    let on = |bob: &mut Client, f: &str| -> BTreeSet<Vec<u8>> {
        bob.messages(f).iter().map(|m| to_lf(&m.body)).collect()
    };
    assert_eq!(on(&mut bob, "Archive"), lf_set(&[&m[2]]));
    assert_eq!(on(&mut bob, "Sent"), lf_set(&[&m[3]]));
    assert_eq!(on(&mut bob, "Drafts"), lf_set(&[&m[7]]));
    assert_eq!(on(&mut bob, work), lf_set(&[&m[0], &m[1], &m[5]]));
    assert!(
        bob.messages("INBOX")
            .iter()
            .any(|x| x.flags.contains("\\Flagged") && to_lf(&x.body) == to_lf(&m[6]))
    );

    // Through SMTP (a restore by delivery): each distinct message once, Starred and Spam not.
    let smtp = FakeSmtp::start(&[]);
    let text = std::fs::read_to_string(&a.config).unwrap();
    std::fs::write(
        &a.config,
        format!(
            "{text}[targets.mailer]\n[targets.mailer.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nenvelope_from = \"me@gmail.com\"\nenvelope_to = [\"me@example.org\"]\n",
            smtp.port
        ),
    )
    .unwrap();
    let out = stdout_ok(
        arctern_with(&a.config, &["push", "gmail", "--to", "mailer"]),
        "smtp push",
        "",
    );
    assert!(out.contains("+8 sent"), "{out}");
    assert!(out.contains("[Gmail]/Spam not pushed: spam"), "{out}");
    let sent: BTreeSet<Vec<u8>> = smtp
        .accepted
        .lock()
        .unwrap()
        .iter()
        .map(|b| to_lf(b))
        .collect();
    assert_eq!(sent, lf_set(&m.iter().collect::<Vec<_>>()));

    // Changes at Gmail, read through CONDSTORE alone: a star (a flag in every folder and a new
    // member of Markiert), a label taken off, a label put on an archived message.
    {
        let mut st = a.peer.state.lock().unwrap();
        st.set_flags(idx[0], "\\Seen \\Flagged");
        st.unlabel(idx[1], work);
        st.label(idx[2], work);
        st.commands.clear();
    }
    let out = stdout_ok(arctern_with(&a.config, &["sync"]), "resync", "");
    assert!(
        out.contains("+0 ↓") && out.contains("2 already stored (linked)"),
        "{out}"
    );
    assert!(out.contains("deleted 1 ↓"), "{out}");
    {
        let st = a.peer.state.lock().unwrap();
        assert_eq!(st.bodies_sent, 9, "nothing fetched again");
        assert!(
            st.commands.iter().any(|c| c.contains("CHANGEDSINCE")),
            "{:?}",
            st.commands
        );
    }
    assert_eq!(
        bodies(&local(&a.maildir, work)),
        lf_set(&[&m[0], &m[2], &m[5]])
    );
    for folder in ["INBOX", work, ALL_MAIL, "[Gmail]/Markiert"] {
        let first = local_messages(&local(&a.maildir, folder))
            .into_iter()
            .find(|x| x.body == to_lf(&m[0]))
            .unwrap_or_else(|| panic!("{folder}: message 1 missing"));
        assert!(first.flags.contains("\\Flagged"), "{folder}: {first:?}");
    }
    assert_eq!(
        inodes(&local(&a.maildir, ALL_MAIL)),
        all,
        "the stored copies stay"
    );
    let out = stdout_ok(arctern_with(&a.config, &["sync"]), "quiet resync", "");
    assert!(
        out.contains("+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑"),
        "{out}"
    );
}

#[test]
fn emailid_links_a_message_without_message_id() {
    let a = account(Identity::EmailId, None);
    let m = [message(1, "mail", 900), anonymous(2)];
    {
        let mut st = a.peer.state.lock().unwrap();
        st.add(m[0].clone(), "\\Seen", &["INBOX"]);
        st.add(m[1].clone(), "", &["INBOX", "Notes"]);
    }
    let out = stdout_ok(arctern_with(&a.config, &["sync"]), "pull", "");
    assert!(
        out.contains("+2 ↓") && out.contains("3 already stored (linked)"),
        "{out}"
    );
    let st = a.peer.state.lock().unwrap();
    assert_eq!(st.bodies_sent, 2);
    assert!(st.commands.iter().any(|c| c.contains("EMAILID")));
    let all = inodes(&local(&a.maildir, ALL_MAIL));
    assert!(inodes(&a.maildir).is_subset(&all));
    assert!(inodes(&local(&a.maildir, "Notes")).is_subset(&all));
    assert_eq!(bodies(&local(&a.maildir, "Notes")), lf_set(&[&m[1]]));
}
