//! Transcript tests: [`ImapConn`] against a scripted peer on an in-memory duplex stream, for the
//! answers that broke or could break a real run. The peer stands for a broken or hostile server
//! (or one racing with another client): no real server sends these on purpose.

use super::*;
use crate::model::Flag;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, DuplexStream};

/// One scripted exchange: a command (the peer checks that the line contains `expect`) and the
/// lines it answers with, `$T` standing for the command's tag. `None` answers end the
/// connection right there (after writing what `raw` holds, unterminated).
struct Step {
    expect: &'static str,
    answer: Vec<String>,
    raw_then_close: Option<Vec<u8>>,
}

fn step(expect: &'static str, answer: &[&str]) -> Step {
    Step {
        expect,
        answer: answer.iter().map(|s| s.to_string()).collect(),
        raw_then_close: None,
    }
}

/// Runs the peer: greeting, LOGIN, then the steps; literals the client announces are taken in
/// (with a continuation when the client waits for one).
async fn peer(stream: DuplexStream, capabilities: &'static str, steps: Vec<Step>) {
    let (read, mut write) = tokio::io::split(stream);
    let mut read = BufReader::new(read);
    let greeting = format!("* OK [CAPABILITY {capabilities}] scripted peer ready\r\n");
    write.write_all(greeting.as_bytes()).await.unwrap();
    let mut steps = std::collections::VecDeque::from(steps);
    steps.push_front(step("LOGIN", &["$T OK logged in"]));
    steps.insert(1, step("CAPABILITY", &[]));
    while let Some(s) = steps.pop_front() {
        let mut line = String::new();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        // A literal: take it in (after a continuation unless it is LITERAL+), and the rest of
        // the command line after it.
        while let Some(n) = literal_size(&line) {
            if !line.trim_end().ends_with("+}") {
                write.write_all(b"+ go ahead\r\n").await.unwrap();
            }
            let mut body = vec![0u8; n];
            read.read_exact(&mut body).await.unwrap();
            let mut rest = String::new();
            read.read_line(&mut rest).await.unwrap();
            let head = line.trim_end();
            let open = head.rfind('{').unwrap_or(head.len());
            line = format!("{}<{n} bytes>{rest}", &head[..open]);
        }
        let tag = line.split_whitespace().next().unwrap_or("*").to_string();
        assert!(
            line.contains(s.expect),
            "peer expected {:?}, got {line:?}",
            s.expect
        );
        let answer: Vec<String> = if s.expect == "CAPABILITY" {
            vec![
                format!("* CAPABILITY {capabilities}"),
                "$T OK done".to_string(),
            ]
        } else {
            s.answer
        };
        for a in answer {
            let a = a.replace("$T", &tag);
            write
                .write_all(format!("{a}\r\n").as_bytes())
                .await
                .unwrap();
        }
        if let Some(raw) = s.raw_then_close {
            write.write_all(&raw).await.unwrap();
            write.shutdown().await.unwrap();
            return;
        }
    }
    // Script done: keep the stream open until the client goes.
    let mut sink = Vec::new();
    let _ = read.read_to_end(&mut sink).await;
}

/// `{123}` or `{123+}` at the end of a command line.
fn literal_size(line: &str) -> Option<usize> {
    let t = line.trim_end();
    let open = t.rfind('{')?;
    let inner = t.get(open + 1..t.len().checked_sub(1)?)?;
    if !t.ends_with('}') {
        return None;
    }
    inner.trim_end_matches('+').parse().ok()
}

/// A logged-in connection to a peer running `steps`.
async fn conn(capabilities: &'static str, steps: Vec<Step>) -> ImapConn {
    let (client_end, server_end) = tokio::io::duplex(1 << 20);
    tokio::spawn(peer(server_end, capabilities, steps));
    let transport: Box<dyn Transport> = Box::new(client_end);
    let mut client = async_imap::Client::new(transport);
    client.read_response().await.unwrap().unwrap();
    let session = client.login("u", "p").await.map_err(|(e, _)| e).unwrap();
    let mut conn = ImapConn::new(session, Duration::from_secs(5));
    conn.refresh_capabilities().await.unwrap();
    conn
}

const CAPS: &str = "IMAP4rev1 UIDPLUS CONDSTORE QRESYNC";

fn select_answer(extra: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    out.extend(
        [
            "* 3 EXISTS",
            "* OK [UIDVALIDITY 7] ok",
            "* OK [UIDNEXT 10] ok",
            "* OK [HIGHESTMODSEQ 20] ok",
            "$T OK [READ-WRITE] selected",
        ]
        .map(String::from),
    );
    out
}

#[tokio::test]
async fn reversed_vanished_ranges_in_a_qresync_select_count_in_full() {
    let mut answer = select_answer(&["* VANISHED (EARLIER) 7:5,9"]);
    answer.insert(0, "* 1 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (19))".into());
    let mut c = conn(
        CAPS,
        vec![Step {
            expect: "SELECT \"INBOX\" (QRESYNC (7 15))",
            answer,
            raw_then_close: None,
        }],
    )
    .await;
    c.qresync = true;
    let sel = c
        .select_with("INBOX", Some((UidValidity(7), 15)))
        .await
        .unwrap();
    let delta = sel.qresync.unwrap();
    assert_eq!(delta.vanished, vec![Uid(5), Uid(6), Uid(7), Uid(9)]);
    assert_eq!(delta.changed[&Uid(2)], [Flag::Seen].into_iter().collect());
}

#[tokio::test]
async fn a_huge_vanished_answer_is_refused_and_poisons_the_connection() {
    // Two ranges, each under the old per-range cap, 12 million UIDs together.
    let answer = select_answer(&["* VANISHED (EARLIER) 1:6000000,6000001:12000000"]);
    let mut c = conn(
        CAPS,
        vec![Step {
            expect: "SELECT",
            answer,
            raw_then_close: None,
        }],
    )
    .await;
    c.qresync = true;
    let e = c
        .select_with("INBOX", Some((UidValidity(7), 15)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("implausibly many"), "{e}");
    assert!(c.is_poisoned());
}

#[tokio::test]
async fn a_short_flag_listing_is_an_error_and_vanished_during_it_counts_right() {
    // EXISTS says 4; one UID vanishes (written high:low) while listing; 3 are listed: complete.
    let mut c = conn(
        CAPS,
        vec![step(
            "UID FETCH 1:* (UID FLAGS)",
            &[
                "* 1 FETCH (UID 1 FLAGS ())",
                "* VANISHED 4:4",
                "* 2 FETCH (UID 2 FLAGS (\\Seen))",
                "* 3 FETCH (UID 3 FLAGS ())",
                "$T OK done",
            ],
        )],
    )
    .await;
    let listing = c.fetch_all_flags(4).await.unwrap();
    assert_eq!(listing.len(), 3);
    // Now EXISTS says 3 and only 2 come back: never "the third was deleted".
    let mut c = conn(
        CAPS,
        vec![step(
            "UID FETCH 1:* (UID FLAGS)",
            &[
                "* 1 FETCH (UID 1 FLAGS ())",
                "* 2 FETCH (UID 2 FLAGS ())",
                "$T OK done",
            ],
        )],
    )
    .await;
    let e = c.fetch_all_flags(3).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("refusing to treat the rest as deleted"),
        "{e}"
    );
    assert!(c.is_poisoned());
}

#[tokio::test]
async fn a_fetch_of_a_uid_that_vanished_hands_over_only_what_came() {
    let mut c = conn(
        CAPS,
        vec![step(
            "UID FETCH 1:2 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])",
            &[
                "* 1 FETCH (UID 1 FLAGS (\\Seen) RFC822.SIZE 5 BODY[] {5}\r\nhello)",
                "$T OK done (UID 2 was expunged meanwhile)",
            ],
        )],
    )
    .await;
    let mut got = Vec::new();
    c.fetch_bodies(&[Uid(1), Uid(2)], |m| {
        got.push((m.uid, m.body.to_vec()));
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(got, vec![(Uid(1), b"hello".to_vec())]);
    assert!(!c.is_poisoned());
}

#[tokio::test]
async fn appenduid_is_read_from_the_answer() {
    let mut c = conn(
        CAPS,
        vec![step(
            "APPEND \"INBOX\" (\\Seen)",
            &["$T OK [APPENDUID 7 42] appended"],
        )],
    )
    .await;
    let flags: Flags = [Flag::Seen].into_iter().collect();
    let got = c
        .append("INBOX", &flags, None, b"Subject: x\r\n\r\nbody\r\n")
        .await
        .unwrap();
    assert_eq!(got, Some((UidValidity(7), Uid(42))));
}

#[tokio::test]
async fn a_literal_cut_short_is_a_lost_connection_never_a_short_message() {
    let mut c = conn(
        CAPS,
        vec![Step {
            expect: "UID FETCH 1",
            answer: vec![],
            raw_then_close: Some(b"* 1 FETCH (UID 1 BODY[] {100}\r\nonly ten b".to_vec()),
        }],
    )
    .await;
    let mut got = 0;
    let e = c
        .fetch_bodies(&[Uid(1)], |_| {
            got += 1;
            Ok(())
        })
        .await
        .unwrap_err();
    assert_eq!(got, 0, "a partial body was handed over");
    assert!(matches!(e, ImapError::Connection { .. }), "{e:?}");
    assert!(c.is_poisoned());
}

#[tokio::test]
async fn an_untagged_bye_mid_command_fails_the_command() {
    let mut c = conn(
        CAPS,
        vec![Step {
            expect: "UID FETCH 1:* (UID FLAGS)",
            answer: vec![
                "* 1 FETCH (UID 1 FLAGS ())".into(),
                "* BYE server shutting down".into(),
            ],
            raw_then_close: Some(Vec::new()),
        }],
    )
    .await;
    let e = c.fetch_all_flags(2).await.unwrap_err();
    assert!(c.is_poisoned(), "{e}");
    // A poisoned connection refuses further commands instead of answering empty.
    assert!(c.status("INBOX").await.is_err());
}

#[tokio::test]
async fn a_refused_create_of_a_mailbox_that_exists_is_not_an_error() {
    // Cyrus: the parent was made by the CREATE of a child; its own CREATE is refused.
    let mut c = conn(
        CAPS,
        vec![
            step("CREATE \"Old: 2019\"", &["$T NO Mailbox already exists"]),
            step(
                "LIST \"\" \"Old: 2019\"",
                &["* LIST (\\HasChildren) \"/\" \"Old: 2019\"", "$T OK done"],
            ),
        ],
    )
    .await;
    c.create("Old: 2019").await.unwrap();
    assert!(!c.is_poisoned());
    // Refused and not there: the error names the whole mailbox name.
    let mut c = conn(
        CAPS,
        vec![
            step("CREATE", &["$T NO Invalid mailbox name"]),
            step("LIST", &["$T OK done"]),
        ],
    )
    .await;
    let e = c.create("Old: 2019 mail").await.unwrap_err().to_string();
    assert!(
        e.contains("CREATE \"Old: 2019 mail\"") && e.contains("Invalid mailbox name"),
        "{e}"
    );
}

#[tokio::test]
async fn namespace_is_read_raw_and_the_connection_goes_on() {
    // Courier's answer, the prefix sent as a literal (RFC 3501 allows it anywhere a string is).
    let mut c = conn(
        "IMAP4rev1 NAMESPACE",
        vec![
            step(
                "NAMESPACE",
                &[
                    "* NAMESPACE (({6}",
                    "INBOX. \".\")) NIL ((\"#shared.\" \".\"))",
                    "$T OK NAMESPACE completed.",
                ],
            ),
            step("NOOP", &["$T OK noop"]),
        ],
    )
    .await;
    c.read_namespace().await.unwrap();
    let names = c.server_names(None);
    assert_eq!(names.prefix(), "INBOX.");
    assert_eq!(names.delimiter(), Some('.'));
    c.run("NOOP").await.unwrap();

    // A refused NAMESPACE leaves names as LIST gives them.
    let mut c = conn(
        "IMAP4rev1 NAMESPACE",
        vec![
            step("NAMESPACE", &["$T BAD not now"]),
            step("NOOP", &["$T OK noop"]),
        ],
    )
    .await;
    c.read_namespace().await.unwrap();
    assert_eq!(c.server_names(Some('/')).prefix(), "");
    c.run("NOOP").await.unwrap();
}

#[tokio::test]
async fn a_throttled_command_is_sent_again_after_the_wait_the_server_asks_for() {
    let mut c = conn(
        CAPS,
        vec![
            step(
                "SELECT",
                &["$T NO Request is throttled. Suggested Backoff Time: 20 milliseconds"],
            ),
            Step {
                expect: "SELECT",
                answer: select_answer(&[]),
                raw_then_close: None,
            },
            // A refusal after data was handed on is not retried.
            step(
                "UID FETCH",
                &[
                    "* 1 FETCH (UID 2 FLAGS ())",
                    "$T NO Request is throttled. Suggested Backoff Time: 20 milliseconds",
                ],
            ),
        ],
    )
    .await;
    let started = std::time::Instant::now();
    let sel = c.select("INBOX").await.unwrap();
    assert_eq!(sel.exists, 3);
    assert!(started.elapsed() >= Duration::from_millis(20));
    let mut seen = 0;
    let r = c
        .run_with("UID FETCH 1:* (UID FLAGS)", |_| {
            seen += 1;
            Ok(())
        })
        .await;
    assert!(matches!(r, Err(ImapError::Refused { .. })), "{r:?}");
    assert_eq!(seen, 1);
}
