//! Opening a session: TCP, then implicit TLS, STARTTLS or (only when chosen) plain text; the
//! greeting; login; capabilities.
//!
//! STARTTLS is done before async-imap sees the stream, with our own line reader, so we can check
//! that the server sent nothing after its OK (bytes injected there would otherwise be read as if
//! they came over TLS). The password is sent only over TLS, or in plain text when the config says
//! `tls = "none"`.

use super::*;

use crate::config::{ImapConfig, Secret, TlsMode};
use crate::store::tls;
use async_imap::Client;
use async_imap::imap_proto::{Response, Status};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct PlainAuth {
    user: String,
    password: Secret,
}

/// A bearer token for AUTHENTICATE OAUTHBEARER / XOAUTH2: the initial response, then (after a
/// refusal's error challenge) the answer that lets the server finish with NO.
struct BearerAuth {
    mechanism: &'static str,
    initial: Vec<u8>,
    sent: bool,
}

impl async_imap::Authenticator for BearerAuth {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        if self.sent {
            return crate::store::sasl::after_error(self.mechanism);
        }
        self.sent = true;
        std::mem::take(&mut self.initial)
    }
}

impl async_imap::Authenticator for PlainAuth {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.push(0);
        out.extend_from_slice(self.user.as_bytes());
        out.push(0);
        out.extend_from_slice(self.password.expose().as_bytes());
        out
    }
}

/// Connects, logs in as `cfg.user` with `password`, and reads the capabilities.
pub async fn connect(cfg: &ImapConfig, password: &Secret) -> Result<ImapConn, ImapError> {
    let timeout = cfg.timeout;
    let connect_err = |source: std::io::Error| ImapError::Connect {
        host: cfg.host.clone(),
        port: cfg.port,
        source,
    };
    let timed_out = || ImapError::Timeout {
        command: format!("connect to {}:{}", cfg.host, cfg.port),
        secs: timeout.as_secs(),
    };
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((cfg.host.as_str(), cfg.port)))
        .await
        .map_err(|_| timed_out())?
        .map_err(connect_err)?;
    let _ = tcp.set_nodelay(true);
    crate::store::keepalive(&tcp);

    let mut peer = None;
    let (stream, needs_greeting): (Box<dyn Transport>, bool) = match cfg.tls {
        TlsMode::None => (Box::new(tcp), true),
        TlsMode::Implicit => {
            let (tls, cert) = tls_handshake(cfg, tcp).await?;
            peer = cert;
            (Box::new(tls), true)
        }
        TlsMode::Starttls => {
            let tcp = tokio::time::timeout(timeout, starttls(cfg, tcp))
                .await
                .map_err(|_| timed_out())??;
            let (tls, cert) = tls_handshake(cfg, tcp).await?;
            peer = cert;
            (Box::new(tls), false)
        }
    };

    let mut client = Client::new(stream);
    let mut greeting_caps: Option<BTreeSet<String>> = None;
    if needs_greeting {
        let greeting = tokio::time::timeout(timeout, client.read_response())
            .await
            .map_err(|_| timed_out())?;
        match greeting {
            Ok(Some(r)) => match r.parsed() {
                Response::Data {
                    status: Status::Ok | Status::PreAuth,
                    outcome,
                } => {
                    if let Some(ResponseCode::Capabilities(list)) = &outcome.code {
                        greeting_caps = Some(list.iter().map(capability_name).collect());
                    }
                }
                other => {
                    return Err(ImapError::Protocol {
                        command: "greeting".into(),
                        message: format!("server refused the connection: {other:?}"),
                    });
                }
            },
            Ok(None) => {
                return Err(ImapError::Connection {
                    command: "greeting".into(),
                    message: "server closed the connection".into(),
                });
            }
            Err(e) => {
                return Err(ImapError::Connection {
                    command: "greeting".into(),
                    message: e.to_string(),
                });
            }
        }
    }

    // OAuth2: OAUTHBEARER (RFC 7628) when offered, else XOAUTH2 (all Microsoft 365 offers);
    // the capabilities before login come from the greeting or a CAPABILITY.
    let bearer = if cfg.login.is_oauth2() {
        let caps = match greeting_caps {
            Some(c) => c,
            None => tokio::time::timeout(timeout, pre_login_capabilities(&mut client))
                .await
                .map_err(|_| timed_out())??,
        };
        let mechanism = if caps.contains("AUTH=OAUTHBEARER") {
            "OAUTHBEARER"
        } else {
            "XOAUTH2"
        };
        let initial = if mechanism == "OAUTHBEARER" {
            crate::store::sasl::oauthbearer(&cfg.user, &cfg.host, cfg.port, password.expose())
        } else {
            crate::store::sasl::xoauth2(&cfg.user, password.expose())
        };
        Some(BearerAuth {
            mechanism,
            initial,
            sent: false,
        })
    } else {
        None
    };
    // LOGIN sends a quoted string, which cannot carry every password; AUTHENTICATE PLAIN can.
    let simple = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
    let login = async {
        if let Some(auth) = bearer {
            let mechanism = auth.mechanism;
            client.authenticate(mechanism, auth).await
        } else if simple(&cfg.user) && simple(password.expose()) {
            client.login(&cfg.user, password.expose()).await
        } else {
            client
                .authenticate(
                    "PLAIN",
                    PlainAuth {
                        user: cfg.user.clone(),
                        password: password.clone(),
                    },
                )
                .await
        }
    };
    let session = match tokio::time::timeout(timeout, login).await {
        Err(_) => return Err(timed_out()),
        Ok(Ok(s)) => s,
        // Only a NO or BAD answer is a refused login; a connection lost or garbled during the
        // login (a server restarting, say) is a connection failure, retried as one.
        Ok(Err((e @ (async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_)), _))) => {
            let text = match &e {
                async_imap::error::Error::No(t) | async_imap::error::Error::Bad(t) => t.as_str(),
                _ => "",
            };
            return Err(ImapError::Auth {
                user: cfg.user.clone(),
                message: super::server_text(text),
            });
        }
        Ok(Err((e, _))) => {
            return Err(ImapError::Connection {
                command: "LOGIN".into(),
                message: e.to_string(),
            });
        }
    };
    let mut conn = ImapConn::new(session, timeout);
    conn.peer_certificate = peer;
    conn.refresh_capabilities().await?;
    conn.read_namespace().await?;
    if cfg.compress && conn.has("COMPRESS=DEFLATE") {
        conn = conn.compress().await?;
        tracing::info!(host = %cfg.host, "COMPRESS=DEFLATE active");
    }
    conn.enable_condstore().await?;
    Ok(conn)
}

/// CAPABILITY before login (to choose the SASL mechanism), read through async-imap's parser.
async fn pre_login_capabilities(
    client: &mut Client<Box<dyn Transport>>,
) -> Result<BTreeSet<String>, ImapError> {
    const TAG: &str = "arcterncap";
    let lost = |message: String| ImapError::Connection {
        command: "CAPABILITY".into(),
        message,
    };
    client
        .get_mut()
        .write_all(format!("{TAG} CAPABILITY\r\n").as_bytes())
        .await
        .map_err(|e| lost(e.to_string()))?;
    client
        .get_mut()
        .flush()
        .await
        .map_err(|e| lost(e.to_string()))?;
    let mut caps = BTreeSet::new();
    loop {
        let response = client
            .read_response()
            .await
            .map_err(|e| lost(e.to_string()))?
            .ok_or_else(|| lost("server closed the connection".into()))?;
        match response.parsed() {
            Response::Capabilities(list) => caps.extend(list.iter().map(capability_name)),
            Response::Done { tag, status, .. } if tag.0 == TAG => {
                if *status != Status::Ok {
                    return Err(ImapError::Protocol {
                        command: "CAPABILITY".into(),
                        message: "refused before login".into(),
                    });
                }
                return Ok(caps);
            }
            _ => {}
        }
    }
}

async fn tls_handshake(
    cfg: &ImapConfig,
    tcp: TcpStream,
) -> Result<
    (
        tokio_rustls::client::TlsStream<TcpStream>,
        Option<tls::PeerCertificate>,
    ),
    ImapError,
> {
    let (config, seen) =
        tls::client_config(cfg.ca_file.as_deref(), &cfg.tls_pin).map_err(|message| {
            ImapError::Tls {
                host: cfg.host.clone(),
                message,
            }
        })?;
    let name = ServerName::try_from(cfg.host.clone()).map_err(|e| ImapError::Tls {
        host: cfg.host.clone(),
        message: format!("invalid server name: {e}"),
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(cfg.timeout, connector.connect(name, tcp)).await {
        Err(_) => Err(ImapError::Timeout {
            command: "TLS handshake".into(),
            secs: cfg.timeout.as_secs(),
        }),
        Ok(Err(e)) => Err(ImapError::Tls {
            host: cfg.host.clone(),
            message: tls::explain(&e, &seen, 993),
        }),
        Ok(Ok(s)) => Ok((s, tls::seen(&seen))),
    }
}

async fn starttls(cfg: &ImapConfig, tcp: TcpStream) -> Result<TcpStream, ImapError> {
    let proto = |message: String| ImapError::Protocol {
        command: "STARTTLS".into(),
        message,
    };
    let io = |e: std::io::Error| ImapError::Connection {
        command: "STARTTLS".into(),
        message: e.to_string(),
    };
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    reader.read_line(&mut line).await.map_err(io)?;
    if !line.starts_with("* OK") {
        return Err(proto(format!("unexpected greeting {:?}", line.trim_end())));
    }
    reader
        .get_mut()
        .write_all(b"a0 STARTTLS\r\n")
        .await
        .map_err(io)?;
    loop {
        line.clear();
        if reader.read_line(&mut line).await.map_err(io)? == 0 {
            return Err(proto("server closed the connection".into()));
        }
        if line.starts_with("* ") {
            continue;
        }
        if line.starts_with("a0 OK") {
            break;
        }
        return Err(ImapError::Tls {
            host: cfg.host.clone(),
            message: format!("server refused STARTTLS: {}", line.trim_end()),
        });
    }
    if !reader.buffer().is_empty() {
        return Err(ImapError::Tls {
            host: cfg.host.clone(),
            message: "server sent data after accepting STARTTLS; refusing (possible injection)"
                .into(),
        });
    }
    Ok(reader.into_inner())
}

impl ImapConn {
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
            peer_certificate,
            personal_namespace,
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
            peer_certificate,
            personal_namespace,
        })
    }

    /// Logs out politely; errors are ignored (the run's result is already decided).
    pub async fn logout(mut self) {
        if !self.poisoned {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.run("LOGOUT")).await;
        }
    }
}
