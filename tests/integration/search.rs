//! Offline search: sync keeps the index current (new mail, deletions, flag changes), the query
//! language works end to end, `index --rebuild` gives the same answers, `show` decodes.

use crate::support::*;
use std::collections::BTreeSet;

fn ids(w: &World, query: &str) -> BTreeSet<String> {
    newest(w, query, 1000).into_iter().collect()
}

/// Message-IDs of the first `n` hits, in the order `search` prints them (newest first).
fn newest(w: &World, query: &str, n: usize) -> Vec<String> {
    let out = w.arctern(&["search", "--json", "--limit", &n.to_string(), query]);
    assert!(
        out.status.success(),
        "search {query:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["message-id"].as_str().unwrap().to_string()
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mime")
        .join(name);
    std::fs::read(p).unwrap()
}

#[test]
fn sync_keeps_the_index_current_and_queries_work() {
    let w = World::new("", "");
    let mut c = w.client();
    c.create("Lists.rust");
    c.append("INBOX", &fixture("encoded-words.eml"), "\\Seen");
    c.append("INBOX", &fixture("html-only.eml"), "\\Flagged");
    c.append("INBOX", &fixture("latin1-attachment.eml"), "");
    c.append(
        "Lists.rust",
        b"From: Ferris <ferris@rust-lang.org>\r\nTo: rust@lists.example\r\nSubject: Release notes for 1.95\r\nMessage-ID: <rel@rust>\r\nDate: Fri, 10 Apr 2026 10:00:00 +0000\r\n\r\nThe release notes mention async closures and a faster compiler.\r\n",
        "\\Seen",
    );
    w.sync_ok();

    assert_eq!(ids(&w, "rhein"), set(&["ew1@example.de"]));
    assert_eq!(ids(&w, "from:jürgen"), set(&["ew1@example.de"]));
    assert_eq!(ids(&w, "subject:köln"), set(&["ew1@example.de"]));
    assert_eq!(ids(&w, "\"release notes\""), set(&["rel@rust"]));
    assert_eq!(ids(&w, "\"notes release\""), set(&[]));
    assert_eq!(ids(&w, "folder:Lists/rust"), set(&["rel@rust"]));
    assert_eq!(ids(&w, "folder:Lists/*"), set(&["rel@rust"]));
    assert_eq!(ids(&w, "has:attachment"), set(&["l1@example.fr"]));
    assert_eq!(ids(&w, "attachment:übersicht"), set(&["l1@example.fr"]));
    assert_eq!(ids(&w, "flag:flagged"), set(&["html1@example.com"]));
    assert_eq!(
        ids(&w, "flag:unread"),
        set(&["html1@example.com", "l1@example.fr"])
    );
    assert_eq!(
        ids(&w, "quarterly OR café"),
        set(&["html1@example.com", "l1@example.fr"])
    );
    assert_eq!(ids(&w, "account:test -folder:INBOX"), set(&["rel@rust"]));
    assert_eq!(
        ids(&w, "date:2024-01-01..2024-03-31"),
        set(&["ew1@example.de", "l1@example.fr"])
    );
    assert_eq!(ids(&w, "after:2026-01-01"), set(&["rel@rust"]));
    assert_eq!(ids(&w, "id:<rel@rust>"), set(&["rel@rust"]));
    assert_eq!(ids(&w, "size:<100k").len(), 4);
    assert_eq!(ids(&w, "size:>1M").len(), 0);

    // A deletion and a flag change on the server: the same sync updates the index.
    let inbox = c.messages("INBOX");
    let html_uid = inbox
        .iter()
        .find(|m| String::from_utf8_lossy(&m.body).contains("quarterly"))
        .unwrap()
        .uid;
    let latin_uid = inbox
        .iter()
        .find(|m| String::from_utf8_lossy(&m.body).contains("Commande"))
        .unwrap()
        .uid;
    c.expunge("INBOX", &html_uid.to_string());
    c.store("INBOX", &latin_uid.to_string(), "+FLAGS (\\Seen \\Flagged)");
    w.sync_ok();
    assert_eq!(
        ids(&w, "quarterly"),
        set(&[]),
        "a deleted message is still found"
    );
    assert_eq!(ids(&w, "flag:flagged"), set(&["l1@example.fr"]));
    assert_eq!(ids(&w, "flag:unread"), set(&[]));

    // Rebuilding from the Maildirs gives the same answers.
    let before = ids(&w, "*");
    let out = w.arctern(&["index", "--rebuild"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ids(&w, "*"), before);
    assert_eq!(before.len(), 3);
    let out = w.arctern(&["index"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("index: +0 ~0 -0"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // show: decoded headers and text, by Message-ID; --raw gives the bytes.
    let out = w.arctern(&["show", "<ew1@example.de>"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Subject: Grüße aus Köln ✓"), "{text}");
    assert!(text.contains("Schöne Grüße vom Rhein."), "{text}");
    let out = w.arctern(&["show", "--raw", "ew1@example.de"]);
    assert_eq!(out.stdout, to_lf(&fixture("encoded-words.eml")));
}

#[test]
fn query_errors_name_the_position() {
    let w = World::new("", "");
    w.sync_ok();
    let out = w.arctern(&["search", "subject:(rust"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("position"), "{err}");
    let out = w.arctern(&["search", "frm:jane"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown prefix \"frm:\""), "{err}");
}

#[test]
fn big_updates_merge_into_one_segment_and_small_ones_stay_searchable() {
    // More than 2,000 new messages: the update commits in steps and ends with a merge (the
    // path a 100,000-message rebuild once failed on); then small updates add and merge small
    // segments.
    const N: usize = 2100;
    // Dates in a scrambled order (the index keeps each segment sorted newest first, and a
    // search for the newest stops early: the order must hold across segments and deletions).
    let w = World::new("", "");
    make_maildir(&w.maildir);
    let day = |i: usize| (i * 7919) % N; // a permutation of 0..N
    let date = |d: usize| {
        jiff::Timestamp::from_second(1_600_000_000 + d as i64 * 86_400)
            .unwrap()
            .strftime("%a, %d %b %Y %H:%M:%S +0000")
            .to_string()
    };
    for i in 0..N {
        let body = format!(
            "From: bulk{}@example.org\nSubject: bulk message {i}\nMessage-ID: <bulk{i}@test.arctern>\nDate: {}\n\nbody of bulk message {i}\n",
            i % 7,
            date(day(i))
        );
        write_local(
            &w.maildir,
            &format!("1700000000.bulk{i}.host"),
            body.as_bytes(),
            "S",
        );
    }
    for args in [&["index"][..], &["index", "--rebuild"][..]] {
        let out = w.arctern(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            ids(&w, "subject:bulk").len(),
            1000,
            "--limit 1000 caps the hits"
        );
        assert_eq!(ids(&w, "from:bulk3@example.org").len(), (N + 3) / 7);
    }
    let by_day = |days: &[usize]| -> Vec<String> {
        days.iter()
            .map(|&d| {
                format!(
                    "bulk{}@test.arctern",
                    (0..N).find(|&i| day(i) == d).unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        newest(&w, "subject:bulk", 4),
        by_day(&[N - 1, N - 2, N - 3, N - 4])
    );
    assert_eq!(
        newest(&w, "\"bulk message\"", 3),
        by_day(&[N - 1, N - 2, N - 3])
    );
    // The newest message goes: the next ones move up.
    let gone = by_day(&[N - 1])[0]
        .trim_end_matches("@test.arctern")
        .to_string();
    for f in local_files(&w.maildir) {
        if std::fs::read_to_string(&f)
            .unwrap()
            .contains(&format!("<{gone}@"))
        {
            std::fs::remove_file(&f).unwrap();
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(w.arctern(&["index"]).status.success());
    assert_eq!(newest(&w, "body:bulk", 2), by_day(&[N - 2, N - 3]));
    // Three small updates after the big one (new segments), dated between the bulk messages.
    for round in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(1100)); // a new directory mtime
        let body = format!(
            "From: late@example.org\nSubject: late {round}\nMessage-ID: <late{round}@test.arctern>\nDate: {}\n\nlate bulk\n",
            date(N - 3 - 2 * round)
        );
        write_local(
            &w.maildir,
            &format!("1700000001.late{round}.host"),
            body.as_bytes(),
            "",
        );
        let out = w.arctern(&["index"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(ids(&w, "from:late@example.org").len(), 3);
    let gone_was_bulk3 = (0..N).find(|&i| day(i) == N - 1).unwrap() % 7 == 3;
    assert_eq!(
        ids(&w, "from:bulk3@example.org").len(),
        (N + 3) / 7 - usize::from(gone_was_bulk3)
    );
    let top: Vec<String> = newest(&w, "bulk", 5);
    let day_of = |id: &str| -> usize {
        match id.strip_prefix("late") {
            Some(r) => N - 3 - 2 * r[..1].parse::<usize>().unwrap(),
            None => day(id[4..].split('@').next().unwrap().parse().unwrap()),
        }
    };
    let days: Vec<usize> = top.iter().map(|id| day_of(id)).collect();
    assert_eq!(days[..3], [N - 2, N - 3, N - 3], "{top:?}");
    assert_eq!(days[3..], [N - 4, N - 5], "{top:?}");
}

#[test]
fn a_pull_indexes_while_downloading_and_leaves_the_index_a_rebuild_would() {
    let w = World::new("", "");
    let mut c = w.client();
    c.create("Archive");
    for n in 0..150 {
        c.append("INBOX", &message(n, "INBOX", 300 + n * 7), "");
        c.append(
            "Archive",
            &message(1000 + n, "Archive", 200),
            if n % 3 == 0 {
                "\\Seen \\Flagged"
            } else {
                "\\Seen"
            },
        );
    }
    let out = w.arctern(&["-vv", "sync"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("indexed 300 message(s) during the sync"),
        "{log}"
    );
    // Every search field as the pull left it, then as a rebuild from the Maildirs makes it.
    let everything = |w: &World| -> Vec<String> {
        let out = w.arctern(&["search", "--json", "--limit", "1000", "*"]);
        assert!(out.status.success());
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    let after_pull = everything(&w);
    assert_eq!(after_pull.len(), 300);
    let out = w.arctern(&["index"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("index: +0 ~0 -0"),
        "nothing left for the update: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(ids(&w, "flag:flagged").len(), 50);
    let out = w.arctern(&["index", "--rebuild"]);
    assert!(out.status.success());
    assert_eq!(everything(&w), after_pull);

    // A resync tells the index its renames (flags) and removals as it makes them: the update
    // after it has nothing left, and the index is again the one a rebuild makes.
    c.store("INBOX", "1:20", "+FLAGS (\\Flagged)");
    c.expunge("Archive", "1:9");
    c.append("INBOX", &message(5000, "INBOX", 400), "");
    let out = w.arctern(&["-vv", "sync"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("add=0 remove=0"),
        "the update found it all done: {log}"
    );
    let out = w.arctern(&["index"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("index: +0 ~0 -0"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after_resync = everything(&w);
    assert_eq!(after_resync.len(), 300 - 9 + 1);
    assert_eq!(ids(&w, "flag:flagged").len(), 50 + 20 - 3);
    let out = w.arctern(&["index", "--rebuild"]);
    assert!(out.status.success());
    assert_eq!(everything(&w), after_resync);
}
