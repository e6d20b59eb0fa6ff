//! The engine's one error type and what follows from it.
//!
//! Every failure of a run, of an account as a whole or of one folder, is an [`Error`]; its
//! [`ErrorKind`] decides, each in one place, the exit code ([`ErrorKind::exit_code`]), what the
//! daemon does next ([`ErrorKind::daemon_action`]) and, through `Display`, the text a user
//! reads. The text speaks of the failure in the user's terms and never holds a secret.

use crate::db::DbError;
use crate::engine::lock::LockError;
use crate::exit;
use crate::store::imap::ImapError;
use crate::store::maildir::MaildirError;
use crate::store::pop3::Pop3Error;
use crate::store::smtp::SmtpError;
use crate::sync::planner::GuardError;
use std::path::PathBuf;

/// What kind of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Another arctern process holds the account.
    Locked,
    /// The network: connecting, a connection lost or timed out, an answer that made no sense.
    Connection,
    /// TLS could not be set up (certificate not trusted, wrong name, plain text).
    Tls,
    /// The server refused the login (or the login could not be attempted safely).
    LoginRefused,
    /// The server said NO or BAD (IMAP), -ERR (POP3) or refused a message (SMTP).
    ServerRefused,
    /// The local side: the Maildir, a file, the state directory.
    LocalIo,
    /// The state database.
    StateDatabase,
    /// The configuration, or a credential helper (`password_command`) it names.
    Config,
    /// The plan was refused before anything changed (the mass-deletion guard).
    PlanRefused,
}

/// What the daemon does after a failed run of an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DaemonAction {
    /// Try again after the next backoff delay (network trouble, a local hiccup, a credential
    /// helper that failed and may work later).
    Backoff,
    /// Pause the account for long (retrying soon cannot help: a refused login); SIGHUP retries.
    Pause,
    /// Try again soon: another process is syncing the account right now.
    RetrySoon,
}

impl ErrorKind {
    /// The exit code of a run that failed this way as a whole (README, "Exit codes").
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Locked => exit::LOCKED,
            ErrorKind::Connection
            | ErrorKind::Tls
            | ErrorKind::LoginRefused
            | ErrorKind::ServerRefused => exit::CONNECT,
            ErrorKind::LocalIo | ErrorKind::StateDatabase => exit::LOCAL,
            ErrorKind::Config => exit::CONFIG,
            ErrorKind::PlanRefused => exit::PARTIAL,
        }
    }

    /// What the daemon (and its IDLE watchers) do after this failure.
    pub fn daemon_action(self) -> DaemonAction {
        match self {
            ErrorKind::LoginRefused => DaemonAction::Pause,
            ErrorKind::Locked => DaemonAction::RetrySoon,
            ErrorKind::Connection
            | ErrorKind::Tls
            | ErrorKind::ServerRefused
            | ErrorKind::LocalIo
            | ErrorKind::StateDatabase
            | ErrorKind::Config
            | ErrorKind::PlanRefused => DaemonAction::Backoff,
        }
    }
}

/// A failure of the engine, naming the object it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The account or daemon lock.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// IMAP.
    #[error(transparent)]
    Imap(#[from] ImapError),
    /// POP3.
    #[error(transparent)]
    Pop3(#[from] Pop3Error),
    /// SMTP.
    #[error(transparent)]
    Smtp(#[from] SmtpError),
    /// An OAuth2 access token could not be had.
    #[error(transparent)]
    OAuth(#[from] crate::store::oauth::OAuthError),
    /// A Maildir operation.
    #[error(transparent)]
    Maildir(#[from] MaildirError),
    /// The state database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The mass-deletion guard.
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// Another local file or directory operation.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done ("cannot create state_dir", ...).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The local side is not in a state arctern may work on (the reason says what to do).
    #[error("{0}")]
    LocalState(String),
    /// The configuration, or a credential helper, failed.
    #[error("{0}")]
    Config(String),
    /// A folder name the server or the Maildir cannot take.
    #[error("{0}")]
    FolderName(String),
    /// Another error, with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        /// What was being done ("listing the maildrop", ...).
        context: String,
        /// The failure.
        source: Box<Error>,
    },
}

impl Error {
    /// The kind, for the exit code and the daemon.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Lock(LockError::Io { .. }) => ErrorKind::LocalIo,
            Error::Lock(_) => ErrorKind::Locked,
            Error::Imap(e) => match e {
                ImapError::Connect { .. }
                | ImapError::Timeout { .. }
                | ImapError::Connection { .. }
                | ImapError::Protocol { .. } => ErrorKind::Connection,
                ImapError::Tls { .. } => ErrorKind::Tls,
                ImapError::Auth { .. } => ErrorKind::LoginRefused,
                ImapError::Refused { .. } => ErrorKind::ServerRefused,
                ImapError::Config(_) => ErrorKind::Config,
            },
            Error::Pop3(e) => match e {
                Pop3Error::Connect { .. }
                | Pop3Error::Timeout { .. }
                | Pop3Error::Connection { .. }
                | Pop3Error::Protocol { .. } => ErrorKind::Connection,
                Pop3Error::Tls { .. } => ErrorKind::Tls,
                Pop3Error::Auth { .. } => ErrorKind::LoginRefused,
                Pop3Error::Refused { .. } => ErrorKind::ServerRefused,
                Pop3Error::Config(_) => ErrorKind::Config,
                Pop3Error::Local(_) => ErrorKind::LocalIo,
            },
            Error::Smtp(e) => match e {
                SmtpError::Connect { .. }
                | SmtpError::Connection { .. }
                | SmtpError::Uncertain { .. }
                | SmtpError::Transient { .. } => ErrorKind::Connection,
                SmtpError::Auth { .. } => ErrorKind::LoginRefused,
                SmtpError::Permanent { .. } | SmtpError::TooBig { .. } => ErrorKind::ServerRefused,
            },
            Error::OAuth(e) => {
                use crate::store::oauth::OAuthError;
                match e {
                    OAuthError::NotSignedIn { .. }
                    | OAuthError::Revoked { .. }
                    | OAuthError::SignIn { .. } => ErrorKind::LoginRefused,
                    OAuthError::Endpoint { .. } => ErrorKind::Connection,
                    OAuthError::Command(_) => ErrorKind::Config,
                    OAuthError::File { .. } => ErrorKind::LocalIo,
                }
            }
            Error::Maildir(_) | Error::Io { .. } | Error::LocalState(_) => ErrorKind::LocalIo,
            Error::Db(_) => ErrorKind::StateDatabase,
            Error::Guard(_) => ErrorKind::PlanRefused,
            Error::Config(_) => ErrorKind::Config,
            Error::FolderName(_) => ErrorKind::ServerRefused,
            Error::Context { source, .. } => source.kind(),
        }
    }

    /// A local I/O failure on `path`.
    pub fn io(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds what was being done to a failure.
pub trait Context<T> {
    /// `Err(e)` becomes `Err(Error::Context { context, source: e })`.
    fn context(self, context: impl Into<String>) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context.into(),
            source: Box::new(e.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_decide_exit_codes_and_the_daemon_in_one_place() {
        let auth = Error::Imap(ImapError::Auth {
            user: "demo".into(),
            message: "x".into(),
        });
        assert_eq!(auth.kind(), ErrorKind::LoginRefused);
        assert_eq!(auth.kind().exit_code(), exit::CONNECT);
        assert_eq!(auth.kind().daemon_action(), DaemonAction::Pause);
        // A credential helper that failed may work later (a keyring still locked): backoff.
        let helper = Error::Imap(ImapError::Config("password_command failed".into()));
        assert_eq!(helper.kind(), ErrorKind::Config);
        assert_eq!(helper.kind().daemon_action(), DaemonAction::Backoff);
        let held = Error::Lock(LockError::Held {
            account: "a".into(),
            holder: None,
        });
        assert_eq!(held.kind().exit_code(), exit::LOCKED);
        assert_eq!(held.kind().daemon_action(), DaemonAction::RetrySoon);
        let lost = Error::Imap(ImapError::Connection {
            command: "LOGIN".into(),
            message: "eof".into(),
        });
        assert_eq!(lost.kind().daemon_action(), DaemonAction::Backoff);
        assert_eq!(
            Error::LocalState("gone".into()).kind().exit_code(),
            exit::LOCAL
        );
    }
}
