//! The IMAP store: connecting (TLS, STARTTLS, login) and the commands the engine needs, all behind
//! [`ImapConn`] so the protocol backend can change without touching the engine.
//!
//! async-imap provides the connection, framing, response parsing (imap-proto) and login. Every
//! command after login goes through [`ImapConn::run`], our raw-command helper, and never through
//! async-imap's typed calls: after a parse error those report *success with empty results*, which
//! a sync engine would read as "the server deleted everything". The helper demands the tagged OK
//! for its own tag, turns EOF, parse errors and timeouts into errors, and poisons the connection
//! after any of them so it cannot be used again.

mod connect;

pub use connect::connect;

use crate::model::{Evidence, Flags, Uid, UidValidity};
use async_imap::Session;
use async_imap::imap_proto::{
    self, AttributeValue, MailboxDatum, Response, ResponseCode, Status, rfc4315::UidSetMember,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Anything a session can run over: TCP, TLS over TCP, or (in tests) a pipe.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Transport for T {}

/// An IMAP failure. `retryable` says whether a later run may succeed without a config change.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// TCP connection failed.
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Cause.
        source: std::io::Error,
    },
    /// TLS setup or handshake failed (certificate not trusted, wrong name, ...).
    #[error("TLS with {host}: {message}")]
    Tls {
        /// Host.
        host: String,
        /// What failed.
        message: String,
    },
    /// The server refused the login.
    #[error("the server refused the login for {user} ({message})")]
    Auth {
        /// Login name.
        user: String,
        /// The server's text.
        message: String,
    },
    /// The configuration asks for something unsafe or impossible.
    #[error("{0}")]
    Config(String),
    /// No answer in time.
    #[error("timeout after {secs}s waiting for the answer to {command}")]
    Timeout {
        /// The command.
        command: String,
        /// Seconds waited.
        secs: u64,
    },
    /// The connection closed or failed mid-command.
    #[error("connection lost during {command}: {message}")]
    Connection {
        /// The command.
        command: String,
        /// What happened.
        message: String,
    },
    /// The server said NO or BAD.
    #[error("server refused {command}: {status:?} {text}")]
    Refused {
        /// The command.
        command: String,
        /// NO or BAD.
        status: String,
        /// The server's text.
        text: String,
    },
    /// The server's answer made no sense for the command (missing UIDVALIDITY, short listing).
    #[error("unexpected answer to {command}: {message}")]
    Protocol {
        /// The command.
        command: String,
        /// What was wrong.
        message: String,
    },
}

impl ImapError {
    /// True when a later run may succeed unchanged (network trouble), false for config, auth and
    /// refusals.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ImapError::Connect { .. } | ImapError::Timeout { .. } | ImapError::Connection { .. }
        )
    }
}

/// The server's own words from async-imap's text for a NO or BAD answer, which it writes as
/// `code: Some(Alert), info: Some("text")` (Rust debug notation): `ALERT: text`, or for a code
/// imap-proto does not know and leaves in the text (`info: Some("[AUTHENTICATIONFAILED] x")`)
/// `AUTHENTICATIONFAILED: x`. Text in any other form is kept as it is.
pub fn server_text(raw: &str) -> String {
    let info = raw
        .split_once("info: Some(\"")
        .and_then(|(_, rest)| rest.rsplit_once("\")"))
        .map(|(text, _)| text.replace("\\\"", "\"").replace("\\\\", "\\"));
    let code = raw
        .split_once("code: Some(")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(code, _)| code.trim().to_ascii_uppercase());
    match (code, info) {
        (Some(code), Some(info)) => format!("{code}: {}", info.trim()),
        (Some(code), None) => code,
        (None, Some(info)) => {
            let info = info.trim();
            match info.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
                Some((code, text)) if !code.is_empty() => format!("{code}: {}", text.trim()),
                _ => info.to_string(),
            }
        }
        (None, None) if raw.trim().is_empty() || raw.contains("info: None") => {
            "no reason given".to_string()
        }
        (None, None) => raw.trim().to_string(),
    }
}

/// What SELECT reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectInfo {
    /// UIDVALIDITY (required).
    pub uidvalidity: UidValidity,
    /// UIDNEXT, when sent.
    pub uidnext: Option<u32>,
    /// Message count.
    pub exists: u32,
    /// HIGHESTMODSEQ, when CONDSTORE is active.
    pub highestmodseq: Option<u64>,
    /// What changed since the given HIGHESTMODSEQ, when SELECT carried QRESYNC parameters
    /// and the server accepted them.
    pub qresync: Option<QresyncDelta>,
}

/// Changes a QRESYNC SELECT reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QresyncDelta {
    /// The HIGHESTMODSEQ the changes are relative to.
    pub since: u64,
    /// Messages whose flags changed (or that arrived) since then.
    pub changed: BTreeMap<Uid, Flags>,
    /// UIDs expunged since then (VANISHED (EARLIER)).
    pub vanished: Vec<Uid>,
}

/// At most this many UIDs in all the VANISHED answers to one command: more than any real
/// mailbox holds, so a larger answer is a broken or hostile server, not an expunge.
const MAX_VANISHED: usize = 10_000_000;

/// The UIDs a sequence-set range covers, in either order: RFC 3501 §9 lets a range be written
/// `high:low`, and imap-proto keeps it as written.
fn range_bounds(range: &std::ops::RangeInclusive<u32>) -> (u32, u32) {
    let (a, b) = (*range.start(), *range.end());
    (a.min(b), a.max(b))
}

/// How many UIDs a range covers (never zero, never wrapping).
fn range_len(range: &std::ops::RangeInclusive<u32>) -> u64 {
    let (low, high) = range_bounds(range);
    u64::from(high - low) + 1
}

/// Appends the UIDs of a VANISHED response (reversed ranges included), refusing an answer that
/// adds up, over all its ranges and earlier answers to the same command, to more than
/// [`MAX_VANISHED`].
fn extend_vanished(
    out: &mut Vec<Uid>,
    ranges: &[std::ops::RangeInclusive<u32>],
    command: &str,
) -> Result<(), ImapError> {
    let added: u64 = ranges.iter().map(range_len).sum();
    if (out.len() as u64).saturating_add(added) > MAX_VANISHED as u64 {
        return Err(ImapError::Protocol {
            command: command.into(),
            message: format!(
                "VANISHED names {} UIDs in all, implausibly many",
                (out.len() as u64).saturating_add(added)
            ),
        });
    }
    for range in ranges {
        let (low, high) = range_bounds(range);
        out.extend((low..=high).map(Uid));
    }
    Ok(())
}

/// What STATUS reports; each item only when the server sent it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailboxStatus {
    /// MESSAGES.
    pub messages: Option<u32>,
    /// UIDNEXT.
    pub uidnext: Option<u32>,
    /// UIDVALIDITY.
    pub uidvalidity: Option<UidValidity>,
    /// HIGHESTMODSEQ.
    pub highestmodseq: Option<u64>,
}

/// The outcome of one APPEND: the new UID when the server says it (UIDPLUS), or the refusal.
pub type AppendResult = Result<Option<(UidValidity, Uid)>, ImapError>;

/// A LIST entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// The name as sent (modified UTF-7).
    pub wire_name: String,
    /// The hierarchy delimiter.
    pub delimiter: Option<char>,
    /// `\Noselect` or `\NonExistent`: not a mailbox.
    pub selectable: bool,
    /// Its special use (RFC 6154), when the server says.
    pub special_use: Option<crate::model::SpecialUse>,
}

/// A fetched message.
#[derive(Debug)]
pub struct FetchedMessage<'a> {
    /// Its UID.
    pub uid: Uid,
    /// Its flags at fetch time.
    pub flags: Option<Flags>,
    /// INTERNALDATE as sent.
    pub internal_date: Option<String>,
    /// RFC822.SIZE.
    pub size: Option<u32>,
    /// The full message (CRLF as on the wire), borrowed from the response buffer: it is never
    /// copied here, so a message sits in memory once.
    pub body: &'a [u8],
}

/// The response code of a tagged OK, where it matters to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoneCode {
    /// No code we use.
    None,
    /// `[READ-ONLY]` after SELECT.
    ReadOnly,
    /// `[APPENDUID v uid]` (RFC 4315) for a single message.
    AppendUid(UidValidity, Uid),
}

impl DoneCode {
    fn from_code(code: Option<&ResponseCode<'_>>) -> DoneCode {
        match code {
            Some(ResponseCode::ReadOnly) => DoneCode::ReadOnly,
            Some(ResponseCode::AppendUid(v, uids)) => match uids.as_slice() {
                [UidSetMember::Uid(u)] => DoneCode::AppendUid(UidValidity(*v), Uid(*u)),
                [UidSetMember::UidRange(r)] if r.start() == r.end() => {
                    DoneCode::AppendUid(UidValidity(*v), Uid(*r.start()))
                }
                _ => DoneCode::None,
            },
            _ => DoneCode::None,
        }
    }
}

/// A logged-in IMAP connection.
pub struct ImapConn {
    session: Session<Box<dyn Transport>>,
    timeout: Duration,
    capabilities: BTreeSet<String>,
    poisoned: bool,
    qresync: bool,
}

/// Quotes a string for IMAP (RFC 3501 quoted). Names reaching here are validated: no CR, LF, NUL.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Formats UIDs as compact sequence sets (`1:4,7,9:12`), at most `max_ranges` ranges per set.
pub fn uid_sets(uids: &[Uid], max_ranges: usize) -> Vec<String> {
    let mut sorted: Vec<u32> = uids.iter().map(|u| u.0).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for u in sorted {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == u => *end = u,
            _ => ranges.push((u, u)),
        }
    }
    ranges
        .chunks(max_ranges.max(1))
        .map(|chunk| {
            chunk
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}:{b}")
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// Formats a time as an IMAP date-time (`"07-Mar-2024 09:05:00 +0000"`), for APPEND.
pub fn format_internal_date(t: std::time::SystemTime) -> Option<String> {
    let ts = jiff::Timestamp::try_from(t).ok()?;
    Some(
        ts.to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%d-%b-%Y %H:%M:%S +0000")
            .to_string(),
    )
}

/// Parses an IMAP date-time (`" 7-Mar-2024 09:05:00 -0700"`).
pub fn parse_internal_date(s: &str) -> Option<std::time::SystemTime> {
    let s = s.trim();
    let padded = if s.find('-') == Some(1) {
        format!("0{s}")
    } else {
        s.to_string()
    };
    let z = jiff::fmt::strtime::parse("%d-%b-%Y %H:%M:%S %z", &padded)
        .ok()?
        .to_timestamp()
        .ok()?;
    Some(std::time::SystemTime::from(z))
}

fn status_name(s: &Status) -> &'static str {
    match s {
        Status::Ok => "OK",
        Status::No => "NO",
        Status::Bad => "BAD",
        Status::PreAuth => "PREAUTH",
        Status::Bye => "BYE",
    }
}

fn flags_of(attrs: &[AttributeValue<'_>]) -> Option<Flags> {
    attrs.iter().find_map(|a| match a {
        AttributeValue::Flags(f) => Some(Flags::from_imap(f.iter().map(|s| s.as_ref()))),
        _ => None,
    })
}

fn uid_of(attrs: &[AttributeValue<'_>]) -> Option<Uid> {
    attrs.iter().find_map(|a| match a {
        AttributeValue::Uid(u) => Some(Uid(*u)),
        _ => None,
    })
}

impl ImapConn {
    fn new(session: Session<Box<dyn Transport>>, timeout: Duration) -> ImapConn {
        ImapConn {
            session,
            timeout,
            capabilities: BTreeSet::new(),
            poisoned: false,
            qresync: false,
        }
    }

    /// The server's capabilities after login, upper-cased.
    pub fn capabilities(&self) -> &BTreeSet<String> {
        &self.capabilities
    }

    /// True when the server announced `cap` (case-insensitive).
    pub fn has(&self, cap: &str) -> bool {
        self.capabilities.contains(&cap.to_ascii_uppercase())
    }

    fn ensure_usable(&self, label: &str) -> Result<(), ImapError> {
        if self.poisoned {
            return Err(ImapError::Connection {
                command: label.to_string(),
                message: "connection unusable after an earlier error".into(),
            });
        }
        Ok(())
    }

    /// True after an error that leaves the connection unusable; reconnect.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    fn poison<T>(&mut self, e: ImapError) -> Result<T, ImapError> {
        self.poisoned = true;
        Err(e)
    }

    /// Sends `command` and hands every untagged response to `each` until the tagged answer,
    /// which is returned. NO/BAD become [`ImapError::Refused`]; EOF, parse errors and timeouts
    /// poison the connection.
    pub async fn run_with(
        &mut self,
        command: &str,
        mut each: impl FnMut(&Response<'_>) -> Result<(), ImapError>,
    ) -> Result<DoneCode, ImapError> {
        let label: String = command.split(' ').take(2).collect::<Vec<_>>().join(" ");
        self.ensure_usable(&label)?;
        tracing::debug!(command = %command.chars().take(200).collect::<String>(), "imap send");
        let sent = send_outcome(
            &label,
            self.timeout,
            tokio::time::timeout(self.timeout, self.session.run_command(command)).await,
        );
        let tag = match sent {
            Ok(tag) => tag,
            Err(e) => return self.poison(e),
        };
        self.read_until_tagged(&tag, &label, &mut each).await
    }

    /// Reads the next response and hands it to `f`; EOF, a parse error or a timeout poison the
    /// connection instead.
    async fn with_next_response<R>(
        &mut self,
        label: &str,
        f: impl FnOnce(&Response<'_>) -> R,
    ) -> Result<R, ImapError> {
        let next = match tokio::time::timeout(self.timeout, self.session.read_response()).await {
            Ok(r) => r,
            Err(_) => {
                return self.poison(ImapError::Timeout {
                    command: label.to_string(),
                    secs: self.timeout.as_secs(),
                });
            }
        };
        match next {
            Ok(Some(r)) => Ok(f(r.parsed())),
            Ok(None) => self.poison(ImapError::Connection {
                command: label.to_string(),
                message: "server closed the connection".into(),
            }),
            Err(e) => self.poison(ImapError::Connection {
                command: label.to_string(),
                message: format!("unreadable response: {}", truncate(&e.to_string(), 300)),
            }),
        }
    }

    async fn read_until_tagged(
        &mut self,
        tag: &imap_proto::RequestId,
        label: &str,
        each: &mut impl FnMut(&Response<'_>) -> Result<(), ImapError>,
    ) -> Result<DoneCode, ImapError> {
        enum Step {
            Done(Result<DoneCode, ImapError>),
            Fail(ImapError),
            Next,
        }
        loop {
            let step = self
                .with_next_response(label, |r| match r {
                    Response::Done {
                        tag: t,
                        status,
                        outcome,
                    } if t == tag => Step::Done(match status {
                        Status::Ok => Ok(DoneCode::from_code(outcome.code.as_ref())),
                        other => Err(ImapError::Refused {
                            command: label.to_string(),
                            status: status_name(other).to_string(),
                            text: outcome.information.as_deref().unwrap_or("").to_string(),
                        }),
                    }),
                    Response::Done { .. } => Step::Fail(ImapError::Protocol {
                        command: label.to_string(),
                        message: "tagged answer for another command".into(),
                    }),
                    Response::Data {
                        status: Status::Bye,
                        outcome,
                    } => Step::Fail(ImapError::Connection {
                        command: label.to_string(),
                        message: format!(
                            "server said BYE: {}",
                            outcome.information.as_deref().unwrap_or("")
                        ),
                    }),
                    // An error from `each` leaves the stream mid-answer: the connection is done.
                    other => match each(other) {
                        Ok(()) => Step::Next,
                        Err(e) => Step::Fail(e),
                    },
                })
                .await?;
            match step {
                Step::Done(result) => return result,
                Step::Fail(e) => return self.poison(e),
                Step::Next => {}
            }
        }
    }

    /// Runs a command whose untagged answers do not matter.
    pub async fn run(&mut self, command: &str) -> Result<DoneCode, ImapError> {
        self.run_with(command, |_| Ok(())).await
    }

    async fn refresh_capabilities(&mut self) -> Result<(), ImapError> {
        let mut caps = BTreeSet::new();
        self.run_with("CAPABILITY", |r| {
            if let Response::Capabilities(list) = r {
                for c in list {
                    caps.insert(match c {
                        imap_proto::Capability::Imap4rev1 => "IMAP4REV1".to_string(),
                        imap_proto::Capability::Auth(a) => {
                            format!("AUTH={}", a.to_ascii_uppercase())
                        }
                        imap_proto::Capability::Atom(a) => a.to_ascii_uppercase(),
                    });
                }
            }
            Ok(())
        })
        .await?;
        self.capabilities = caps;
        Ok(())
    }

    /// Turns on CONDSTORE (RFC 7162 §3.1) when the server has it, so SELECT reports
    /// HIGHESTMODSEQ and the server tracks per-message modification sequences from now on.
    pub async fn enable_condstore(&mut self) -> Result<(), ImapError> {
        if self.has("QRESYNC") && self.has("ENABLE") {
            // QRESYNC implies CONDSTORE (RFC 7162 §3.2.3) and adds VANISHED for expunges.
            self.run("ENABLE QRESYNC").await?;
            self.qresync = true;
        } else if self.has("CONDSTORE") && self.has("ENABLE") {
            self.run("ENABLE CONDSTORE").await?;
        }
        Ok(())
    }

    /// Switches the connection to COMPRESS=DEFLATE (RFC 4978). Consumes the connection because
    /// the stream underneath is replaced.
    pub async fn compress(self) -> Result<ImapConn, ImapError> {
        let ImapConn {
            session,
            timeout,
            capabilities,
            poisoned,
            qresync,
        } = self;
        let compressed = tokio::time::timeout(
            timeout,
            session.compress(|s| Box::new(s) as Box<dyn Transport>),
        )
        .await
        .map_err(|_| ImapError::Timeout {
            command: "COMPRESS DEFLATE".into(),
            secs: timeout.as_secs(),
        })?
        .map_err(|e| ImapError::Refused {
            command: "COMPRESS DEFLATE".into(),
            status: "NO".into(),
            text: e.to_string(),
        })?;
        Ok(ImapConn {
            session: compressed,
            timeout,
            capabilities,
            poisoned,
            qresync,
        })
    }

    /// True when QRESYNC was enabled on this connection.
    pub fn qresync(&self) -> bool {
        self.qresync
    }

    /// UIDs and flags of messages changed since `modseq` (CONDSTORE `CHANGEDSINCE`, RFC 7162
    /// §3.1.4), and with QRESYNC the UIDs expunged since (`VANISHED (EARLIER)`, §3.2.6). New
    /// messages count as changed. Without QRESYNC the expunged list is `None`: unknown.
    pub async fn fetch_changed(
        &mut self,
        modseq: u64,
    ) -> Result<(BTreeMap<Uid, Flags>, Option<Vec<Uid>>), ImapError> {
        let mut changed = BTreeMap::new();
        let mut vanished = Vec::new();
        let qresync = self.qresync;
        let command = if qresync {
            format!("UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
        } else {
            format!("UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE {modseq})")
        };
        self.run_with(&command, |r| {
            match r {
                Response::Fetch(_, attrs) => {
                    if let (Some(u), Some(f)) = (uid_of(attrs), flags_of(attrs)) {
                        changed.insert(u, f);
                    }
                }
                Response::Vanished { uids, .. } => {
                    extend_vanished(&mut vanished, uids, "UID FETCH CHANGEDSINCE")?;
                }
                _ => {}
            }
            Ok(())
        })
        .await?;
        Ok((changed, qresync.then_some(vanished)))
    }

    /// STATUS of a mailbox: (MESSAGES, UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ when CONDSTORE).
    pub async fn status(&mut self, wire_name: &str) -> Result<MailboxStatus, ImapError> {
        let mut st = MailboxStatus::default();
        let items = if self.has("CONDSTORE") {
            "(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"
        } else {
            "(MESSAGES UIDNEXT UIDVALIDITY)"
        };
        self.run_with(&format!("STATUS {} {items}", quote(wire_name)), |r| {
            if let Response::MailboxData(MailboxDatum::Status { status, .. }) = r {
                for a in status {
                    match a {
                        imap_proto::StatusAttribute::Messages(n) => st.messages = Some(*n),
                        imap_proto::StatusAttribute::UidNext(n) => st.uidnext = Some(*n),
                        imap_proto::StatusAttribute::UidValidity(n) => {
                            st.uidvalidity = Some(UidValidity(*n))
                        }
                        imap_proto::StatusAttribute::HighestModSeq(n) => {
                            st.highestmodseq = Some(*n)
                        }
                        _ => {}
                    }
                }
            }
            Ok(())
        })
        .await?;
        Ok(st)
    }

    /// Lists all mailboxes (`LIST "" "*"`).
    pub async fn list(&mut self) -> Result<Vec<ListEntry>, ImapError> {
        let mut out = Vec::new();
        self.run_with("LIST \"\" \"*\"", |r| {
            if let Response::MailboxData(MailboxDatum::List(l)) = r {
                let selectable = !l.name_attributes.iter().any(|a| {
                    matches!(
                        a,
                        imap_proto::NameAttribute::NoSelect
                    ) || matches!(a, imap_proto::NameAttribute::Extension(x) if x.eq_ignore_ascii_case("\\NonExistent"))
                });
                use crate::model::SpecialUse;
                let special_use = l.name_attributes.iter().find_map(|a| match a {
                    imap_proto::NameAttribute::Sent => Some(SpecialUse::Sent),
                    imap_proto::NameAttribute::Drafts => Some(SpecialUse::Drafts),
                    imap_proto::NameAttribute::Trash => Some(SpecialUse::Trash),
                    imap_proto::NameAttribute::Junk => Some(SpecialUse::Junk),
                    imap_proto::NameAttribute::Archive => Some(SpecialUse::Archive),
                    _ => None,
                });
                out.push(ListEntry {
                    wire_name: l.name.to_string(),
                    delimiter: l.delimiter.as_ref().and_then(|d| d.chars().next()),
                    selectable,
                    special_use,
                });
            }
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Creates a mailbox.
    pub async fn create(&mut self, wire_name: &str) -> Result<(), ImapError> {
        self.run(&format!("CREATE {}", quote(wire_name))).await?;
        Ok(())
    }

    /// Selects a mailbox read-write; UIDVALIDITY is required.
    pub async fn select(&mut self, wire_name: &str) -> Result<SelectInfo, ImapError> {
        self.select_with(wire_name, None).await
    }

    /// SELECT, with QRESYNC parameters (RFC 7162 §3.2.5) when `known` gives the UIDVALIDITY and
    /// HIGHESTMODSEQ of the last completed sync and QRESYNC is enabled: the server then reports,
    /// inside the SELECT, the UIDs expunged since (`VANISHED (EARLIER)`) and the flags of
    /// messages changed since, saving the separate `UID FETCH … CHANGEDSINCE`. The delta is in
    /// [`SelectInfo::qresync`], and only when the server accepted the parameters (same
    /// UIDVALIDITY); otherwise it is `None` and the caller falls back.
    pub async fn select_with(
        &mut self,
        wire_name: &str,
        known: Option<(UidValidity, u64)>,
    ) -> Result<SelectInfo, ImapError> {
        let mut uidvalidity = None;
        let mut uidnext = None;
        let mut exists = None;
        let mut highestmodseq = None;
        let known = known.filter(|_| self.qresync);
        let mut changed = BTreeMap::new();
        let mut vanished = Vec::new();
        let command = match known {
            Some((v, m)) => format!("SELECT {} (QRESYNC ({} {m}))", quote(wire_name), v.0),
            None => format!("SELECT {}", quote(wire_name)),
        };
        let done = self
            .run_with(&command, |r| {
                match r {
                    Response::MailboxData(MailboxDatum::Exists(n)) => exists = Some(*n),
                    Response::Data { outcome, .. } => match &outcome.code {
                        Some(ResponseCode::UidValidity(v)) => uidvalidity = Some(*v),
                        Some(ResponseCode::UidNext(v)) => uidnext = Some(*v),
                        Some(ResponseCode::HighestModSeq(v)) => highestmodseq = Some(*v),
                        _ => {}
                    },
                    Response::Fetch(_, attrs) if known.is_some() => {
                        if let (Some(u), Some(f)) = (uid_of(attrs), flags_of(attrs)) {
                            changed.insert(u, f);
                        }
                    }
                    Response::Vanished { uids, .. } if known.is_some() => {
                        extend_vanished(&mut vanished, uids, "SELECT (QRESYNC)")?;
                    }
                    _ => {}
                }
                Ok(())
            })
            .await?;
        if done == DoneCode::ReadOnly {
            tracing::warn!(mailbox = wire_name, "server opened the mailbox read-only");
        }
        let (Some(uidvalidity), Some(exists)) = (uidvalidity, exists) else {
            return self.poison(ImapError::Protocol {
                command: format!("SELECT {wire_name}"),
                message: "no UIDVALIDITY or EXISTS in the answer".into(),
            });
        };
        let uidvalidity = UidValidity(uidvalidity);
        // The server ignores the parameters when the UIDVALIDITY differs: no delta then.
        let qresync = known
            .filter(|(v, _)| *v == uidvalidity)
            .map(|(_, since)| QresyncDelta {
                since,
                changed,
                vanished,
            });
        Ok(SelectInfo {
            uidvalidity,
            uidnext,
            exists,
            highestmodseq,
            qresync,
        })
    }

    /// Every UID and its flags in the selected mailbox. `exists` is the count SELECT reported:
    /// a listing with fewer messages than the server says it has is an error, never "deleted".
    pub async fn fetch_all_flags(
        &mut self,
        exists: u32,
    ) -> Result<BTreeMap<Uid, Flags>, ImapError> {
        let mut out = BTreeMap::new();
        if exists == 0 {
            return Ok(out);
        }
        let mut count = i64::from(exists);
        let mut bad = None;
        self.run_with("UID FETCH 1:* (UID FLAGS)", |r| {
            match r {
                Response::Fetch(_, attrs) => match (uid_of(attrs), flags_of(attrs)) {
                    (Some(u), Some(f)) => {
                        out.insert(u, f);
                    }
                    (Some(_), None) => {} // an unsolicited FETCH of something else
                    _ => bad = Some("FETCH without UID"),
                },
                Response::MailboxData(MailboxDatum::Exists(n)) => count = i64::from(*n),
                Response::Expunge(_) => count -= 1,
                Response::Vanished {
                    earlier: false,
                    uids,
                } => {
                    let gone: u64 = uids.iter().map(range_len).sum();
                    count = count.saturating_sub(i64::try_from(gone).unwrap_or(i64::MAX));
                }
                _ => {}
            }
            Ok(())
        })
        .await?;
        if let Some(message) = bad {
            return self.poison(ImapError::Protocol {
                command: "UID FETCH".into(),
                message: message.into(),
            });
        }
        if (out.len() as i64) < count {
            return self.poison(ImapError::Protocol {
                command: "UID FETCH".into(),
                message: format!(
                    "server listed {} of the {} messages it reports; refusing to treat the rest as deleted",
                    out.len(),
                    count
                ),
            });
        }
        Ok(out)
    }

    /// Size and Message-ID of messages with UIDs in `set` (a sequence set such as `1:*`).
    pub async fn fetch_evidence(&mut self, set: &str) -> Result<Vec<Evidence>, ImapError> {
        let mut out = Vec::new();
        self.run_with(
            &format!("UID FETCH {set} (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"),
            |r| {
                if let Response::Fetch(_, attrs) = r {
                    let uid = uid_of(attrs);
                    let size = attrs.iter().find_map(|a| match a {
                        AttributeValue::Rfc822Size(s) => Some(*s),
                        _ => None,
                    });
                    let header = attrs.iter().find_map(|a| match a {
                        AttributeValue::BodySection { data: Some(d), .. } => Some(d.as_ref()),
                        _ => None,
                    });
                    if let (Some(uid), Some(size)) = (uid, size) {
                        out.push(Evidence {
                            uid,
                            size,
                            message_id: header.and_then(crate::message::message_id),
                        });
                    }
                }
                Ok(())
            },
        )
        .await?;
        Ok(out)
    }

    /// RFC822.SIZE of the messages with UIDs in `uids` (those the server reports). Asked before
    /// downloading when the account has a `max_size`, so an oversized message is never fetched.
    pub async fn fetch_sizes(&mut self, uids: &[Uid]) -> Result<BTreeMap<Uid, u32>, ImapError> {
        let mut out = BTreeMap::new();
        for set in uid_sets(uids, 200) {
            self.run_with(&format!("UID FETCH {set} (UID RFC822.SIZE)"), |r| {
                if let Response::Fetch(_, attrs) = r
                    && let Some(uid) = uid_of(attrs)
                    && let Some(size) = attrs.iter().find_map(|a| match a {
                        AttributeValue::Rfc822Size(s) => Some(*s),
                        _ => None,
                    })
                {
                    out.insert(uid, size);
                }
                Ok(())
            })
            .await?;
        }
        Ok(out)
    }

    /// Fetches full messages with UIDs in `uids`, handing each to `each` as it arrives.
    pub async fn fetch_bodies(
        &mut self,
        uids: &[Uid],
        mut each: impl FnMut(FetchedMessage<'_>) -> Result<(), ImapError>,
    ) -> Result<(), ImapError> {
        for set in uid_sets(uids, 200) {
            self.run_with(
                &format!("UID FETCH {set} (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"),
                |r| {
                    let Response::Fetch(_, attrs) = r else {
                        return Ok(());
                    };
                    let Some(uid) = uid_of(attrs) else {
                        return Ok(());
                    };
                    let body = attrs.iter().find_map(|a| match a {
                        AttributeValue::BodySection {
                            section: None,
                            data,
                            ..
                        } => Some(data.as_deref().unwrap_or(b"")),
                        AttributeValue::Rfc822(data) => Some(data.as_deref().unwrap_or(b"")),
                        _ => None,
                    });
                    let Some(body) = body else {
                        return Ok(()); // a flag update riding along, not our body
                    };
                    each(FetchedMessage {
                        uid,
                        flags: flags_of(attrs),
                        internal_date: attrs.iter().find_map(|a| match a {
                            AttributeValue::InternalDate(d) => Some(d.to_string()),
                            _ => None,
                        }),
                        size: attrs.iter().find_map(|a| match a {
                            AttributeValue::Rfc822Size(s) => Some(*s),
                            _ => None,
                        }),
                        body,
                    })
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Adds (`add = true`) or removes flags on messages, silently.
    pub async fn store_flags(
        &mut self,
        uids: &[Uid],
        flags: &Flags,
        add: bool,
    ) -> Result<(), ImapError> {
        if uids.is_empty() || flags.is_empty() {
            return Ok(());
        }
        let op = if add {
            "+FLAGS.SILENT"
        } else {
            "-FLAGS.SILENT"
        };
        for set in uid_sets(uids, 200) {
            self.run(&format!("UID STORE {set} {op} {}", flags.to_imap_list()))
                .await?;
        }
        Ok(())
    }

    /// Marks messages `\Deleted` and expunges exactly them (UIDPLUS `UID EXPUNGE`). Without UIDPLUS
    /// a plain EXPUNGE runs only when `others_deleted` is false, so messages someone else marked
    /// are never expunged by us; returns whether the messages were expunged.
    pub async fn delete_messages(
        &mut self,
        uids: &[Uid],
        others_deleted: bool,
    ) -> Result<bool, ImapError> {
        if uids.is_empty() {
            return Ok(true);
        }
        let deleted: Flags = [crate::model::Flag::Deleted].into_iter().collect();
        self.store_flags(uids, &deleted, true).await?;
        if self.has("UIDPLUS") {
            for set in uid_sets(uids, 200) {
                self.run(&format!("UID EXPUNGE {set}")).await?;
            }
            Ok(true)
        } else if !others_deleted {
            self.run("EXPUNGE").await?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// APPENDs a message (CRLF bytes) with flags and internal date. Returns the new UID when the
    /// server says it (UIDPLUS APPENDUID, RFC 4315), with the UIDVALIDITY it belongs to.
    pub async fn append(
        &mut self,
        wire_name: &str,
        flags: &Flags,
        internal_date: Option<&str>,
        body: &[u8],
    ) -> Result<Option<(UidValidity, Uid)>, ImapError> {
        let label = "APPEND".to_string();
        self.ensure_usable(&label)?;
        let literal_plus = self.has("LITERAL+");
        let date = internal_date
            .map(|d| format!(" {}", quote(d)))
            .unwrap_or_default();
        let command = format!(
            "APPEND {} {}{} {{{}{}}}",
            quote(wire_name),
            flags.to_imap_list(),
            date,
            body.len(),
            if literal_plus { "+" } else { "" }
        );
        let sent = send_outcome(
            &label,
            self.timeout,
            tokio::time::timeout(self.timeout, self.session.run_command(&command)).await,
        );
        let tag = match sent {
            Ok(tag) => tag,
            Err(e) => return self.poison(e),
        };
        if !literal_plus {
            let next = tokio::time::timeout(self.timeout, self.session.read_response()).await;
            match next {
                Ok(Ok(Some(r))) => match r.parsed() {
                    Response::Continue(_) => {}
                    Response::Done {
                        status, outcome, ..
                    } => {
                        return Err(ImapError::Refused {
                            command: label,
                            status: status_name(status).to_string(),
                            text: outcome.information.as_deref().unwrap_or("").to_string(),
                        });
                    }
                    _ => {
                        return self.poison(ImapError::Protocol {
                            command: label,
                            message: "expected a continuation request".into(),
                        });
                    }
                },
                _ => {
                    return self.poison(ImapError::Connection {
                        command: label,
                        message: "no continuation request".into(),
                    });
                }
            }
        }
        let write = async {
            let stream = self.session.get_mut();
            stream.write_all(body).await?;
            stream.write_all(b"\r\n").await?;
            stream.flush().await
        };
        if let Err(e) = send_outcome(
            &label,
            self.timeout,
            tokio::time::timeout(self.timeout, write).await,
        ) {
            return self.poison(e);
        }
        let done = self
            .read_until_tagged(&tag, &label, &mut |_| Ok(()))
            .await?;
        if let DoneCode::AppendUid(validity, uid) = done {
            return Ok(Some((validity, uid)));
        }
        Ok(None)
    }

    /// APPENDs several messages. With MULTIAPPEND (RFC 3502) and LITERAL+ the whole batch is one
    /// APPEND command: one round trip, and one transaction on the server (Dovecot makes it
    /// durable once instead of once per message: about twice as fast as separate APPENDs). If
    /// the server refuses that (MULTIAPPEND is all or nothing), or has only LITERAL+ (RFC 7888),
    /// every message gets its own APPEND, pipelined: every command and literal is sent first,
    /// then the answers are read. Without LITERAL+, one at a time. Per message: `Ok(Some(uid))`
    /// with APPENDUID, `Ok(None)` without, `Err` when the server refused that message. A
    /// connection failure fails the whole call.
    pub async fn append_many(
        &mut self,
        wire_name: &str,
        items: &[(Flags, Option<String>, Vec<u8>)],
    ) -> Result<Vec<AppendResult>, ImapError> {
        if items.len() > 1
            && self.has("MULTIAPPEND")
            && self.has("LITERAL+")
            && let Some(results) = self.multiappend(wire_name, items).await?
        {
            return Ok(results);
        }
        if !self.has("LITERAL+") {
            let mut out = Vec::with_capacity(items.len());
            for (flags, date, body) in items {
                match self.append(wire_name, flags, date.as_deref(), body).await {
                    Err(e @ ImapError::Refused { .. }) => out.push(Err(e)),
                    other => out.push(Ok(other?)),
                }
            }
            return Ok(out);
        }
        let label = "APPEND".to_string();
        self.ensure_usable(&label)?;
        let mut tags = Vec::with_capacity(items.len());
        for (flags, date, body) in items {
            let date = date
                .as_deref()
                .map(|d| format!(" {}", quote(d)))
                .unwrap_or_default();
            let command = format!(
                "APPEND {} {}{} {{{}+}}",
                quote(wire_name),
                flags.to_imap_list(),
                date,
                body.len()
            );
            let send = async {
                let tag = self
                    .session
                    .run_command(&command)
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let stream = self.session.get_mut();
                stream.write_all(body).await?;
                stream.write_all(b"\r\n").await?;
                stream.flush().await?;
                Ok::<_, std::io::Error>(tag)
            };
            let sent = send_outcome(
                &label,
                self.timeout,
                tokio::time::timeout(self.timeout, send).await,
            );
            match sent {
                Ok(tag) => tags.push(tag),
                Err(e) => return self.poison(e),
            }
        }
        let mut out: Vec<Option<AppendResult>> = (0..items.len()).map(|_| None).collect();
        let mut remaining = items.len();
        while remaining > 0 {
            // (index of the APPEND answered, its result), or a reason to give up on the connection.
            let step = self
                .with_next_response(&label, |r| match r {
                    Response::Done {
                        tag,
                        status,
                        outcome,
                    } => match tags.iter().position(|t| t == tag) {
                        None => Err(ImapError::Protocol {
                            command: label.clone(),
                            message: "tagged answer for another command".into(),
                        }),
                        Some(i) => Ok(Some((
                            i,
                            match status {
                                Status::Ok => {
                                    Ok(match DoneCode::from_code(outcome.code.as_ref()) {
                                        DoneCode::AppendUid(v, u) => Some((v, u)),
                                        _ => None,
                                    })
                                }
                                other => Err(ImapError::Refused {
                                    command: label.clone(),
                                    status: status_name(other).to_string(),
                                    text: outcome.information.as_deref().unwrap_or("").to_string(),
                                }),
                            },
                        ))),
                    },
                    Response::Data {
                        status: Status::Bye,
                        ..
                    } => Err(ImapError::Connection {
                        command: label.clone(),
                        message: "server said BYE".into(),
                    }),
                    _ => Ok(None),
                })
                .await?;
            match step {
                Err(e) => return self.poison(e),
                Ok(Some((i, result))) => {
                    if out[i].is_none() {
                        remaining -= 1;
                    }
                    out[i] = Some(result);
                }
                Ok(None) => {}
            }
        }
        Ok(out.into_iter().map(|r| r.unwrap_or(Ok(None))).collect())
    }

    /// One MULTIAPPEND command for all `items`. `None` when the server refused it (NO or BAD):
    /// then nothing was stored (RFC 3502: all or nothing) and the caller appends one by one.
    async fn multiappend(
        &mut self,
        wire_name: &str,
        items: &[(Flags, Option<String>, Vec<u8>)],
    ) -> Result<Option<Vec<AppendResult>>, ImapError> {
        let label = "APPEND".to_string();
        self.ensure_usable(&label)?;
        let part = |flags: &Flags, date: &Option<String>, len: usize| {
            let date = date
                .as_deref()
                .map(|d| format!(" {}", quote(d)))
                .unwrap_or_default();
            format!("{}{} {{{}+}}", flags.to_imap_list(), date, len)
        };
        let (f0, d0, b0) = &items[0];
        let first = format!("APPEND {} {}", quote(wire_name), part(f0, d0, b0.len()));
        let send = async {
            let tag = self
                .session
                .run_command(&first)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let stream = self.session.get_mut();
            stream.write_all(b0).await?;
            for (flags, date, body) in &items[1..] {
                stream
                    .write_all(format!(" {}\r\n", part(flags, date, body.len())).as_bytes())
                    .await?;
                stream.write_all(body).await?;
            }
            stream.write_all(b"\r\n").await?;
            stream.flush().await?;
            Ok::<_, std::io::Error>(tag)
        };
        // The whole batch is on the wire before any answer: allow time for its size.
        let bytes: usize = items.iter().map(|i| i.2.len()).sum();
        let limit = self.timeout + Duration::from_secs((bytes / (1 << 20)) as u64);
        let tag = match send_outcome(&label, limit, tokio::time::timeout(limit, send).await) {
            Ok(tag) => tag,
            Err(e) => return self.poison(e),
        };
        type Outcome = Result<Option<(u32, Vec<u32>)>, ()>;
        let outcome: Outcome = loop {
            let step = self
                .with_next_response(&label, |r| match r {
                    Response::Done {
                        tag: t,
                        status,
                        outcome,
                    } if *t == tag => Some(match (status, &outcome.code) {
                        (Status::Ok, Some(ResponseCode::AppendUid(v, set))) => {
                            let mut uids = Vec::new();
                            for m in set {
                                match m {
                                    UidSetMember::Uid(u) => uids.push(*u),
                                    UidSetMember::UidRange(r) => uids.extend(r.clone()),
                                }
                            }
                            Ok(Some((*v, uids)))
                        }
                        (Status::Ok, _) => Ok(None),
                        _ => Err(()),
                    }),
                    Response::Data {
                        status: Status::Bye,
                        ..
                    } => Some(Err(())),
                    _ => None,
                })
                .await?;
            if let Some(o) = step {
                break o;
            }
        };
        match outcome {
            Ok(Some((v, uids))) if uids.len() == items.len() => Ok(Some(
                uids.into_iter()
                    .map(|u| Ok(Some((UidValidity(v), Uid(u)))))
                    .collect(),
            )),
            // Stored, but the UIDs are unknown (no UIDPLUS): the caller finds them by content.
            Ok(_) => Ok(Some(items.iter().map(|_| Ok(None)).collect())),
            Err(()) => {
                tracing::debug!("MULTIAPPEND refused; appending one by one");
                Ok(None)
            }
        }
    }

    /// Fetches full messages with UIDs ≥ `from` whose size is `size`, for finding an upload whose
    /// answer was lost. Returns (uid, bytes).
    pub async fn fetch_candidates(
        &mut self,
        from: u32,
        size: u32,
    ) -> Result<Vec<(Uid, Vec<u8>)>, ImapError> {
        let evidence = self.fetch_evidence(&format!("{}:*", from.max(1))).await?;
        let uids: Vec<Uid> = evidence
            .iter()
            .filter(|e| e.uid.0 >= from && e.size == size)
            .map(|e| e.uid)
            .collect();
        let mut out = Vec::new();
        if uids.is_empty() {
            return Ok(out);
        }
        self.fetch_bodies(&uids, |m| {
            out.push((m.uid, m.body.to_vec()));
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Waits until a mailbox stops growing: UIDNEXT unchanged over `settle` (at most `limit`).
    ///
    /// After a crash in the middle of pipelined APPENDs, the server may still be storing
    /// messages the dead connection sent: its commands sit in the server's receive buffer and
    /// are carried out after the client is gone. Recovery must look for copies only once that
    /// is over, or it uploads again what is about to appear.
    pub async fn wait_until_quiet(
        &mut self,
        wire_name: &str,
        settle: Duration,
        limit: Duration,
    ) -> Result<(), ImapError> {
        let started = std::time::Instant::now();
        let mut last = self.status(wire_name).await?.uidnext;
        let mut stable_since = std::time::Instant::now();
        while started.elapsed() < limit {
            tokio::time::sleep(settle / 4).await;
            let now = self.status(wire_name).await?.uidnext;
            if now != last {
                last = now;
                stable_since = std::time::Instant::now();
            } else if stable_since.elapsed() >= settle {
                break;
            }
        }
        Ok(())
    }

    /// Waits in IDLE (RFC 2177) on the selected folder for at most `max`: returns
    /// [`IdleOutcome::Changed`] as soon as the server reports new, expunged or changed messages,
    /// [`IdleOutcome::Timeout`] when `max` passes (callers re-issue IDLE well before the
    /// server's 30-minute limit), ending IDLE with DONE in both cases. `stop` ends it early
    /// (shutdown) as a timeout. A server without IDLE is an error.
    pub async fn idle_wait(
        &mut self,
        max: Duration,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<IdleOutcome, ImapError> {
        let label = "IDLE".to_string();
        if !self.has("IDLE") {
            return Err(ImapError::Protocol {
                command: label,
                message: "the server does not offer IDLE".into(),
            });
        }
        self.ensure_usable(&label)?;
        let sent = send_outcome(
            &label,
            self.timeout,
            tokio::time::timeout(self.timeout, self.session.run_command("IDLE")).await,
        );
        let tag = match sent {
            Ok(tag) => tag,
            Err(e) => return self.poison(e),
        };
        // Untagged answers may come before the continuation: they count as activity too.
        let mut changed = false;
        loop {
            let (cont, activity, refused) = self
                .with_next_response(&label, |r| match r {
                    Response::Continue { .. } => (true, false, None),
                    Response::Done {
                        status, outcome, ..
                    } => (
                        false,
                        false,
                        Some(outcome.information.as_deref().unwrap_or("").to_string())
                            .filter(|_| *status != Status::Ok),
                    ),
                    other => (false, is_mailbox_activity(other), None),
                })
                .await?;
            if let Some(text) = refused {
                return Err(ImapError::Refused {
                    command: label,
                    status: "NO".into(),
                    text,
                });
            }
            changed |= activity;
            if cont {
                break;
            }
        }
        let deadline = tokio::time::Instant::now() + max;
        while !changed {
            let next = tokio::select! {
                r = tokio::time::timeout_at(deadline, self.session.read_response()) => r,
                _ = stop.changed() => break,
            };
            match next {
                Err(_) => break, // the time is up: DONE below
                Ok(Ok(Some(r))) => {
                    if let Response::Data {
                        status: Status::Bye,
                        outcome,
                    } = r.parsed()
                    {
                        let message = format!(
                            "server said BYE: {}",
                            outcome.information.as_deref().unwrap_or("")
                        );
                        return self.poison(ImapError::Connection {
                            command: label,
                            message,
                        });
                    }
                    changed = is_mailbox_activity(r.parsed());
                }
                Ok(Ok(None)) => {
                    return self.poison(ImapError::Connection {
                        command: label,
                        message: "server closed the connection".into(),
                    });
                }
                Ok(Err(e)) => {
                    return self.poison(ImapError::Connection {
                        command: label,
                        message: format!("unreadable response: {}", truncate(&e.to_string(), 300)),
                    });
                }
            }
        }
        let done = async {
            let stream = self.session.get_mut();
            stream.write_all(b"DONE\r\n").await?;
            stream.flush().await
        };
        if let Err(e) = send_outcome(
            &label,
            self.timeout,
            tokio::time::timeout(self.timeout, done).await,
        ) {
            return self.poison(e);
        }
        self.read_until_tagged(&tag, &label, &mut |_| Ok(()))
            .await?;
        Ok(if changed {
            IdleOutcome::Changed
        } else {
            IdleOutcome::Timeout
        })
    }

    /// Logs out politely; errors are ignored (the run's result is already decided).
    pub async fn logout(mut self) {
        if !self.poisoned {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.run("LOGOUT")).await;
        }
    }
}

/// How an IDLE wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleOutcome {
    /// The server reported a change in the folder.
    Changed,
    /// The wait time passed (or a stop was asked for) without a change.
    Timeout,
}

/// True for the untagged answers that mean the selected folder changed: EXISTS, EXPUNGE,
/// FETCH (flags), VANISHED. (RECENT alone, OK/NO notices and CAPABILITY are not.)
fn is_mailbox_activity(r: &Response<'_>) -> bool {
    matches!(
        r,
        Response::MailboxData(MailboxDatum::Exists(_))
            | Response::Expunge(_)
            | Response::Fetch(..)
            | Response::Vanished { .. }
    )
}

/// Maps the outcome of a timed send: an I/O failure or a timeout becomes the error to poison
/// the connection with.
fn send_outcome<T, E: std::fmt::Display>(
    label: &str,
    limit: Duration,
    outcome: Result<Result<T, E>, tokio::time::error::Elapsed>,
) -> Result<T, ImapError> {
    match outcome {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ImapError::Connection {
            command: label.to_string(),
            message: e.to_string(),
        }),
        Err(_) => Err(ImapError::Timeout {
            command: label.to_string(),
            secs: limit.as_secs(),
        }),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_ranges_and_split() {
        let uids: Vec<Uid> = [1, 2, 3, 5, 7, 8, 9, 3].into_iter().map(Uid).collect();
        assert_eq!(uid_sets(&uids, 10), vec!["1:3,5,7:9"]);
        assert_eq!(uid_sets(&uids, 2), vec!["1:3,5", "7:9"]);
        assert!(uid_sets(&[], 5).is_empty());
    }

    #[test]
    fn internal_dates_round_trip() {
        let t = parse_internal_date(" 7-Mar-2024 09:05:00 -0700").unwrap();
        assert_eq!(
            format_internal_date(t).unwrap(),
            "07-Mar-2024 16:05:00 +0000"
        );
        assert!(parse_internal_date("garbage").is_none());
    }

    #[test]
    fn vanished_ranges_in_either_order_and_capped_in_all() {
        let mut out = Vec::new();
        // 7:5 is the same set as 5:7 (RFC 3501 §9); it used to be dropped or to wrap around.
        let ranges = [std::ops::RangeInclusive::new(7, 5), 9..=9];
        extend_vanished(&mut out, &ranges, "SELECT").unwrap();
        assert_eq!(out, vec![Uid(5), Uid(6), Uid(7), Uid(9)]);
        let reversed = std::ops::RangeInclusive::new(u32::MAX, 1);
        assert_eq!(range_len(&reversed), u64::from(u32::MAX));
        // Each range below the cap, together above it: refused as a whole.
        let mut out = Vec::new();
        let halves = [1..=6_000_000, 6_000_001..=12_000_000];
        let e = extend_vanished(&mut out, &halves, "SELECT").unwrap_err();
        assert!(e.to_string().contains("implausibly many"), "{e}");
        assert!(out.is_empty());
        // And across two answers to the same command.
        let mut out = Vec::new();
        extend_vanished(&mut out, &[1..=6_000_000], "SELECT").unwrap();
        assert!(extend_vanished(&mut out, &[4_000_000_000..=4_005_000_000], "SELECT").is_err());
    }

    #[test]
    fn server_text_reads_like_the_server_said_it() {
        assert_eq!(
            server_text(
                r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")"#
            ),
            "AUTHENTICATIONFAILED: Authentication failed."
        );
        assert_eq!(
            server_text(r#"code: Some(Alert), info: Some("Account \"x\" locked")"#),
            r#"ALERT: Account "x" locked"#
        );
        assert_eq!(
            server_text(r#"code: None, info: Some("Go away")"#),
            "Go away"
        );
        assert_eq!(server_text("code: None, info: None"), "no reason given");
        assert_eq!(server_text("outcome: weird"), "outcome: weird");
        assert_eq!(server_text(""), "no reason given");
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
