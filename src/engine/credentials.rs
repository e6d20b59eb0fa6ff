//! What a login sends: the password, or a current OAuth2 access token; and logging in with one
//! more try on a fresh token when the server refused the first (it may have been revoked early
//! or its clock may run ahead of ours). Every connection of the engine, the daemon and `check`
//! logs in through here.

use super::error::Error;
use crate::config::{ImapConfig, Login, Pop3Config, Secret};
use crate::store::imap::{self, ImapConn, ImapError};
use crate::store::oauth;
use crate::store::pop3::{self, Pop3Conn, Pop3Error};

/// The secret `login` sends: its password (`name` names the account in errors), or an access
/// token refreshed when it is about to expire (`refresh`: refreshed whatever its age).
pub async fn secret(login: &Login, name: &str, refresh: bool) -> Result<Secret, Error> {
    match login {
        Login::Password(p) => p.resolve(name).map_err(Error::Config),
        Login::OAuth2(o) => Ok(oauth::access_token(o, refresh).await?),
    }
}

/// Logs in to an IMAP server; returns the connection and the secret that worked (for more
/// connections in the same run).
pub async fn imap_login(cfg: &ImapConfig, name: &str) -> Result<(ImapConn, Secret), Error> {
    let first = secret(&cfg.login, name, false).await?;
    match imap::connect(cfg, &first).await {
        Ok(conn) => Ok((conn, first)),
        Err(ImapError::Auth { .. }) if cfg.login.is_oauth2() => {
            tracing::debug!(account = name, "token refused; refreshing once");
            let fresh = secret(&cfg.login, name, true).await?;
            let conn = imap::connect(cfg, &fresh).await?;
            Ok((conn, fresh))
        }
        Err(e) => Err(e.into()),
    }
}

/// Logs in to a POP3 server, as [`imap_login`].
pub async fn pop3_login(cfg: &Pop3Config, name: &str) -> Result<Pop3Conn, Error> {
    let first = secret(&cfg.login, name, false).await?;
    match pop3::connect(cfg, &first).await {
        Ok(conn) => Ok(conn),
        Err(Pop3Error::Auth { .. }) if cfg.login.is_oauth2() => {
            let fresh = secret(&cfg.login, name, true).await?;
            Ok(pop3::connect(cfg, &fresh).await?)
        }
        Err(e) => Err(e.into()),
    }
}
