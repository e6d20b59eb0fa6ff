//! What the state database records of POP3 messages and SMTP sends, as plain values the pure
//! POP3 and SMTP planners read.

/// What is stored about one POP3 message identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pop3Row {
    /// UIDL or header hash.
    pub uid: String,
    /// Our Maildir key: the stored copy, or (with `stored` false) a download under way.
    pub near_key: Option<String>,
    /// The copy is durable in the Maildir.
    pub stored: bool,
    /// Unix time the server first listed it.
    pub first_seen: i64,
    /// The server listed it at the last pull.
    pub on_server: bool,
}

/// The state of one local message for one SMTP target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpState {
    /// DATA was under way: the server may or may not have accepted it.
    Sending,
    /// Accepted by the server.
    Sent,
    /// Refused (5xx, or still 4xx after the retries); sent again by a later run.
    Failed,
    /// The same bytes were sent from another file; not sent again.
    Duplicate,
}

impl SmtpState {
    /// The name stored in the state database.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpState::Sending => "sending",
            SmtpState::Sent => "sent",
            SmtpState::Failed => "failed",
            SmtpState::Duplicate => "duplicate",
        }
    }

    /// Reads a stored name (anything unknown counts as `Sending`: the outcome is not known).
    pub fn parse(s: &str) -> SmtpState {
        match s {
            "sent" => SmtpState::Sent,
            "failed" => SmtpState::Failed,
            "duplicate" => SmtpState::Duplicate,
            _ => SmtpState::Sending,
        }
    }
}

/// What is recorded of one local message for one SMTP target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpRow {
    /// Local folder.
    pub folder: String,
    /// Maildir key.
    pub near_key: String,
    /// State.
    pub state: SmtpState,
    /// SHA-256 of the CRLF bytes sent.
    pub sha256: Vec<u8>,
    /// The message's Message-ID, when it has one.
    pub message_id: Option<String>,
    /// Size with CRLF.
    pub size: u64,
    /// The server's reply (sent) or answer (failed).
    pub detail: Option<String>,
}
