//! POP3 maildrops: Dovecot's POP3 service (plain, STLS, implicit TLS) and a scripted server for
//! what Dovecot will not do on request. Keep and delete modes, delete_after_days with a
//! controlled clock, kill -9 and dropped connections, bad servers and bad messages.

use crate::support::fakepop::{FakePop, Script};
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A local side with a config holding one POP3 account called `old`.
struct PopLocal {
    maildir: PathBuf,
    state_dir: PathBuf,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl PopLocal {
    fn new() -> PopLocal {
        let dir = tempfile::tempdir().unwrap();
        PopLocal {
            maildir: dir.path().join("Mail"),
            state_dir: dir.path().join("state"),
            config: dir.path().join("config.toml"),
            _dir: dir,
        }
    }

    fn configure(&self, account_extra: &str, pop3: &str) {
        self.configure_as("bob", account_extra, pop3);
    }

    fn configure_as(&self, user: &str, account_extra: &str, pop3: &str) {
        std::fs::write(
            &self.config,
            format!(
                "state_dir = \"{}\"\n[accounts.old]\nmaildir = \"{}\"\n{account_extra}\n[accounts.old.pop3]\nhost = \"127.0.0.1\"\nuser = \"{user}\"\npassword = \"secret\"\ntimeout_seconds = 20\n{pop3}\n",
                self.state_dir.display(),
                self.maildir.display()
            ),
        )
        .unwrap();
    }

    fn run(&self, args: &[&str], now: Option<i64>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_arctern"));
        cmd.arg("-c").arg(&self.config).args(args);
        if let Some(t) = now {
            cmd.env("ARCTERN_NOW", t.to_string());
        }
        cmd.output().unwrap()
    }

    fn pull_ok(&self, now: Option<i64>) -> String {
        let out = self.run(&["sync"], now);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "pull failed ({:?}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Bodies in INBOX (new/ and cur/), sorted; duplicates kept so they show.
    fn bodies(&self) -> Vec<Vec<u8>> {
        bodies_in(&self.maildir)
    }
}

fn bodies_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for e in entries {
                out.push(std::fs::read(e.unwrap().path()).unwrap());
            }
        }
    }
    out.sort();
    out
}

fn server_count(d: &Dovecot, user: &str) -> usize {
    let out = d.doveadm(&["mailbox", "status", "-u", user, "messages", "INBOX"]);
    out.split("messages=")
        .nth(1)
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("doveadm said {out:?}"))
}

fn pop_message(i: usize, size: usize) -> Vec<u8> {
    // Lines starting with "." exercise byte-stuffing on the way.
    let mut m = message(i, "pop", size);
    m.extend_from_slice(b".leading dot line\r\n..two dots\r\n");
    m
}

fn expected(range: std::ops::Range<usize>, size: usize) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = range.map(|i| to_lf(&pop_message(i, size))).collect();
    v.sort();
    v
}

#[test]
fn pop3_keep_mode_pulls_everything_once_then_only_new_mail() {
    let d = Dovecot::start("");
    d.add_user("bob");
    d.deliver_files("bob", 2000, |i| pop_message(i, 1500 + (i % 7) * 300));
    let local = PopLocal::new();
    local.configure("", &format!("port = {}\ntls = \"none\"", d.pop3_port));
    let out = local.pull_ok(None);
    assert!(
        out.contains("old: +2000 ↓ (POP3) deleted 0 on server, 2000 kept"),
        "{out}"
    );
    let mut want: Vec<Vec<u8>> = (0..2000)
        .map(|i| to_lf(&pop_message(i, 1500 + (i % 7) * 300)))
        .collect();
    want.sort();
    assert_eq!(
        local.bodies(),
        want,
        "bytes differ from what the server holds"
    );
    assert_eq!(server_count(&d, "bob"), 2000, "keep mode deleted mail");
    // Messages land in new/ (unread), as a delivery agent would put them.
    assert_eq!(
        std::fs::read_dir(local.maildir.join("new"))
            .unwrap()
            .count(),
        2000
    );

    let out = local.pull_ok(None);
    assert!(
        out.contains("old: +0 ↓"),
        "second pull downloaded again: {out}"
    );
    d.deliver_files("bob", 3, |i| pop_message(5000 + i, 800));
    let out = local.pull_ok(None);
    assert!(out.contains("old: +3 ↓"), "{out}");
    assert_eq!(local.bodies().len(), 2003);

    let status = local.run(&["status"], None);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("2003 message(s) pulled, 2003 still kept on the server"),
        "{text}"
    );
    let json = local.run(&["status", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["kind"], "pop3");
    assert_eq!(v[0]["local_messages"], 2003);
}

#[test]
fn pop3_delete_mode_and_delete_after_days() {
    let d = Dovecot::start("");
    d.add_user("bob");
    d.add_user("carol"); // now: Dovecot may miss a passwd-file change within the same second
    d.deliver_files("bob", 50, |i| pop_message(i, 900));
    // Delete mode: everything downloaded safely, then gone from the server.
    let local = PopLocal::new();
    local.configure(
        "",
        &format!(
            "port = {}\ntls = \"none\"\nkeep_on_server = false",
            d.pop3_port
        ),
    );
    let out = local.pull_ok(None);
    assert!(out.contains("+50 ↓ (POP3) deleted 50 on server"), "{out}");
    assert_eq!(server_count(&d, "bob"), 0);
    assert_eq!(local.bodies(), expected(0..50, 900));

    // delete_after_days, on a controlled clock, counted from when a message was first seen.
    d.deliver_files("carol", 10, |i| pop_message(100 + i, 700));
    let aged = PopLocal::new();
    aged.configure_as(
        "carol",
        "folder = \"Archive/pop\"",
        &format!(
            "port = {}\ntls = \"none\"\ndelete_after_days = 30",
            d.pop3_port
        ),
    );
    let t0: i64 = 1_800_000_000;
    let day = 86_400;
    let out = aged.pull_ok(Some(t0));
    assert!(out.contains("+10 ↓ (POP3) deleted 0 on server"), "{out}");
    d.deliver_files("carol", 2, |i| pop_message(200 + i, 700));
    let out = aged.pull_ok(Some(t0 + 20 * day));
    assert!(out.contains("+2 ↓ (POP3) deleted 0 on server"), "{out}");
    let out = aged.pull_ok(Some(t0 + 31 * day));
    assert!(
        out.contains("+0 ↓ (POP3) deleted 10 on server, 2 kept"),
        "{out}"
    );
    assert_eq!(server_count(&d, "carol"), 2);
    let out = aged.pull_ok(Some(t0 + 51 * day));
    assert!(out.contains("deleted 2 on server, 0 kept"), "{out}");
    assert_eq!(server_count(&d, "carol"), 0);
    // The folder option: Maildir++ subfolder, readable as such.
    let dir = aged.maildir.join(".Archive.pop");
    assert!(dir.join("maildirfolder").exists());
    let mut want = expected(100..110, 700);
    want.extend(expected(200..202, 700));
    want.sort();
    assert_eq!(bodies_in(&dir), want);
}

#[test]
fn pop3_over_implicit_tls_and_stls_verified() {
    let d = Dovecot::start("");
    d.add_user("bob");
    d.deliver_files("bob", 5, |i| pop_message(i, 500));
    let ca = d.ca_file.display().to_string();
    for (port, tls) in [(d.pop3s_port, "implicit"), (d.pop3_port, "starttls")] {
        let local = PopLocal::new();
        local.configure(
            "",
            &format!("port = {port}\ntls = \"{tls}\"\nca_file = \"{ca}\""),
        );
        let check = local.run(&["check"], None);
        assert!(
            check.status.success(),
            "{tls}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let text = String::from_utf8_lossy(&check.stdout);
        assert!(
            text.contains("certificate verified") && text.contains("UIDL"),
            "{text}"
        );
        let out = local.pull_ok(None);
        assert!(out.contains("+5 ↓"), "{tls}: {out}");
        // Without the test CA the certificate is not trusted: exit 4, nothing downloaded.
        let untrusting = PopLocal::new();
        untrusting.configure("", &format!("port = {port}\ntls = \"{tls}\""));
        let out = untrusting.run(&["sync"], None);
        assert_eq!(
            out.status.code(),
            Some(4),
            "{tls}: untrusted certificate accepted"
        );
        assert!(untrusting.bodies().is_empty());
    }
}

#[test]
fn pop3_kill_9_mid_pull_loses_and_duplicates_nothing() {
    let d = Dovecot::start("");
    d.add_user("bob");
    d.deliver_files("bob", 2000, |i| pop_message(i, 2500));
    let local = PopLocal::new();
    local.configure(
        "",
        &format!(
            "port = {}\ntls = \"none\"\nkeep_on_server = false",
            d.pop3_port
        ),
    );
    let mut kills = 0;
    for threshold in [300usize, 900, 1500] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_arctern"))
            .arg("-c")
            .arg(&local.config)
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
            let n = std::fs::read_dir(local.maildir.join("new")).map_or(0, |r| r.count());
            if n >= threshold {
                child.kill().unwrap(); // SIGKILL: the session ends without QUIT
                kills += 1;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "pull neither progressed nor finished"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = child.wait();
    }
    assert!(kills >= 1, "no run was killed mid-way");
    local.pull_ok(None);
    assert_eq!(
        local.bodies(),
        expected(0..2000, 2500),
        "lost or duplicated mail"
    );
    assert_eq!(server_count(&d, "bob"), 0, "stored mail left on the server");
    let out = local.pull_ok(None);
    assert!(out.contains("+0 ↓ (POP3) deleted 0"), "{out}");
}

#[test]
fn pop3_dropped_connection_deletes_nothing_and_resumes() {
    let fake = FakePop::start(Script {
        uidl: true,
        drop_in_retr: Some(3),
        ..Default::default()
    });
    for i in 0..5 {
        fake.add(&format!("u{i}"), &pop_message(i, 400));
    }
    let local = PopLocal::new();
    local.configure(
        "",
        &format!(
            "port = {}\ntls = \"none\"\nkeep_on_server = false",
            fake.port
        ),
    );
    let out = local.run(&["sync"], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a dropped connection is a partial failure"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("old: INBOX: error:") && err.contains("RETR 3"),
        "{err}"
    );
    assert_eq!(fake.count(), 5, "deleted without QUIT");
    fake.script.lock().unwrap().drop_in_retr = None;
    let out = local.pull_ok(None);
    assert!(out.contains("+5 ↓ (POP3) deleted 5 on server"), "{out}");
    assert_eq!(local.bodies(), expected(0..5, 400));
    assert_eq!(fake.count(), 0);
}

#[test]
fn pop3_without_uidl_needs_header_hash_and_bad_listing_is_an_error() {
    let fake = FakePop::start(Script::default());
    fake.add("x", &pop_message(1, 300));
    // Broken headers: stored exactly as received.
    let broken = b"This is not a header\r\n\r\n: neither\r\n".to_vec();
    fake.add("y", &broken);
    let local = PopLocal::new();
    local.configure("", &format!("port = {}\ntls = \"none\"", fake.port));
    let out = local.run(&["sync"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not support UIDL") && err.contains("header-hash"),
        "{err}"
    );
    assert!(local.bodies().is_empty());

    local.configure(
        "",
        &format!(
            "port = {}\ntls = \"none\"\nidentify_by = \"header-hash\"",
            fake.port
        ),
    );
    let out = local.pull_ok(None);
    assert!(out.contains("+2 ↓"), "{out}");
    let out = local.pull_ok(None);
    assert!(out.contains("+0 ↓"), "header hash not stable: {out}");
    let mut want = vec![to_lf(&pop_message(1, 300)), to_lf(&broken)];
    want.sort();
    assert_eq!(local.bodies(), want);

    // A malformed UIDL line: an error naming the account and the line; nothing downloaded.
    let bad = FakePop::start(Script {
        uidl: true,
        bad_uidl_line: Some("7 ../../etc/passwd bad".into()),
        ..Default::default()
    });
    bad.add("z", &pop_message(2, 300));
    let local = PopLocal::new();
    local.configure("", &format!("port = {}\ntls = \"none\"", bad.port));
    let out = local.run(&["sync"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("old:") && err.contains("malformed UIDL line"),
        "{err}"
    );
    assert!(local.bodies().is_empty());
}

#[test]
fn pop3_login_delay_and_expire_are_respected_and_reported() {
    let fake = FakePop::start(Script {
        uidl: true,
        login_delay: Some(900),
        expire: Some("0".into()),
        ..Default::default()
    });
    fake.add("a", &pop_message(1, 300));
    let local = PopLocal::new();
    local.configure("", &format!("port = {}\ntls = \"none\"", fake.port));
    let t0 = 1_800_000_000i64;
    let out = local.pull_ok(Some(t0));
    assert!(
        out.contains("LOGIN-DELAY") && out.contains("EXPIRE 0"),
        "{out}"
    );
    assert!(out.contains("+1 ↓"), "{out}");
    let logins = |f: &FakePop| {
        f.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("USER"))
            .count()
    };
    assert_eq!(logins(&fake), 1);
    // Too soon: skipped without logging in.
    let out = local.pull_ok(Some(t0 + 100));
    assert!(out.contains("next pull possible in 800 s"), "{out}");
    assert_eq!(logins(&fake), 1, "logged in despite LOGIN-DELAY");
    fake.add("b", &pop_message(2, 300));
    let out = local.pull_ok(Some(t0 + 901));
    assert!(out.contains("+1 ↓"), "{out}");
    // Said once, not on every run (cron would mail it each time).
    assert!(!out.contains("runs sooner than that are skipped"), "{out}");
    assert_eq!(logins(&fake), 2);
    let mut want = vec![to_lf(&pop_message(1, 300)), to_lf(&pop_message(2, 300))];
    want.sort();
    assert_eq!(local.bodies(), want);
}

#[test]
fn pop3_every_login_method_works_against_dovecot() {
    // A later auth_mechanisms line overrides the default one.
    let d = Dovecot::start("auth_mechanisms = plain login apop\nauth_failure_delay = 0");
    d.add_user("bob");
    d.deliver_files("bob", 3, |i| pop_message(i, 300));
    for auth in ["auto", "user", "plain", "apop"] {
        let local = PopLocal::new();
        local.configure(
            "",
            &format!("port = {}\ntls = \"none\"\nauth = \"{auth}\"", d.pop3_port),
        );
        let out = local.run(&["-vv", "sync"], None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{auth}: {stderr}\n{}", d.log());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("+3 ↓"),
            "{auth}"
        );
        assert!(
            !stderr.contains("secret"),
            "{auth}: password in the log: {stderr}"
        );
        // A wrong password: exit 4, the login named, nothing stored.
        let text = std::fs::read_to_string(&local.config).unwrap();
        std::fs::write(&local.config, text.replace("\"secret\"", "\"wrong\"")).unwrap();
        let out = local.run(&["sync"], None);
        assert_eq!(out.status.code(), Some(4), "{auth}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("login as bob refused"),
            "{auth}"
        );
    }
}
