//! A scripted IMAP peer with Gmail's folder model, for what neither Dovecot nor Cyrus does
//! (https://developers.google.com/gmail/imap/imap-extensions, "IMAP Extensions"; RFC 6154 for
//! SPECIAL-USE; RFC 7162 for CONDSTORE): one store of messages, each with a 64-bit `X-GM-MSGID`
//! and a set of labels; every label is a folder with its own UIDs, "[Gmail]/All Mail" holds
//! every message, "Starred" the flagged ones; flags belong to the message, so a flag set in one
//! folder shows in all; CONDSTORE without QRESYNC (Gmail offers no QRESYNC); folder names in
//! the account's language (here German, as Gmail names them for a German account: "Alle
//! Nachrichten", "Gesendet", "Entwürfe", "Markiert"), so only SPECIAL-USE tells what they are.
//! With [`Identity::EmailId`] it offers RFC 8474's `OBJECTID` (EMAILID) instead of X-GM-EXT-1,
//! as Cyrus and Fastmail do.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// How the peer names a message across folders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Gmail's `X-GM-MSGID` (X-GM-EXT-1).
    GmailMsgId,
    /// RFC 8474's `EMAILID` (OBJECTID).
    EmailId,
}

/// A message of the store.
pub struct StoredMessage {
    /// X-GM-MSGID.
    pub msgid: u64,
    /// Flags, IMAP spelling, space-separated.
    pub flags: BTreeSet<String>,
    /// Bytes, CRLF.
    pub body: Vec<u8>,
    /// Its MODSEQ (bumped by every flag change).
    pub modseq: u64,
}

/// A folder: its name on the wire, special use and (UID, index into the store) members.
pub struct Folder {
    /// Wire name (modified UTF-7).
    pub name: String,
    /// `\All`, `\Sent`, ... or "" for a label.
    pub special: &'static str,
    /// Members in UID order.
    pub members: Vec<(u32, usize)>,
    /// Next UID.
    pub uidnext: u32,
    /// MODSEQ of the last membership change.
    pub changed: u64,
}

/// The account, shared between the test and the server thread.
pub struct GmailState {
    /// Identity scheme.
    pub identity: Identity,
    /// Every message.
    pub store: Vec<StoredMessage>,
    /// The folders (All Mail, Starred kept up to date by [`GmailState::add`] and
    /// [`GmailState::set_flags`]).
    pub folders: Vec<Folder>,
    /// The last MODSEQ given out.
    pub modseq: u64,
    /// Every command received (tags stripped), for the test to read.
    pub commands: Vec<String>,
    /// Full bodies sent (`BODY[]`).
    pub bodies_sent: usize,
}

/// The German names of Gmail's system folders, by special use.
pub const ALL_MAIL: &str = "[Gmail]/Alle Nachrichten";
/// `\Sent`.
pub const SENT: &str = "[Gmail]/Gesendet";
/// `\Drafts` ("Entwürfe", modified UTF-7).
pub const DRAFTS: &str = "[Gmail]/Entw&APw-rfe";
/// `\Flagged`.
pub const STARRED: &str = "[Gmail]/Markiert";
/// `\Junk` (outside All Mail, as at Gmail).
pub const SPAM: &str = "[Gmail]/Spam";

impl GmailState {
    fn new(identity: Identity) -> GmailState {
        let folder = |name: &str, special| Folder {
            name: name.into(),
            special,
            members: Vec::new(),
            uidnext: 1,
            changed: 1,
        };
        GmailState {
            identity,
            store: Vec::new(),
            folders: vec![
                folder("INBOX", ""),
                folder(ALL_MAIL, "\\All"),
                folder(SENT, "\\Sent"),
                folder(DRAFTS, "\\Drafts"),
                folder(STARRED, "\\Flagged"),
                folder(SPAM, "\\Junk"),
            ],
            modseq: 1,
            commands: Vec::new(),
            bodies_sent: 0,
        }
    }

    fn next_modseq(&mut self) -> u64 {
        self.modseq += 1;
        self.modseq
    }

    fn folder_mut(&mut self, name: &str) -> &mut Folder {
        if !self.folders.iter().any(|f| f.name == name) {
            self.folders.push(Folder {
                name: name.into(),
                special: "",
                members: Vec::new(),
                uidnext: 1,
                changed: 1,
            });
        }
        self.folders.iter_mut().find(|f| f.name == name).unwrap()
    }

    /// Gives message `index` the label `folder` (a new UID there); no-op if it has it. Its
    /// MODSEQ moves (a label is an attribute of the message at Gmail, and RFC 7162 §3.1 gives a
    /// message new in a mailbox a MODSEQ above the mailbox's last one).
    pub fn label(&mut self, index: usize, folder: &str) {
        let m = self.next_modseq();
        let f = self.folder_mut(folder);
        if f.members.iter().any(|(_, i)| *i == index) {
            return;
        }
        f.members.push((f.uidnext, index));
        f.uidnext += 1;
        f.changed = m;
        if let Some(msg) = self.store.get_mut(index) {
            msg.modseq = m;
        }
    }

    /// Takes the label `folder` from message `index`.
    pub fn unlabel(&mut self, index: usize, folder: &str) {
        let m = self.next_modseq();
        let f = self.folder_mut(folder);
        f.members.retain(|(_, i)| *i != index);
        f.changed = m;
    }

    /// A new message with `labels` (All Mail always, Starred when flagged); returns its index.
    pub fn add(&mut self, body: Vec<u8>, flags: &str, labels: &[&str]) -> usize {
        let modseq = self.next_modseq();
        let index = self.store.len();
        self.store.push(StoredMessage {
            msgid: 1_600_000_000_000_000_000 + index as u64 * 7919,
            flags: flags.split_whitespace().map(str::to_string).collect(),
            body,
            modseq,
        });
        self.label(index, ALL_MAIL);
        for l in labels {
            self.label(index, l);
        }
        self.starred_follows(index);
        index
    }

    /// A new message in Spam (which All Mail does not show); returns its index.
    pub fn add_spam(&mut self, body: Vec<u8>) -> usize {
        let modseq = self.next_modseq();
        let index = self.store.len();
        self.store.push(StoredMessage {
            msgid: 1_700_000_000_000_000_000 + index as u64,
            flags: BTreeSet::new(),
            body,
            modseq,
        });
        self.label(index, SPAM);
        index
    }

    /// Replaces message `index`'s flags (every folder sees them).
    pub fn set_flags(&mut self, index: usize, flags: &str) {
        let m = self.next_modseq();
        let msg = &mut self.store[index];
        msg.flags = flags.split_whitespace().map(str::to_string).collect();
        msg.modseq = m;
        self.starred_follows(index);
    }

    fn starred_follows(&mut self, index: usize) {
        let flagged = self.store[index].flags.contains("\\Flagged");
        let starred = self
            .folders
            .iter()
            .any(|f| f.name == STARRED && f.members.iter().any(|(_, i)| *i == index));
        if flagged && !starred {
            self.label(index, STARRED);
        } else if !flagged && starred {
            self.unlabel(index, STARRED);
        }
    }

    /// The members of folder `name`, in UID order.
    pub fn members(&self, name: &str) -> Vec<(u32, usize)> {
        self.folders
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.members.clone())
            .unwrap_or_default()
    }

    fn highestmodseq(&self, f: &Folder) -> u64 {
        f.members
            .iter()
            .map(|(_, i)| self.store[*i].modseq)
            .chain([f.changed])
            .max()
            .unwrap_or(1)
    }
}

/// A running peer.
pub struct FakeGmail {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its account.
    pub state: Arc<Mutex<GmailState>>,
}

impl FakeGmail {
    /// Starts the peer on a free loopback port.
    pub fn start(identity: Identity) -> FakeGmail {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(GmailState::new(identity)));
        let s = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                std::thread::spawn(move || session(stream, s));
            }
        });
        FakeGmail { port, state }
    }
}

/// The quoted strings and atoms of a command line after the tag and command words.
fn args(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.trim_end().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {}
            '"' => {
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => s.extend(chars.next()),
                        '"' => break,
                        c => s.push(c),
                    }
                }
                out.push(s);
            }
            c => {
                let mut s = String::from(c);
                while let Some(&c) = chars.peek() {
                    if c == ' ' {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                out.push(s);
            }
        }
    }
    out
}

fn uids_in(set: &str, members: &[(u32, usize)]) -> Vec<(usize, u32, usize)> {
    let max = members.iter().map(|m| m.0).max().unwrap_or(0);
    let parse = |x: &str| {
        if x == "*" {
            max
        } else {
            x.parse().unwrap_or(0)
        }
    };
    let mut wanted = BTreeSet::new();
    for part in set.split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        let (a, b) = (parse(a), parse(b));
        wanted.extend(a.min(b)..=a.max(b));
    }
    members
        .iter()
        .enumerate()
        .filter(|(_, (u, _))| wanted.contains(u))
        .map(|(seq, (u, i))| (seq + 1, *u, *i))
        .collect()
}

/// The header lines of `body` named in `fields` (upper case), and the empty line.
fn header_fields(body: &[u8], fields: &[String]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut out = String::new();
    for line in head.split("\r\n") {
        let name = line.split(':').next().unwrap_or("").to_ascii_uppercase();
        if fields.contains(&name) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn literal(out: &mut Vec<u8>, label: &str, data: &[u8]) {
    out.extend_from_slice(format!(" {label} {{{}}}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
}

fn fetch_reply(
    st: &mut GmailState,
    folder: &str,
    line: &str,
    tag: &str,
    condstore: bool,
) -> Vec<u8> {
    let upper = line.to_ascii_uppercase();
    let set = args(line).get(3).cloned().unwrap_or_default();
    let since: Option<u64> = upper
        .split("CHANGEDSINCE ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.trim().parse().ok());
    let members = st.members(folder);
    let mut out = Vec::new();
    for (seq, uid, index) in uids_in(&set, &members) {
        let m = &st.store[index];
        if since.is_some_and(|s| m.modseq <= s) {
            continue;
        }
        out.extend_from_slice(format!("* {seq} FETCH (UID {uid}").as_bytes());
        if upper.contains("FLAGS") {
            let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
            out.extend_from_slice(format!(" FLAGS ({})", flags.join(" ")).as_bytes());
        }
        if condstore && (since.is_some() || upper.contains("MODSEQ")) {
            out.extend_from_slice(format!(" MODSEQ ({})", m.modseq).as_bytes());
        }
        if upper.contains("INTERNALDATE") {
            out.extend_from_slice(b" INTERNALDATE \"02-Nov-2026 10:00:00 +0000\"");
        }
        if upper.contains("RFC822.SIZE") {
            out.extend_from_slice(format!(" RFC822.SIZE {}", m.body.len()).as_bytes());
        }
        match st.identity {
            Identity::GmailMsgId if upper.contains("X-GM-MSGID") => {
                out.extend_from_slice(format!(" X-GM-MSGID {}", m.msgid).as_bytes())
            }
            Identity::EmailId if upper.contains("EMAILID") => {
                out.extend_from_slice(format!(" EMAILID (M{:x})", m.msgid).as_bytes())
            }
            _ => {}
        }
        if let Some(rest) = upper.split("BODY.PEEK[HEADER.FIELDS (").nth(1) {
            let list = rest.split(')').next().unwrap_or("");
            let fields: Vec<String> = list.split_whitespace().map(str::to_string).collect();
            literal(
                &mut out,
                &format!("BODY[HEADER.FIELDS ({list})]"),
                &header_fields(&m.body, &fields),
            );
        }
        if upper.contains("BODY.PEEK[HEADER]") {
            let text = &m.body;
            let end = text
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(text.len(), |i| i + 4);
            literal(&mut out, "BODY[HEADER]", &text[..end]);
        }
        if upper.contains("BODY.PEEK[]") {
            literal(&mut out, "BODY[]", &m.body.clone());
            st.bodies_sent += 1;
        }
        out.extend_from_slice(b")\r\n");
    }
    out.extend_from_slice(format!("{tag} OK Success\r\n").as_bytes());
    out
}

fn session(stream: std::net::TcpStream, state: Arc<Mutex<GmailState>>) {
    let mut out = stream.try_clone().unwrap();
    let mut input = BufReader::new(stream);
    let _ = out.write_all(b"* OK Gimap ready for requests from 127.0.0.1\r\n");
    let identity = state.lock().unwrap().identity;
    let caps = format!(
        "IMAP4rev1 UNSELECT IDLE NAMESPACE ID CHILDREN {} UIDPLUS ENABLE MOVE CONDSTORE LITERAL- SPECIAL-USE APPENDLIMIT=35651584",
        match identity {
            Identity::GmailMsgId => "X-GM-EXT-1",
            Identity::EmailId => "OBJECTID",
        }
    );
    let mut selected = String::new();
    let mut condstore = false;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut words = line.split_whitespace();
        let tag = words.next().unwrap_or("*").to_string();
        let mut command = words.next().unwrap_or("").to_ascii_uppercase();
        if command == "UID" {
            command = format!("UID {}", words.next().unwrap_or("").to_ascii_uppercase());
        }
        let a = args(&line);
        let mut st = state.lock().unwrap();
        st.commands
            .push(line.trim_end().trim_start_matches(&tag).trim().to_string());
        let reply: Vec<u8> = match command.as_str() {
            "CAPABILITY" => {
                format!("* CAPABILITY {caps}\r\n{tag} OK Thats all she wrote!\r\n").into()
            }
            "LOGIN" => format!("{tag} OK me@gmail.com authenticated (Success)\r\n").into(),
            "NAMESPACE" => {
                format!("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n{tag} OK Success\r\n").into()
            }
            "ENABLE" => {
                condstore |= line.to_ascii_uppercase().contains("CONDSTORE");
                // No QRESYNC at Gmail: only CONDSTORE is enabled.
                format!(
                    "* ENABLED{}\r\n{tag} OK Success\r\n",
                    if condstore { " CONDSTORE" } else { "" }
                )
                .into()
            }
            "LIST" => {
                let pattern = a.get(3).cloned().unwrap_or_default();
                let mut r = String::new();
                if pattern == "*" || pattern == "[Gmail]" {
                    r.push_str("* LIST (\\HasChildren \\Noselect) \"/\" \"[Gmail]\"\r\n");
                }
                for f in &st.folders {
                    if pattern == "*" || pattern == f.name {
                        let attrs = format!("\\HasNoChildren {}", f.special);
                        r.push_str(&format!(
                            "* LIST ({}) \"/\" \"{}\"\r\n",
                            attrs.trim(),
                            f.name
                        ));
                    }
                }
                format!("{r}{tag} OK Success\r\n").into()
            }
            "STATUS" => {
                let name = a.get(2).cloned().unwrap_or_default();
                match st.folders.iter().find(|f| f.name == name) {
                    Some(f) => format!(
                        "* STATUS \"{}\" (MESSAGES {} UIDNEXT {} UIDVALIDITY 11 HIGHESTMODSEQ {})\r\n{tag} OK Success\r\n",
                        f.name,
                        f.members.len(),
                        f.uidnext,
                        st.highestmodseq(f)
                    )
                    .into(),
                    None => format!("{tag} NO [NONEXISTENT] Unknown Mailbox: {name}\r\n").into(),
                }
            }
            "SELECT" | "EXAMINE" => {
                let name = a.get(2).cloned().unwrap_or_default();
                match st.folders.iter().find(|f| f.name == name) {
                    Some(f) => {
                        selected = name;
                        format!(
                            "* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen $NotPhishing $Phishing)\r\n* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen \\*)] Flags permitted.\r\n* OK [UIDVALIDITY 11] UIDs valid.\r\n* {} EXISTS\r\n* 0 RECENT\r\n* OK [UIDNEXT {}] Predicted next UID.\r\n* OK [HIGHESTMODSEQ {}]\r\n{tag} OK [READ-WRITE] {} selected. (Success)\r\n",
                            f.members.len(),
                            f.uidnext,
                            st.highestmodseq(f),
                            f.name
                        )
                        .into()
                    }
                    None => format!("{tag} NO [NONEXISTENT] Unknown Mailbox: {name}\r\n").into(),
                }
            }
            "CREATE" => {
                let name = a.get(2).cloned().unwrap_or_default();
                st.folder_mut(&name);
                format!("{tag} OK Success\r\n").into()
            }
            "UID FETCH" => {
                let folder = selected.clone();
                fetch_reply(&mut st, &folder, &line, &tag, condstore)
            }
            "UID STORE" => {
                let set = a.get(3).cloned().unwrap_or_default();
                let op = a.get(4).cloned().unwrap_or_default().to_ascii_uppercase();
                let list = line
                    .rsplit('(')
                    .next()
                    .unwrap_or("")
                    .trim_end()
                    .trim_end_matches(')');
                let given: BTreeSet<String> = list.split_whitespace().map(str::to_string).collect();
                let members = st.members(&selected);
                let mut r = String::new();
                for (seq, uid, index) in uids_in(&set, &members) {
                    let mut flags = st.store[index].flags.clone();
                    if op.starts_with('+') {
                        flags.extend(given.iter().cloned());
                    } else if op.starts_with('-') {
                        flags.retain(|f| !given.contains(f));
                    } else {
                        flags = given.clone();
                    }
                    let joined: Vec<String> = flags.into_iter().collect();
                    st.set_flags(index, &joined.join(" "));
                    r.push_str(&format!(
                        "* {seq} FETCH (UID {uid} FLAGS ({}) MODSEQ ({}))\r\n",
                        joined.join(" "),
                        st.store[index].modseq
                    ));
                }
                format!("{r}{tag} OK Success\r\n").into()
            }
            "UID EXPUNGE" | "EXPUNGE" => {
                // Gmail: expunging from a label removes the label; from All Mail, the message.
                let members = st.members(&selected);
                let set = match command.as_str() {
                    "UID EXPUNGE" => a.get(3).cloned().unwrap_or_default(),
                    _ => "1:*".into(),
                };
                let mut r = String::new();
                let mut gone = Vec::new();
                for (seq, _, index) in uids_in(&set, &members) {
                    if st.store[index].flags.contains("\\Deleted") {
                        gone.push((seq, index));
                    }
                }
                for (seq, index) in gone.iter().rev() {
                    let folder = selected.clone();
                    st.unlabel(*index, &folder);
                    let mut flags = st.store[*index].flags.clone();
                    flags.remove("\\Deleted");
                    let joined: Vec<String> = flags.into_iter().collect();
                    st.set_flags(*index, &joined.join(" "));
                    r.push_str(&format!("* {seq} EXPUNGE\r\n"));
                }
                format!("{r}{tag} OK Success\r\n").into()
            }
            "APPEND" => {
                let folder = a.get(2).cloned().unwrap_or_default();
                let t = line.trim_end();
                let open = t.rfind('{').unwrap_or(t.len());
                let inner = &t[(open + 1).min(t.len())..t.len().saturating_sub(1)];
                let plus = inner.ends_with('+');
                let n: usize = inner.trim_end_matches('+').parse().unwrap_or(0);
                if !plus {
                    let _ = out.write_all(b"+ go ahead\r\n");
                }
                let mut body = vec![0u8; n];
                drop(st);
                if input.read_exact(&mut body).is_err() {
                    return;
                }
                let mut rest = String::new();
                let _ = input.read_line(&mut rest);
                let mut st = state.lock().unwrap();
                let flags = t
                    .split_once('(')
                    .and_then(|(_, r)| r.split_once(')'))
                    .map_or("", |(f, _)| f)
                    .to_string();
                let labels: Vec<&str> = if folder == ALL_MAIL {
                    vec![]
                } else {
                    vec![folder.as_str()]
                };
                let index = st.add(body, &flags, &labels);
                let uid = st
                    .members(&folder)
                    .iter()
                    .find(|(_, i)| *i == index)
                    .map_or(0, |m| m.0);
                let reply = format!("{tag} OK [APPENDUID 11 {uid}] (Success)\r\n");
                drop(st);
                if out.write_all(reply.as_bytes()).is_err() {
                    return;
                }
                continue;
            }
            "LOGOUT" => {
                let _ = out.write_all(
                    format!("* BYE LOGOUT Requested\r\n{tag} OK 73 good day (Success)\r\n")
                        .as_bytes(),
                );
                return;
            }
            _ => format!("{tag} OK Success\r\n").into(),
        };
        drop(st);
        if out.write_all(&reply).is_err() {
            return;
        }
    }
}
