//! The OAuth2 tests' authorization server: oauth2-mock-server (npm, installed by
//! contrib/install-test-servers.sh) behind the small front in oauth2-mock.mjs, run with the
//! machine's node on 127.0.0.1, stopped by PID; and the two things a browser does in the
//! sign-in (follow the authorize redirect back to arctern's loopback listener).

use super::free_port;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running authorization server.
pub struct AuthServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl AuthServer {
    /// Starts one whose access tokens live `ttl` seconds and name `user` (the claim the test
    /// Dovecot checks).
    pub fn start(ttl: u64, user: &str) -> AuthServer {
        let base = std::env::var("ARCTERN_TEST_SERVERS")
            .unwrap_or_else(|_| "/opt/arctern-test-servers".to_string());
        let mock = PathBuf::from(base).join("oauth2-mock");
        assert!(
            mock.join("node_modules/oauth2-mock-server/package.json")
                .is_file(),
            "oauth2-mock-server is not installed at {} (run contrib/install-test-servers.sh)",
            mock.display()
        );
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/integration/support/oauth2-mock.mjs");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new("node")
            .arg(&script)
            .env("ARCTERN_OAUTH2_MOCK", &mock)
            .env("PORT", port.to_string())
            .env("TTL", ttl.to_string())
            .env("MAIL_USER", user)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .expect("node (the machine's Node.js)");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(
            ready.trim(),
            "ready",
            "the OAuth2 mock did not start: {}",
            std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
        );
        AuthServer {
            port,
            child,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `[... .oauth2]` table lines for a client of this server.
    pub fn client_table(&self, device: bool) -> String {
        let mut t = format!(
            "authorize_url = \"{u}/authorize\"\ntoken_url = \"{u}/token\"\nclient_id = \"arctern-test\"\nscopes = [\"mail\"]\n",
            u = self.url()
        );
        if device {
            t.push_str(&format!(
                "device_authorization_url = \"{}/device_authorization\"\n",
                self.url()
            ));
        }
        t
    }

    /// The Dovecot settings that check tokens with this server (its introspection endpoint)
    /// for XOAUTH2 and OAUTHBEARER, with `mechanisms` offered; the oauth2 passdb's own file is
    /// written to `dir`.
    pub fn dovecot_config(&self, dir: &std::path::Path, mechanisms: &str) -> String {
        let conf = dir.join("dovecot-oauth2.conf.ext");
        std::fs::write(
            &conf,
            format!(
                "introspection_mode = post\nintrospection_url = {}/introspect\nusername_attribute = username\nactive_attribute = active\nactive_value = true\n",
                self.url()
            ),
        )
        .unwrap();
        format!(
            "auth_mechanisms = plain login {mechanisms}\nauth_failure_delay = 0\npassdb {{\n  driver = oauth2\n  mechanisms = {mechanisms}\n  args = {}\n}}\n",
            conf.display()
        )
    }

    /// Token requests so far, by grant: `authorization_code`, `refresh_token`, `device_code`.
    pub fn count(&self, grant: &str) -> u64 {
        let (_, _, body) = http(&format!("{}/stats", self.url()), None);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v[grant].as_u64().unwrap_or(0)
    }

    /// Revokes a token (RFC 7009): introspection then calls it inactive, a refresh with it is
    /// answered invalid_grant.
    pub fn revoke(&self, token: &str) {
        let (status, _, _) = http(
            &format!("{}/revoke", self.url()),
            Some(format!("token={token}")),
        );
        assert_eq!(status, 200);
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        super::stop_by_pid(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request to a loopback address (GET, or POST of a form `body`): (status,
/// Location header, body).
pub fn http(url: &str, body: Option<String>) -> (u16, Option<String>, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("http:// address");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    let request = match &body {
        Some(b) => format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ),
        None => format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"),
    };
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    let location = head.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.trim().to_string())
    });
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, location, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 4 + size..];
    }
    out
}

/// What the browser does with the address `arctern auth login` printed: asks the
/// authorization server (which signs in at once and redirects), then follows the redirect to
/// arctern's listener. Returns the listener's status and page.
pub fn browse(authorize_url: &str) -> (u16, String) {
    let (status, location, _) = http(authorize_url, None);
    assert_eq!(status, 302, "the authorization server redirects");
    let back = location.expect("a Location");
    let (status, _, body) = http(&back, None);
    (status, String::from_utf8_lossy(&body).to_string())
}
