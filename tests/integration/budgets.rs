//! Daily transfer budgets (`download_budget`, `upload_budget`, Gmail's preset): a run stops
//! before the budget is spent, says what waits, and a later run with budget left takes the
//! rest, each message once. Against the real Dovecot: the budget is arctern's own accounting.

use crate::support::*;

#[test]
fn a_download_budget_defers_what_would_exceed_it_and_a_later_run_takes_the_rest() {
    // 50 KiB a day; six messages of ~20 KB.
    let w = World::new("", "download_budget = \"50K\"");
    let mut c = w.client();
    let msgs: Vec<Vec<u8>> = (1..=6).map(|n| message(n, "INBOX", 20_000)).collect();
    for m in &msgs {
        c.append("INBOX", m, "");
    }
    let out = w.sync_ok();
    assert!(
        out.contains("+2 ↓") && out.contains("4 left for a later run (daily budget)"),
        "{out}"
    );
    assert!(
        out.contains("4 message(s)") && out.contains("download_budget"),
        "{out}"
    );
    assert_eq!(local_files(&w.maildir).len(), 2);
    // The same day: the budget is spent (the state remembers it).
    let out = w.sync_ok();
    assert!(out.contains("+0 ↓") && out.contains("4 left"), "{out}");
    // The budget raised ("none" turns a preset off): the rest, once each.
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        text.replace("download_budget = \"50K\"", "download_budget = \"none\""),
    )
    .unwrap();
    let out = w.sync_ok();
    assert!(out.contains("+4 ↓") && !out.contains("later run"), "{out}");
    assert_same(&mut c, "INBOX", &w.maildir);
}

#[test]
fn an_upload_budget_holds_for_sync_and_for_push() {
    let w = World::new("", "upload_budget = \"30K\"");
    make_maildir(&w.maildir);
    for n in 1..=3 {
        write_local(
            &w.maildir,
            &format!("1700000000.{n}.host"),
            &message(n, "INBOX", 12_000),
            "S",
        );
    }
    let out = w.sync_ok();
    assert!(
        out.contains("+2 ↑") && out.contains("1 left for a later run"),
        "{out}"
    );
    let mut c = w.client();
    assert_eq!(c.messages("INBOX").len(), 2);

    // Push to a target with its own budget: what is over it waits, a rerun does not duplicate.
    let target = World::new("", "");
    target.dovecot.add_user("bob");
    add_imap_target(
        &w.config,
        "plain",
        target.dovecot.imap_port,
        "bob",
        "upload_budget = \"20K\"",
    );
    let out = stdout_ok(
        w.arctern(&["push", "test", "--to", "plain"]),
        "push",
        &target.dovecot.log(),
    );
    assert!(out.contains("+1 ↑"), "{out}");
    assert!(
        out.contains("2 message(s)") && out.contains("upload budget"),
        "{out}"
    );
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(&w.config, text.replace("\"20K\"", "\"1M\"")).unwrap();
    let out = stdout_ok(
        w.arctern(&["push", "test", "--to", "plain"]),
        "push again",
        "",
    );
    assert!(out.contains("+2 ↑") && !out.contains("budget"), "{out}");
    let mut bob = Client::connect(target.dovecot.imap_port, "bob");
    assert_eq!(bob.messages("INBOX").len(), 3);
}
