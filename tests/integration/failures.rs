//! Failures as a user meets them: each printed once, in the user's terms, and limits that leave
//! the rest of the run alone.

use crate::support::*;

#[test]
fn a_refused_login_is_printed_once_in_the_users_terms() {
    let w = World::new("", "");
    let text = std::fs::read_to_string(&w.config)
        .unwrap()
        .replace("password = \"secret\"", "password = \"wrong-pw-0815\"");
    std::fs::write(&w.config, text).unwrap();
    let out = w.arctern(&["sync"]);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|l| l.contains("refused"))
        .collect();
    assert_eq!(
        lines,
        vec![
            "test: the server refused the login for alice (AUTHENTICATIONFAILED: Authentication failed.)"
        ],
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stderr.contains("wrong-pw-0815") && !stdout.contains("wrong-pw-0815"));
}

#[test]
fn messages_over_max_size_are_left_alone_named_and_never_block_the_rest() {
    let w = World::new("", "max_size = \"20K\"");
    let mut c = w.client();
    c.append("INBOX", &message(1, "INBOX", 1_000), "\\Seen");
    c.append("INBOX", &message(2, "INBOX", 60_000), "");
    c.append("INBOX", &message(3, "INBOX", 2_000), "");
    let out = w.sync_ok();
    assert!(out.contains("test: +2 ↓ +0 ↑"), "{out}");
    assert!(
        out.contains("1 message(s) larger than max_size (or the server's APPENDLIMIT) left alone: server UID 2"),
        "{out}"
    );
    assert_eq!(local_files(&w.maildir).len(), 2);

    // A big local file is not uploaded; a small one is.
    write_local(
        &w.maildir,
        "1700000000.big.host",
        &message(4, "INBOX", 90_000),
        "S",
    );
    write_local(
        &w.maildir,
        "1700000000.small.host",
        &message(5, "INBOX", 500),
        "S",
    );
    let out = w.sync_ok();
    assert!(out.contains("test: +0 ↓ +1 ↑"), "{out}");
    assert!(out.contains("local 1700000000.big.host"), "{out}");
    assert!(out.contains("server UID 2"), "{out}");
    assert_eq!(c.messages("INBOX").len(), 4);

    // status names them, in text and JSON.
    let status = String::from_utf8_lossy(&w.arctern(&["status"]).stdout).to_string();
    assert!(status.contains("2 over max_size"), "{status}");
    let json = w.arctern(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let too_large = &v[0]["too_large"];
    let items: Vec<&str> = too_large
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["item"].as_str().unwrap())
        .collect();
    assert_eq!(items, vec!["UID 2", "1700000000.big.host"], "{v}");
    assert!(too_large[0]["size"].as_u64().unwrap() > 60_000);
    assert_eq!(too_large[0]["side"], "far");

    // Without the limit they sync like any other message.
    let text = std::fs::read_to_string(&w.config)
        .unwrap()
        .replace("max_size = \"20K\"", "");
    std::fs::write(&w.config, text).unwrap();
    let out = w.sync_ok();
    assert!(out.contains("test: +1 ↓ +1 ↑"), "{out}");
    assert_same(&mut w.client(), "INBOX", &w.maildir);
    let status = String::from_utf8_lossy(&w.arctern(&["status"]).stdout).to_string();
    assert!(!status.contains("over max_size"), "{status}");
}

#[test]
fn a_message_the_server_refuses_is_reported_once_not_on_every_sync() {
    // The server refuses messages over 100 KB (Dovecot's quota plugin), as Cyrus refuses one
    // with a NUL byte: a permanent answer, not worth an error on every later run.
    let w = World::new(
        "mail_plugins = $mail_plugins quota\nplugin {\n  quota = maildir:User quota\n  quota_max_mail_size = 100k\n}\n",
        "",
    );
    make_maildir(&w.maildir);
    write_local(
        &w.maildir,
        "1700000000.small.host",
        &message(1, "INBOX", 800),
        "S",
    );
    write_local(
        &w.maildir,
        "1700000000.huge.host",
        &message(2, "INBOX", 300_000),
        "S",
    );
    let out = w.arctern(&["sync"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("upload of 1700000000.huge.host refused")
            && stderr.contains("not offered again"),
        "{stderr}"
    );
    let mut c = w.client();
    assert_eq!(c.messages("INBOX").len(), 1);
    // Later runs: quiet and successful, and status says why it stays local.
    let out = w.sync_ok();
    assert!(out.contains("+0 ↓ +0 ↑"), "{out}");
    let status = String::from_utf8_lossy(&w.arctern(&["status"]).stdout).to_string();
    assert!(
        status.contains("1 refused by the server") && !status.contains("new ↑"),
        "{status}"
    );
    let json = String::from_utf8_lossy(&w.arctern(&["status", "--json"]).stdout).to_string();
    assert!(
        json.contains("\"refused\"") && json.contains("1700000000.huge.host"),
        "{json}"
    );
    // A changed file is offered again (and refused again, said again).
    let huge = w.maildir.join("cur").join("1700000000.huge.host:2,S");
    std::fs::write(&huge, to_lf(&message(2, "INBOX", 310_000))).unwrap();
    let out = w.arctern(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    // Made small enough, it goes up and the record goes.
    std::fs::write(&huge, to_lf(&message(2, "INBOX", 900))).unwrap();
    let out = w.sync_ok();
    assert!(out.contains("+0 ↓ +1 ↑"), "{out}");
    let status = String::from_utf8_lossy(&w.arctern(&["status"]).stdout).to_string();
    assert!(!status.contains("refused by the server"), "{status}");
    assert_same(&mut c, "INBOX", &w.maildir);
}

#[test]
fn a_message_over_the_servers_appendlimit_is_not_sent() {
    // Gmail announces APPENDLIMIT=35882577; here the test Dovecot announces a small one.
    let w = World::new("imap_capability = +APPENDLIMIT=5000\n", "");
    make_maildir(&w.maildir);
    write_local(
        &w.maildir,
        "1700000000.small.host",
        &message(1, "INBOX", 800),
        "S",
    );
    write_local(
        &w.maildir,
        "1700000000.big.host",
        &message(2, "INBOX", 20_000),
        "S",
    );
    let out = w.sync_ok();
    assert!(
        out.contains("+1 ↑") && out.contains("APPENDLIMIT) left alone: local 1700000000.big.host"),
        "{out}"
    );
    assert_eq!(w.client().messages("INBOX").len(), 1);
}
