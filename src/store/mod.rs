//! The stores: the two kinds of mailbox arctern reads and writes. Each owns its protocol or file
//! format and nothing else; decisions about what to change come from the planner.
// What a store parses comes from a server or a file: no indexing or unchecked arithmetic that
// could panic or wrap on it (tests may).
#![cfg_attr(
    not(test),
    warn(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

pub mod eol;
pub mod http;
pub mod imap;
pub mod maildir;
pub mod mbox;
pub mod oauth;
pub mod pop3;
pub mod sasl;
pub mod smtp;
pub mod tls;

/// Anything a session can run over: TCP, TLS over TCP, or (in tests) a pipe.
pub trait Transport:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug
{
}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug> Transport
    for T
{
}

/// Turns on TCP keepalive probes (after 60 s of silence, every 10 s, 3 tries): a connection whose
/// peer vanished without a word (suspend and resume, a changed network, a NAT that forgot us) then
/// fails within about 90 s instead of hanging in a read until the command timeout or, in IDLE,
/// for up to 29 minutes. Best effort: a failure to set it changes nothing else.
pub fn keepalive(tcp: &tokio::net::TcpStream) {
    let probes = socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(60))
        .with_interval(std::time::Duration::from_secs(10))
        .with_retries(3);
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_keepalive(&probes) {
        tracing::debug!("TCP keepalive not set: {e}");
    }
}
