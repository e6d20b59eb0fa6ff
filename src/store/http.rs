//! A minimal HTTP/1.1 client for the OAuth2 endpoints: one request per connection
//! (`Connection: close`), https through our rustls setup (the system roots, as for the mail
//! servers), plain http only to loopback addresses (RFC 8252 §8.3), answers up to 1 MiB,
//! chunked or sized. No redirects are followed (the oauth2 crate's advice against SSRF).
//!
//! Why not reqwest or ureq: the token and device endpoints take a handful of small form
//! POSTs; a general client would bring a second HTTP stack and its own TLS root handling,
//! where this one shares the mail servers' (and their error explanations).

use crate::store::tls;
use oauth2::http;
use rustls_pki_types::ServerName;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest answer read.
const MAX_ANSWER: usize = 1 << 20;

/// Why an HTTP request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address cannot be used (not http(s), plain http off loopback, no host).
    #[error("{0}")]
    Address(String),
    /// Connecting, TLS or the exchange failed.
    #[error("{url}: {message}")]
    Exchange {
        /// The endpoint (without query).
        url: String,
        /// What failed.
        message: String,
    },
}

/// True for the host names plain http is allowed to.
fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Sends `request` and reads the whole answer.
pub async fn send(
    request: http::Request<Vec<u8>>,
    timeout: Duration,
) -> Result<http::Response<Vec<u8>>, HttpError> {
    let uri = request.uri().clone();
    let shown = format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("?"),
        uri.authority().map_or("", |a| a.as_str()),
        uri.path()
    );
    let fail = |message: String| HttpError::Exchange {
        url: shown.clone(),
        message,
    };
    let host = uri
        .host()
        .ok_or_else(|| HttpError::Address(format!("{shown}: no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") if is_loopback(&host) => false,
        Some("http") => {
            return Err(HttpError::Address(format!(
                "{shown}: plain http is allowed to loopback addresses only"
            )));
        }
        _ => {
            return Err(HttpError::Address(format!(
                "{shown}: not an http(s) address"
            )));
        }
    };
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let exchange = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| fail(format!("cannot connect: {e}")))?;
        let head = request_head(&request, &uri);
        if https {
            let (config, seen) = tls::client_config(None, &[]).map_err(fail)?;
            let name = ServerName::try_from(host.clone())
                .map_err(|e| fail(format!("invalid server name: {e}")))?;
            let mut stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| fail(tls::explain(&e, &seen, 443)))?;
            exchange_on(&mut stream, &head, request.body()).await
        } else {
            let mut stream = tcp;
            exchange_on(&mut stream, &head, request.body()).await
        }
        .map_err(|e| fail(e.to_string()))
    };
    let raw = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| fail(format!("no answer within {}s", timeout.as_secs())))??;
    parse_response(&raw).map_err(fail)
}

/// The request line and headers.
fn request_head(request: &http::Request<Vec<u8>>, uri: &http::Uri) -> String {
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or("", |a| a.as_str());
    let mut head = format!(
        "{} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        request.method(),
        request.body().len()
    );
    for (name, value) in request.headers() {
        if name == http::header::HOST || name == http::header::CONTENT_LENGTH {
            continue;
        }
        if let Ok(v) = value.to_str() {
            head.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    head.push_str("User-Agent: arctern\r\n\r\n");
    head
}

async fn exchange_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    head: &str,
    body: &[u8],
) -> std::io::Result<Vec<u8>> {
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            // A server that closes without TLS close_notify after a complete answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => break,
            Err(e) => return Err(e),
        };
        out.extend_from_slice(buf.get(..n).unwrap_or(&[]));
        if out.len() > MAX_ANSWER {
            return Err(std::io::Error::other("answer larger than 1 MiB"));
        }
    }
    Ok(out)
}

/// Parses a whole HTTP/1.x answer: status, headers, body (chunked or not).
pub fn parse_response(raw: &[u8]) -> Result<http::Response<Vec<u8>>, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no end of headers")?;
    let head = std::str::from_utf8(raw.get(..split).unwrap_or(&[]))
        .map_err(|_| "the answer's headers are not text")?;
    let body = raw.get(split.saturating_add(4)..).unwrap_or(&[]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                status_line.chars().take(60).collect::<String>()
            )
        })?;
    let mut builder = http::Response::builder().status(status);
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
        builder = builder.header(name, value);
    }
    let body = if chunked {
        dechunk(body)?
    } else {
        match length {
            Some(n) => body
                .get(..n)
                .ok_or("the answer is shorter than its Content-Length")?
                .to_vec(),
            None => body.to_vec(),
        }
    };
    builder.body(body).map_err(|e| e.to_string())
}

/// Decodes a chunked body (RFC 9112 §7.1); trailers are ignored.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line has no end")?;
        let line =
            std::str::from_utf8(body.get(..eol).unwrap_or(&[])).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {line:?}"))?;
        let start = eol.saturating_add(2);
        if size == 0 {
            return Ok(out);
        }
        let end = start.checked_add(size).ok_or("chunk too large")?;
        out.extend_from_slice(body.get(start..end).ok_or("a chunk is cut short")?);
        body = body
            .get(end.saturating_add(2)..)
            .ok_or("a chunk has no end")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_sized_chunked_and_broken() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}extra").unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.body(), b"{}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let r = parse_response(
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.body(), b"{\"a\":1}");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"SSH-2.0-x\r\n\r\n").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab").is_err());
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(is_loopback("127.0.0.1") && is_loopback("localhost") && is_loopback("::1"));
        assert!(!is_loopback("example.org") && !is_loopback("10.0.0.1"));
    }
}
