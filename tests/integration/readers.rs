//! The Maildir as mail readers leave it: mutt and neomutt keep unread mail in `new/` and flag it
//! there (`new/<key>:2,F`); such flags must reach the server like any other local change.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Server flags of INBOX by Message-ID number (the `n` of [`message`]).
fn server_flags(w: &World) -> Vec<(usize, Vec<String>)> {
    let mut c = w.client();
    let mut out: Vec<(usize, Vec<String>)> = c
        .messages("INBOX")
        .into_iter()
        .map(|m| {
            let text = String::from_utf8_lossy(&m.body).to_string();
            let n = text
                .split("Message-ID: <")
                .nth(1)
                .and_then(|r| r.split('.').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let mut flags: Vec<String> = m
                .flags
                .into_iter()
                .filter(|f| f.starts_with('\\'))
                .collect();
            flags.sort();
            (n, flags)
        })
        .collect();
    out.sort();
    out
}

/// The file of message `n` in a Maildir folder.
fn file_of(dir: &Path, n: usize) -> PathBuf {
    local_files(dir)
        .into_iter()
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .contains(&format!("Message-ID: <{n}."))
        })
        .unwrap_or_else(|| panic!("message {n} not in {}", dir.display()))
}

#[test]
fn flags_on_unread_mail_in_new_reach_the_server() {
    let w = World::new("", "");
    let mut c = w.client();
    for n in 1..=6 {
        let flags = if n <= 2 { "\\Seen" } else { "" };
        c.append("INBOX", &message(n, "INBOX", 300), flags);
    }
    w.sync_ok();
    let inbox = w.local_dir("INBOX");
    // Exactly what neomutt does to an unread message it flags: a rename inside new/.
    for n in [3, 4] {
        let from = file_of(&inbox, n);
        assert_eq!(from.parent().unwrap().file_name().unwrap(), "new");
        let to = from.with_file_name(format!(
            "{}:2,F",
            from.file_name().unwrap().to_string_lossy()
        ));
        std::fs::rename(&from, &to).unwrap();
    }
    let status = w.arctern(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("2 flags ↑"),
        "status must show the two flags:\n{text}"
    );

    let out = w.sync_ok();
    assert!(out.contains("flags 0 ↓ 2 ↑"), "{out}");
    let flags = server_flags(&w);
    assert_eq!(flags[2], (3, vec!["\\Flagged".to_string()]));
    assert_eq!(flags[3], (4, vec!["\\Flagged".to_string()]));
    assert_eq!(flags[4], (5, vec![]));
    // The file stays where the reader put it and a second sync changes nothing.
    assert!(file_of(&inbox, 3).to_string_lossy().contains("/new/"));
    let again = w.sync_ok();
    assert!(again.contains("flags 0 ↓ 0 ↑"), "{again}");

    // Unflagged in place again (the reader's toggle): the server follows.
    let from = file_of(&inbox, 4);
    let to = from.with_file_name(
        from.file_name()
            .unwrap()
            .to_string_lossy()
            .replace(":2,F", ":2,"),
    );
    std::fs::rename(&from, &to).unwrap();
    w.sync_ok();
    assert_eq!(server_flags(&w)[3], (4, vec![]));
}

/// A tmux session running neomutt on one Maildir folder, killed by name when dropped.
struct Neomutt {
    session: String,
}

impl Neomutt {
    fn start(folder: &Path, home: &Path) -> Neomutt {
        let session = format!("arctern-neomutt-{}", std::process::id());
        let rc = home.join("neomuttrc");
        std::fs::write(
            &rc,
            format!("set folder={}\n", folder.display())
                + "set mbox_type=Maildir\nset mark_old=no\nset move=no\nset wait_key=no\n\
             set confirmappend=no\nset delete=yes\nset quit=yes\nset sort=date-sent\n\
             set maildir_header_cache_verify=no\nset header_cache=\"\"\nset sleep_time=0\n",
        )
        .unwrap();
        let cmd = format!(
            "HOME={0} TERM=xterm neomutt -n -F {1} -f {2}",
            home.display(),
            rc.display(),
            folder.display(),
        );
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                "160",
                "-y",
                "40",
                &cmd,
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux could not start neomutt");
        let n = Neomutt { session };
        assert!(folder.join("cur").is_dir(), "{}", folder.display());
        n.wait_for("message 1 in INBOX");
        n
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "neomutt never showed {text:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types keys (tmux key names) one call at a time.
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let ok = Command::new("tmux")
                .args(["send-keys", "-t", &self.session, k])
                .status()
                .unwrap()
                .success();
            assert!(ok);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Neomutt {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

/// The issue's own reproduction, with the real mail reader: in neomutt, toggle two messages'
/// read state, delete three, flag the unread ones; then `arctern sync` must bring every change
/// to the server.
#[test]
fn neomutt_changes_on_a_synced_maildir_all_reach_the_server() {
    if Command::new("neomutt").arg("-v").output().is_err()
        || Command::new("tmux").arg("-V").output().is_err()
    {
        panic!("neomutt and tmux are needed (contrib/install-deps.sh installs them)");
    }
    let w = World::new("", "");
    let mut c = w.client();
    // 1-4 read, 5-10 unread; Date headers are equal, so neomutt sorts by arrival (UID) order.
    for n in 1..=10 {
        let flags = if n <= 4 { "\\Seen" } else { "" };
        c.append("INBOX", &message(n, "INBOX", 300), flags);
    }
    w.sync_ok();
    let home = tempfile::tempdir().unwrap();
    let inbox = w.local_dir("INBOX");
    {
        let mutt = Neomutt::start(&inbox, home.path());
        // Every message line shows its subject; walk them with the search command so each
        // key acts on the message we mean, whatever neomutt's sort order.
        let goto = |n: usize| {
            mutt.keys(&["/", &format!("~s 'message {n} in'"), "Enter"]);
        };
        // Toggle read state: 1 becomes unread, 5 becomes read.
        goto(1);
        mutt.keys(&["N"]);
        goto(5);
        mutt.keys(&["N"]);
        // Delete three.
        for n in [2, 6, 7] {
            goto(n);
            mutt.keys(&["d"]);
        }
        // Flag the (still) unread ones 8, 9 and 10.
        for n in [8, 9, 10] {
            goto(n);
            mutt.keys(&["F"]);
        }
        // Write the changes and quit.
        mutt.keys(&["$"]);
        mutt.keys(&["q"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Command::new("tmux")
            .args(["has-session", "-t", &mutt.session])
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
        {
            assert!(
                Instant::now() < deadline,
                "neomutt did not quit:\n{}",
                mutt.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // What neomutt left: the flagged unread messages stay in new/ with an info suffix.
    let names: Vec<String> = local_files(&inbox)
        .iter()
        .map(|p| p.to_string_lossy().to_string())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.contains("/new/") && n.ends_with(":2,F")),
        "neomutt should have flagged unread mail in new/: {names:#?}"
    );
    w.sync_ok();
    let flags = server_flags(&w);
    let expected: Vec<(usize, Vec<String>)> = [
        (1, vec![]),
        (3, vec!["\\Seen"]),
        (4, vec!["\\Seen"]),
        (5, vec!["\\Seen"]),
        (8, vec!["\\Flagged"]),
        (9, vec!["\\Flagged"]),
        (10, vec!["\\Flagged"]),
    ]
    .into_iter()
    .map(|(n, f)| (n, f.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        flags, expected,
        "server after neomutt's changes and one sync"
    );
    assert_same(&mut w.client(), "INBOX", &inbox);
}
