//! OAuth2 access tokens (RFC 6749) for the mail logins: from a `token_command`, or from the
//! token file `arctern auth login` writes (mode 0600, under `state_dir/oauth2/`), refreshed
//! with its refresh token before the access token expires, and once more after a refused login.
//! `arctern auth login` itself: the authorization code grant with PKCE (RFC 7636) and a
//! loopback redirect (RFC 8252 §7.3), or the device authorization grant (RFC 8628).
//!
//! The oauth2 crate builds the requests and reads the answers; they travel through
//! [`crate::store::http`]. Tokens never reach a log, an error or the terminal.

use crate::config::{OAuth2Client, OAuth2Login, PasswordSource, Secret, TokenSource};
use crate::store::http;
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    DeviceAuthorizationUrl, PkceCodeChallenge, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl,
};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Refresh when the access token has less than this left.
const REFRESH_MARGIN_SECS: i64 = 300;
/// How long one request to an endpoint may take.
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `auth login` waits for the browser's redirect.
const REDIRECT_WAIT: Duration = Duration::from_secs(600);

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// `arctern auth login` was never run (or its token file is gone).
    #[error("{owner}: not signed in with OAuth2 yet: run `arctern auth login {name}`")]
    NotSignedIn {
        /// `account NAME` / `target NAME`.
        owner: String,
        /// The name to give `auth login`.
        name: String,
    },
    /// The provider refused the refresh token (revoked, expired, password changed).
    #[error(
        "{owner}: the provider no longer accepts the sign-in ({reason}): run `arctern auth login {name}`"
    )]
    Revoked {
        /// `account NAME` / `target NAME`.
        owner: String,
        /// The name to give `auth login`.
        name: String,
        /// The provider's error code and description.
        reason: String,
    },
    /// The token or device endpoint could not be reached or answered nonsense.
    #[error("{owner}: OAuth2 endpoint: {message}")]
    Endpoint {
        /// `account NAME` / `target NAME`.
        owner: String,
        /// What failed.
        message: String,
    },
    /// `token_command` or `client_secret_command` failed.
    #[error("{0}")]
    Command(String),
    /// The token file could not be read or written.
    #[error("{owner}: token file {}: {message}", path.display())]
    File {
        /// `account NAME` / `target NAME`.
        owner: String,
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The sign-in in the browser or on the device did not complete.
    #[error("{owner}: sign-in failed: {message}")]
    SignIn {
        /// `account NAME` / `target NAME`.
        owner: String,
        /// What happened.
        message: String,
    },
}

/// What the token file holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredTokens {
    access_token: String,
    refresh_token: Option<String>,
    /// Unix seconds; unknown when the provider did not say.
    expires_at: Option<i64>,
    /// The client and endpoint they belong to: another client's tokens are not used.
    client_id: String,
    token_url: String,
}

/// Our HTTP client in the shape the oauth2 crate calls.
struct Http;

impl<'c> oauth2::AsyncHttpClient<'c> for Http {
    type Error = http::HttpError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, http::HttpError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(http::send(request, ENDPOINT_TIMEOUT))
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An access token for `login`: the token command's output, or the stored token, refreshed
/// first when it expires within five minutes or `refresh` is set (the server refused it).
pub async fn access_token(login: &OAuth2Login, refresh: bool) -> Result<Secret, OAuthError> {
    match &login.tokens {
        TokenSource::Command(cmd) => {
            let owner = login.owner.clone();
            let cmd = cmd.clone();
            tokio::task::spawn_blocking(move || {
                crate::config::run_secret_command(&owner, "token_command", &cmd)
            })
            .await
            .map_err(|e| OAuthError::Command(format!("{}: token_command: {e}", login.owner)))?
            .map_err(OAuthError::Command)
        }
        TokenSource::Client(client) => {
            let stored = read_tokens(login, &client.token_file)?
                .filter(|t| t.client_id == client.client_id && t.token_url == client.token_url);
            let Some(stored) = stored else {
                return Err(OAuthError::NotSignedIn {
                    owner: login.owner.clone(),
                    name: login.name.clone(),
                });
            };
            let fresh = stored
                .expires_at
                .is_none_or(|at| at.saturating_sub(unix_now()) > REFRESH_MARGIN_SECS);
            if fresh && !refresh {
                return Ok(Secret::new(stored.access_token));
            }
            let Some(refresh_token) = stored.refresh_token.clone() else {
                return Err(OAuthError::Revoked {
                    owner: login.owner.clone(),
                    name: login.name.clone(),
                    reason: "the access token expired and the provider gave no refresh token"
                        .into(),
                });
            };
            let answer = oauth_client(login, client)?
                .exchange_refresh_token(&RefreshToken::new(refresh_token.clone()))
                .request_async(&Http)
                .await
                .map_err(|e| token_error(login, e))?;
            // A provider may keep the refresh token (Google) or rotate it (Microsoft).
            let saved = save_answer(login, client, &answer, Some(refresh_token))?;
            tracing::debug!(owner = %login.owner, "OAuth2 access token refreshed");
            Ok(saved)
        }
    }
}

/// What is stored for `login`, for `arctern auth status`: whether signed in and until when the
/// access token holds (never the token). An error when `auth login` is needed.
pub fn describe(login: &OAuth2Login) -> Result<String, OAuthError> {
    let client = match &login.tokens {
        TokenSource::Command(_) => return Ok("tokens from token_command".into()),
        TokenSource::Client(c) => c,
    };
    let stored = read_tokens(login, &client.token_file)?
        .filter(|t| t.client_id == client.client_id && t.token_url == client.token_url)
        .ok_or_else(|| OAuthError::NotSignedIn {
            owner: login.owner.clone(),
            name: login.name.clone(),
        })?;
    let refresh = if stored.refresh_token.is_some() {
        "renewed automatically"
    } else {
        "no refresh token: sign in again when it expires"
    };
    Ok(match stored.expires_at {
        Some(at) => {
            let left = at.saturating_sub(unix_now());
            if left > 0 {
                format!("signed in; access token valid for {left} s more ({refresh})")
            } else {
                format!(
                    "signed in; access token expired {} s ago ({refresh})",
                    left.unsigned_abs()
                )
            }
        }
        None => format!("signed in ({refresh})"),
    })
}

/// The client secret, when configured.
fn client_secret(login: &OAuth2Login, client: &OAuth2Client) -> Result<Option<String>, OAuthError> {
    match &client.client_secret {
        None => Ok(None),
        Some(PasswordSource::Command(cmd)) => {
            crate::config::run_secret_command(&login.owner, "client_secret_command", cmd)
                .map(|s| Some(s.expose().to_string()))
                .map_err(OAuthError::Command)
        }
        Some(other) => other
            .resolve(&login.name)
            .map(|s| Some(s.expose().to_string()))
            .map_err(OAuthError::Command),
    }
}

type Client = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointMaybeSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn oauth_client(login: &OAuth2Login, client: &OAuth2Client) -> Result<Client, OAuthError> {
    let bad = |what: &str, e: String| OAuthError::Endpoint {
        owner: login.owner.clone(),
        message: format!("{what}: {e}"),
    };
    let mut c = BasicClient::new(ClientId::new(client.client_id.clone()))
        .set_auth_uri(
            AuthUrl::new(client.authorize_url.clone())
                .map_err(|e| bad("authorize_url", e.to_string()))?,
        )
        .set_token_uri(
            TokenUrl::new(client.token_url.clone()).map_err(|e| bad("token_url", e.to_string()))?,
        )
        .set_device_authorization_url_option(
            client
                .device_url
                .clone()
                .map(DeviceAuthorizationUrl::new)
                .transpose()
                .map_err(|e| bad("device_authorization_url", e.to_string()))?,
        )
        // Google and Microsoft both take the client credentials in the form body.
        .set_auth_type(AuthType::RequestBody);
    if let Some(secret) = client_secret(login, client)? {
        c = c.set_client_secret(ClientSecret::new(secret));
    }
    Ok(c)
}

/// A token endpoint failure in the user's terms: `invalid_grant` means signing in again.
fn token_error(
    login: &OAuth2Login,
    e: RequestTokenError<http::HttpError, oauth2::basic::BasicErrorResponse>,
) -> OAuthError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let reason = match r.error_description() {
                Some(d) => format!("{}: {d}", r.error()),
                None => r.error().to_string(),
            };
            if matches!(
                r.error(),
                BasicErrorResponseType::InvalidGrant | BasicErrorResponseType::InvalidClient
            ) {
                OAuthError::Revoked {
                    owner: login.owner.clone(),
                    name: login.name.clone(),
                    reason,
                }
            } else {
                OAuthError::Endpoint {
                    owner: login.owner.clone(),
                    message: format!("the token endpoint refused: {reason}"),
                }
            }
        }
        RequestTokenError::Request(e) => OAuthError::Endpoint {
            owner: login.owner.clone(),
            message: e.to_string(),
        },
        RequestTokenError::Parse(e, _) => OAuthError::Endpoint {
            owner: login.owner.clone(),
            message: format!("unreadable answer from the token endpoint: {e}"),
        },
        RequestTokenError::Other(e) => OAuthError::Endpoint {
            owner: login.owner.clone(),
            message: e,
        },
    }
}

fn read_tokens(login: &OAuth2Login, path: &Path) -> Result<Option<StoredTokens>, OAuthError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| OAuthError::File {
                owner: login.owner.clone(),
                path: path.to_path_buf(),
                message: format!("unreadable ({e}); run `arctern auth login {}`", login.name),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(OAuthError::File {
            owner: login.owner.clone(),
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

/// Stores a token answer (mode 0600, written whole and renamed into place) and returns the
/// access token. `refresh_token` is kept when the answer brings no new one.
fn save_answer(
    login: &OAuth2Login,
    client: &OAuth2Client,
    answer: &BasicTokenResponse,
    refresh_token: Option<String>,
) -> Result<Secret, OAuthError> {
    let stored = StoredTokens {
        access_token: answer.access_token().secret().clone(),
        refresh_token: answer
            .refresh_token()
            .map(|t| t.secret().clone())
            .or(refresh_token),
        expires_at: answer
            .expires_in()
            .map(|d| unix_now().saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
        client_id: client.client_id.clone(),
        token_url: client.token_url.clone(),
    };
    let file_error = |e: std::io::Error| OAuthError::File {
        owner: login.owner.clone(),
        path: client.token_file.clone(),
        message: e.to_string(),
    };
    let path = &client.token_file;
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(file_error)?;
    }
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(file_error)?;
        let json = serde_json::to_vec(&stored).map_err(|e| file_error(std::io::Error::other(e)))?;
        f.write_all(&json).map_err(file_error)?;
        f.sync_all().map_err(file_error)?;
    }
    std::fs::rename(&tmp, path).map_err(file_error)?;
    Ok(Secret::new(stored.access_token))
}

/// How `auth login` talks to the user.
pub trait SignInUi {
    /// Shows the address to open (on its own line).
    fn open_this(&self, url: &str);
    /// Shows the device flow's address and code.
    fn enter_code(&self, url: &str, code: &str);
}

/// `arctern auth login`, browser flow: PKCE, a listener on `http://127.0.0.1:PORT/` for the
/// redirect, the code exchanged at the token endpoint, the tokens stored. `open_browser` runs
/// `$BROWSER` or xdg-open on the address (a spawn of the desktop's own opener; nothing to gain
/// from a crate for it); the address is shown either way.
pub async fn sign_in_browser(
    login: &OAuth2Login,
    client: &OAuth2Client,
    open_browser: bool,
    ui: &dyn SignInUi,
) -> Result<(), OAuthError> {
    let sign_in = |message: String| OAuthError::SignIn {
        owner: login.owner.clone(),
        message,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", client.redirect_port.unwrap_or(0)))
        .await
        .map_err(|e| sign_in(format!("cannot listen on 127.0.0.1 for the redirect: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| sign_in(e.to_string()))?
        .port();
    let redirect = format!("http://127.0.0.1:{port}/");
    let oauth = oauth_client(login, client)?
        .set_redirect_uri(RedirectUrl::new(redirect).map_err(|e| sign_in(e.to_string()))?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = oauth
        .authorize_url(CsrfToken::new_random)
        .add_scopes(client.scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge)
        // Google returns a refresh token only when asked for offline access and consent.
        .add_extra_param("access_type", "offline")
        .add_extra_param("prompt", "consent")
        .url();
    ui.open_this(url.as_str());
    if open_browser {
        open_in_browser(url.as_str());
    }
    let code = tokio::time::timeout(REDIRECT_WAIT, receive_code(&listener, csrf.secret()))
        .await
        .map_err(|_| {
            sign_in(format!(
                "no redirect within {} minutes",
                REDIRECT_WAIT.as_secs() / 60
            ))
        })?
        .map_err(sign_in)?;
    let answer = oauth
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&Http)
        .await
        .map_err(|e| token_error(login, e))?;
    save_answer(login, client, &answer, None)?;
    Ok(())
}

/// `arctern auth login --device`: RFC 8628.
pub async fn sign_in_device(
    login: &OAuth2Login,
    client: &OAuth2Client,
    ui: &dyn SignInUi,
) -> Result<(), OAuthError> {
    if client.device_url.is_none() {
        return Err(OAuthError::SignIn {
            owner: login.owner.clone(),
            message: "this provider has no device flow for it (Google refuses mail scopes there); sign in without --device".into(),
        });
    }
    let oauth = oauth_client(login, client)?;
    let details: StandardDeviceAuthorizationResponse = oauth
        .exchange_device_code()
        .map_err(|e| OAuthError::Endpoint {
            owner: login.owner.clone(),
            message: e.to_string(),
        })?
        .add_scopes(client.scopes.iter().cloned().map(Scope::new))
        .request_async(&Http)
        .await
        .map_err(|e| token_error(login, e))?;
    ui.enter_code(details.verification_uri(), details.user_code().secret());
    let answer = oauth
        .exchange_device_access_token(&details)
        .request_async(&Http, tokio::time::sleep, None)
        .await
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => OAuthError::SignIn {
                owner: login.owner.clone(),
                message: format!("{}", r.error()),
            },
            RequestTokenError::Request(e) => OAuthError::Endpoint {
                owner: login.owner.clone(),
                message: e.to_string(),
            },
            other => OAuthError::Endpoint {
                owner: login.owner.clone(),
                message: other.to_string(),
            },
        })?;
    let stored = answer;
    save_answer(login, client, &stored, None)?;
    Ok(())
}

fn open_in_browser(url: &str) {
    let opener = std::env::var("BROWSER").ok().filter(|b| !b.is_empty());
    let program = opener.as_deref().unwrap_or(if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    });
    let _ = std::process::Command::new(program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// Waits for the browser's request to the loopback listener and returns the code, after
/// checking the state. Other requests (a favicon) get 404 and are waited past.
async fn receive_code(listener: &tokio::net::TcpListener, state: &str) -> Result<String, String> {
    loop {
        let (mut stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        let mut buf = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or(&[])),
            }
        }
        let text = String::from_utf8_lossy(&head);
        let target = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("")
            .to_string();
        let Ok(url) = oauth2::url::Url::parse(&format!("http://127.0.0.1{target}")) else {
            let _ = respond(&mut stream, 400, "Not a sign-in redirect.").await;
            continue;
        };
        let query: std::collections::HashMap<String, String> =
            url.query_pairs().into_owned().collect();
        if url.path() != "/" || (!query.contains_key("code") && !query.contains_key("error")) {
            let _ = respond(&mut stream, 404, "Not found.").await;
            continue;
        }
        if query.get("state").map(String::as_str) != Some(state) {
            let _ = respond(
                &mut stream,
                400,
                "The sign-in answer does not belong to this request.",
            )
            .await;
            return Err(
                "the redirect's state does not match this sign-in (a stale or forged answer)"
                    .into(),
            );
        }
        if let Some(error) = query.get("error") {
            let _ = respond(&mut stream, 400, "Sign-in refused; see the terminal.").await;
            let more = query
                .get("error_description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            return Err(format!("the provider answered {error}{more}"));
        }
        let _ = respond(
            &mut stream,
            200,
            "arctern is signed in. You can close this window.",
        )
        .await;
        return query
            .get("code")
            .cloned()
            .ok_or_else(|| "no code in the redirect".to_string());
    }
}

async fn respond(
    stream: &mut tokio::net::TcpStream,
    status: u16,
    text: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = format!("<!doctype html><title>arctern</title><p>{text}</p>\n");
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await
}
