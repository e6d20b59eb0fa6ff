//! Re-sending through an SMTP target: a private Postfix on loopback delivering over LMTP into
//! the test Dovecot. Messages arrive byte for byte (after the trace headers the servers put on
//! top), a rerun sends nothing, refusals are reported by folder and file while the rest goes on,
//! a kill -9 midway gives exactly one copy of each (settled through the receiving mailbox),
//! 4xx answers are retried with backoff (scripted server), and a password never crosses a link
//! without the TLS the config asks for.

use crate::support::fakesmtp::FakeSmtp;
use crate::support::postfix::Postfix;
use crate::support::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// Writes `count` local messages in INBOX and Archive; returns the CRLF bytes of each, by
/// Message-ID.
fn seed(w: &World, count: usize) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for i in 0..count {
        let (folder, dir) = if i % 3 == 0 {
            ("Archive", w.maildir.join(".Archive"))
        } else {
            ("INBOX", w.maildir.clone())
        };
        make_maildir(&dir);
        let body = message(i, folder, 500 + (i % 7) * 300);
        write_local(&dir, &format!("1700000000.smtp{i}.host"), &body, "S");
        out.insert(format!("{i}.{folder}@test.arctern"), body);
    }
    out
}

fn add_smtp_target(w: &World, port: u16, tls: &str, extra: &str) {
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        format!(
            "{text}\n[targets.archive-inbox]\n[targets.archive-inbox.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\nca_file = \"{}\"\nenvelope_from = \"me@example.org\"\nenvelope_to = [\"dest@example.org\"]\ntimeout_seconds = 20\n{extra}\n",
            w.dovecot.ca_file.display()
        ),
    )
    .unwrap();
}

/// The receiving mailbox (user `dest`'s INBOX) as an IMAP target, for confirm_via.
fn add_mailbox_target(w: &World) {
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        format!(
            "{text}\n[targets.dest-mailbox]\n[targets.dest-mailbox.imap]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"dest\"\npassword = \"secret\"\ntimeout_seconds = 20\n",
            w.dovecot.imap_port
        ),
    )
    .unwrap();
}

fn run(w: &World, args: &[&str]) -> (i32, String, String) {
    let out = w.arctern(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The messages in dest's INBOX (CRLF bytes as stored, trace headers included).
fn delivered(w: &World) -> Vec<Vec<u8>> {
    let mut c = Client::connect(w.dovecot.imap_port, "dest");
    c.messages("INBOX").into_iter().map(|m| m.body).collect()
}

/// The delivered copy of `original`: it must end with exactly those bytes, and what comes
/// before must be only the header lines the servers add on the way.
fn arrived_unchanged(copy: &[u8], original: &[u8]) -> bool {
    if !copy.ends_with(original) {
        return false;
    }
    let trace = String::from_utf8_lossy(&copy[..copy.len() - original.len()]).to_string();
    trace.split("\r\n").filter(|l| !l.is_empty()).all(|l| {
        l.starts_with([' ', '\t'])
            || l.starts_with("Return-Path:")
            || l.starts_with("Delivered-To:")
            || l.starts_with("Received:")
    })
}

fn copies_of(all: &[Vec<u8>], original: &[u8]) -> usize {
    all.iter()
        .filter(|c| arrived_unchanged(c, original))
        .count()
}

#[test]
fn smtp_push_delivers_messages_unchanged_reports_refusals_and_reruns_send_nothing() {
    let w = World::new("", "");
    w.dovecot.add_user("dest");
    let postfix = Postfix::start(
        &w.dovecot,
        "header_checks = regexp:{etc}/header_checks\nmessage_size_limit = 400000",
        &[(
            "header_checks",
            "/^Subject: refuse me/ REJECT policy says no\n",
        )],
    );
    add_smtp_target(
        &w,
        postfix.smtp_port,
        "starttls",
        "user = \"dest\"\npassword = \"secret\"",
    );
    let mut expected = seed(&w, 120);
    // Messages that test the wire format: lines that start with a dot (one is a lone dot, which
    // would end DATA early if not stuffed), 8-bit text, no Message-ID, no final line end.
    let tricky: Vec<(&str, Vec<u8>)> = vec![
        (
            "dots",
            b"From: a@example.org\r\nSubject: dots\r\nMessage-ID: <dots@test.arctern>\r\n\r\n.\r\n..two\r\n.leading\r\nend\r\n".to_vec(),
        ),
        (
            "utf8",
            "From: a@example.org\r\nSubject: grüße\r\nMessage-ID: <utf8@test.arctern>\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n".as_bytes().to_vec(),
        ),
        (
            "noid",
            b"From: a@example.org\r\nSubject: no message id\r\n\r\nbody without id\r\n".to_vec(),
        ),
    ];
    for (name, body) in &tricky {
        write_local(&w.maildir, &format!("1700000001.{name}.host"), body, "S");
        expected.insert(name.to_string(), body.clone());
    }
    // No final line end: it arrives with one (SMTP cannot carry it otherwise).
    write_local(
        &w.maildir,
        "1700000001.noeol.host",
        b"From: a@example.org\r\nSubject: no eol\r\nMessage-ID: <noeol@test.arctern>\r\n\r\nlast line",
        "S",
    );
    expected.insert(
        "noeol".into(),
        b"From: a@example.org\r\nSubject: no eol\r\nMessage-ID: <noeol@test.arctern>\r\n\r\nlast line\r\n".to_vec(),
    );
    // The same bytes in two files: sent once.
    let dup = message(1, "INBOX", 500 + 300);
    write_local(
        &w.maildir.join(".Archive"),
        "1700000002.dup.host",
        &dup,
        "S",
    );
    // Refused by the server (5xx after DATA) and too big for its SIZE limit (refused before).
    write_local(
        &w.maildir,
        "1700000003.refused.host",
        b"From: a@example.org\r\nSubject: refuse me\r\nMessage-ID: <refused@test.arctern>\r\n\r\nno\r\n",
        "S",
    );
    write_local(
        &w.maildir.join(".Archive"),
        "1700000003.huge.host",
        &message(9999, "Archive", 500_000),
        "S",
    );

    let (code, out, err) = run(&w, &["push", "test", "--to", "archive-inbox"]);
    assert_eq!(code, 1, "two refusals make exit 1:\n{out}\n{err}");
    let n = expected.len();
    assert!(
        out.contains(&format!("+{n} sent")) && out.contains("1 duplicates of sent ones"),
        "{out}\n{err}"
    );
    assert!(
        err.contains("INBOX/1700000003.refused.host") && err.contains("policy says no"),
        "{err}"
    );
    assert!(
        err.contains("Archive/1700000003.huge.host") && err.contains("SIZE limit"),
        "{err}"
    );
    postfix.wait_until_delivered(Duration::from_secs(30));
    let all = delivered(&w);
    assert_eq!(all.len(), n, "delivered count\n{}", postfix.log());
    for (id, body) in &expected {
        assert_eq!(
            copies_of(&all, body),
            1,
            "{id} did not arrive exactly once unchanged"
        );
    }

    // A rerun sends nothing new (the refused ones are tried again and refused again).
    let (code, out, err) = run(&w, &["push", "test", "--to", "archive-inbox"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("+0 sent") && out.contains(&format!("{} pushed before", n + 1)),
        "{out}"
    );
    postfix.wait_until_delivered(Duration::from_secs(30));
    assert_eq!(delivered(&w).len(), n);

    // verify, through the receiving mailbox: everything but the two refused messages is there.
    add_mailbox_target(&w);
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        text.replace(
            "timeout_seconds = 20\nuser = \"dest\"",
            "timeout_seconds = 20\nconfirm_via = \"dest-mailbox\"\nuser = \"dest\"",
        ),
    )
    .unwrap();
    let (code, out, _) = run(&w, &["verify", "test", "--to", "archive-inbox"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("INBOX → dest-mailbox/INBOX"), "{out}");
    assert_eq!(out.matches(", 1 missing,").count(), 2, "{out}");
    assert_eq!(out.matches("0 duplicated").count(), 2, "{out}");
}

#[test]
fn smtp_push_killed_midway_then_rerun_delivers_each_message_once() {
    let w = World::new("", "");
    w.dovecot.add_user("dest");
    let postfix = Postfix::start(&w.dovecot, "", &[]);
    add_mailbox_target(&w);
    add_smtp_target(
        &w,
        postfix.smtps_port,
        "implicit",
        "user = \"dest\"\npassword = \"secret\"\nconfirm_via = \"dest-mailbox\"",
    );
    let expected = seed(&w, 400);
    let mut kills = 0;
    for delay_ms in [300u64, 700, 1200] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_arctern"))
            .arg("-c")
            .arg(&w.config)
            .args(["push", "test", "--to", "archive-inbox"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let _ = child.wait();
    }
    assert!(kills >= 1, "no push was killed mid-way");
    let (code, out, err) = run(&w, &["push", "test", "--to", "archive-inbox"]);
    assert_eq!(code, 0, "{out}\n{err}");
    postfix.wait_until_delivered(Duration::from_secs(60));
    let all = delivered(&w);
    for (id, body) in &expected {
        assert_eq!(copies_of(&all, body), 1, "{id}: not exactly one copy");
    }
    assert_eq!(all.len(), expected.len());
    let (code, out, _) = run(&w, &["verify", "test", "--to", "archive-inbox"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn smtp_temporary_failures_are_retried_with_backoff_then_recorded() {
    let w = World::new("", "");
    // First message: two 4xx answers, then accepted. Second: always 4xx (four answers = the
    // first try and three retries), recorded as failed, sent by the next run.
    let fake = FakeSmtp::start(&[
        "451 4.3.0 try again",
        "421 4.7.0 slow down",
        "250 ok",
        "452 4.3.1 full",
        "452 4.3.1 full",
        "452 4.3.1 full",
        "452 4.3.1 full",
    ]);
    add_smtp_target(
        &w,
        fake.port,
        "none",
        "max_retries = 3\nretry_initial_seconds = 0.05",
    );
    make_maildir(&w.maildir);
    let one = message(1, "INBOX", 400);
    let two = message(2, "INBOX", 400);
    write_local(&w.maildir, "1700000001.a.host", &one, "S");
    write_local(&w.maildir, "1700000002.b.host", &two, "S");
    let (code, out, err) = run(&w, &["push", "test", "--to", "archive-inbox"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("+1 sent"), "{out}");
    assert!(
        err.contains("1700000002.b.host") && err.contains("452") && err.contains("3 retries"),
        "{err}"
    );
    assert_eq!(*fake.accepted.lock().unwrap(), vec![one.clone()]);
    let (code, out, err) = run(&w, &["push", "test", "--to", "archive-inbox"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("+1 sent") && out.contains("1 pushed before"),
        "{out}"
    );
    assert_eq!(*fake.accepted.lock().unwrap(), vec![one, two]);
}

#[test]
fn smtp_sending_limit_stops_the_push_and_a_later_run_sends_the_rest_once() {
    let w = World::new("", "");
    // Gmail's answer once the day's sending limit is spent; after it (the next day) all goes.
    let fake = FakeSmtp::start(&[
        "250 ok",
        "550 5.4.5 Daily user sending limit exceeded. For more information on Gmail sending limits go to https://support.google.com/a/answer/166852",
    ]);
    add_smtp_target(&w, fake.port, "none", "");
    make_maildir(&w.maildir);
    let msgs: Vec<Vec<u8>> = (1..=4).map(|n| message(n, "INBOX", 400)).collect();
    for (n, m) in msgs.iter().enumerate() {
        write_local(&w.maildir, &format!("170000000{n}.m{n}.host"), m, "S");
    }
    let (code, out, err) = run(&w, &["push", "test", "--to", "archive-inbox"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("+1 sent") && out.contains("0 rejected"),
        "{out}"
    );
    assert!(
        out.contains("3 message(s) wait for a later run: the server's sending limit is reached")
            && out.contains("5.4.5 Daily user sending limit"),
        "{out}"
    );
    let data = |fake: &FakeSmtp| {
        fake.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| *l == "DATA")
            .count()
    };
    assert_eq!(data(&fake), 2, "nothing offered after the limit");
    let (code, out, err) = run(&w, &["push", "test", "--to", "archive-inbox"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("+3 sent") && out.contains("1 pushed before"),
        "{out}"
    );
    let mut got = fake.accepted.lock().unwrap().clone();
    got.sort();
    let mut want = msgs.clone();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn smtp_password_never_crosses_a_link_without_the_configured_tls() {
    let w = World::new("", "");
    w.dovecot.add_user("dest");
    let postfix = Postfix::start(&w.dovecot, "", &[]);
    make_maildir(&w.maildir);
    write_local(
        &w.maildir,
        "1700000001.a.host",
        &message(1, "INBOX", 400),
        "S",
    );
    // STARTTLS asked for, the server does not offer it: stop before any login.
    add_smtp_target(
        &w,
        postfix.plain_port,
        "starttls",
        "user = \"dest\"\npassword = \"secret\"",
    );
    let (code, out, err) = run(&w, &["-vv", "push", "test", "--to", "archive-inbox"]);
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(err.contains("does not offer STARTTLS"), "{err}");
    assert!(
        !err.contains("secret"),
        "the password appeared in the output"
    );
    // And the TLS certificate is verified: without the test CA the handshake fails.
    let text = std::fs::read_to_string(&w.config).unwrap();
    let no_ca: String = text
        .lines()
        .filter(|l| !l.starts_with("ca_file"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace(
            &format!("port = {}", postfix.plain_port),
            &format!("port = {}", postfix.smtp_port),
        );
    std::fs::write(&w.config, no_ca).unwrap();
    let (code, out, err) = run(&w, &["push", "test", "--to", "archive-inbox"]);
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}
