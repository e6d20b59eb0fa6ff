//! The core promise: folders, messages, flags and deletions mirrored both ways, and a second
//! sync that changes nothing.

use crate::support::*;

const FOLDERS: [(&str, &str); 6] = [
    ("INBOX", "INBOX"),
    ("Archive", "Archive"),
    ("Sent", "Sent"),
    ("Lists/rust", "Lists.rust"),
    ("Lists/debian", "Lists.debian"),
    ("Entwürfe", "Entw&APw-rfe"),
];

const FLAG_MIX: [&str; 5] = [
    "",
    "\\Seen",
    "\\Seen \\Flagged",
    "\\Answered \\Seen",
    "\\Draft",
];

fn seed(w: &World, per_folder: usize) {
    let mut c = w.client();
    for (_, wire) in FOLDERS.iter().skip(1) {
        c.create(wire);
    }
    let mut n = 0;
    for (canonical, wire) in FOLDERS {
        for i in 0..per_folder {
            n += 1;
            c.append(
                wire,
                &message(n, canonical, 300 + (i % 7) * 400),
                FLAG_MIX[i % FLAG_MIX.len()],
            );
        }
    }
}

fn assert_all_same(w: &World) {
    let mut c = w.client();
    for (canonical, wire) in FOLDERS {
        assert_same(&mut c, wire, &w.local_dir(canonical));
    }
}

fn quiet(stdout: &str) -> bool {
    stdout.contains("+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑")
}

#[test]
fn two_way_mirror_of_six_folders() {
    let w = World::new("", "");
    seed(&w, 334); // 2,004 messages
    let out = w.sync_ok();
    assert!(out.contains("+2004 ↓"), "{out}");
    assert!(
        w.maildir.join(".Entwürfe/cur").is_dir(),
        "non-ASCII folder is UTF-8 on disk"
    );
    assert!(w.maildir.join(".Lists.rust/maildirfolder").is_file());
    assert_all_same(&w);
    assert!(quiet(&w.sync_ok()), "second sync must change nothing");

    // Server-side changes: flags, new mail, expunges, a move.
    let mut c = w.client();
    c.store("INBOX", "1:10", "+FLAGS (\\Flagged)");
    c.store("Archive", "5", "-FLAGS (\\Seen)");
    c.append("Sent", &message(90_001, "Sent", 500), "\\Seen");
    c.expunge("Lists.debian", "1:3");
    c.move_to("INBOX", "20", "Archive");
    // Local changes: flag renames, new files, deletions.
    let inbox = w.local_dir("INBOX");
    let files = local_files(&w.local_dir("Lists/rust"));
    let first = &files[0];
    let renamed = first
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("cur")
        .join(format!(
            "{}:2,FRS",
            first
                .file_name()
                .unwrap()
                .to_string_lossy()
                .split(":2,")
                .next()
                .unwrap()
        ));
    std::fs::rename(first, &renamed).unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    std::fs::remove_file(&files[2]).unwrap();
    write_local(
        &inbox,
        "1700000000.local1.host",
        &message(90_002, "INBOX", 800),
        "S",
    );
    write_local(
        &w.local_dir("Entwürfe"),
        "1700000000.local2.host",
        &message(90_003, "Entwürfe", 200),
        "",
    );
    // A folder created locally appears on the server.
    let newdir = w.maildir.join(".Projects");
    make_maildir(&newdir);
    write_local(
        &newdir,
        "1700000000.local3.host",
        &message(90_004, "Projects", 200),
        "F",
    );

    let out = w.sync_ok();
    // The message moved to Archive is linked from its INBOX file, not downloaded again.
    assert!(out.contains("test: +1 ↓ +3 ↑"), "{out}");
    assert!(out.contains("1 already stored (linked)"), "{out}");
    assert!(
        out.contains("deleted 4 ↓ 2 ↑"),
        "3 expunged + 1 moved away; 2 deleted locally: {out}"
    );
    assert_all_same(&w);
    assert_same(&mut c, "Projects", &newdir);
    assert!(c.folders().contains(&"Projects".to_string()));
    let out = w.sync_ok();
    assert!(quiet(&out), "a third sync must change nothing: {out}");
    // status knows the folders and has nothing pending.
    let st = w.arctern(&["status", "--json"]);
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(st.status.success(), "{text}");
    assert!(text.contains("\"folder\": \"Lists/rust\""), "{text}");
    assert!(text.contains("\"pending_local_new\": 0"), "{text}");
}

#[test]
fn keywords_round_trip_through_dovecot_keywords() {
    let w = World::new("", "");
    let mut c = w.client();
    c.append("INBOX", &message(1, "INBOX", 100), "\\Seen work");
    w.sync_ok();
    let files = local_files(&w.maildir);
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(name.ends_with(":2,Sa"), "{name}");
    let table = std::fs::read_to_string(w.maildir.join("dovecot-keywords")).unwrap();
    assert_eq!(table, "0 work\n");
    // Local: drop the keyword, add a flag; the server follows.
    let key = name.split(":2,").next().unwrap();
    std::fs::rename(&files[0], w.maildir.join("cur").join(format!("{key}:2,FS"))).unwrap();
    w.sync_ok();
    let m = &c.messages("INBOX")[0];
    assert!(
        m.flags.contains("\\Flagged") && !m.flags.contains("work"),
        "{:?}",
        m.flags
    );
    // Server adds another keyword; it gets the next letter.
    c.store("INBOX", "1", "+FLAGS (home work)");
    w.sync_ok();
    let name = local_files(&w.maildir)[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(name.ends_with(":2,FSab"), "{name}");
    assert!(quiet(&w.sync_ok()));
    // Dovecot reads the Maildir arctern wrote as its own: same flags and keywords.
    w.dovecot.hand_over(&w.maildir);
    let seen = w
        .dovecot
        .doveadm(&["fetch", "-u", "reader", "flags", "mailbox", "INBOX", "all"]);
    for flag in ["\\Flagged", "\\Seen", "home", "work"] {
        assert!(seen.contains(flag), "{flag} missing in {seen}");
    }
}

#[test]
fn dry_run_changes_nothing_and_pull_never_writes_the_server() {
    let w = World::new("", "sync = \"pull\"");
    let mut c = w.client();
    c.append("INBOX", &message(1, "INBOX", 100), "");
    let out = w.arctern(&["sync", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("would download UID 1"), "{text}");
    assert!(!w.maildir.exists(), "dry run created the Maildir");
    w.sync_ok();
    assert_eq!(local_files(&w.maildir).len(), 1);
    // Local changes stay local in pull mode.
    write_local(
        &w.maildir,
        "1700000000.x.host",
        &message(2, "INBOX", 100),
        "S",
    );
    let synced = std::fs::read_dir(w.maildir.join("new"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(synced).unwrap();
    w.sync_ok();
    assert_eq!(c.messages("INBOX").len(), 1);
    assert!(quiet(&w.sync_ok()));
}

#[test]
fn verbatim_layout_nests_folders() {
    let w = World::new("", "layout = \"verbatim\"");
    let mut c = w.client();
    c.create("Lists.rust");
    c.append("Lists.rust", &message(1, "Lists/rust", 100), "\\Seen");
    c.append("INBOX", &message(2, "INBOX", 100), "");
    w.sync_ok();
    assert_same(&mut c, "INBOX", &w.maildir.join("INBOX"));
    assert_same(&mut c, "Lists.rust", &w.maildir.join("Lists/rust"));
    // A nested folder made locally reaches the server with the server's delimiter.
    let dir = w.maildir.join("Lists/debian");
    make_maildir(&dir);
    write_local(
        &dir,
        "1700000000.v.host",
        &message(3, "Lists/debian", 100),
        "S",
    );
    w.sync_ok();
    assert_same(&mut c, "Lists.debian", &dir);
    assert!(quiet(&w.sync_ok()));
}

#[test]
fn first_sync_against_an_existing_maildir_links_instead_of_duplicating() {
    let w = World::new("", "");
    let mut c = w.client();
    for i in 0..5 {
        c.append(
            "INBOX",
            &message(i, "INBOX", 200),
            if i == 0 { "\\Seen" } else { "" },
        );
    }
    // The same five messages already in a local Maildir (say, from another sync tool whose
    // state is lost), one with a flag the server lacks, plus one local-only message.
    make_maildir(&w.maildir);
    for i in 0..5 {
        write_local(
            &w.maildir,
            &format!("1600000000.old{i}.host"),
            &message(i, "INBOX", 200),
            if i == 1 { "F" } else { "" },
        );
    }
    write_local(
        &w.maildir,
        "1600000000.only.host",
        &message(77, "INBOX", 200),
        "",
    );
    let out = w.sync_ok();
    assert!(out.contains("5 message(s) already present"), "{out}");
    // No other tool's records say which side changed a flag, so the server's flags win:
    // message 0 becomes read locally, message 1 loses its local flag.
    assert!(out.contains("+0 ↓ +1 ↑ flags 2 ↓ 0 ↑"), "{out}");
    assert_same(&mut c, "INBOX", &w.maildir);
    let flagged = c
        .messages("INBOX")
        .iter()
        .filter(|m| m.flags.contains("\\Flagged"))
        .count();
    assert_eq!(
        flagged, 0,
        "the server's flags win on a first sync without records"
    );
    assert!(quiet(&w.sync_ok()));
}

#[test]
fn unchanged_folders_are_skipped_but_every_change_is_seen() {
    let w = World::new("", "");
    let mut c = w.client();
    c.create("Archive");
    for i in 0..20 {
        c.append("INBOX", &message(i, "INBOX", 200), "");
        c.append("Archive", &message(100 + i, "Archive", 200), "\\Seen");
    }
    w.sync_ok();
    // The pull changed only the Maildir, so it proved the folders hold just its changes and
    // recorded their fingerprints: the first resync after it selects nothing.
    let out = w.arctern(&["-vv", "sync"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    // Dovecot has LIST-STATUS: the statuses come with the listing, no STATUS of their own.
    assert!(
        log.lines()
            .any(|l| l.contains("command=LIST") && l.contains("STATUS (MESSAGES")),
        "{log}"
    );
    assert!(!log.contains("command=STATUS"), "{log}");
    assert!(
        !log.contains("SELECT"),
        "an unchanged folder was selected: {log}"
    );
    // A server-side flag change, a local rename and a local delivery are each noticed.
    c.store("Archive", "3", "-FLAGS (\\Seen)");
    assert!(w.sync_ok().contains("flags 1 ↓ 0 ↑"));
    // That run changed only local files (a fingerprint recorded): a rename right after it is
    // still seen.
    let f = local_files(&w.maildir)[0].clone();
    let key = f
        .file_name()
        .unwrap()
        .to_string_lossy()
        .split(":2,")
        .next()
        .unwrap()
        .to_string();
    std::fs::rename(&f, w.maildir.join("cur").join(format!("{key}:2,F"))).unwrap();
    assert!(w.sync_ok().contains("flags 0 ↓ 1 ↑"));
    write_local(
        &w.local_dir("Archive"),
        "1700000000.z.host",
        &message(999, "Archive", 100),
        "",
    );
    assert!(w.sync_ok().contains("+0 ↓ +1 ↑"));
    assert_same(&mut c, "INBOX", &w.maildir);
    assert_same(&mut c, "Archive", &w.local_dir("Archive"));
}

#[test]
fn compress_deflate_when_offered_and_enabled() {
    let w = World::new(
        "mail_plugins = $mail_plugins zlib\nprotocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n",
        "",
    );
    w.write_config(
        &format!(
            "tls = \"none\"\nport = {}\ncompress = true",
            w.dovecot.imap_port
        ),
        "",
    );
    let mut c = w.client();
    for i in 0..20 {
        c.append("INBOX", &message(i, "INBOX", 20_000), "\\Seen");
    }
    make_maildir(&w.maildir);
    write_local(
        &w.maildir,
        "1700000000.c.host",
        &message(99, "INBOX", 30_000),
        "F",
    );
    let out = w.arctern(&["-vv", "sync"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    // The server switched to DEFLATE and everything after it worked, which needs both sides
    // compressing.
    assert!(log.contains("COMPRESS=DEFLATE active"), "{log}");
    assert_same(&mut c, "INBOX", &w.maildir);
    assert!(quiet(&w.sync_ok()));
}
