//! The IMAP store: connecting (TLS, STARTTLS, login) and the commands the engine needs, all behind
//! [`ImapConn`] so the protocol backend can change without touching the engine.
//!
//! async-imap provides the connection, framing, response parsing (imap-proto) and login. Every
//! command after login goes through [`ImapConn::run`], our raw-command helper, and never through
//! async-imap's typed calls: after a parse error those report *success with empty results*, which
//! a sync engine would read as "the server deleted everything". The helper demands the tagged OK
//! for its own tag, turns EOF, parse errors and timeouts into errors, and poisons the connection
//! after any of them so it cannot be used again.

mod fetch;
mod idle;
mod mailbox;
mod server;
mod session;
#[cfg(test)]
mod transcript_tests;
mod write;

pub use fetch::Identity;
pub use session::connect;

use crate::model::{Evidence, Flags, Uid, UidValidity};
use async_imap::Session;
use async_imap::imap_proto::{
    self, AttributeValue, MailboxDatum, Response, ResponseCode, Status, rfc4315::UidSetMember,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

pub use crate::store::Transport;

/// An IMAP failure (its kind for exit codes and retries is decided by `engine::Error`).
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

/// A capability as we keep it: upper case, `AUTH=` spelled out.
fn capability_name(c: &imap_proto::Capability<'_>) -> String {
    match c {
        imap_proto::Capability::Imap4rev1 => "IMAP4REV1".to_string(),
        imap_proto::Capability::Auth(a) => format!("AUTH={}", a.to_ascii_uppercase()),
        imap_proto::Capability::Atom(a) => a.to_ascii_uppercase(),
    }
}

/// The most one command waits in all for a throttling server before its refusal stands.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(120);

/// How long a refusal asks the client to wait before trying again: Exchange Online's
/// `Request is throttled. Suggested Backoff Time: 143 milliseconds` (at most a minute taken);
/// `None` for any other refusal.
pub fn throttle_wait(text: &str) -> Option<Duration> {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("throttled") {
        return None;
    }
    let ms = lower
        .split("backoff time:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(1000);
    Some(Duration::from_millis(ms.clamp(10, 60_000)))
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
    u64::from(high.saturating_sub(low)).saturating_add(1)
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
    /// Its STATUS at listing time, when the server has LIST-STATUS (RFC 5819): the folder's
    /// unchanged check then costs no STATUS command of its own.
    pub status: Option<MailboxStatus>,
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
    /// Its account-wide identity (X-GM-MSGID, EMAILID) where the server has one.
    pub object_id: Option<String>,
    /// The full message (CRLF as on the wire), borrowed from the response buffer: it is never
    /// copied here, so a message sits in memory once.
    pub body: &'a [u8],
}

/// The response code of a tagged OK, where it matters to us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DoneCode {
    /// No code we use.
    None,
    /// `[READ-ONLY]` after SELECT.
    ReadOnly,
    /// `[APPENDUID v uid]` (RFC 4315) for a single message.
    AppendUid(UidValidity, Uid),
    /// `[COPYUID v from to]` (RFC 4315): each source UID with its UID in the destination.
    CopyUid(Vec<(Uid, Uid)>),
}

/// The UIDs of a COPYUID's two sets paired in order (RFC 4315: "the order of UIDs in the
/// source set corresponds to the destination set"); nothing when their lengths differ or a set
/// is absurdly large (a range is expanded).
pub fn copy_uid_pairs(from: &[UidSetMember], into: &[UidSetMember]) -> Vec<(Uid, Uid)> {
    const MAX: usize = 1_000_000;
    fn expand(set: &[UidSetMember]) -> Option<Vec<Uid>> {
        let mut out = Vec::new();
        for member in set {
            match member {
                UidSetMember::Uid(u) => out.push(Uid(*u)),
                UidSetMember::UidRange(r) => {
                    let (a, b) = ((*r.start()).min(*r.end()), (*r.start()).max(*r.end()));
                    if usize::try_from(b.saturating_sub(a)).ok()? >= MAX.saturating_sub(out.len()) {
                        return None;
                    }
                    out.extend((a..=b).map(Uid));
                }
            }
        }
        Some(out)
    }
    match (expand(from), expand(into)) {
        (Some(f), Some(t)) if f.len() == t.len() => f.into_iter().zip(t).collect(),
        _ => Vec::new(),
    }
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
            Some(ResponseCode::CopyUid(_, from, into)) => {
                DoneCode::CopyUid(copy_uid_pairs(from, into))
            }
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
    /// The certificate the server showed (TLS connections).
    peer_certificate: Option<crate::store::tls::PeerCertificate>,
    /// The personal namespace's prefix and delimiter, when NAMESPACE gave a non-empty prefix.
    personal_namespace: Option<(String, Option<char>)>,
}

/// How errors name a command: its verb and first argument, a quoted mailbox name whole
/// (`CREATE "Old: 2019"`, never cut at its first space), at most 200 characters. The rest
/// (flags, literals, UID sets) is left out.
fn command_label(command: &str) -> String {
    let command = command.trim_end();
    let (verb, rest) = command.split_once(' ').unwrap_or((command, ""));
    let mut verb = verb.to_string();
    let mut rest = rest;
    // `UID FETCH …`: the verb is two words.
    if verb.eq_ignore_ascii_case("UID")
        && let Some((second, after)) = rest.split_once(' ').or(Some((rest, "")))
    {
        verb = format!("{verb} {second}");
        rest = after;
    }
    let arg: String = if rest.starts_with('"') {
        let mut out = String::from("\"");
        let mut escaped = false;
        for c in rest.chars().skip(1) {
            out.push(c);
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => break,
                _ => escaped = false,
            }
        }
        out
    } else {
        rest.split(' ').next().unwrap_or("").to_string()
    };
    let label = if arg.is_empty() {
        verb
    } else {
        format!("{verb} {arg}")
    };
    truncate(&label, 200)
}

/// Quotes a string for IMAP (RFC 3501 quoted). Names reaching here are validated: no CR, LF, NUL.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len().saturating_add(2));
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
            Some((_, end)) if end.checked_add(1) == Some(u) => *end = u,
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
            peer_certificate: None,
            personal_namespace: None,
        }
    }

    /// The certificate the server showed, on a TLS connection.
    pub fn peer_certificate(&self) -> Option<&crate::store::tls::PeerCertificate> {
        self.peer_certificate.as_ref()
    }

    /// The server's capabilities after login, upper-cased.
    pub fn capabilities(&self) -> &BTreeSet<String> {
        &self.capabilities
    }

    /// The largest message the server takes in APPEND (RFC 7889 `APPENDLIMIT=N`; Gmail says
    /// 35882577), when it announces one.
    pub fn append_limit(&self) -> Option<u64> {
        self.capabilities
            .iter()
            .find_map(|c| c.strip_prefix("APPENDLIMIT=")?.parse().ok())
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
        // A server that asks to be given time (Exchange Online: "Request is throttled.
        // Suggested Backoff Time: N milliseconds") gets it, and the command again, as long as
        // the refused attempt handed nothing to `each` and the waits stay under a limit.
        let mut waited = Duration::ZERO;
        loop {
            let mut handed_on = false;
            let result = self
                .run_once(command, |r| {
                    handed_on = true;
                    each(r)
                })
                .await;
            let wait = match &result {
                Err(ImapError::Refused { text, .. }) if !handed_on => throttle_wait(text),
                _ => None,
            };
            match wait {
                Some(wait) if waited.saturating_add(wait) <= MAX_THROTTLE_WAIT => {
                    tracing::info!(
                        command = %command_label(command),
                        "server is throttling; waiting {} ms as it asks",
                        wait.as_millis()
                    );
                    tokio::time::sleep(wait).await;
                    waited = waited.saturating_add(wait);
                }
                _ => return result,
            }
        }
    }

    async fn run_once(
        &mut self,
        command: &str,
        mut each: impl FnMut(&Response<'_>) -> Result<(), ImapError>,
    ) -> Result<DoneCode, ImapError> {
        let label = command_label(command);
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
                caps.extend(list.iter().map(capability_name));
            }
            Ok(())
        })
        .await?;
        self.capabilities = caps;
        Ok(())
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
            end = end.saturating_sub(1);
        }
        format!("{}…", &s[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copyuid_sets_pair_in_order_and_uneven_sets_pair_nothing() {
        let from = [UidSetMember::Uid(4), UidSetMember::UidRange(7..=9)];
        let into = [UidSetMember::UidRange(20..=23)];
        assert_eq!(
            copy_uid_pairs(&from, &into),
            vec![
                (Uid(4), Uid(20)),
                (Uid(7), Uid(21)),
                (Uid(8), Uid(22)),
                (Uid(9), Uid(23))
            ]
        );
        assert!(copy_uid_pairs(&from, &[UidSetMember::Uid(1)]).is_empty());
        let huge = [UidSetMember::UidRange(1..=u32::MAX)];
        assert!(copy_uid_pairs(&huge, &huge).is_empty());
    }

    #[test]
    fn throttling_answers_say_how_long_to_wait() {
        assert_eq!(
            throttle_wait("Request is throttled. Suggested Backoff Time: 143 milliseconds"),
            Some(Duration::from_millis(143))
        );
        assert_eq!(
            throttle_wait("Request is throttled."),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            throttle_wait("Request is throttled. Suggested Backoff Time: 9999999 milliseconds"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(throttle_wait("Mailbox does not exist"), None);
    }

    #[test]
    fn command_labels_keep_quoted_names_whole() {
        assert_eq!(
            command_label("CREATE \"Old: 2019 mail\""),
            "CREATE \"Old: 2019 mail\""
        );
        assert_eq!(
            command_label("APPEND \"Sent Items\" (\\Seen) {120+}"),
            "APPEND \"Sent Items\""
        );
        assert_eq!(command_label("SELECT \"a\\\"b c\""), "SELECT \"a\\\"b c\"");
        assert_eq!(command_label("UID FETCH 1:* (FLAGS)"), "UID FETCH 1:*");
        assert_eq!(command_label("NOOP"), "NOOP");
        assert_eq!(
            command_label("CREATE \"unterminated"),
            "CREATE \"unterminated"
        );
        assert!(
            command_label(&format!("CREATE \"{}\"", "x".repeat(500)))
                .chars()
                .count()
                <= 201
        );
    }

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
