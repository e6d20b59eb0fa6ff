//! The resync fast paths (QRESYNC, CONDSTORE only) give exactly what the full scan gives: the
//! same scenario runs against a server offering each, and the results are compared.

use crate::support::*;

const BASE_CAPS: &str =
    "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE CHILDREN UNSELECT";

fn server_config(caps: &str) -> String {
    format!("protocol imap {{\n  imap_capability = {BASE_CAPS} {caps}\n}}\n")
}

fn quiet(out: &str) -> bool {
    out.contains("+0 ↓ +0 ↑ flags 0 ↓ 0 ↑ deleted 0 ↓ 0 ↑")
}

/// Runs a sync with debug logs and returns (stdout, the IMAP commands sent).
fn logged_sync(w: &World) -> (String, Vec<String>) {
    let out = w.arctern(&["-vv", "sync"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stdout}\n{log}");
    let commands = log
        .lines()
        .filter_map(|l| l.split_once("command=").map(|(_, c)| c.to_string()))
        .collect();
    (stdout, commands)
}

fn scenario(caps: &str) -> (Vec<LocalMessage>, Vec<LocalMessage>, Vec<Vec<String>>) {
    let w = World::new(&server_config(caps), "");
    let mut c = w.client();
    c.create("Archive");
    for i in 0..30 {
        c.append(
            "INBOX",
            &message(i, "INBOX", 300),
            if i % 2 == 0 { "\\Seen" } else { "" },
        );
        c.append("Archive", &message(100 + i, "Archive", 300), "\\Seen");
    }
    w.sync_ok();
    assert!(quiet(&w.sync_ok()));
    let mut commands = Vec::new();

    // Round 1, flags only (no expunge): the CONDSTORE-only path can prove its listing complete.
    c.store("INBOX", "1:3", "+FLAGS (\\Flagged)");
    c.store("Archive", "5", "-FLAGS (\\Seen)");
    let (out, cmds) = logged_sync(&w);
    assert!(out.contains("flags 4 ↓ 0 ↑"), "{caps}: {out}");
    commands.push(cmds);

    // Round 2, while arctern is away: server expunges and new mail, local changes, and a flag
    // changed on both sides at once (server adds \Flagged, local removes \Seen on the same message).
    c.expunge("INBOX", "7:8");
    c.append("INBOX", &message(500, "INBOX", 300), "\\Answered");
    c.store("INBOX", "11", "+FLAGS (\\Flagged)");
    let inbox: Vec<_> = local_files(&w.maildir);
    let racing = inbox
        .iter()
        .find(|p| {
            std::fs::read(p)
                .unwrap()
                .windows(12)
                .any(|x| x == b"message 10 i")
        })
        .unwrap()
        .clone();
    let key = racing
        .file_name()
        .unwrap()
        .to_string_lossy()
        .split(":2,")
        .next()
        .unwrap()
        .to_string();
    std::fs::rename(&racing, w.maildir.join("cur").join(format!("{key}:2,"))).unwrap();
    let other = local_files(&w.local_dir("Archive"));
    std::fs::remove_file(&other[0]).unwrap();
    write_local(
        &w.local_dir("Archive"),
        "1700000000.fp.host",
        &message(600, "Archive", 300),
        "S",
    );
    let (out, cmds) = logged_sync(&w);
    assert!(out.contains("+1 ↓ +1 ↑"), "{caps}: {out}");
    assert!(out.contains("deleted 2 ↓ 1 ↑"), "{caps}: {out}");
    commands.push(cmds);
    assert_same(&mut c, "INBOX", &w.maildir);
    assert_same(&mut c, "Archive", &w.local_dir("Archive"));
    let m = c
        .messages("INBOX")
        .into_iter()
        .find(|m| m.uid == 11)
        .unwrap();
    assert!(
        m.flags.contains("\\Flagged") && !m.flags.contains("\\Seen"),
        "{caps}: {:?}",
        m.flags
    );
    let (out, cmds) = logged_sync(&w);
    assert!(quiet(&out), "{caps}: {out}");
    commands.push(cmds);
    (
        local_messages(&w.maildir),
        local_messages(&w.local_dir("Archive")),
        commands,
    )
}

fn full_scans(cmds: &[String]) -> usize {
    cmds.iter().filter(|c| c.ends_with("(UID FLAGS)")).count()
}

fn delta_scans(cmds: &[String]) -> usize {
    cmds.iter().filter(|c| c.contains("(CHANGEDSINCE")).count()
}

fn qresync_selects(cmds: &[String]) -> usize {
    cmds.iter()
        .filter(|c| c.starts_with("SELECT ") && c.contains(" (QRESYNC ("))
        .count()
}

#[test]
fn qresync_condstore_and_full_scan_agree() {
    let qresync = scenario("CONDSTORE QRESYNC");
    let condstore = scenario("CONDSTORE");
    let plain = scenario("");
    assert!(
        qresync.0 == plain.0 && qresync.1 == plain.1,
        "QRESYNC result differs from the full scan"
    );
    assert!(
        condstore.0 == plain.0 && condstore.1 == plain.1,
        "CONDSTORE result differs from the full scan"
    );

    // Which path ran: QRESYNC never needs a full scan, and the changes come inside the SELECT
    // (no separate CHANGEDSINCE fetch); CONDSTORE only proves flag-only rounds; without either,
    // every round is a full scan.
    for round in &qresync.2 {
        assert_eq!(full_scans(round), 0, "QRESYNC did a full scan: {round:?}");
        assert_eq!(delta_scans(round), 0, "QRESYNC asked separately: {round:?}");
    }
    assert!(qresync_selects(&qresync.2[1]) >= 1, "{:?}", qresync.2[1]);
    for round in condstore.2.iter().chain(&plain.2) {
        assert_eq!(qresync_selects(round), 0, "{round:?}");
    }
    assert_eq!(full_scans(&condstore.2[0]), 0, "{:?}", condstore.2[0]);
    assert!(delta_scans(&condstore.2[0]) >= 1);
    assert!(
        full_scans(&condstore.2[1]) >= 1,
        "CONDSTORE cannot see expunges: full scan expected"
    );
    for round in &plain.2 {
        assert_eq!(delta_scans(round), 0);
    }
    assert!(full_scans(&plain.2[0]) >= 1);
}
