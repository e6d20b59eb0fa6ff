//! A POP3 client: RFC 1939 with CAPA (RFC 2449), STLS (RFC 2595), AUTH PLAIN (RFC 5034) and
//! APOP, over TCP, TLS, or STLS-upgraded TCP, with pipelining where CAPA offers it.
//!
//! Why not the `async-pop` crate (1.1): it does not build with tokio alone, has no STLS and no
//! working tokio TLS, does not undo byte-stuffing, caps answers at 20 MiB and re-parses its
//! whole buffer on every read. This client reads line by line from a buffered stream and hands
//! each decoded line of a message straight to a writer (the Maildir `tmp/` file), so a 50 MB
//! message is never held in memory. The wire format itself (status lines, listings, CAPA, the
//! multi-line decoder, APOP) is pure code in [`proto`].

pub mod proto;

use crate::config::{Pop3Auth, Pop3Config, Secret, TlsMode};
use crate::store::Transport;
use crate::store::tls;
use proto::{Capabilities, Line, Reply};
use rustls_pki_types::ServerName;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The longest line read in one piece. Longer message lines are passed on in pieces; longer
/// status or listing lines are an error.
const LINE_CAP: u64 = 64 * 1024;

/// A POP3 failure.
#[derive(Debug, thiserror::Error)]
pub enum Pop3Error {
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
    /// TLS setup or handshake failed.
    #[error("TLS with {host}: {message}")]
    Tls {
        /// Host.
        host: String,
        /// What failed.
        message: String,
    },
    /// The server refused the login.
    #[error("login as {user} refused: {message}")]
    Auth {
        /// Login name.
        user: String,
        /// The server's text.
        message: String,
    },
    /// The configuration asks for something the server cannot do.
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
    /// The server answered -ERR.
    #[error("server refused {command}: {text}")]
    Refused {
        /// The command.
        command: String,
        /// The server's text.
        text: String,
    },
    /// The server's answer made no sense.
    #[error("unexpected answer to {command}: {message}")]
    Protocol {
        /// The command.
        command: String,
        /// What was wrong.
        message: String,
    },
    /// Writing a message locally failed.
    #[error("{0}")]
    Local(String),
}

/// An authenticated POP3 session (TRANSACTION state).
pub struct Pop3Conn {
    stream: BufReader<Box<dyn Transport>>,
    timeout: Duration,
    caps: Capabilities,
    greeting: String,
    line: Vec<u8>,
    poisoned: bool,
}

impl std::fmt::Debug for Pop3Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop3Conn")
            .field("caps", &self.caps)
            .finish()
    }
}

/// Connects, secures the link as configured, reads CAPA, logs in and reads CAPA again.
pub async fn connect(cfg: &Pop3Config, password: &Secret) -> Result<Pop3Conn, Pop3Error> {
    let timed_out = || Pop3Error::Timeout {
        command: format!("connect to {}:{}", cfg.host, cfg.port),
        secs: cfg.timeout.as_secs(),
    };
    let tcp = tokio::time::timeout(
        cfg.timeout,
        TcpStream::connect((cfg.host.as_str(), cfg.port)),
    )
    .await
    .map_err(|_| timed_out())?
    .map_err(|source| Pop3Error::Connect {
        host: cfg.host.clone(),
        port: cfg.port,
        source,
    })?;
    let _ = tcp.set_nodelay(true);
    crate::store::keepalive(&tcp);
    let stream: Box<dyn Transport> = match cfg.tls {
        TlsMode::Implicit => Box::new(tls_handshake(cfg, tcp).await?),
        TlsMode::None | TlsMode::Starttls => Box::new(tcp),
    };
    let mut conn = Pop3Conn {
        stream: BufReader::new(stream),
        timeout: cfg.timeout,
        caps: Capabilities::default(),
        greeting: String::new(),
        line: Vec::new(),
        poisoned: false,
    };
    conn.greeting = match conn.read_status("greeting").await? {
        Reply::Ok(text) => text,
        Reply::Err(text) => {
            return Err(Pop3Error::Refused {
                command: "greeting".into(),
                text,
            });
        }
    };
    conn.read_capa().await?;
    if cfg.tls == TlsMode::Starttls {
        conn = conn.stls(cfg).await?;
        conn.read_capa().await?;
    }
    conn.login(cfg, password).await?;
    // Capabilities may change after login (RFC 2449 §5), LOGIN-DELAY and EXPIRE among them.
    conn.read_capa().await?;
    Ok(conn)
}

/// TLS over `io`: the TCP stream (implicit TLS) or the plain session after STLS.
async fn tls_handshake<IO>(
    cfg: &Pop3Config,
    io: IO,
) -> Result<tokio_rustls::client::TlsStream<IO>, Pop3Error>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let tls_err = |message: String| Pop3Error::Tls {
        host: cfg.host.clone(),
        message,
    };
    let (config, seen) =
        tls::client_config(cfg.ca_file.as_deref(), &cfg.tls_pin).map_err(tls_err)?;
    let name = ServerName::try_from(cfg.host.clone())
        .map_err(|e| tls_err(format!("invalid server name: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(cfg.timeout, connector.connect(name, io)).await {
        Err(_) => Err(Pop3Error::Timeout {
            command: "TLS handshake".into(),
            secs: cfg.timeout.as_secs(),
        }),
        Ok(Err(e)) => Err(tls_err(tls::explain(&e, &seen, 995))),
        Ok(Ok(s)) => Ok(s),
    }
}

impl Pop3Conn {
    /// What CAPA said (after login).
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn poison<T>(&mut self, e: Pop3Error) -> Result<T, Pop3Error> {
        self.poisoned = true;
        Err(e)
    }

    /// Upgrades the plain connection with STLS; refuses when the server does not offer it or
    /// sent anything after its +OK (bytes that would be read as if they came over TLS).
    async fn stls(mut self, cfg: &Pop3Config) -> Result<Pop3Conn, Pop3Error> {
        if self.caps.known && !self.caps.stls {
            return Err(Pop3Error::Tls {
                host: cfg.host.clone(),
                message: "server does not offer STLS; refusing to send the password in clear text (set tls = \"implicit\", or tls = \"none\" for a trusted link)".into(),
            });
        }
        self.send("STLS").await?;
        if let Reply::Err(text) = self.read_status("STLS").await? {
            return Err(Pop3Error::Tls {
                host: cfg.host.clone(),
                message: format!("server refused STLS: {text}"),
            });
        }
        if !self.stream.buffer().is_empty() {
            return Err(Pop3Error::Tls {
                host: cfg.host.clone(),
                message: "server sent data after accepting STLS; refusing (possible injection)"
                    .into(),
            });
        }
        let tls = tls_handshake(cfg, self.stream.into_inner()).await?;
        Ok(Pop3Conn {
            stream: BufReader::new(Box::new(tls)),
            timeout: self.timeout,
            caps: Capabilities::default(),
            greeting: self.greeting,
            line: Vec::new(),
            poisoned: false,
        })
    }

    async fn login(&mut self, cfg: &Pop3Config, password: &Secret) -> Result<(), Pop3Error> {
        let auth_err = |message: String| Pop3Error::Auth {
            user: cfg.user.clone(),
            message,
        };
        let method = match cfg.auth {
            Pop3Auth::Auto if self.caps.sasl.iter().any(|m| m == "PLAIN") => Pop3Auth::Plain,
            Pop3Auth::Auto => Pop3Auth::User,
            m => m,
        };
        let refused = match method {
            Pop3Auth::Apop => {
                let Some(stamp) = proto::apop_timestamp(&self.greeting) else {
                    return Err(Pop3Error::Config(format!(
                        "auth = \"apop\" but {} offers no APOP (no <timestamp> in its greeting)",
                        cfg.host
                    )));
                };
                let digest = proto::apop_digest(stamp, password.expose());
                self.send_secret(&format!("APOP {} {digest}", cfg.user), "APOP")
                    .await?;
                self.read_status("APOP").await?
            }
            Pop3Auth::Plain => {
                let initial = proto::sasl_plain(&cfg.user, password.expose());
                self.send_secret(&format!("AUTH PLAIN {initial}"), "AUTH PLAIN")
                    .await?;
                self.read_status("AUTH PLAIN").await?
            }
            Pop3Auth::OAuth2 => {
                // RFC 5034 with an initial response; after a refusal the server sends an
                // error challenge ("+ base64"), answered so that it can finish with -ERR.
                let mechanism = if self.caps.sasl.iter().any(|m| m == "OAUTHBEARER") {
                    "OAUTHBEARER"
                } else {
                    "XOAUTH2"
                };
                let raw = if mechanism == "OAUTHBEARER" {
                    crate::store::sasl::oauthbearer(
                        &cfg.user,
                        &cfg.host,
                        cfg.port,
                        password.expose(),
                    )
                } else {
                    crate::store::sasl::xoauth2(&cfg.user, password.expose())
                };
                let label = format!("AUTH {mechanism}");
                let initial =
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw);
                self.send_secret(&format!("AUTH {mechanism} {initial}"), &label)
                    .await?;
                let complete = self.read_line(&label).await?;
                if complete && self.line.first() == Some(&b'+') && !self.line.starts_with(b"+OK") {
                    let answer = base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        crate::store::sasl::after_error(mechanism),
                    );
                    self.send(&answer).await?;
                    self.read_status(&label).await?
                } else {
                    match proto::parse_status(&self.line) {
                        Some(r) if complete => r,
                        _ => {
                            return self.poison(Pop3Error::Protocol {
                                command: label,
                                message: "expected +OK, -ERR or a challenge".into(),
                            });
                        }
                    }
                }
            }
            Pop3Auth::User | Pop3Auth::Auto => {
                self.send(&format!("USER {}", cfg.user)).await?;
                match self.read_status("USER").await? {
                    Reply::Ok(_) => {
                        self.send_secret(&format!("PASS {}", password.expose()), "PASS")
                            .await?;
                        self.read_status("PASS").await?
                    }
                    err => err,
                }
            }
        };
        match refused {
            Reply::Ok(_) => Ok(()),
            Reply::Err(text) => Err(auth_err(text)),
        }
    }

    /// CAPA; a server that does not know it keeps the RFC 1939 defaults.
    async fn read_capa(&mut self) -> Result<(), Pop3Error> {
        self.send("CAPA").await?;
        match self.read_status("CAPA").await? {
            Reply::Ok(_) => {
                let body = self.read_multiline_capped("CAPA", 64 * 1024).await?;
                let lines: Vec<String> = String::from_utf8_lossy(&body)
                    .lines()
                    .map(str::to_string)
                    .collect();
                self.caps = proto::parse_capa(&lines);
            }
            Reply::Err(_) => {
                self.caps = Capabilities {
                    user: true,
                    ..Default::default()
                };
            }
        }
        Ok(())
    }

    async fn send(&mut self, command: &str) -> Result<(), Pop3Error> {
        tracing::debug!(command, "pop3 send");
        self.write_raw(format!("{command}\r\n").as_bytes(), command)
            .await
    }

    /// Sends a command carrying a secret; only `label` is ever logged.
    async fn send_secret(&mut self, command: &str, label: &str) -> Result<(), Pop3Error> {
        tracing::debug!(command = label, "pop3 send (credentials not logged)");
        self.write_raw(format!("{command}\r\n").as_bytes(), label)
            .await
    }

    async fn write_raw(&mut self, bytes: &[u8], label: &str) -> Result<(), Pop3Error> {
        let stream = self.stream.get_mut();
        let result = tokio::time::timeout(self.timeout, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => self.poison(Pop3Error::Connection {
                command: label.to_string(),
                message: e.to_string(),
            }),
            Err(_) => self.poison(Pop3Error::Timeout {
                command: label.to_string(),
                secs: self.timeout.as_secs(),
            }),
        }
    }

    /// Reads one line (at most [`LINE_CAP`] bytes) into `self.line`; `Ok(false)` when the line
    /// was cut at the cap.
    async fn read_line(&mut self, command: &str) -> Result<bool, Pop3Error> {
        self.line.clear();
        let read = tokio::time::timeout(
            self.timeout,
            (&mut self.stream)
                .take(LINE_CAP)
                .read_until(b'\n', &mut self.line),
        )
        .await;
        match read {
            Err(_) => self.poison(Pop3Error::Timeout {
                command: command.to_string(),
                secs: self.timeout.as_secs(),
            }),
            Ok(Err(e)) => self.poison(Pop3Error::Connection {
                command: command.to_string(),
                message: e.to_string(),
            }),
            Ok(Ok(0)) => self.poison(Pop3Error::Connection {
                command: command.to_string(),
                message: "server closed the connection".into(),
            }),
            Ok(Ok(_)) => Ok(self.line.ends_with(b"\n")),
        }
    }

    async fn read_status(&mut self, command: &str) -> Result<Reply, Pop3Error> {
        let complete = self.read_line(command).await?;
        match proto::parse_status(&self.line) {
            Some(r) if complete => Ok(r),
            _ => {
                let shown: String = String::from_utf8_lossy(&self.line)
                    .chars()
                    .take(100)
                    .collect();
                self.poison(Pop3Error::Protocol {
                    command: command.to_string(),
                    message: format!("expected +OK or -ERR, got {shown:?}"),
                })
            }
        }
    }

    /// Sends a command and demands +OK.
    async fn simple(&mut self, command: &str) -> Result<String, Pop3Error> {
        self.send(command).await?;
        match self.read_status(command).await? {
            Reply::Ok(text) => Ok(text),
            Reply::Err(text) => Err(Pop3Error::Refused {
                command: command.to_string(),
                text,
            }),
        }
    }

    /// Streams a multi-line answer's body into `sink`, decoded; returns the bytes written.
    async fn read_multiline_into(
        &mut self,
        command: &str,
        sink: &mut dyn std::io::Write,
    ) -> Result<u64, Pop3Error> {
        let mut written = 0u64;
        let mut at_line_start = true;
        let mut held_cr = false;
        let mut out = Vec::with_capacity(256);
        loop {
            let complete = self.read_line(command).await?;
            out.clear();
            if held_cr {
                held_cr = false;
                if !self.line.starts_with(b"\n") {
                    out.push(b'\r');
                }
            }
            if at_line_start {
                if proto::decode_line(&self.line, &mut out) == Line::End && complete {
                    return Ok(written);
                }
            } else {
                // The rest of a line longer than the cap: no stuffing to undo here.
                let body = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
                let body = if complete {
                    body.strip_suffix(b"\r").unwrap_or(body)
                } else {
                    body
                };
                out.extend_from_slice(body);
                if complete {
                    out.push(b'\n');
                }
            }
            if !complete && out.last() == Some(&b'\r') {
                // A CR at the cut may be the first half of a CRLF.
                out.pop();
                held_cr = true;
            }
            at_line_start = complete;
            if let Err(e) = sink.write_all(&out) {
                // Keep the stream in step: read to the end of the answer, then report.
                self.drain_multiline(command, at_line_start).await?;
                return Err(Pop3Error::Local(e.to_string()));
            }
            written = written.saturating_add(out.len() as u64);
        }
    }

    async fn drain_multiline(
        &mut self,
        command: &str,
        mut at_line_start: bool,
    ) -> Result<(), Pop3Error> {
        loop {
            let complete = self.read_line(command).await?;
            if at_line_start && complete && (self.line == b".\r\n" || self.line == b".\n") {
                return Ok(());
            }
            at_line_start = complete;
        }
    }

    async fn read_multiline_capped(
        &mut self,
        command: &str,
        cap: usize,
    ) -> Result<Vec<u8>, Pop3Error> {
        struct Capped(Vec<u8>, usize);
        impl std::io::Write for Capped {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0.len().saturating_add(buf.len()) > self.1 {
                    return Err(std::io::Error::other("answer too long"));
                }
                self.0.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut sink = Capped(Vec::new(), cap);
        match self.read_multiline_into(command, &mut sink).await {
            Ok(_) => Ok(sink.0),
            Err(Pop3Error::Local(m)) => self.poison(Pop3Error::Protocol {
                command: command.to_string(),
                message: format!("{m} (more than {cap} bytes)"),
            }),
            Err(e) => Err(e),
        }
    }

    /// UIDL for every message: (message number, unique id), in the server's order. An error
    /// names the offending line.
    pub async fn uidl_all(&mut self) -> Result<Vec<(u32, String)>, Pop3Error> {
        self.listing("UIDL", proto::parse_uidl_line).await
    }

    /// LIST for every message: (message number, size in octets).
    pub async fn list_all(&mut self) -> Result<Vec<(u32, u64)>, Pop3Error> {
        self.listing("LIST", proto::parse_list_line).await
    }

    /// A multi-line listing (UIDL, LIST), each line through `parse`; the first bad line fails it.
    async fn listing<T>(
        &mut self,
        command: &str,
        parse: fn(&str) -> Result<T, proto::ListingError>,
    ) -> Result<Vec<T>, Pop3Error> {
        self.simple(command).await?;
        let body = self
            .read_multiline_capped(command, 256 * 1024 * 1024)
            .await?;
        String::from_utf8_lossy(&body)
            .lines()
            .map(|line| {
                parse(line).map_err(|e| Pop3Error::Protocol {
                    command: command.into(),
                    message: e.to_string(),
                })
            })
            .collect()
    }

    /// The header of a message (`TOP n 0`), decoded, at most 1 MiB.
    pub async fn top_header(&mut self, msgno: u32) -> Result<Vec<u8>, Pop3Error> {
        let command = format!("TOP {msgno} 0");
        self.simple(&command).await?;
        self.read_multiline_capped(&command, 1024 * 1024).await
    }

    /// RETR for each message number, streamed into the writer `open(msgno)` returns; pipelined
    /// when the server offers PIPELINING. Per message: the bytes written, or why it failed (a
    /// -ERR for one message does not stop the others).
    pub async fn retr_many<W: std::io::Write>(
        &mut self,
        msgnos: &[u32],
        mut open: impl FnMut(u32) -> std::io::Result<W>,
        mut done: impl FnMut(u32, W) -> std::io::Result<()>,
    ) -> Result<Vec<Result<u64, Pop3Error>>, Pop3Error> {
        let mut results = Vec::with_capacity(msgnos.len());
        let pipelined = self.caps.pipelining;
        if pipelined && !msgnos.is_empty() {
            let all: String = msgnos.iter().map(|n| format!("RETR {n}\r\n")).collect();
            tracing::debug!(count = msgnos.len(), "pop3 send pipelined RETR");
            self.write_raw(all.as_bytes(), "RETR").await?;
        }
        for &n in msgnos {
            let command = format!("RETR {n}");
            if !pipelined {
                self.send(&command).await?;
            }
            match self.read_status(&command).await? {
                Reply::Err(text) => {
                    results.push(Err(Pop3Error::Refused { command, text }));
                    continue;
                }
                Reply::Ok(_) => {}
            }
            let mut sink = match open(n) {
                Ok(w) => w,
                Err(e) => {
                    self.drain_multiline(&command, true).await?;
                    results.push(Err(Pop3Error::Local(e.to_string())));
                    continue;
                }
            };
            let result = self.read_multiline_into(&command, &mut sink).await;
            let result = match result {
                Ok(size) => done(n, sink)
                    .map(|()| size)
                    .map_err(|e| Pop3Error::Local(e.to_string())),
                Err(e @ Pop3Error::Local(_)) => Err(e),
                Err(e) => return Err(e),
            };
            results.push(result);
        }
        Ok(results)
    }

    /// DELE for each message number (pipelined where offered). Deletions take effect only at a
    /// successful [`Pop3Conn::quit`]; a dropped connection deletes nothing (RFC 1939 §6).
    pub async fn dele_many(&mut self, msgnos: &[u32]) -> Result<(), Pop3Error> {
        if self.caps.pipelining && !msgnos.is_empty() {
            let all: String = msgnos.iter().map(|n| format!("DELE {n}\r\n")).collect();
            self.write_raw(all.as_bytes(), "DELE").await?;
            let mut refused = None;
            for n in msgnos {
                if let Reply::Err(text) = self.read_status("DELE").await? {
                    refused.get_or_insert(Pop3Error::Refused {
                        command: format!("DELE {n}"),
                        text,
                    });
                }
            }
            return refused.map_or(Ok(()), Err);
        }
        for n in msgnos {
            self.simple(&format!("DELE {n}")).await?;
        }
        Ok(())
    }

    /// QUIT: enters the UPDATE state, where the server carries out the DELEs. An error means
    /// the deletions may not have happened (the next run sees the messages again).
    pub async fn quit(mut self) -> Result<(), Pop3Error> {
        self.simple("QUIT").await.map(|_| ())
    }
}
