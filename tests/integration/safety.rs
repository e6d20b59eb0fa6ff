//! No loss, no duplicates: kill -9 mid-sync, UIDVALIDITY resets, servers without UIDPLUS, the
//! mass-deletion guard, a missing Maildir, and the account lock.

use crate::support::*;
use std::time::{Duration, Instant};

fn count_local(dir: &std::path::Path) -> usize {
    local_files(dir).len()
}

#[test]
fn kill_9_during_sync_then_resync_loses_and_duplicates_nothing() {
    let w = World::new("", "");
    let mut c = w.client();
    for i in 0..1500 {
        c.append(
            "INBOX",
            &message(i, "INBOX", 2000),
            if i % 3 == 0 { "\\Seen" } else { "" },
        );
    }
    // Local messages waiting for upload too, so the kill can land in either direction.
    make_maildir(&w.maildir);
    for i in 0..300 {
        write_local(
            &w.maildir,
            &format!("1700000000.up{i}.host"),
            &message(50_000 + i, "INBOX", 1500),
            "S",
        );
    }
    // Kill at increasing points of progress until a run completes on its own.
    let mut kills = 0;
    for threshold in [400usize, 900, 1400, 1700] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_arctern"))
            .arg("-c")
            .arg(&w.config)
            .arg("sync")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if count_local(&w.maildir) >= threshold {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sync neither progressed nor finished"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.wait();
    }
    assert!(kills >= 1, "no run was killed mid-way");
    w.sync_ok();
    let server = c.messages("INBOX");
    assert_eq!(server.len(), 1800, "server: duplicates or losses");
    assert_eq!(count_local(&w.maildir), 1800, "local: duplicates or losses");
    assert_same(&mut c, "INBOX", &w.maildir);
    let out = w.sync_ok();
    assert!(
        out.contains("+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑"),
        "{out}"
    );
}

#[test]
fn uidvalidity_reset_repairs_without_duplicates_or_downloads() {
    let w = World::new("", "");
    let mut c = w.client();
    c.create("Archive");
    for i in 0..20 {
        c.append("Archive", &message(i, "Archive", 300), "\\Seen");
    }
    w.sync_ok();
    let dir = w.local_dir("Archive");
    let before = local_files(&dir);
    let old = c.uidvalidity("Archive");
    // Recreate the folder with the same mail (new UIDVALIDITY), minus one, plus one.
    let msgs = c.messages("Archive");
    c.delete("Archive");
    // Dovecot drops a client whose selected mailbox was deleted: reconnect.
    let mut c = w.client();
    c.create("Archive");
    for m in msgs.iter().skip(1) {
        c.append("Archive", &m.body, "\\Seen");
    }
    c.append("Archive", &message(999, "Archive", 300), "");
    assert_ne!(c.uidvalidity("Archive"), old);
    let out = w.sync_ok();
    assert!(out.contains("UIDVALIDITY changed"), "{out}");
    assert!(out.contains("re-paired 19"), "{out}");
    // The one local message with no server match is uploaded again, not lost; the new server
    // message is downloaded; the 19 others are neither.
    assert!(out.contains("+1 ↓ +1 ↑"), "{out}");
    assert_same(&mut c, "Archive", &dir);
    let after = local_files(&dir);
    for f in &before {
        assert!(after.contains(f), "{} was rewritten", f.display());
    }
    assert!(w.sync_ok().contains("+0 ↓ +0 ↑"));
}

#[test]
fn works_without_uidplus() {
    let w = World::new(
        "protocol imap {\n  imap_capability = IMAP4rev1 LITERAL+ IDLE NAMESPACE\n}\n",
        "",
    );
    let cap = w.arctern(&["check"]);
    let text = String::from_utf8_lossy(&cap.stdout);
    assert!(cap.status.success(), "{text}");
    assert!(!text.contains("UIDPLUS"), "{text}");
    let mut c = w.client();
    c.append("INBOX", &message(1, "INBOX", 100), "");
    w.sync_ok();
    for i in 0..5 {
        write_local(
            &w.maildir,
            &format!("1700000000.n{i}.host"),
            &message(100 + i, "INBOX", 100),
            "S",
        );
    }
    let out = w.sync_ok();
    assert!(out.contains("+5 ↑"), "{out}");
    assert_same(&mut c, "INBOX", &w.maildir);
    // Deleting locally expunges on the server with plain EXPUNGE.
    let f = local_files(&w.maildir);
    std::fs::remove_file(&f[0]).unwrap();
    w.sync_ok();
    assert_same(&mut c, "INBOX", &w.maildir);
    assert!(
        w.sync_ok()
            .contains("+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑")
    );
}

#[test]
fn mass_deletion_guard_missing_maildir_and_lock() {
    let w = World::new("", "");
    let mut c = w.client();
    for i in 0..10 {
        c.append("INBOX", &message(i, "INBOX", 100), "");
    }
    w.sync_ok();
    // 6 of 10 deleted locally: refused, server untouched.
    for f in local_files(&w.maildir).iter().take(6) {
        std::fs::remove_file(f).unwrap();
    }
    let out = w.arctern(&["sync"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("would delete 6 of 10"), "{err}");
    assert_eq!(c.messages("INBOX").len(), 10);
    let out = w.arctern(&["sync", "--force"]);
    assert!(out.status.success());
    assert_eq!(c.messages("INBOX").len(), 4);

    // A vanished Maildir root is an error, never "delete everything on the server".
    let moved = w.maildir.with_extension("moved");
    std::fs::rename(&w.maildir, &moved).unwrap();
    let out = w.arctern(&["sync", "--force"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // (The failure is printed once, on stderr: stdout carries summaries only, so a cron job
    // with `>/dev/null` mails exactly the failures.)
    assert!(String::from_utf8_lossy(&out.stderr).contains("not readable"));
    assert_eq!(c.messages("INBOX").len(), 4);
    std::fs::rename(&moved, &w.maildir).unwrap();

    // One process per account.
    let _held = arctern::engine::lock::acquire(&w.state_dir, "test").unwrap();
    let out = w.arctern(&["sync"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another arctern process"));
}
