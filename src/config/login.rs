//! How a connection logs in: a password (from the file, a command or the environment) or an
//! OAuth2 access token (from a helper command, or from tokens `arctern auth login` obtained
//! with a client registered at the provider). Validation and the provider presets (Google,
//! Microsoft); no I/O but running a credential command when asked.

use super::{PasswordSource, Secret};
use serde::Deserialize;
use std::path::PathBuf;

/// How a connection logs in.
#[derive(Clone, Debug)]
pub enum Login {
    /// A password: LOGIN / AUTHENTICATE PLAIN, USER/PASS, SMTP AUTH PLAIN/LOGIN.
    Password(PasswordSource),
    /// An OAuth2 bearer token: SASL OAUTHBEARER (RFC 7628) or XOAUTH2.
    OAuth2(OAuth2Login),
}

impl Login {
    /// True for OAuth2.
    pub fn is_oauth2(&self) -> bool {
        matches!(self, Login::OAuth2(_))
    }
}

/// Where an OAuth2 login's access tokens come from.
#[derive(Clone, Debug)]
pub struct OAuth2Login {
    /// What `arctern auth login` calls it: the account's or the target's name.
    pub name: String,
    /// `account NAME` or `target NAME`, for messages.
    pub owner: String,
    /// The source of tokens.
    pub tokens: TokenSource,
}

/// The source of OAuth2 access tokens.
#[derive(Clone, Debug)]
pub enum TokenSource {
    /// A helper that prints a current access token (mutt_oauth2.py, oama, ...), run for every
    /// login.
    Command(String),
    /// A client registered at the provider; `arctern auth login` stores the tokens.
    Client(OAuth2Client),
}

/// An OAuth2 client registration and where its tokens are kept.
#[derive(Clone, Debug)]
pub struct OAuth2Client {
    /// The authorization endpoint (authorization code grant with PKCE).
    pub authorize_url: String,
    /// The token endpoint (code exchange, refresh, device polling).
    pub token_url: String,
    /// The device authorization endpoint (RFC 8628), where the provider has one.
    pub device_url: Option<String>,
    /// The client ID.
    pub client_id: String,
    /// The client secret, for providers that want one for installed apps (Google does).
    pub client_secret: Option<PasswordSource>,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// The loopback port the authorization redirect comes back to (default: any free one).
    pub redirect_port: Option<u16>,
    /// The token file, under `state_dir` (mode 0600).
    pub token_file: PathBuf,
}

/// A provider whose endpoints and scopes are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OAuth2Provider {
    /// Google (Gmail): no device flow for mail scopes.
    Google,
    /// Microsoft 365 / Outlook.com (Entra ID, common tenant).
    Microsoft,
}

/// The protocol a login is for (Microsoft's scopes differ by protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// IMAP.
    Imap,
    /// POP3.
    Pop3,
    /// SMTP submission.
    Smtp,
}

impl OAuth2Provider {
    /// (authorization endpoint, token endpoint, device endpoint, scopes).
    fn preset(
        self,
        protocol: Protocol,
    ) -> (
        &'static str,
        &'static str,
        Option<&'static str>,
        Vec<String>,
    ) {
        match self {
            // https://developers.google.com/gmail/imap/xoauth2-protocol: one scope for IMAP,
            // POP and SMTP; Google refuses it in the device flow.
            OAuth2Provider::Google => (
                "https://accounts.google.com/o/oauth2/v2/auth",
                "https://oauth2.googleapis.com/token",
                None,
                vec!["https://mail.google.com/".to_string()],
            ),
            // https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
            OAuth2Provider::Microsoft => {
                let scope = match protocol {
                    Protocol::Imap => "https://outlook.office.com/IMAP.AccessAsUser.All",
                    Protocol::Pop3 => "https://outlook.office.com/POP.AccessAsUser.All",
                    Protocol::Smtp => "https://outlook.office.com/SMTP.Send",
                };
                (
                    "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
                    "https://login.microsoftonline.com/common/oauth2/v2.0/token",
                    Some("https://login.microsoftonline.com/common/oauth2/v2.0/devicecode"),
                    vec![scope.to_string(), "offline_access".to_string()],
                )
            }
        }
    }
}

/// `auth` in an `imap` or `smtp` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// A password (default).
    Password,
    /// An OAuth2 access token.
    OAuth2,
}

/// The `oauth2` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOAuth2 {
    provider: Option<OAuth2Provider>,
    authorize_url: Option<String>,
    token_url: Option<String>,
    device_authorization_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_command: Option<String>,
    scopes: Option<Vec<String>>,
    redirect_port: Option<u16>,
}

impl RawOAuth2 {
    /// Sets the endpoints' provider when the table names none (from the account's `provider`).
    pub fn default_provider(&mut self, provider: OAuth2Provider) {
        self.provider.get_or_insert(provider);
    }
}

/// The login keys of one table, as written.
pub struct RawLogin {
    /// `auth = "password" | "oauth2"` (POP3: its own `auth` key, mapped to these).
    pub auth: Option<AuthKind>,
    /// `password`.
    pub password: Option<String>,
    /// `password_command`.
    pub password_command: Option<String>,
    /// `password_env`.
    pub password_env: Option<String>,
    /// `token_command`.
    pub token_command: Option<String>,
    /// The `oauth2` table.
    pub oauth2: Option<RawOAuth2>,
}

/// Who a login belongs to, for messages and token files.
pub struct LoginOwner<'a> {
    /// `account NAME` / `target NAME`.
    pub owner: &'a str,
    /// The account's or target's name.
    pub name: &'a str,
    /// The table (`imap`, `pop3`, `smtp`).
    pub section: &'a str,
    /// Its protocol.
    pub protocol: Protocol,
    /// Where its tokens are kept.
    pub token_file: PathBuf,
}

/// Validates one table's login keys: a password source, or OAuth2 with exactly one of
/// `token_command` and an `oauth2` table. `auth` may be left out when only OAuth2 keys are
/// given. Errors name the table and never echo a secret.
pub fn login(who: LoginOwner<'_>, raw: RawLogin) -> Result<Login, String> {
    let LoginOwner {
        owner,
        name,
        section,
        protocol,
        token_file,
    } = who;
    let oauth_keys = raw.token_command.is_some() || raw.oauth2.is_some();
    let password_keys =
        raw.password.is_some() || raw.password_command.is_some() || raw.password_env.is_some();
    let kind = match raw.auth {
        Some(k) => k,
        None if oauth_keys => AuthKind::OAuth2,
        None => AuthKind::Password,
    };
    match kind {
        AuthKind::Password => {
            if oauth_keys {
                return Err(format!(
                    "{owner}: {section} has token_command or an oauth2 table but auth = \"password\"; set auth = \"oauth2\""
                ));
            }
            super::password_source(
                owner,
                section,
                raw.password,
                raw.password_command,
                raw.password_env,
            )
            .map(Login::Password)
        }
        AuthKind::OAuth2 => {
            if password_keys {
                return Err(format!(
                    "{owner}: {section} has auth = \"oauth2\" and a password key; remove password, password_command and password_env"
                ));
            }
            let tokens = match (raw.token_command, raw.oauth2) {
                (Some(c), None) => TokenSource::Command(c),
                (None, Some(t)) => {
                    TokenSource::Client(client(owner, section, protocol, t, token_file)?)
                }
                (None, None) => {
                    return Err(format!(
                        "{owner}: {section} has auth = \"oauth2\" but neither token_command nor an [{section}.oauth2] table"
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "{owner}: {section} has both token_command and an oauth2 table; keep one"
                    ));
                }
            };
            Ok(Login::OAuth2(OAuth2Login {
                name: name.to_string(),
                owner: owner.to_string(),
                tokens,
            }))
        }
    }
}

fn client(
    owner: &str,
    section: &str,
    protocol: Protocol,
    t: RawOAuth2,
    token_file: PathBuf,
) -> Result<OAuth2Client, String> {
    let table = format!("{section}.oauth2");
    let preset = t.provider.map(|p| p.preset(protocol));
    let pick = |given: Option<String>, preset: Option<&str>, key: &str| -> Result<String, String> {
        given.or(preset.map(str::to_string)).ok_or_else(|| {
            format!("{owner}: {table}.{key} is required (or a provider = \"google\" | \"microsoft\" that knows it)")
        })
    };
    let authorize_url = pick(
        t.authorize_url,
        preset.as_ref().map(|p| p.0),
        "authorize_url",
    )?;
    let token_url = pick(t.token_url, preset.as_ref().map(|p| p.1), "token_url")?;
    let device_url = t
        .device_authorization_url
        .or(preset.as_ref().and_then(|p| p.2).map(str::to_string));
    for (key, url) in [
        ("authorize_url", Some(&authorize_url)),
        ("token_url", Some(&token_url)),
        ("device_authorization_url", device_url.as_ref()),
    ] {
        if let Some(url) = url {
            check_url(owner, &table, key, url)?;
        }
    }
    let client_id = t.client_id.filter(|c| !c.is_empty()).ok_or_else(|| {
        format!(
            "{owner}: {table}.client_id is required: register an application at the provider (the README's provider sections say how)"
        )
    })?;
    let client_secret = match (t.client_secret, t.client_secret_command) {
        (None, None) => None,
        (Some(s), None) => Some(PasswordSource::Literal(Secret::new(s))),
        (None, Some(c)) => Some(PasswordSource::Command(c)),
        (Some(_), Some(_)) => {
            return Err(format!(
                "{owner}: {table} has both client_secret and client_secret_command; keep one"
            ));
        }
    };
    let scopes = t
        .scopes
        .or(preset.map(|p| p.3))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{owner}: {table}.scopes is required (or a provider)"))?;
    if t.redirect_port == Some(0) {
        return Err(format!(
            "{owner}: {table}.redirect_port must be 1-65535 (leave it out for any free port)"
        ));
    }
    Ok(OAuth2Client {
        authorize_url,
        token_url,
        device_url,
        client_id,
        client_secret,
        scopes,
        redirect_port: t.redirect_port,
        token_file,
    })
}

/// An endpoint must be https, or http on a loopback address (RFC 8252 §8.3 allows no more):
/// the client secret and the tokens travel there.
fn check_url(owner: &str, table: &str, key: &str, url: &str) -> Result<(), String> {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"];
    let ok = url.starts_with("https://")
        || loopback.iter().any(|p| {
            url.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{owner}: {table}.{key} {url:?} must be an https:// address (http:// only on 127.0.0.1 or localhost)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(protocol: Protocol) -> LoginOwner<'static> {
        LoginOwner {
            owner: "account work",
            name: "work",
            section: "imap",
            protocol,
            token_file: PathBuf::from("/state/oauth2/accounts/work.json"),
        }
    }

    fn raw() -> RawLogin {
        RawLogin {
            auth: None,
            password: None,
            password_command: None,
            password_env: None,
            token_command: None,
            oauth2: None,
        }
    }

    #[test]
    fn presets_fill_endpoints_and_scopes_and_values_override_them() {
        let r = RawLogin {
            auth: Some(AuthKind::OAuth2),
            oauth2: Some(RawOAuth2 {
                provider: Some(OAuth2Provider::Microsoft),
                client_id: Some("abc".into()),
                ..Default::default()
            }),
            ..raw()
        };
        let Login::OAuth2(l) = login(who(Protocol::Imap), r).unwrap() else {
            panic!("oauth2");
        };
        let TokenSource::Client(c) = l.tokens else {
            panic!("client");
        };
        assert!(c.token_url.contains("login.microsoftonline.com"));
        assert!(c.device_url.is_some());
        assert_eq!(
            c.scopes,
            vec![
                "https://outlook.office.com/IMAP.AccessAsUser.All",
                "offline_access"
            ]
        );
        let r = RawLogin {
            oauth2: Some(RawOAuth2 {
                provider: Some(OAuth2Provider::Google),
                client_id: Some("abc".into()),
                token_url: Some("http://127.0.0.1:9/token".into()),
                ..Default::default()
            }),
            ..raw()
        };
        let Login::OAuth2(l) = login(who(Protocol::Smtp), r).unwrap() else {
            panic!("auth inferred from the oauth2 table");
        };
        let TokenSource::Client(c) = l.tokens else {
            panic!("client");
        };
        assert_eq!(c.token_url, "http://127.0.0.1:9/token");
        assert!(c.device_url.is_none(), "Google has no device flow for mail");
        assert_eq!(c.scopes, vec!["https://mail.google.com/"]);
    }

    #[test]
    fn mistakes_are_named() {
        let err = |r: RawLogin| login(who(Protocol::Imap), r).unwrap_err();
        let e = err(RawLogin {
            auth: Some(AuthKind::OAuth2),
            ..raw()
        });
        assert!(
            e.contains("neither token_command nor an [imap.oauth2] table"),
            "{e}"
        );
        let e = err(RawLogin {
            auth: Some(AuthKind::OAuth2),
            password: Some("hunter2".into()),
            token_command: Some("x".into()),
            ..raw()
        });
        assert!(
            e.contains("remove password") && !e.contains("hunter2"),
            "{e}"
        );
        let e = err(RawLogin {
            oauth2: Some(RawOAuth2 {
                provider: Some(OAuth2Provider::Google),
                ..Default::default()
            }),
            ..raw()
        });
        assert!(e.contains("imap.oauth2.client_id is required"), "{e}");
        let e = err(RawLogin {
            oauth2: Some(RawOAuth2 {
                client_id: Some("x".into()),
                authorize_url: Some("http://auth.example/a".into()),
                token_url: Some("https://auth.example/t".into()),
                scopes: Some(vec!["s".into()]),
                ..Default::default()
            }),
            ..raw()
        });
        assert!(e.contains("must be an https:// address"), "{e}");
        let e = err(RawLogin {
            auth: Some(AuthKind::Password),
            token_command: Some("x".into()),
            ..raw()
        });
        assert!(e.contains("set auth = \"oauth2\""), "{e}");
        // A token command alone is enough.
        let ok = login(
            who(Protocol::Imap),
            RawLogin {
                token_command: Some("oama access me@example.org".into()),
                ..raw()
            },
        )
        .unwrap();
        assert!(ok.is_oauth2());
    }
}
