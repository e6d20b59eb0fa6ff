//! A scripted peer for Gmail's documented IMAP limits, which no test server reproduces
//! (https://developers.google.com/gmail/imap/imap-smtp, "Bandwidth limits"; RFC 7888 for
//! LITERAL-, RFC 7889 for APPENDLIMIT): it announces `LITERAL-` (non-synchronizing literals
//! only up to 4,096 bytes) and `APPENDLIMIT`, and ends the session with `BYE [OVERQUOTA]` once
//! a day's download budget is spent, in the middle of a FETCH. One mailbox, INBOX, kept in
//! memory; Gmail's labels, X-GM-MSGID and CONDSTORE are in gmail_labels.rs.

use crate::support::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

const APPENDLIMIT: usize = 20_000;

/// The mailbox and the day's budget, shared with the server thread.
#[derive(Default)]
struct State {
    /// (uid, flags, CRLF bytes).
    messages: Vec<(u32, String, Vec<u8>)>,
    /// Body bytes the day allows; `None`: no limit.
    budget: Option<usize>,
    /// Body bytes sent today.
    spent: usize,
    /// What went wrong on the client's side (a rule of Gmail's broken), for the test to see.
    violations: Vec<String>,
}

fn uids_in(set: &str, all: &[u32]) -> Vec<u32> {
    let max = all.iter().copied().max().unwrap_or(0);
    let mut out = Vec::new();
    for part in set.split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        let parse = |x: &str| {
            if x == "*" {
                max
            } else {
                x.parse().unwrap_or(0)
            }
        };
        let (lo, hi) = (parse(a).min(parse(b)), parse(a).max(parse(b)));
        out.extend(all.iter().copied().filter(|u| (lo..=hi).contains(u)));
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn serve(listener: TcpListener, state: Arc<Mutex<State>>) {
    for stream in listener.incoming() {
        let Ok(mut out) = stream else { continue };
        let mut input = BufReader::new(out.try_clone().unwrap());
        let _ = out.write_all(b"* OK Gimap ready for requests from 127.0.0.1\r\n");
        let caps = format!(
            "IMAP4rev1 UNSELECT IDLE ID CHILDREN X-GM-EXT-1 UIDPLUS ENABLE MOVE LITERAL- SPECIAL-USE APPENDLIMIT={APPENDLIMIT}"
        );
        let mut line = String::new();
        loop {
            line.clear();
            if input.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let tag = line.split(' ').next().unwrap_or("*").to_string();
            let upper = line.to_ascii_uppercase();
            let mut st = state.lock().unwrap();
            let reply = if upper.contains(" LOGIN ") {
                format!("{tag} OK me@gmail.com authenticated (Success)\r\n")
            } else if upper.contains(" CAPABILITY") {
                format!("* CAPABILITY {caps}\r\n{tag} OK Thats all she wrote!\r\n")
            } else if upper.contains(" LIST ") {
                format!("* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n{tag} OK Success\r\n")
            } else if upper.contains(" STATUS ") {
                let next = st.messages.iter().map(|m| m.0).max().unwrap_or(0) + 1;
                format!(
                    "* STATUS \"INBOX\" (MESSAGES {} UIDNEXT {next} UIDVALIDITY 7)\r\n{tag} OK Success\r\n",
                    st.messages.len()
                )
            } else if upper.contains(" SELECT ") || upper.contains(" EXAMINE ") {
                let next = st.messages.iter().map(|m| m.0).max().unwrap_or(0) + 1;
                format!(
                    "* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen)\r\n* {} EXISTS\r\n* OK [UIDVALIDITY 7] UIDs valid.\r\n* OK [UIDNEXT {next}] Predicted next UID.\r\n{tag} OK [READ-WRITE] INBOX selected. (Success)\r\n",
                    st.messages.len()
                )
            } else if upper.starts_with(&format!("{} APPEND ", tag.to_ascii_uppercase())) {
                // `{n}` waits for "+"; `{n+}` is allowed only up to 4096 bytes (LITERAL-).
                let t = line.trim_end();
                let open = t.rfind('{').unwrap_or(t.len());
                let inner = &t[open + 1..t.len() - 1];
                let plus = inner.ends_with('+');
                let n: usize = inner.trim_end_matches('+').parse().unwrap_or(0);
                if plus && n > 4096 {
                    st.violations
                        .push(format!("non-synchronizing literal of {n} bytes"));
                    let _ =
                        out.write_all(format!("{tag} BAD [TOOBIG] literal too big\r\n").as_bytes());
                    break;
                }
                if n > APPENDLIMIT {
                    st.violations
                        .push(format!("APPEND of {n} bytes over APPENDLIMIT"));
                }
                if !plus {
                    let _ = out.write_all(b"+ go ahead\r\n");
                }
                let mut body = vec![0u8; n];
                input.read_exact(&mut body).unwrap();
                let mut rest = String::new();
                input.read_line(&mut rest).unwrap();
                let uid = st.messages.iter().map(|m| m.0).max().unwrap_or(0) + 1;
                st.messages.push((uid, "\\Seen".into(), body));
                format!("{tag} OK [APPENDUID 7 {uid}] (Success)\r\n")
            } else if upper.contains("BODY.PEEK[]") {
                let set = line.split_whitespace().nth(3).unwrap_or("");
                let all: Vec<u32> = st.messages.iter().map(|m| m.0).collect();
                let mut cut = false;
                for uid in uids_in(set, &all) {
                    let Some((seq, (_, flags, b))) =
                        st.messages.iter().enumerate().find(|(_, m)| m.0 == uid)
                    else {
                        continue;
                    };
                    if st.budget.is_some_and(|limit| st.spent + b.len() > limit) {
                        cut = true;
                        break;
                    }
                    let head = format!(
                        "* {} FETCH (UID {uid} FLAGS ({flags}) INTERNALDATE \"01-Jan-2024 00:00:00 +0000\" RFC822.SIZE {} BODY[] {{{}}}\r\n",
                        seq + 1,
                        b.len(),
                        b.len()
                    );
                    let mut bytes = head.into_bytes();
                    bytes.extend_from_slice(b);
                    bytes.extend_from_slice(b")\r\n");
                    let len = b.len();
                    let _ = out.write_all(&bytes);
                    st.spent += len;
                }
                if cut {
                    let _ = out.write_all(
                        b"* BYE [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)\r\n",
                    );
                    break;
                }
                format!("{tag} OK Success\r\n")
            } else if upper.contains(" FETCH ") {
                // Listings: UID and FLAGS (and what else is asked for that is not a body).
                let mut r = String::new();
                for (seq, (uid, flags, b)) in st.messages.iter().enumerate() {
                    r.push_str(&format!(
                        "* {} FETCH (UID {uid} FLAGS ({flags}) RFC822.SIZE {})\r\n",
                        seq + 1,
                        b.len()
                    ));
                }
                format!("{r}{tag} OK Success\r\n")
            } else if upper.contains(" LOGOUT") {
                let _ = out.write_all(
                    format!("* BYE LOGOUT Requested\r\n{tag} OK 73 good day (Success)\r\n")
                        .as_bytes(),
                );
                break;
            } else {
                format!("{tag} OK Success\r\n")
            };
            drop(st);
            if out.write_all(reply.as_bytes()).is_err() {
                break;
            }
        }
    }
}

struct Peer {
    state: Arc<Mutex<State>>,
    config: std::path::PathBuf,
    maildir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn peer() -> Peer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = Arc::new(Mutex::new(State::default()));
    let s = state.clone();
    std::thread::spawn(move || serve(listener, s));
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}/state\"\n[accounts.gmail]\nmaildir = \"{}\"\nconnections = 1\n[accounts.gmail.imap]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nuser = \"me@gmail.com\"\npassword = \"app-password\"\ntimeout_seconds = 5\n",
            dir.path().display(),
            maildir.display()
        ),
    )
    .unwrap();
    Peer {
        state,
        config,
        maildir,
        _dir: dir,
    }
}

#[test]
fn gmail_download_limit_stops_the_pull_and_the_next_day_finishes_it_without_duplicates() {
    let p = peer();
    {
        let mut st = p.state.lock().unwrap();
        for n in 1..=6u32 {
            st.messages
                .push((n, String::new(), message(n as usize, "INBOX", 20_000)));
        }
        // The day's budget covers two and a half messages.
        st.budget = Some(50_000);
    }
    let out = arctern_with(&p.config, &["sync"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("OVERQUOTA") && err.contains("bandwidth limits"),
        "{err}"
    );
    // What arrived whole before the BYE is kept.
    assert_eq!(local_files(&p.maildir).len(), 2, "{err}");
    // The next day: the rest, each message once.
    {
        let mut st = p.state.lock().unwrap();
        st.spent = 0;
        st.budget = None;
    }
    let out = stdout_ok(arctern_with(&p.config, &["sync"]), "the next day", "");
    assert!(out.contains("+4 ↓"), "{out}");
    let mut got: Vec<Vec<u8>> = local_messages(&p.maildir)
        .into_iter()
        .map(|m| m.body)
        .collect();
    let mut want: Vec<Vec<u8>> = (1..=6)
        .map(|n| to_lf(&message(n, "INBOX", 20_000)))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn gmail_literal_minus_and_appendlimit_are_kept_to() {
    let p = peer();
    make_maildir(&p.maildir);
    // 10 KB: more than LITERAL- allows without waiting; 30 KB: over APPENDLIMIT.
    write_local(
        &p.maildir,
        "1700000000.ten.host",
        &message(1, "INBOX", 10_000),
        "S",
    );
    write_local(
        &p.maildir,
        "1700000000.big.host",
        &message(2, "INBOX", 30_000),
        "S",
    );
    write_local(
        &p.maildir,
        "1700000000.small.host",
        &message(3, "INBOX", 500),
        "S",
    );
    let out = stdout_ok(arctern_with(&p.config, &["sync"]), "sync", "");
    assert!(out.contains("+2 ↑"), "{out}");
    assert!(
        out.contains("APPENDLIMIT) left alone: local 1700000000.big.host"),
        "{out}"
    );
    let st = p.state.lock().unwrap();
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    assert_eq!(st.messages.len(), 2);
}
