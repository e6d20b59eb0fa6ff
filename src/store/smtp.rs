//! SMTP submission of stored messages, unchanged, for SMTP targets (`arctern push --to` an
//! `[targets.NAME.smtp]`).
//!
//! Connecting, TLS (implicit or STARTTLS, with our rustls configuration so `ca_file` applies),
//! EHLO and AUTH come from mail-send. The transaction itself (MAIL, RCPT, DATA) is our own, on
//! mail-send's command helpers, because its `data()`/`send()` do not deliver a message
//! byte for byte: they always append CRLF before the terminating dot (a message that already
//! ends in CRLF arrives with an extra empty line) and do not dot-stuff a first line that starts
//! with a dot. Our own DATA also lets the caller record an intent just before the point where
//! the server may accept the message, and tells an error before that point (certainly not
//! delivered) from one after it (delivery unknown).

use crate::config::Secret;
use crate::config::{SmtpConfig, TlsMode};
use mail_send::{Credentials, SmtpClient, SmtpClientBuilder};
use smtp_proto::{EXT_8BIT_MIME, EXT_SIZE};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// An SMTP failure.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// TCP, TLS, greeting or EHLO failed.
    #[error("cannot connect to {host}:{port}: {message}")]
    Connect {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// What failed.
        message: String,
    },
    /// The server refused the login.
    #[error("login as {user} refused: {message}")]
    Auth {
        /// Login name.
        user: String,
        /// The server's answer.
        message: String,
    },
    /// The server answered 4xx: try again later.
    #[error("{stage}: temporary failure {code}: {text}")]
    Transient {
        /// The command answered.
        stage: &'static str,
        /// Reply code.
        code: u16,
        /// The server's text.
        text: String,
    },
    /// The server answered 5xx (or something else than success): this message will not go.
    #[error("{stage}: refused {code}: {text}")]
    Permanent {
        /// The command answered.
        stage: &'static str,
        /// Reply code.
        code: u16,
        /// The server's text.
        text: String,
    },
    /// The message is larger than the server's announced SIZE limit: not sent.
    #[error("{size} bytes is over the server's SIZE limit of {limit} bytes")]
    TooBig {
        /// Message size.
        size: u64,
        /// The server's limit.
        limit: u64,
    },
    /// The connection failed before the message was complete: certainly not delivered.
    #[error("connection lost during {stage}: {message}")]
    Connection {
        /// The command under way.
        stage: &'static str,
        /// What happened.
        message: String,
    },
    /// The connection failed after the whole message was sent, before the server's answer:
    /// it may or may not have been accepted.
    #[error("connection lost while the server was accepting the message: {message}")]
    Uncertain {
        /// What happened.
        message: String,
    },
}

impl SmtpError {
    /// True when the server says the account's sending limit is reached (Gmail: `550 5.4.5
    /// Daily user sending limit exceeded`; Exchange Online: `554 5.2.0
    /// STOREDRV.Submission.Exception:SubmissionQuotaExceededException`): no further message
    /// will go today, whatever it is, so the rest waits for a later run instead of being
    /// refused one by one.
    pub fn is_sending_limit(&self) -> bool {
        let text = match self {
            SmtpError::Permanent { text, .. } | SmtpError::Transient { text, .. } => text,
            _ => return false,
        };
        sending_limit_text(text)
    }

    /// True when the connection is no longer usable.
    pub fn breaks_connection(&self) -> bool {
        matches!(
            self,
            SmtpError::Connect { .. }
                | SmtpError::Auth { .. }
                | SmtpError::Connection { .. }
                | SmtpError::Uncertain { .. }
        )
    }
}

/// The answers of providers whose sending limit is reached (enhanced status 4.4.5 / 5.4.5,
/// RFC 3463 "system congestion"/"mail system full" as Gmail uses them, and the quota words of
/// Exchange Online and Yahoo).
pub fn sending_limit_text(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.starts_with("5.4.5")
        || t.starts_with("4.4.5")
        || [
            "sending limit exceeded",
            "sending quota exceeded",
            "submissionquotaexceeded",
            "message submission quota",
            "daily smtp relay limit",
        ]
        .iter()
        .any(|w| t.contains(w))
}

/// What the server announced in its EHLO answer that matters for sending.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmtpCapabilities {
    /// SIZE limit in bytes (RFC 1870), when announced with one.
    pub size_limit: Option<u64>,
    /// SIZE is supported (the message size can be declared in MAIL FROM).
    pub size: bool,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
}

enum Client {
    Tls(Box<SmtpClient<TlsStream<TcpStream>>>),
    Plain(SmtpClient<TcpStream>),
}

/// One authenticated SMTP session.
pub struct SmtpConn {
    client: Client,
    caps: SmtpCapabilities,
    timeout: std::time::Duration,
}

macro_rules! with_client {
    ($self:expr, $c:ident => $body:expr) => {
        match &mut $self.client {
            Client::Tls($c) => $body,
            Client::Plain($c) => $body,
        }
    };
}

/// Connects, secures the link as configured (TLS verified; STARTTLS required when configured,
/// never silently skipped), says EHLO and logs in when a user is configured.
pub async fn connect(cfg: &SmtpConfig, password: Option<&Secret>) -> Result<SmtpConn, SmtpError> {
    let connect_err = |message: String| SmtpError::Connect {
        host: cfg.host.clone(),
        port: cfg.port,
        message,
    };
    let (tls, _seen) = crate::store::tls::client_config(cfg.ca_file.as_deref(), &cfg.tls_pin)
        .map_err(connect_err)?;
    let mut builder = SmtpClientBuilder::new_with_tls_connector(
        cfg.host.clone(),
        cfg.port,
        tokio_rustls::TlsConnector::from(tls),
    )
    .timeout(cfg.timeout)
    .implicit_tls(cfg.tls == TlsMode::Implicit);
    let oauth2 = cfg.login.as_ref().is_some_and(|l| l.is_oauth2());
    if let (Some(user), Some(pw), false) = (&cfg.user, password, oauth2) {
        builder = builder.credentials(Credentials::Plain {
            username: user.clone(),
            secret: pw.expose().to_string(),
        });
    }
    let classify = |e: mail_send::Error| {
        match e {
        mail_send::Error::AuthenticationFailed(r) => SmtpError::Auth {
            user: cfg.user.clone().unwrap_or_default(),
            message: format!("{} {}", r.code, r.message),
        },
        mail_send::Error::UnsupportedAuthMechanism => SmtpError::Auth {
            user: cfg.user.clone().unwrap_or_default(),
            message: "the server offers no login method arctern knows (PLAIN, LOGIN, CRAM-MD5)"
                .into(),
        },
        mail_send::Error::MissingStartTls => connect_err(
            "the server does not offer STARTTLS (tls = \"starttls\"): nothing was sent; use tls = \"implicit\" if it speaks TLS on another port"
                .into(),
        ),
        mail_send::Error::Timeout => {
            connect_err(format!("no answer within {}s", cfg.timeout.as_secs()))
        }
        other => connect_err(other.to_string()),
    }
    };
    let client = match cfg.tls {
        TlsMode::Implicit | TlsMode::Starttls => {
            Client::Tls(Box::new(builder.connect().await.map_err(classify)?))
        }
        TlsMode::None => Client::Plain(builder.connect_plain().await.map_err(classify)?),
    };
    let mut conn = SmtpConn {
        client,
        caps: SmtpCapabilities::default(),
        timeout: cfg.timeout,
    };
    // mail-send's connect keeps the EHLO answer to itself: ask again for SIZE and 8BITMIME.
    let helo = local_name();
    let ehlo = with_client!(conn, c => c.ehlo(&helo).await).map_err(classify)?;
    // OAuth2 after EHLO, so the mechanism can follow what the server offers: OAUTHBEARER
    // (RFC 7628) when it does, else XOAUTH2.
    if let (true, Some(user), Some(token)) = (oauth2, &cfg.user, password) {
        let credentials = if ehlo.auth_mechanisms & smtp_proto::AUTH_OAUTHBEARER != 0 {
            let raw = crate::store::sasl::oauthbearer(user, &cfg.host, cfg.port, token.expose());
            Credentials::OAuthBearer {
                token: String::from_utf8_lossy(&raw).into_owned(),
            }
        } else {
            Credentials::XOauth2 {
                username: user.clone(),
                secret: token.expose().to_string(),
            }
        };
        match &mut conn.client {
            Client::Tls(c) => c.authenticate(&credentials, &ehlo).await.map(|_| ()),
            Client::Plain(c) => c.authenticate(&credentials, &ehlo).await.map(|_| ()),
        }
        .map_err(classify)?;
    }
    conn.caps = SmtpCapabilities {
        size: ehlo.has_capability(EXT_SIZE),
        size_limit: (ehlo.has_capability(EXT_SIZE) && ehlo.size > 0).then_some(ehlo.size as u64),
        eight_bit_mime: ehlo.has_capability(EXT_8BIT_MIME),
    };
    Ok(conn)
}

/// The name we give in EHLO: the machine's host name, or an address literal.
fn local_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
        .unwrap_or_else(|| "[127.0.0.1]".to_string())
}

/// The bytes to send after `DATA`: `message` (CRLF line ends) with every line that starts with
/// a dot given one more (RFC 5321 §4.5.2), then the end-of-data line. A message that does not
/// end in CRLF gets one (SMTP cannot carry a message without a final line end); nothing else
/// changes.
pub fn data_payload(message: &[u8]) -> Vec<u8> {
    let dots = message
        .iter()
        .enumerate()
        .filter(|(i, b)| {
            **b == b'.'
                && i.checked_sub(1)
                    .and_then(|p| message.get(p))
                    .is_none_or(|c| *c == b'\n')
        })
        .count();
    let mut out = Vec::with_capacity(message.len().saturating_add(dots).saturating_add(5));
    let mut line_start = true;
    for &b in message {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

impl SmtpConn {
    async fn command(
        &mut self,
        stage: &'static str,
        line: String,
    ) -> Result<smtp_proto::Response<String>, SmtpError> {
        with_client!(self, c => c.cmd(line.as_bytes()).await).map_err(|e| SmtpError::Connection {
            stage,
            message: e.to_string(),
        })
    }

    /// Sends `message` (CRLF line ends, as it should arrive) from `from` to every address of
    /// `to`. `before_data` runs just before the DATA command, the first point from which the
    /// server could accept the message (the caller records its intent there). Returns the
    /// server's final answer text (often the queue id). After an error that is not a broken
    /// connection the session is reset and can send the next message.
    pub async fn send(
        &mut self,
        from: &str,
        to: &[String],
        message: &[u8],
        before_data: impl FnOnce() -> Result<(), String>,
    ) -> Result<String, SmtpError> {
        let size = message.len() as u64;
        if let Some(limit) = self.caps.size_limit
            && size > limit
        {
            return Err(SmtpError::TooBig { size, limit });
        }
        let result = self.transaction(from, to, message, before_data).await;
        if let Err(e) = &result
            && !e.breaks_connection()
        {
            // Back to a clean state for the next message; if even that fails, the next command
            // reports the broken connection.
            let _ = self.command("RSET", "RSET\r\n".into()).await;
        }
        result
    }

    async fn transaction(
        &mut self,
        from: &str,
        to: &[String],
        message: &[u8],
        before_data: impl FnOnce() -> Result<(), String>,
    ) -> Result<String, SmtpError> {
        let mut params = String::new();
        if self.caps.size {
            params.push_str(&format!(" SIZE={}", message.len()));
        }
        if self.caps.eight_bit_mime && !message.is_ascii() {
            params.push_str(" BODY=8BITMIME");
        }
        let r = self
            .command("MAIL FROM", format!("MAIL FROM:<{from}>{params}\r\n"))
            .await?;
        expect(r, "MAIL FROM", 2)?;
        for rcpt in to {
            let r = self
                .command("RCPT TO", format!("RCPT TO:<{rcpt}>\r\n"))
                .await?;
            expect(r, "RCPT TO", 2)?;
        }
        before_data().map_err(|message| SmtpError::Connection {
            stage: "recording the intent",
            message,
        })?;
        let r = self.command("DATA", "DATA\r\n".into()).await?;
        expect(r, "DATA", 3)?;
        let payload = data_payload(message);
        let timeout = self.timeout;
        let (body, terminator) = payload.split_at(payload.len().saturating_sub(3));
        // In pieces, each with the timeout: a big message on a slow link is not a stall.
        let written: Result<(), std::io::Error> = with_client!(self, c => {
            let mut result = Ok(());
            for piece in body.chunks(256 * 1024) {
                result = match tokio::time::timeout(timeout, c.stream.write_all(piece)).await {
                    Ok(r) => r,
                    Err(_) => Err(std::io::Error::other(format!(
                        "no progress within {}s",
                        timeout.as_secs()
                    ))),
                };
                if result.is_err() {
                    break;
                }
            }
            result
        });
        written.map_err(|e| SmtpError::Connection {
            stage: "DATA",
            message: e.to_string(),
        })?;
        // From here the server may accept the message at any moment.
        let answer: Result<smtp_proto::Response<String>, String> = with_client!(self, c => {
            let sent = async {
                c.stream.write_all(terminator).await?;
                c.stream.flush().await
            };
            match tokio::time::timeout(timeout, sent).await {
                Ok(Ok(())) => match tokio::time::timeout(timeout, c.read()).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no answer within {}s", timeout.as_secs())),
                },
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no progress within {}s", timeout.as_secs())),
            }
        });
        let r = answer.map_err(|message| SmtpError::Uncertain { message })?;
        let text = r.message.clone();
        expect(r, "end of DATA", 2)?;
        Ok(text)
    }

    /// Ends the session politely.
    pub async fn quit(mut self) {
        let _ = self.command("QUIT", "QUIT\r\n".into()).await;
    }
}

/// Checks a reply's first digit: 4 → transient, anything else unexpected → permanent.
fn expect(
    r: smtp_proto::Response<String>,
    stage: &'static str,
    class: u16,
) -> Result<(), SmtpError> {
    if r.code / 100 == class {
        return Ok(());
    }
    let message = r.message.replace(['\r', '\n'], " ");
    // The enhanced status code (RFC 3463), which the parser keeps apart, goes back in front:
    // it is what tells a sending limit (5.4.5) from a refused recipient (5.1.1).
    let text = match r.esc {
        [0, 0, 0] => message,
        [a, b, c] => format!("{a}.{b}.{c} {message}"),
    };
    if r.code / 100 == 4 {
        Err(SmtpError::Transient {
            stage,
            code: r.code,
            text,
        })
    } else {
        Err(SmtpError::Permanent {
            stage,
            code: r.code,
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_sending_limits_are_recognised() {
        for text in [
            "5.4.5 Daily user sending limit exceeded. For more information on Gmail sending limits go to",
            "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message",
            "4.4.5 Daily sending quota exceeded",
        ] {
            assert!(sending_limit_text(text), "{text}");
        }
        for text in [
            "5.1.1 The email account that you tried to reach does not exist",
            "4.7.0 Try again later, closing connection.",
            "5.3.4 Message size exceeds fixed limit",
        ] {
            assert!(!sending_limit_text(text), "{text}");
        }
    }
    use proptest::prelude::*;

    /// What a receiver does with DATA: lines up to the lone dot, one leading dot removed.
    fn receive(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in payload.split_inclusive(|b| *b == b'\n') {
            if line == b".\r\n" {
                return out;
            }
            let line = line.strip_prefix(b".").unwrap_or(line);
            out.extend_from_slice(line);
        }
        panic!("no end-of-data line");
    }

    #[test]
    fn payload_keeps_the_message_exact() {
        assert_eq!(data_payload(b"a\r\nb\r\n"), b"a\r\nb\r\n.\r\n");
        assert_eq!(data_payload(b"a\r\nb"), b"a\r\nb\r\n.\r\n");
        assert_eq!(
            data_payload(b".x\r\n.\r\n..\r\n"),
            b"..x\r\n..\r\n...\r\n.\r\n"
        );
        assert_eq!(data_payload(b""), b".\r\n");
    }

    proptest! {
        #[test]
        fn a_receiver_gets_the_message_back(lines in proptest::collection::vec("[.a-z \\r]{0,6}", 0..8)) {
            let msg: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect();
            let payload = data_payload(&msg);
            prop_assert_eq!(receive(&payload), msg);
        }
    }
}
