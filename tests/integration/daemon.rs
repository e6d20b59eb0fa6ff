//! `arctern daemon` against the test Dovecot, with short timeouts: new server mail arrives
//! locally within seconds (IDLE), a local flag change reaches the server (inotify), a server
//! restart is survived, SIGHUP picks up a new account, SIGTERM leaves a state with nothing left
//! to do, a second daemon refuses to start, and the metrics file and `status` tell the story.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(w: &World) -> Daemon {
        let log = w.state_dir.with_file_name("daemon.log");
        let child = Command::new(env!("CARGO_BIN_EXE_arctern"))
            .arg("-c")
            .arg(&w.config)
            .arg("daemon")
            .env("ARCTERN_DEBOUNCE_MS", "200")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon { child, log };
        d.wait_for_log("test: +", Duration::from_secs(20));
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&self, needle: &str, limit: Duration) {
        let log = || self.log();
        wait_until(
            limit,
            || log().contains(needle),
            || format!("daemon log never said {needle:?}:\n{}", log()),
        );
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// SIGTERM, then the exit status within `limit`.
    fn stop(mut self, limit: Duration) -> i32 {
        self.signal("TERM");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not stop within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool, why: impl Fn() -> String) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{}", why());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Local files of a Maildir folder whose content contains `needle`.
fn local_with(dir: &Path, needle: &str) -> Vec<PathBuf> {
    local_files(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

fn mail(subject: &str) -> Vec<u8> {
    format!(
        "From: a@example.org\r\nTo: alice@example.org\r\nSubject: {subject}\r\nMessage-ID: <{subject}@daemon.test>\r\n\r\nbody of {subject}\r\n"
    )
    .into_bytes()
}

#[test]
fn daemon_mirrors_both_ways_within_seconds_and_stops_cleanly() {
    let w = World::new("", "interval = \"1h\"");
    let metrics = w.state_dir.with_file_name("arctern.prom");
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        format!("metrics_file = \"{}\"\n{text}", metrics.display()),
    )
    .unwrap();
    let mut c = w.client();
    c.append("INBOX", &mail("before-start"), "");
    let d = Daemon::start(&w);
    assert_eq!(local_with(&w.maildir, "before-start").len(), 1);

    // New server mail: IDLE reports it, the sync follows (the interval is an hour away).
    c.append("INBOX", &mail("while-running"), "");
    wait_until(
        Duration::from_secs(10),
        || local_with(&w.maildir, "while-running").len() == 1,
        || format!("new server mail did not arrive locally:\n{}", d.log()),
    );

    // A local flag change: the Maildir watch reports it, the sync takes it to the server.
    let file = local_with(&w.maildir, "before-start").pop().unwrap();
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let base = name.split(":2,").next().unwrap().to_string();
    std::fs::rename(&file, w.maildir.join("cur").join(format!("{base}:2,FS"))).unwrap();
    wait_until(
        Duration::from_secs(10),
        || {
            c.messages("INBOX").iter().any(|m| {
                String::from_utf8_lossy(&m.body).contains("before-start")
                    && m.flags.contains("\\Flagged")
            })
        },
        || format!("the local flag did not reach the server:\n{}", d.log()),
    );

    // With IDLE long established: more server mail, reported by IDLE alone.
    c.append("INBOX", &mail("much-later"), "");
    wait_until(
        Duration::from_secs(10),
        || local_with(&w.maildir, "much-later").len() == 1,
        || format!("IDLE did not bring the later mail:\n{}", d.log()),
    );

    // A second daemon on the same state refuses to start.
    let second = w.arctern(&["daemon"]);
    assert_eq!(second.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another arctern daemon"));

    // Observability: the metrics file and status. The metrics are the run pipeline's last step
    // (after the mail, the history and the index): wait for the run that brought the third
    // message to have written them, instead of reading them as soon as the mail is there.
    let down_3 =
        "arctern_messages_synced_total{account=\"test\",kind=\"imap\",direction=\"down\"} 3";
    wait_until(
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&metrics)
                .unwrap_or_default()
                .contains(down_3)
        },
        || {
            format!(
                "the metrics never counted 3 messages down:\n{}\n{}",
                std::fs::read_to_string(&metrics).unwrap_or_default(),
                d.log()
            )
        },
    );
    let m = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        m.contains("arctern_runs_total{account=\"test\",kind=\"imap\"}"),
        "{m}"
    );
    assert!(
        m.contains(
            "arctern_messages_synced_total{account=\"test\",kind=\"imap\",direction=\"down\"} 3"
        ),
        "{m}"
    );
    assert!(
        m.contains("arctern_last_success_timestamp_seconds{account=\"test\""),
        "{m}"
    );
    let status = String::from_utf8_lossy(&w.arctern(&["status"]).stdout).to_string();
    assert!(status.contains("last success"), "{status}");

    // SIGTERM: a clean exit, and nothing left for the next sync.
    assert_eq!(d.stop(Duration::from_secs(8)), 0);
    let out = w.sync_ok();
    assert!(
        out.contains("+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑"),
        "the daemon left work behind: {out}"
    );
}

#[test]
fn daemon_survives_a_server_restart_and_reloads_its_config_on_sighup() {
    let mut w = World::new("", "interval = \"1h\"");
    w.dovecot.add_user("bob");
    let d = Daemon::start(&w);

    // The server goes away for a while and comes back: the daemon reconnects by itself.
    w.dovecot.restart(Duration::from_secs(2));
    let mut c = w.client();
    c.append("INBOX", &mail("after-restart"), "");
    wait_until(
        Duration::from_secs(30),
        || local_with(&w.maildir, "after-restart").len() == 1,
        || format!("mail after the restart did not arrive:\n{}", d.log()),
    );

    // SIGHUP with a second account in the config: it starts syncing.
    let bob_dir = w.state_dir.with_file_name("BobMail");
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        format!(
            "{text}\n[accounts.bob]\nmaildir = \"{}\"\ninterval = \"1h\"\n[accounts.bob.imap]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"bob\"\npassword = \"secret\"\n",
            bob_dir.display(),
            w.dovecot.imap_port
        ),
    )
    .unwrap();
    // And an account whose password is wrong: it is paused with a clear line, the others go on.
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        format!(
            "{text}\n[accounts.broken]\nmaildir = \"{}\"\n[accounts.broken.imap]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"bob\"\npassword = \"wrong-pw-4711\"\n",
            w.state_dir.with_file_name("BrokenMail").display(),
            w.dovecot.imap_port
        ),
    )
    .unwrap();
    let mut bob = Client::connect(w.dovecot.imap_port, "bob");
    bob.append("INBOX", &mail("for-bob"), "");
    d.signal("HUP");
    wait_until(
        Duration::from_secs(15),
        || local_with(&bob_dir, "for-bob").len() == 1,
        || format!("the account added by SIGHUP did not sync:\n{}", d.log()),
    );
    assert!(d.log().contains("configuration reloaded"), "{}", d.log());
    d.wait_for_log("account paused for 60 min", Duration::from_secs(10));
    let log = d.log();
    assert_eq!(log.matches("account paused").count(), 1, "{log}");
    assert!(
        !log.contains("wrong-pw-4711"),
        "a password reached the log:\n{log}"
    );
    // And its IDLE works too.
    bob.append("INBOX", &mail("for-bob-later"), "");
    wait_until(
        Duration::from_secs(10),
        || local_with(&bob_dir, "for-bob-later").len() == 1,
        || format!("IDLE of the new account did not work:\n{}", d.log()),
    );
    assert_eq!(d.stop(Duration::from_secs(8)), 0);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let w = World::new("", "");
    w.client().append("INBOX", &mail("json-log"), "");
    let out = w.arctern(&["--log-format", "json", "-vv", "sync"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 3, "{stderr}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{line}"
        );
    }
}

/// A `password_command` that fails while an IDLE watcher reconnects (a keyring locked after a
/// suspend, say) is retried with backoff like any other transient failure: once it works again
/// the watcher is back, and server mail arrives through IDLE alone (the interval is an hour).
#[test]
fn idle_watcher_survives_a_failing_password_command() {
    let mut w = World::new("", "interval = \"1h\"");
    let flag = w.state_dir.with_file_name("password-ok");
    std::fs::write(&flag, "").unwrap();
    let text = std::fs::read_to_string(&w.config).unwrap().replace(
        "password = \"secret\"",
        &format!(
            "password_command = \"test -f {} && echo secret\"",
            flag.display()
        ),
    );
    std::fs::write(&w.config, text).unwrap();
    let d = Daemon::start(&w);
    // IDLE is established: mail arrives with no sync due.
    let mut c = w.client();
    c.append("INBOX", &mail("idle-works"), "");
    wait_until(
        Duration::from_secs(10),
        || local_with(&w.maildir, "idle-works").len() == 1,
        || format!("IDLE did not work to begin with:\n{}", d.log()),
    );

    // The helper starts failing, and the server drops every connection.
    std::fs::remove_file(&flag).unwrap();
    w.dovecot.restart(Duration::from_millis(500));
    d.wait_for_log("IDLE connection failed", Duration::from_secs(20));
    assert!(
        !d.log().contains("IDLE watcher stopped"),
        "the watcher gave up:\n{}",
        d.log()
    );
    // The helper works again: the watcher reconnects by itself and IDLE brings new mail.
    std::fs::write(&flag, "").unwrap();
    let mut c = w.client();
    c.append("INBOX", &mail("after-helper-failed"), "");
    wait_until(
        Duration::from_secs(30),
        || local_with(&w.maildir, "after-helper-failed").len() == 1,
        || format!("the IDLE watcher did not come back:\n{}", d.log()),
    );
    assert_eq!(d.stop(Duration::from_secs(8)), 0);
}

/// Under systemd the journal is all a user sees: a folder that fails names itself and why in
/// the daemon's log, not only as "(1 folder(s) failed)".
#[test]
fn daemon_log_names_each_failed_folder_and_why() {
    let w = World::new("", "interval = \"1h\"");
    let mut c = w.client();
    for n in 0..10 {
        c.append("INBOX", &mail(&format!("guard-{n}")), "\\Seen");
    }
    let d = Daemon::start(&w);
    // Six of ten deleted locally: the mass-deletion guard refuses the folder.
    for f in local_files(&w.maildir).into_iter().take(6) {
        std::fs::remove_file(f).unwrap();
    }
    d.wait_for_log("would delete 6 of 10", Duration::from_secs(15));
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("would delete 6 of 10"))
        .unwrap_or_default();
    assert!(
        line.contains("INBOX"),
        "the line does not name the folder: {line}"
    );
    assert_eq!(
        c.messages("INBOX").len(),
        10,
        "the guard let deletions through"
    );
    assert_eq!(d.stop(Duration::from_secs(8)), 0);
}
