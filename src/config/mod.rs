//! The configuration file: a serde mirror of the TOML that rejects unknown keys, turned into a
//! validated [`Config`] with every default applied.
//!
//! Owns parsing, defaults, path resolution and validation messages (which always name the file,
//! and the line where the parser knows it). Must not connect anywhere: password commands run only
//! when [`PasswordSource::resolve`] is called by a store.

pub mod import_mbsync;
pub mod import_offlineimap;
mod import_text;
mod login;
pub mod provider;
mod secret;

pub use login::{Login, OAuth2Client, OAuth2Login, TokenSource};
pub use secret::Secret;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a configuration could not be loaded. Never retryable: the file must be fixed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML did not parse or did not fit the schema (unknown key, wrong type).
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// The values parsed but do not make a usable configuration.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the account and key.
        message: String,
    },
    /// No config file was given and no default location could be determined.
    #[error("no config file given and no home directory to find the default one")]
    NoDefaultLocation,
}

pub use crate::model::policy::{ExpungePolicy, Layout, SyncMode};

/// Transport security of the IMAP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// TLS from the first byte (port 993).
    Implicit,
    /// Plain connection upgraded with STARTTLS before anything else (port 143).
    Starttls,
    /// No encryption at all: only for loopback tests or trusted links, chosen explicitly.
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<PathBuf>,
    index: Option<bool>,
    metrics_file: Option<PathBuf>,
    #[serde(default)]
    accounts: BTreeMap<String, RawAccount>,
    #[serde(default)]
    targets: BTreeMap<String, RawTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    provider: Option<provider::Provider>,
    imap: Option<RawImap>,
    smtp: Option<RawSmtp>,
    folder_map: Option<BTreeMap<String, String>>,
    connections: Option<u8>,
    upload_budget: Option<RawBudget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<TlsMode>,
    user: Option<String>,
    password: Option<String>,
    password_command: Option<String>,
    password_env: Option<String>,
    auth: Option<login::AuthKind>,
    token_command: Option<String>,
    oauth2: Option<login::RawOAuth2>,
    ca_file: Option<PathBuf>,
    tls_pin: Option<Vec<String>>,
    timeout_seconds: Option<u64>,
    envelope_from: String,
    envelope_to: Vec<String>,
    rate: Option<f64>,
    max_retries: Option<u32>,
    retry_initial_seconds: Option<f64>,
    confirm_via: Option<String>,
    confirm_folder: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    maildir: PathBuf,
    provider: Option<provider::Provider>,
    sync: Option<SyncMode>,
    folders: Option<Vec<String>>,
    folder: Option<String>,
    layout: Option<Layout>,
    expunge: Option<ExpungePolicy>,
    max_delete_percent: Option<u8>,
    max_size: Option<RawSize>,
    download_budget: Option<RawBudget>,
    upload_budget: Option<RawBudget>,
    mbsync_state: Option<PathBuf>,
    offlineimap_status: Option<PathBuf>,
    utf7_names: Option<bool>,
    connections: Option<u8>,
    idle: Option<Vec<String>>,
    interval: Option<RawDuration>,
    imap: Option<RawImap>,
    pop3: Option<RawPop3>,
}

/// A duration in the config: whole seconds, or a string like "90s", "5m", "1h", "1d".
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Seconds(u64),
    Text(String),
}

/// Parses "90", "90s", "5m", "1h" or "1d".
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 90s, 5m, 1h)"))?;
    let factor = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?} is not a duration (like 90s, 5m, 1h)")),
    };
    Ok(std::time::Duration::from_secs(n.saturating_mul(factor)))
}

impl RawDuration {
    fn resolve(&self, owner: &str, key: &str) -> Result<std::time::Duration, String> {
        let d = match self {
            RawDuration::Seconds(n) => std::time::Duration::from_secs(*n),
            RawDuration::Text(t) => {
                parse_duration(t).map_err(|e| format!("{owner}: {key}: {e}"))?
            }
        };
        if d.is_zero() {
            return Err(format!("{owner}: {key} must be at least one second"));
        }
        Ok(d)
    }
}

/// A size in the config: bytes, or a string like "50M", "500K", "1G" (powers of 1024, as
/// mbsync's `MaxSize`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

/// Parses "123", "500K", "50M", "1G" (also "50MB", "50 MiB"; case-insensitive; powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a size (like 500K, 50M, 1G)");
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(factor).ok_or_else(bad)
}

impl RawSize {
    fn resolve(&self, owner: &str, key: &str) -> Result<u64, String> {
        let n = match self {
            RawSize::Bytes(n) => *n,
            RawSize::Text(t) => parse_size(t).map_err(|e| format!("{owner}: {key}: {e}"))?,
        };
        if n == 0 {
            return Err(format!("{owner}: {key} must be more than 0 bytes"));
        }
        Ok(n)
    }
}

/// A daily transfer budget in the config: a size (as `max_size`), or `"none"` for no budget
/// where a provider preset sets one.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawBudget {
    Bytes(u64),
    Text(String),
}

impl RawBudget {
    /// The budget in bytes (`None`: none), or the preset's when the key is absent.
    fn resolve(
        raw: Option<&RawBudget>,
        preset: Option<u64>,
        owner: &str,
        key: &str,
    ) -> Result<Option<u64>, String> {
        match raw {
            None => Ok(preset),
            Some(RawBudget::Text(t)) if t.trim().eq_ignore_ascii_case("none") => Ok(None),
            Some(RawBudget::Bytes(n)) => RawSize::Bytes(*n).resolve(owner, key).map(Some),
            Some(RawBudget::Text(t)) => RawSize::Text(t.clone())
                .resolve(owner, key)
                .map(Some)
                .map_err(|e| format!("{e} (or \"none\")")),
        }
    }
}

/// The default full-resync interval of `arctern daemon`.
pub const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPop3 {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<TlsMode>,
    user: String,
    password: Option<String>,
    password_command: Option<String>,
    password_env: Option<String>,
    token_command: Option<String>,
    oauth2: Option<login::RawOAuth2>,
    ca_file: Option<PathBuf>,
    tls_pin: Option<Vec<String>>,
    timeout_seconds: Option<u64>,
    keep_on_server: Option<bool>,
    delete_after_days: Option<u32>,
    auth: Option<Pop3Auth>,
    identify_by: Option<Pop3Identity>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImap {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<TlsMode>,
    user: String,
    password: Option<String>,
    password_command: Option<String>,
    password_env: Option<String>,
    auth: Option<login::AuthKind>,
    token_command: Option<String>,
    oauth2: Option<login::RawOAuth2>,
    ca_file: Option<PathBuf>,
    tls_pin: Option<Vec<String>>,
    timeout_seconds: Option<u64>,
    compress: Option<bool>,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// Where SQLite state and the search index live.
    pub state_dir: PathBuf,
    /// Keep the full-text index current after every sync (default true).
    pub index: bool,
    /// Where to write per-account counters in the OpenMetrics text format after every sync
    /// (for node_exporter's textfile collector), if anywhere.
    pub metrics_file: Option<PathBuf>,
    /// IMAP accounts by name, in name order.
    pub accounts: BTreeMap<String, ImapAccount>,
    /// POP3 accounts by name, in name order (names are unique across both maps).
    pub pop3_accounts: BTreeMap<String, Pop3Account>,
    /// Destinations for `push`, `migrate` and `verify`, by name.
    pub targets: BTreeMap<String, Target>,
}

/// A destination for re-uploading mail.
#[derive(Clone, Debug)]
pub struct Target {
    /// The target's name (the TOML table key).
    pub name: String,
    /// Where messages go.
    pub kind: TargetKind,
    /// Local folder → target folder, applied before the special-use mapping.
    pub folder_map: BTreeMap<String, String>,
    /// IMAP connections `push` uses at once, for different folders (default 4, as for accounts).
    pub connections: u8,
    /// Bytes a day `push` may upload to an IMAP target (`upload_budget`; Gmail: 500 MB).
    pub upload_budget: Option<u64>,
}

/// How a target receives messages.
#[derive(Clone, Debug)]
pub enum TargetKind {
    /// IMAP APPEND into folders.
    Imap(ImapConfig),
    /// Each message re-sent unchanged over SMTP.
    Smtp(SmtpConfig),
}

/// An SMTP destination.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (default 465 implicit, 587 starttls, 25 none).
    pub port: u16,
    /// Transport security.
    pub tls: TlsMode,
    /// Login name, when the server wants AUTH.
    pub user: Option<String>,
    /// How it logs in (with `user`): a password or an OAuth2 token.
    pub login: Option<Login>,
    /// An extra trust root (PEM).
    pub ca_file: Option<PathBuf>,
    /// Certificates accepted whatever their issuer and dates (`tls_pin`); empty: none.
    pub tls_pin: Vec<TlsPin>,
    /// Per-command network timeout.
    pub timeout: std::time::Duration,
    /// MAIL FROM.
    pub envelope_from: String,
    /// RCPT TO (at least one).
    pub envelope_to: Vec<String>,
    /// At most this many messages per second (`push --rate` overrides it).
    pub rate: Option<f64>,
    /// How many times a message answered 4xx is tried again in the same run (default 5).
    pub max_retries: u32,
    /// The wait before the first retry, doubled for each further one (default 2 s).
    pub retry_initial: std::time::Duration,
    /// An IMAP target whose mailbox receives what this target sends: after a crash, a message
    /// whose acceptance is unknown is looked up there by Message-ID instead of being sent again.
    pub confirm_via: Option<String>,
    /// The folder of `confirm_via` that receives the mail (default INBOX).
    pub confirm_folder: String,
}

/// Any account, by reference: what `arctern sync NAME` selects.
#[derive(Clone, Copy, Debug)]
pub enum AnyAccount<'a> {
    /// An IMAP account (two-way sync).
    Imap(&'a ImapAccount),
    /// A POP3 maildrop (pulled into one Maildir folder).
    Pop3(&'a Pop3Account),
}

impl<'a> AnyAccount<'a> {
    /// The account's name.
    pub fn name(&self) -> &'a str {
        match self {
            AnyAccount::Imap(a) => &a.name,
            AnyAccount::Pop3(a) => &a.name,
        }
    }

    /// The account's Maildir root.
    pub fn maildir(&self) -> &'a Path {
        match self {
            AnyAccount::Imap(a) => &a.maildir,
            AnyAccount::Pop3(a) => &a.maildir,
        }
    }

    /// The account's on-disk layout.
    pub fn layout(&self) -> Layout {
        match self {
            AnyAccount::Imap(a) => a.layout,
            AnyAccount::Pop3(a) => a.layout,
        }
    }
}

impl Config {
    /// Every account, IMAP and POP3, in name order.
    pub fn all_accounts(&self) -> Vec<AnyAccount<'_>> {
        let mut all: Vec<AnyAccount<'_>> = self
            .accounts
            .values()
            .map(AnyAccount::Imap)
            .chain(self.pop3_accounts.values().map(AnyAccount::Pop3))
            .collect();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }

    /// The OAuth2 login of an account or target named `name` (`arctern auth login NAME`); an
    /// error says what `name` is instead.
    pub fn oauth2_login(&self, name: &str) -> Result<&OAuth2Login, String> {
        let login = match (self.account(name), self.targets.get(name)) {
            (Some(AnyAccount::Imap(a)), _) => Some(&a.imap.login),
            (Some(AnyAccount::Pop3(a)), _) => Some(&a.pop3.login),
            (None, Some(t)) => match &t.kind {
                TargetKind::Imap(c) => Some(&c.login),
                TargetKind::Smtp(c) => c.login.as_ref(),
            },
            (None, None) => {
                return Err(format!(
                    "no account or target named {name:?} in {}",
                    self.path.display()
                ));
            }
        };
        match login {
            Some(Login::OAuth2(o)) => Ok(o),
            _ => Err(format!(
                "{name} does not log in with OAuth2 (set auth = \"oauth2\" and an oauth2 table in its server table)"
            )),
        }
    }

    /// Every OAuth2 login of the config, by name.
    pub fn oauth2_logins(&self) -> Vec<&OAuth2Login> {
        let mut names: Vec<&String> = self
            .accounts
            .keys()
            .chain(self.pop3_accounts.keys())
            .chain(self.targets.keys())
            .collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|n| self.oauth2_login(n).ok())
            .collect()
    }

    /// The account called `name`, of either kind.
    pub fn account(&self, name: &str) -> Option<AnyAccount<'_>> {
        self.accounts
            .get(name)
            .map(AnyAccount::Imap)
            .or_else(|| self.pop3_accounts.get(name).map(AnyAccount::Pop3))
    }

    /// The accounts named on a command line, or all of them when none is named. An unknown
    /// name is an error that lists the accounts there are.
    pub fn select_accounts(&self, names: &[String]) -> Result<Vec<AnyAccount<'_>>, String> {
        if names.is_empty() {
            return Ok(self.all_accounts());
        }
        names
            .iter()
            .map(|n| {
                self.account(n).ok_or_else(|| {
                    format!(
                        "no account {n:?} in {} (accounts: {})",
                        self.path.display(),
                        self.all_accounts()
                            .iter()
                            .map(|a| a.name().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            })
            .collect()
    }

    /// The state database of an account: `<state_dir>/<account>.sqlite3`.
    pub fn state_path(&self, account: &str) -> PathBuf {
        self.state_dir.join(format!("{account}.sqlite3"))
    }
}

/// A POP3 maildrop pulled into one folder of a Maildir.
#[derive(Clone, Debug)]
pub struct Pop3Account {
    /// The account's name (the TOML table key).
    pub name: String,
    /// The local Maildir root.
    pub maildir: PathBuf,
    /// On-disk folder layout of that Maildir.
    pub layout: Layout,
    /// The folder messages land in (default INBOX).
    pub folder: crate::names::FolderName,
    /// `arctern daemon`: time between pulls (default 5 minutes).
    pub interval: std::time::Duration,
    /// The server and what to do with messages on it.
    pub pop3: Pop3Config,
}

/// How to authenticate to a POP3 server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pop3Auth {
    /// SASL PLAIN when CAPA lists it, else USER/PASS (default).
    Auto,
    /// USER/PASS (RFC 1939).
    User,
    /// AUTH PLAIN (RFC 5034, SASL PLAIN).
    Plain,
    /// APOP (RFC 1939 §7): an MD5 digest of the greeting's timestamp and the password.
    Apop,
    /// An OAuth2 access token: AUTH OAUTHBEARER (RFC 7628) when CAPA lists it, else XOAUTH2.
    #[serde(rename = "oauth2")]
    OAuth2,
}

/// How messages on a POP3 server are told apart from one run to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pop3Identity {
    /// The server's UIDL (default); a server without UIDL is an error.
    Uidl,
    /// For servers without UIDL: a SHA-256 of each message's header (TOP n 0) and its size.
    /// Two messages with identical headers and size count as one.
    HeaderHash,
}

/// How to reach, log in to and treat a POP3 server.
#[derive(Clone, Debug)]
pub struct Pop3Config {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Transport security (`starttls` means STLS, RFC 2595).
    pub tls: TlsMode,
    /// Login name.
    pub user: String,
    /// How it logs in: a password or (with `auth = "oauth2"`) an OAuth2 token.
    pub login: Login,
    /// An extra trust root (PEM) for self-signed servers.
    pub ca_file: Option<PathBuf>,
    /// Certificates accepted whatever their issuer and dates (`tls_pin`); empty: none.
    pub tls_pin: Vec<TlsPin>,
    /// Per-command network timeout.
    pub timeout: std::time::Duration,
    /// Leave messages on the server after download (default true).
    pub keep_on_server: bool,
    /// Delete messages first seen more than this many days ago (after a safe download).
    pub delete_after_days: Option<u32>,
    /// Authentication method.
    pub auth: Pop3Auth,
    /// Message identity across runs.
    pub identify_by: Pop3Identity,
}

/// One IMAP account: a server and the Maildir it mirrors into.
#[derive(Clone, Debug)]
pub struct ImapAccount {
    /// The account's name (the TOML table key).
    pub name: String,
    /// The local Maildir root.
    pub maildir: PathBuf,
    /// Which way changes flow.
    pub sync: SyncMode,
    /// IMAP LIST-style patterns; `!` excludes. Last match wins.
    pub folders: Vec<String>,
    /// On-disk folder layout.
    pub layout: Layout,
    /// Where deletions are propagated.
    pub expunge: ExpungePolicy,
    /// A folder whose planned deletions exceed this share of its messages is not synced
    /// without `--force`.
    pub max_delete_percent: u8,
    /// Messages larger than this many bytes are neither downloaded nor uploaded (mbsync's
    /// `MaxSize`); they are named in the report and in `status`. `None`: no limit.
    pub max_size: Option<u64>,
    /// Bytes a day the account may download from its server (`download_budget`; Gmail's
    /// preset: 2,500 MB); what would go over waits for a later run. `None`: no budget.
    pub download_budget: Option<u64>,
    /// Bytes a day the account may upload to its server (`upload_budget`; Gmail: 500 MB).
    pub upload_budget: Option<u64>,
    /// Where another tool's sync records are, read (never written) on the first sync of a
    /// folder so adopting its Maildir pairs exactly.
    pub adopt: AdoptSources,
    /// IMAP connections used at once for different folders.
    pub connections: u8,
    /// `arctern daemon`: folder patterns watched with IDLE (default INBOX).
    pub idle: Vec<String>,
    /// `arctern daemon`: time between full resyncs (default 5 minutes).
    pub interval: std::time::Duration,
    /// The server.
    pub imap: ImapConfig,
}

/// Where to look for another sync tool's records when adopting its Maildir (account keys
/// `mbsync_state` and `offlineimap_status`). Without them the tools' default places are tried:
/// `.mbsyncstate` in each folder (mbsync's `SyncState *`), `~/.mbsync/`, and
/// `~/.offlineimap/Account-*` when there is exactly one. Records are used only when their
/// UIDVALIDITYs are those of the server folder (and for mbsync the Maildir's) now.
#[derive(Clone, Debug, Default)]
pub struct AdoptSources {
    /// mbsync's `SyncState`: a directory (`~/.mbsync/`) or a file-name prefix.
    pub mbsync_state: Option<PathBuf>,
    /// offlineimap's account status directory (`~/.offlineimap/Account-NAME`).
    pub offlineimap_status: Option<PathBuf>,
}

impl ImapAccount {
    /// How the planner may change each side of this account.
    pub fn policy(&self) -> crate::model::Policy {
        crate::model::Policy {
            mode: self.sync,
            expunge: self.expunge,
        }
    }
}

/// How to reach and log in to an IMAP server.
#[derive(Clone, Debug)]
pub struct ImapConfig {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Transport security.
    pub tls: TlsMode,
    /// Login name.
    pub user: String,
    /// How it logs in: a password or an OAuth2 token.
    pub login: Login,
    /// An extra trust root (PEM) for self-signed servers.
    pub ca_file: Option<PathBuf>,
    /// Certificates accepted whatever their issuer and dates (`tls_pin`); empty: none.
    pub tls_pin: Vec<TlsPin>,
    /// Per-command network timeout.
    pub timeout: std::time::Duration,
    /// Use COMPRESS=DEFLATE (RFC 4978) when the server offers it.
    pub compress: bool,
}

/// Where a password comes from. Resolved only when a connection needs it.
#[derive(Clone, Debug)]
pub enum PasswordSource {
    /// Written in the config file.
    Literal(Secret),
    /// The first line of this shell command's output.
    Command(String),
    /// This environment variable.
    Env(String),
}

impl PasswordSource {
    /// Produces the password. Errors name the account and never include the secret.
    pub fn resolve(&self, account: &str) -> Result<Secret, String> {
        match self {
            PasswordSource::Literal(s) => Ok(s.clone()),
            PasswordSource::Env(var) => std::env::var(var).map(Secret::new).map_err(|_| {
                format!("account {account}: password_env {var} is not set in the environment")
            }),
            PasswordSource::Command(cmd) => {
                run_secret_command(&format!("account {account}"), "password_command", cmd)
            }
        }
    }
}

/// Runs a credential helper (`password_command`, `token_command`, `client_secret_command`)
/// with `sh -c` and takes the first line it prints. Errors name `owner` and `key`, never the
/// output.
pub fn run_secret_command(owner: &str, key: &str, cmd: &str) -> Result<Secret, String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("{owner}: cannot run {key}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{owner}: {key} exited with {}", out.status));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| format!("{owner}: {key} printed non-UTF-8 output"))?;
    let line = text.lines().next().unwrap_or("").trim_end().to_string();
    if line.is_empty() {
        return Err(format!("{owner}: {key} printed nothing"));
    }
    Ok(Secret::new(line))
}

/// The default config path: `$XDG_CONFIG_HOME/arctern/config.toml`.
pub fn default_path() -> Result<PathBuf, ConfigError> {
    let base = directories::BaseDirs::new().ok_or(ConfigError::NoDefaultLocation)?;
    Ok(base.config_dir().join("arctern").join("config.toml"))
}

fn default_state_dir() -> Result<PathBuf, ConfigError> {
    let base = directories::BaseDirs::new().ok_or(ConfigError::NoDefaultLocation)?;
    Ok(base.data_dir().join("arctern"))
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and validates config text; `path` names it in errors and anchors relative paths.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|span| line_column(text, span.start))
            .unwrap_or((1, 1));
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().to_string(),
        }
    })?;
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let base_dir = path.parent().unwrap_or(Path::new("."));
    let state_dir = match raw.state_dir {
        Some(p) => resolve_path(base_dir, &p),
        None => default_state_dir()?,
    };
    let mut accounts = BTreeMap::new();
    let mut pop3_accounts = BTreeMap::new();
    for (name, a) in raw.accounts {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            || name.starts_with('.')
        {
            return Err(invalid(format!(
                "account name {name:?} must be 1-64 characters of A-Z a-z 0-9 . _ - (it names files in state_dir)"
            )));
        }
        let (raw_imap, raw_pop3) = match (a.imap, a.pop3) {
            (Some(_), Some(_)) => {
                return Err(invalid(format!(
                    "account {name}: has both [accounts.{name}.imap] and [accounts.{name}.pop3]; an account has one server"
                )));
            }
            (None, None) => {
                return Err(invalid(format!(
                    "account {name}: needs an [accounts.{name}.imap] or [accounts.{name}.pop3] table"
                )));
            }
            (imap, pop3) => (imap, pop3),
        };
        if let Some(p) = raw_pop3 {
            for (key, present) in [
                ("sync", a.sync.is_some()),
                ("folders", a.folders.is_some()),
                ("expunge", a.expunge.is_some()),
                ("max_delete_percent", a.max_delete_percent.is_some()),
                ("max_size", a.max_size.is_some()),
                ("download_budget", a.download_budget.is_some()),
                ("upload_budget", a.upload_budget.is_some()),
                ("mbsync_state", a.mbsync_state.is_some()),
                ("offlineimap_status", a.offlineimap_status.is_some()),
                ("utf7_names", a.utf7_names.is_some()),
                ("connections", a.connections.is_some()),
                ("idle", a.idle.is_some()),
            ] {
                if present {
                    return Err(invalid(format!(
                        "account {name}: {key} does not apply to a POP3 account (use folder = \"…\" to choose where mail lands)"
                    )));
                }
            }
            let folder = match a.folder.as_deref() {
                None => crate::names::FolderName::parse("INBOX").expect("INBOX is a valid name"),
                Some(f) => crate::names::FolderName::parse(f).map_err(|e| {
                    invalid(format!("account {name}: folder {f:?} is not usable: {e}"))
                })?,
            };
            let owner = format!("account {name}");
            let mut p = p;
            if let Some(provider) = a.provider {
                let Some(server) = provider.pop3() else {
                    return Err(invalid(format!(
                        "{owner}: {} has no POP3 server; use an imap table",
                        provider.name()
                    )));
                };
                fill_server(&mut p.host, &mut p.port, &mut p.tls, server);
                if let (Some(o), Some(t)) = (provider.oauth2(), p.oauth2.as_mut()) {
                    t.default_provider(o);
                }
            }
            let host = p.host.clone().ok_or_else(|| {
                invalid(format!("{owner}: pop3.host is required (or a provider)"))
            })?;
            let tls = p.tls.unwrap_or(TlsMode::Implicit);
            let port = p.port.unwrap_or(match tls {
                TlsMode::Implicit => 995,
                TlsMode::Starttls | TlsMode::None => 110,
            });
            check_server(&owner, "pop3", &host, port, p.timeout_seconds).map_err(invalid)?;
            let login = login::login(
                login::LoginOwner {
                    owner: &owner,
                    name: &name,
                    section: "pop3",
                    protocol: login::Protocol::Pop3,
                    token_file: token_file(&state_dir, &name),
                },
                login::RawLogin {
                    auth: match p.auth {
                        Some(Pop3Auth::OAuth2) => Some(login::AuthKind::OAuth2),
                        Some(_) => Some(login::AuthKind::Password),
                        None => None,
                    },
                    password: p.password,
                    password_command: p.password_command,
                    password_env: p.password_env,
                    token_command: p.token_command,
                    oauth2: p.oauth2,
                },
            );
            let login = provider_login(&owner, "pop3", a.provider, login).map_err(invalid)?;
            // OAuth2 keys without `auth` mean OAuth2 (as in the imap table).
            let pop3_auth = match (p.auth, &login) {
                (None, Login::OAuth2(_)) => Pop3Auth::OAuth2,
                (a, _) => a.unwrap_or(Pop3Auth::Auto),
            };
            pop3_accounts.insert(
                name.clone(),
                Pop3Account {
                    name: name.clone(),
                    maildir: resolve_path(base_dir, &a.maildir),
                    layout: a.layout.unwrap_or(Layout::MaildirPlusPlus),
                    folder,
                    interval: match &a.interval {
                        Some(d) => d.resolve(&owner, "interval").map_err(invalid)?,
                        None => DEFAULT_INTERVAL,
                    },
                    pop3: Pop3Config {
                        host,
                        port,
                        tls,
                        user: p.user,
                        login,
                        ca_file: p.ca_file.map(|c| resolve_path(base_dir, &c)),
                        tls_pin: parse_pins(&owner, "pop3", p.tls_pin.as_deref())
                            .map_err(invalid)?,
                        timeout: std::time::Duration::from_secs(p.timeout_seconds.unwrap_or(120)),
                        keep_on_server: p.keep_on_server.unwrap_or(true),
                        delete_after_days: p.delete_after_days,
                        auth: pop3_auth,
                        identify_by: p.identify_by.unwrap_or(Pop3Identity::Uidl),
                    },
                },
            );
            continue;
        }
        let imap = raw_imap.expect("checked above: exactly one server table");
        if a.folder.is_some() {
            return Err(invalid(format!(
                "account {name}: folder applies to POP3 accounts; an IMAP account chooses folders with folders = [...]"
            )));
        }
        let imap = imap_config(
            &format!("account {name}"),
            &name,
            imap,
            base_dir,
            token_file(&state_dir, &name),
            a.provider,
        )
        .map_err(invalid)?;
        let folders = a.folders.unwrap_or_else(|| vec!["*".to_string()]);
        for pattern in &folders {
            let body = pattern.strip_prefix('!').unwrap_or(pattern);
            if body.is_empty() || body.contains('\0') {
                return Err(invalid(format!(
                    "account {name}: folders pattern {pattern:?} is empty or contains NUL"
                )));
            }
        }
        let max_delete_percent = a.max_delete_percent.unwrap_or(50);
        if max_delete_percent > 100 {
            return Err(invalid(format!(
                "account {name}: max_delete_percent must be 0-100, not {max_delete_percent}"
            )));
        }
        // The default stays under what the provider allows; a value written wins.
        let connections = a.connections.unwrap_or_else(|| {
            a.provider
                .and_then(|p| p.max_connections())
                .map_or(4, |max| max.min(4))
        });
        if !(1..=16).contains(&connections) {
            return Err(invalid(format!(
                "account {name}: connections must be 1-16, not {connections}"
            )));
        }
        let owner = format!("account {name}");
        let interval = match &a.interval {
            Some(d) => d.resolve(&owner, "interval").map_err(invalid)?,
            None => DEFAULT_INTERVAL,
        };
        let max_size = match &a.max_size {
            Some(size) => Some(size.resolve(&owner, "max_size").map_err(invalid)?),
            None => None,
        };
        let (preset_down, preset_up) = a
            .provider
            .map_or((None, None), provider::Provider::daily_budgets);
        let download_budget = RawBudget::resolve(
            a.download_budget.as_ref(),
            preset_down,
            &owner,
            "download_budget",
        )
        .map_err(invalid)?;
        let upload_budget =
            RawBudget::resolve(a.upload_budget.as_ref(), preset_up, &owner, "upload_budget")
                .map_err(invalid)?;
        let idle = a.idle.clone().unwrap_or_else(|| vec!["INBOX".to_string()]);
        let adopt = AdoptSources {
            mbsync_state: a.mbsync_state.as_deref().map(|p| {
                // A trailing `/` (a directory, as mbsync writes it) survives the resolving.
                let mut r = resolve_path(base_dir, p).into_os_string();
                if p.to_string_lossy().ends_with('/') && !r.to_string_lossy().ends_with('/') {
                    r.push("/");
                }
                PathBuf::from(r)
            }),
            offlineimap_status: a
                .offlineimap_status
                .as_deref()
                .map(|p| resolve_path(base_dir, p)),
        };
        let account = ImapAccount {
            max_size,
            download_budget,
            upload_budget,
            adopt,
            idle,
            interval,
            name: name.clone(),
            maildir: resolve_path(base_dir, &a.maildir),
            sync: a.sync.unwrap_or(SyncMode::TwoWay),
            folders,
            layout: {
                let layout = a.layout.unwrap_or(Layout::MaildirPlusPlus);
                if a.utf7_names == Some(true) {
                    layout.with_utf7_names()
                } else {
                    layout
                }
            },
            expunge: a.expunge.unwrap_or(ExpungePolicy::Both),
            max_delete_percent,
            connections,
            imap,
        };
        accounts.insert(name, account);
    }
    let mut targets = BTreeMap::new();
    for (name, t) in raw.targets {
        if accounts.contains_key(&name) || pop3_accounts.contains_key(&name) {
            return Err(invalid(format!(
                "target {name}: an account has the same name; give the target another one"
            )));
        }
        let kind = match (t.imap, t.smtp) {
            (Some(imap), None) => TargetKind::Imap(
                imap_config(
                    &format!("target {name}"),
                    &name,
                    imap,
                    base_dir,
                    token_file(&state_dir, &name),
                    t.provider,
                )
                .map_err(invalid)?,
            ),
            (None, Some(smtp)) => TargetKind::Smtp(
                smtp_config(
                    &name,
                    smtp,
                    base_dir,
                    token_file(&state_dir, &name),
                    t.provider,
                )
                .map_err(invalid)?,
            ),
            _ => {
                return Err(invalid(format!(
                    "target {name}: needs exactly one of [targets.{name}.imap] and [targets.{name}.smtp]"
                )));
            }
        };
        let connections = match (t.connections, &kind) {
            (None, _) => 4,
            (Some(_), TargetKind::Smtp(_)) => {
                return Err(invalid(format!(
                    "target {name}: connections applies to IMAP targets (an SMTP target sends one message at a time)"
                )));
            }
            (Some(n), TargetKind::Imap(_)) if (1..=16).contains(&n) => n,
            (Some(n), TargetKind::Imap(_)) => {
                return Err(invalid(format!(
                    "target {name}: connections must be 1-16, not {n}"
                )));
            }
        };
        let owner = format!("target {name}");
        let upload_budget = match &kind {
            TargetKind::Imap(_) => RawBudget::resolve(
                t.upload_budget.as_ref(),
                t.provider.and_then(|p| p.daily_budgets().1),
                &owner,
                "upload_budget",
            )
            .map_err(invalid)?,
            TargetKind::Smtp(_) if t.upload_budget.is_some() => {
                return Err(invalid(format!(
                    "{owner}: upload_budget applies to IMAP targets (an SMTP server's sending limit is answered per message)"
                )));
            }
            TargetKind::Smtp(_) => None,
        };
        targets.insert(
            name.clone(),
            Target {
                name,
                kind,
                folder_map: t.folder_map.unwrap_or_default(),
                connections,
                upload_budget,
            },
        );
    }
    for t in targets.values() {
        if let TargetKind::Smtp(s) = &t.kind
            && let Some(via) = &s.confirm_via
            && !matches!(targets.get(via).map(|v| &v.kind), Some(TargetKind::Imap(_)))
        {
            return Err(invalid(format!(
                "target {}: smtp.confirm_via = {via:?} must name an IMAP target ([targets.{via}.imap])",
                t.name
            )));
        }
    }
    if accounts.is_empty() && pop3_accounts.is_empty() {
        return Err(invalid(
            "no [accounts.NAME] table: nothing to sync".to_string(),
        ));
    }
    Ok(Config {
        path: path.to_path_buf(),
        state_dir,
        index: raw.index.unwrap_or(true),
        metrics_file: raw.metrics_file.map(|p| resolve_path(base_dir, &p)),
        accounts,
        pop3_accounts,
        targets,
    })
}

/// An `imap` table (of an account or a target) with its defaults; `owner` names it in errors.
/// Fills a server table's host, and then its TLS and port, from a provider's server where the
/// table leaves them out (a table that names its own host keeps the usual defaults).
fn fill_server(
    host: &mut Option<String>,
    port: &mut Option<u16>,
    tls: &mut Option<TlsMode>,
    server: provider::Server,
) {
    if host.is_some() {
        return;
    }
    *host = Some(server.host.to_string());
    let preset = if server.implicit_tls {
        TlsMode::Implicit
    } else {
        TlsMode::Starttls
    };
    let mode = *tls.get_or_insert(preset);
    if port.is_none() && mode == preset {
        *port = Some(server.port);
    }
}

/// The provider's part in a login: its OAuth2 endpoints for an `oauth2` table that names none,
/// the error for a password where it takes none, and what to give where no login is written.
fn provider_login(
    owner: &str,
    section: &str,
    provider: Option<provider::Provider>,
    result: Result<Login, String>,
) -> Result<Login, String> {
    let Some(p) = provider else {
        return result;
    };
    match result {
        Ok(Login::Password(_)) if p.oauth2_only() => Err(format!(
            "{owner}: {section}: {} takes no password for {section}: use {}",
            p.name(),
            p.password_hint()
        )),
        Err(e) if e.contains("needs exactly one of password") && e.contains("(found 0)") => {
            Err(format!(
                "{owner}: {section} needs a login for {}: {}",
                p.name(),
                p.password_hint()
            ))
        }
        other => other,
    }
}

/// Where `arctern auth login NAME` keeps the tokens of an account or target (names are unique
/// across both).
fn token_file(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("oauth2").join(format!("{name}.json"))
}

fn imap_config(
    owner: &str,
    name: &str,
    mut imap: RawImap,
    base_dir: &Path,
    token_file: PathBuf,
    provider: Option<provider::Provider>,
) -> Result<ImapConfig, String> {
    if let Some(p) = provider {
        fill_server(&mut imap.host, &mut imap.port, &mut imap.tls, p.imap());
        if let (Some(o), Some(t)) = (p.oauth2(), imap.oauth2.as_mut()) {
            t.default_provider(o);
        }
    }
    let host = imap.host.ok_or_else(|| {
        format!("{owner}: imap.host is required (or provider = \"gmail\" | \"outlook\" | \"fastmail\" | \"icloud\" | \"yahoo\" on the {})", owner.split(' ').next().unwrap_or("account"))
    })?;
    let tls = imap.tls.unwrap_or(TlsMode::Implicit);
    let port = imap.port.unwrap_or(match tls {
        TlsMode::Implicit => 993,
        TlsMode::Starttls | TlsMode::None => 143,
    });
    check_server(owner, "imap", &host, port, imap.timeout_seconds)?;
    let login = login::login(
        login::LoginOwner {
            owner,
            name,
            section: "imap",
            protocol: login::Protocol::Imap,
            token_file,
        },
        login::RawLogin {
            auth: imap.auth,
            password: imap.password,
            password_command: imap.password_command,
            password_env: imap.password_env,
            token_command: imap.token_command,
            oauth2: imap.oauth2,
        },
    );
    let login = provider_login(owner, "imap", provider, login)?;
    Ok(ImapConfig {
        host,
        port,
        tls,
        user: imap.user,
        login,
        ca_file: imap.ca_file.map(|p| resolve_path(base_dir, &p)),
        tls_pin: parse_pins(owner, "imap", imap.tls_pin.as_deref())?,
        timeout: std::time::Duration::from_secs(imap.timeout_seconds.unwrap_or(120)),
        compress: imap.compress.unwrap_or(false),
    })
}

fn smtp_config(
    name: &str,
    mut smtp: RawSmtp,
    base_dir: &Path,
    token_file: PathBuf,
    provider: Option<provider::Provider>,
) -> Result<SmtpConfig, String> {
    let owner = format!("target {name}");
    if let Some(p) = provider {
        fill_server(&mut smtp.host, &mut smtp.port, &mut smtp.tls, p.smtp());
        if let (Some(o), Some(t)) = (p.oauth2(), smtp.oauth2.as_mut()) {
            t.default_provider(o);
        }
    }
    let host = smtp.host.clone().ok_or_else(|| {
        format!("{owner}: smtp.host is required (or provider = \"gmail\" | ... on the target)")
    })?;
    let tls = smtp.tls.unwrap_or(TlsMode::Starttls);
    let port = smtp.port.unwrap_or(match tls {
        TlsMode::Implicit => 465,
        TlsMode::Starttls => 587,
        TlsMode::None => 25,
    });
    check_server(&owner, "smtp", &host, port, smtp.timeout_seconds)?;
    let any_login = smtp.password.is_some()
        || smtp.password_command.is_some()
        || smtp.password_env.is_some()
        || smtp.token_command.is_some()
        || smtp.oauth2.is_some()
        || smtp.auth.is_some();
    let login = match (&smtp.user, any_login) {
        (None, false) => None,
        (None, true) => {
            return Err(format!(
                "{owner}: smtp has a password or OAuth2 keys but no user"
            ));
        }
        (Some(_), _) => Some(provider_login(
            &owner,
            "smtp",
            provider,
            login::login(
                login::LoginOwner {
                    owner: &owner,
                    name,
                    section: "smtp",
                    protocol: login::Protocol::Smtp,
                    token_file,
                },
                login::RawLogin {
                    auth: smtp.auth,
                    password: smtp.password,
                    password_command: smtp.password_command,
                    password_env: smtp.password_env,
                    token_command: smtp.token_command,
                    oauth2: smtp.oauth2,
                },
            ),
        )?),
    };
    if smtp.envelope_to.is_empty() {
        return Err(format!(
            "{owner}: smtp.envelope_to needs at least one address"
        ));
    }
    for a in std::iter::once(&smtp.envelope_from).chain(&smtp.envelope_to) {
        if !a.contains('@') || a.contains(['<', '>', '\r', '\n', ' ']) {
            return Err(format!("{owner}: {a:?} is not a plain mail address"));
        }
    }
    if let Some(r) = smtp.rate
        && !(r > 0.0 && r.is_finite())
    {
        return Err(format!(
            "{owner}: smtp.rate must be a positive number of messages per second, not {r}"
        ));
    }
    let retry_initial = smtp.retry_initial_seconds.unwrap_or(2.0);
    if !(0.0..=3600.0).contains(&retry_initial) {
        return Err(format!(
            "{owner}: smtp.retry_initial_seconds must be 0-3600, not {retry_initial}"
        ));
    }
    Ok(SmtpConfig {
        rate: smtp.rate,
        max_retries: smtp.max_retries.unwrap_or(5),
        retry_initial: std::time::Duration::from_secs_f64(retry_initial),
        confirm_via: smtp.confirm_via,
        confirm_folder: smtp.confirm_folder.unwrap_or_else(|| "INBOX".to_string()),
        host,
        port,
        tls,
        user: smtp.user,
        login,
        ca_file: smtp.ca_file.map(|p| resolve_path(base_dir, &p)),
        tls_pin: parse_pins(&owner, "smtp", smtp.tls_pin.as_deref())?,
        timeout: std::time::Duration::from_secs(smtp.timeout_seconds.unwrap_or(120)),
        envelope_from: smtp.envelope_from,
        envelope_to: smtp.envelope_to,
    })
}

/// Checks what every server table needs: a host, a port, a timeout of at least a second.
fn check_server(
    owner: &str,
    section: &str,
    host: &str,
    port: u16,
    timeout_seconds: Option<u64>,
) -> Result<(), String> {
    if port == 0 {
        return Err(format!("{owner}: {section}.port must not be 0"));
    }
    if host.trim().is_empty() {
        return Err(format!("{owner}: {section}.host is empty"));
    }
    if timeout_seconds == Some(0) {
        return Err(format!(
            "{owner}: {section}.timeout_seconds must be at least 1"
        ));
    }
    Ok(())
}

/// Exactly one of `password`, `password_command`, `password_env`. The error never echoes a value.
fn password_source(
    owner: &str,
    section: &str,
    password: Option<String>,
    command: Option<String>,
    env: Option<String>,
) -> Result<PasswordSource, String> {
    let n = [password.is_some(), command.is_some(), env.is_some()]
        .iter()
        .filter(|s| **s)
        .count();
    match (password, command, env) {
        (Some(p), None, None) => Ok(PasswordSource::Literal(Secret::new(p))),
        (None, Some(c), None) => Ok(PasswordSource::Command(c)),
        (None, None, Some(v)) => Ok(PasswordSource::Env(v)),
        _ => Err(format!(
            "{owner}: {section} needs exactly one of password, password_command, password_env (found {n})"
        )),
    }
}

/// A certificate pin (`tls_pin`): a server whose certificate matches one is accepted whatever
/// signed it and whatever its dates say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsPin {
    /// `sha256:AB:CD:…`: the SHA-256 of the whole certificate (DER), as
    /// `openssl x509 -noout -fingerprint -sha256` prints it.
    Certificate([u8; 32]),
    /// `spki-sha256:BASE64`: the SHA-256 of the SubjectPublicKeyInfo (DER), as curl's
    /// `--pinnedpubkey` takes it; survives a renewal with the same key.
    PublicKey([u8; 32]),
}

impl TlsPin {
    /// Parses one pin; the error says which forms there are.
    pub fn parse(text: &str) -> Result<TlsPin, String> {
        let t = text.trim();
        let bad = || {
            format!(
                "{t:?} is not a pin: use \"sha256:<64 hex digits, colons allowed>\" or \"spki-sha256:<base64 of 32 bytes>\""
            )
        };
        if let Some(hex) = t
            .strip_prefix("sha256:")
            .or_else(|| t.strip_prefix("SHA256:"))
        {
            let digits: String = hex.chars().filter(|c| *c != ':').collect();
            if digits.len() != 64 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            let mut out = [0u8; 32];
            for (i, byte) in out.iter_mut().enumerate() {
                let pair = digits.get(2 * i..2 * i + 2).ok_or_else(bad)?;
                *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
            }
            return Ok(TlsPin::Certificate(out));
        }
        if let Some(b64) = t.strip_prefix("spki-sha256:") {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| bad())?;
            let out: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
            return Ok(TlsPin::PublicKey(out));
        }
        Err(bad())
    }
}

fn parse_pins(owner: &str, section: &str, pins: Option<&[String]>) -> Result<Vec<TlsPin>, String> {
    pins.unwrap_or_default()
        .iter()
        .map(|p| TlsPin::parse(p).map_err(|e| format!("{owner}: {section}.tls_pin: {e}")))
        .collect()
}

/// Expands a leading `~/` and anchors relative paths at the config file's directory.
fn resolve_path(base_dir: &Path, p: &Path) -> PathBuf {
    if let Ok(rest) = p.strip_prefix("~")
        && let Some(home) = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf())
    {
        return home.join(rest);
    }
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_EXAMPLE: &str = r#"
state_dir = "/var/lib/arctern"      # SQLite state (and later the index); default $XDG_DATA_HOME/arctern

[accounts.work]
maildir = "/home/me/Mail/work"       # the local Maildir root for this account
sync = "two-way"                     # "two-way" (default) | "pull" (never changes the server) | "push"
folders = ["*", "!Trash"]            # IMAP LIST patterns, "!" excludes; default ["*"]

[accounts.work.imap]
host = "imap.example.com"
port = 993                           # default from tls: 993 implicit, 143 starttls/none
tls = "implicit"                     # "implicit" (default) | "starttls" | "none"
user = "me@example.com"
password = "…"                       # or password_command = "pass show mail/work", or password_env = "VAR"
ca_file = "/path/ca.pem"             # optional extra trust root (self-signed servers)
"#;

    #[test]
    fn the_documented_example_parses_verbatim() {
        let c = parse(Path::new("/etc/arctern.toml"), ISSUE_EXAMPLE).unwrap();
        let a = &c.accounts["work"];
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/arctern"));
        assert_eq!(a.sync, SyncMode::TwoWay);
        assert_eq!(a.folders, vec!["*", "!Trash"]);
        assert_eq!(a.imap.port, 993);
        assert_eq!(a.imap.tls, TlsMode::Implicit);
        assert_eq!(a.expunge, ExpungePolicy::Both);
        assert_eq!(a.max_delete_percent, 50);
        assert_eq!(a.layout, Layout::MaildirPlusPlus);
        assert!(matches!(
            a.imap.login,
            Login::Password(PasswordSource::Literal(_))
        ));
    }

    #[test]
    fn max_size_takes_bytes_or_units_and_names_a_bad_value() {
        let c = parse(Path::new("/x.toml"), ISSUE_EXAMPLE).unwrap();
        assert_eq!(c.accounts["work"].max_size, None);
        for (value, bytes) in [
            ("\"50M\"", 50 << 20),
            ("\"500k\"", 500 << 10),
            ("\"1 GiB\"", 1 << 30),
            ("4096", 4096),
        ] {
            let text =
                ISSUE_EXAMPLE.replace("folders = [", &format!("max_size = {value}\nfolders = ["));
            let c = parse(Path::new("/x.toml"), &text).unwrap();
            assert_eq!(c.accounts["work"].max_size, Some(bytes), "{value}");
        }
        for value in ["\"50X\"", "\"\"", "0", "\"99999999999999G\""] {
            let text =
                ISSUE_EXAMPLE.replace("folders = [", &format!("max_size = {value}\nfolders = ["));
            let err = parse(Path::new("/x.toml"), &text).unwrap_err().to_string();
            assert!(err.contains("max_size"), "{value}: {err}");
        }
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let text = ISSUE_EXAMPLE.replace("user = ", "usr = \"x\"\nuser = ");
        let err = parse(Path::new("/etc/a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/etc/a.toml:13:"), "{err}");
        assert!(err.contains("usr"), "{err}");
    }

    #[test]
    fn port_defaults_follow_tls() {
        let text = ISSUE_EXAMPLE
            .replace("port = 993", "")
            .replace("\"implicit\"", "\"starttls\"");
        let c = parse(Path::new("/x.toml"), &text).unwrap();
        assert_eq!(c.accounts["work"].imap.port, 143);
    }

    #[test]
    fn two_password_sources_are_rejected() {
        let text = ISSUE_EXAMPLE.replace("ca_file", "password_env = \"X\"\nca_file");
        let err = parse(Path::new("/x.toml"), &text).unwrap_err().to_string();
        assert!(err.contains("exactly one of password"), "{err}");
        assert!(!err.contains('…'), "the password must not be echoed: {err}");
    }

    #[test]
    fn relative_paths_are_anchored_at_the_config_file() {
        let text = ISSUE_EXAMPLE.replace("/home/me/Mail/work", "mail/work");
        let c = parse(Path::new("/etc/arctern/config.toml"), &text).unwrap();
        assert_eq!(
            c.accounts["work"].maildir,
            PathBuf::from("/etc/arctern/mail/work")
        );
    }

    #[test]
    fn daily_budgets_come_from_the_preset_and_can_be_changed_or_turned_off() {
        let cfg = |text: &str| parse(Path::new("/c.toml"), &format!("state_dir = \"/s\"\n{text}"));
        let gmail = "[accounts.g]\nmaildir = \"/m\"\nprovider = \"gmail\"\n[accounts.g.imap]\nuser = \"me@gmail.com\"\npassword = \"x\"\n";
        let c = cfg(gmail).unwrap();
        assert_eq!(c.accounts["g"].download_budget, Some(2_500_000_000));
        assert_eq!(c.accounts["g"].upload_budget, Some(500_000_000));
        let c = cfg(&gmail.replace(
            "provider = \"gmail\"\n",
            "provider = \"gmail\"\ndownload_budget = \"none\"\nupload_budget = \"100M\"\n",
        ))
        .unwrap();
        assert_eq!(c.accounts["g"].download_budget, None);
        assert_eq!(c.accounts["g"].upload_budget, Some(100 << 20));
        let e = cfg(&gmail.replace(
            "provider = \"gmail\"\n",
            "provider = \"gmail\"\ndownload_budget = \"lots\"\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("download_budget") && e.contains("none"), "{e}");
        let c = cfg("[accounts.f]\nmaildir = \"/m\"\nprovider = \"fastmail\"\n[accounts.f.imap]\nuser = \"me\"\npassword = \"x\"\n[targets.t]\nprovider = \"gmail\"\n[targets.t.imap]\nuser = \"me@gmail.com\"\npassword = \"x\"\n").unwrap();
        assert_eq!(c.accounts["f"].download_budget, None);
        assert_eq!(c.targets["t"].upload_budget, Some(500_000_000));
    }

    #[test]
    fn provider_presets_fill_servers_and_sign_in_and_written_values_win() {
        let cfg = |text: &str| parse(Path::new("/c.toml"), &format!("state_dir = \"/s\"\n{text}"));
        let c = cfg("[accounts.g]\nmaildir = \"/m\"\nprovider = \"gmail\"\n[accounts.g.imap]\nuser = \"me@gmail.com\"\npassword_command = \"pass gmail\"\n").unwrap();
        let g = &c.accounts["g"];
        assert_eq!(
            (g.imap.host.as_str(), g.imap.port, g.imap.tls),
            ("imap.gmail.com", 993, TlsMode::Implicit)
        );
        assert_eq!(g.connections, 4);
        // Outlook: OAuth2 only; the oauth2 table needs just the client ID.
        let e = cfg("[accounts.o]\nmaildir = \"/m\"\nprovider = \"outlook\"\n[accounts.o.imap]\nuser = \"me@example.com\"\npassword = \"x\"\n").unwrap_err().to_string();
        assert!(
            e.contains("outlook takes no password") && !e.contains("\"x\""),
            "{e}"
        );
        let c = cfg("[accounts.o]\nmaildir = \"/m\"\nprovider = \"outlook\"\n[accounts.o.imap]\nuser = \"me@example.com\"\n[accounts.o.imap.oauth2]\nclient_id = \"abc\"\n").unwrap();
        let Login::OAuth2(o) = &c.accounts["o"].imap.login else {
            panic!("oauth2");
        };
        let TokenSource::Client(client) = &o.tokens else {
            panic!("client");
        };
        assert!(client.scopes[0].contains("IMAP.AccessAsUser.All"));
        assert_eq!(c.accounts["o"].imap.host, "outlook.office365.com");
        // No login at all: what the provider wants.
        let e = cfg("[accounts.i]\nmaildir = \"/m\"\nprovider = \"icloud\"\n[accounts.i.imap]\nuser = \"me@icloud.com\"\n").unwrap_err().to_string();
        assert!(e.contains("app-specific password"), "{e}");
        let e = cfg("[accounts.i]\nmaildir = \"/m\"\nprovider = \"icloud\"\n[accounts.i.pop3]\nuser = \"me\"\npassword = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("icloud has no POP3 server"), "{e}");
        // A host, port or TLS written in the table wins.
        let c = cfg("[accounts.y]\nmaildir = \"/m\"\nprovider = \"yahoo\"\nconnections = 8\n[accounts.y.imap]\nhost = \"127.0.0.1\"\nport = 1143\ntls = \"none\"\nuser = \"me\"\npassword = \"x\"\n").unwrap();
        let y = &c.accounts["y"];
        assert_eq!(
            (y.imap.host.as_str(), y.imap.port, y.connections),
            ("127.0.0.1", 1143, 8)
        );
        // Targets too: Gmail's submission server.
        let c = cfg("[accounts.a]\nmaildir = \"/m\"\n[accounts.a.imap]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n[targets.t]\nprovider = \"gmail\"\n[targets.t.smtp]\nuser = \"me@gmail.com\"\npassword_env = \"P\"\nenvelope_from = \"me@gmail.com\"\nenvelope_to = [\"me@gmail.com\"]\n").unwrap();
        let TargetKind::Smtp(smtp) = &c.targets["t"].kind else {
            panic!("smtp");
        };
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.tls),
            ("smtp.gmail.com", 465, TlsMode::Implicit)
        );
    }

    #[test]
    fn every_config_of_the_readme_providers_section_parses() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .unwrap();
        let section = readme
            .split("\n## Providers\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("a Providers section");
        let blocks: Vec<&str> = section
            .split("```toml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .collect();
        assert_eq!(blocks.len(), 5, "one config per provider");
        for block in blocks {
            let c = parse(
                Path::new("/README.md"),
                &format!("state_dir = \"/s\"\n{block}"),
            )
            .unwrap_or_else(|e| panic!("{e}\n{block}"));
            let a = c.accounts.values().next().expect("an account");
            assert!(a.imap.host.contains('.'), "host filled in: {block}");
        }
    }

    #[test]
    fn shipped_example_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        for (name, accounts) in [("example.toml", 2), ("demo.toml", 1)] {
            let path = dir.join(name);
            let c = load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c.accounts.len(), accounts, "{name}");
        }
        let c = load(&dir.join("example.toml")).unwrap();
        assert_eq!(
            c.pop3_accounts.len(),
            1,
            "example.toml documents a POP3 account"
        );
        let a = &c.accounts["work"];
        assert!(matches!(
            a.imap.login,
            Login::Password(PasswordSource::Command(_))
        ));
        assert_eq!(a.imap.timeout, std::time::Duration::from_secs(120));
        let Login::OAuth2(o) = &c.accounts["office"].imap.login else {
            panic!("example.toml documents an OAuth2 account");
        };
        let TokenSource::Client(client) = &o.tokens else {
            panic!("with an oauth2 table");
        };
        assert!(
            client
                .token_url
                .starts_with("https://login.microsoftonline.com/")
        );
        assert!(client.token_file.ends_with("oauth2/office.json"));
    }

    const POP3_ISSUE_EXAMPLE: &str = r#"
[accounts.oldisp]
maildir = "/home/me/Mail/oldisp"       # messages land in this Maildir's INBOX (or `folder = "…"`)

[accounts.oldisp.pop3]
host = "pop.example.net"
port = 995                             # default from tls: 995 implicit, 110 starttls/none
tls = "implicit"                       # "implicit" | "starttls" (STLS, RFC 2595) | "none"
user = "me"
password_command = "pass show oldisp"  # same password options as IMAP accounts
keep_on_server = true                  # default true; false deletes after a safe download
delete_after_days = 30                 # optional: delete messages first seen more than N days ago
"#;

    #[test]
    fn the_documented_pop3_example_parses_verbatim() {
        let c = parse(Path::new("/x.toml"), POP3_ISSUE_EXAMPLE).unwrap();
        assert!(c.accounts.is_empty());
        let a = &c.pop3_accounts["oldisp"];
        assert_eq!(a.folder.as_str(), "INBOX");
        assert_eq!(a.pop3.port, 995);
        assert_eq!(a.pop3.tls, TlsMode::Implicit);
        assert!(a.pop3.keep_on_server);
        assert_eq!(a.pop3.delete_after_days, Some(30));
        assert_eq!(a.pop3.auth, Pop3Auth::Auto);
        assert_eq!(a.pop3.identify_by, Pop3Identity::Uidl);
        assert!(matches!(
            a.pop3.login,
            Login::Password(PasswordSource::Command(_))
        ));
        assert!(matches!(c.account("oldisp"), Some(AnyAccount::Pop3(_))));
        let starttls = POP3_ISSUE_EXAMPLE
            .replace("port = 995", "")
            .replace("\"implicit\"", "\"starttls\"");
        let c = parse(Path::new("/x.toml"), &starttls).unwrap();
        assert_eq!(c.pop3_accounts["oldisp"].pop3.port, 110);
    }

    #[test]
    fn pop3_accounts_refuse_imap_only_keys_and_one_server_per_account() {
        let text = POP3_ISSUE_EXAMPLE.replace("maildir =", "folders = [\"*\"]\nmaildir =");
        let err = parse(Path::new("/x.toml"), &text).unwrap_err().to_string();
        assert!(
            err.contains("folders does not apply to a POP3 account"),
            "{err}"
        );
        let both = format!(
            "{ISSUE_EXAMPLE}\n[accounts.work.pop3]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n"
        );
        let err = parse(Path::new("/x.toml"), &both).unwrap_err().to_string();
        assert!(err.contains("has both"), "{err}");
        let none = "[accounts.x]\nmaildir = \"/m\"\n";
        let err = parse(Path::new("/x.toml"), none).unwrap_err().to_string();
        assert!(
            err.contains("needs an [accounts.x.imap] or [accounts.x.pop3] table"),
            "{err}"
        );
        let bad_folder = POP3_ISSUE_EXAMPLE.replace("maildir =", "folder = \"a/../b\"\nmaildir =");
        let err = parse(Path::new("/x.toml"), &bad_folder)
            .unwrap_err()
            .to_string();
        assert!(err.contains("folder \"a/../b\" is not usable"), "{err}");
    }

    const TARGETS_ISSUE_EXAMPLE: &str = r#"
[targets.newhost]                       # an IMAP destination
[targets.newhost.imap]
host = "imap.newhost.example"
tls = "implicit"
user = "me@newhost.example"
password_command = "pass show newhost"

[targets.archive-inbox]                 # an SMTP destination: each message re-sent as is
[targets.archive-inbox.smtp]
host = "smtp.example.org"
port = 587
tls = "starttls"                        # "implicit" (465) | "starttls" (587) | "none"
user = "me"
password_env = "SMTP_PASS"
envelope_from = "me@example.org"
envelope_to = ["me@example.org"]
"#;

    #[test]
    fn the_documented_targets_parse_verbatim() {
        let text = format!("{ISSUE_EXAMPLE}{TARGETS_ISSUE_EXAMPLE}");
        let c = parse(Path::new("/x.toml"), &text).unwrap();
        match &c.targets["newhost"].kind {
            TargetKind::Imap(i) => {
                assert_eq!(i.port, 993);
                assert_eq!(i.user, "me@newhost.example");
            }
            other => panic!("{other:?}"),
        }
        match &c.targets["archive-inbox"].kind {
            TargetKind::Smtp(s) => {
                assert_eq!(s.port, 587);
                assert_eq!(s.tls, TlsMode::Starttls);
                assert_eq!(s.envelope_to, vec!["me@example.org"]);
                assert!(matches!(
                    s.login,
                    Some(Login::Password(PasswordSource::Env(_)))
                ));
            }
            other => panic!("{other:?}"),
        }
        let bad = text.replace("envelope_to = [\"me@example.org\"]", "envelope_to = []");
        let err = parse(Path::new("/x.toml"), &bad).unwrap_err().to_string();
        assert!(
            err.contains("envelope_to needs at least one address"),
            "{err}"
        );
        match &c.targets["archive-inbox"].kind {
            TargetKind::Smtp(s) => {
                assert_eq!((s.max_retries, s.rate), (5, None));
                assert_eq!(s.retry_initial, std::time::Duration::from_secs(2));
                assert_eq!(
                    (s.confirm_via.as_deref(), s.confirm_folder.as_str()),
                    (None, "INBOX")
                );
            }
            other => panic!("{other:?}"),
        }
        let extra = "envelope_to = [\"me@example.org\"]\nrate = 2.5\nconfirm_via = \"newhost\"";
        let with = text.replace("envelope_to = [\"me@example.org\"]", extra);
        let c = parse(Path::new("/x.toml"), &with).unwrap();
        match &c.targets["archive-inbox"].kind {
            TargetKind::Smtp(s) => {
                assert_eq!(
                    (s.rate, s.confirm_via.as_deref()),
                    (Some(2.5), Some("newhost"))
                );
            }
            other => panic!("{other:?}"),
        }
        let err = parse(
            Path::new("/x.toml"),
            &with.replace("\"newhost\"\n", "\"nohost\"\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("must name an IMAP target"), "{err}");
        let err = parse(
            Path::new("/x.toml"),
            &with.replace("rate = 2.5", "rate = 0"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("smtp.rate must be a positive number"), "{err}");
        let clash = text
            .replace("[targets.newhost]", "[targets.work]")
            .replace("[targets.newhost.imap]", "[targets.work.imap]");
        let err = parse(Path::new("/x.toml"), &clash).unwrap_err().to_string();
        assert!(err.contains("an account has the same name"), "{err}");
        assert_eq!(c.targets["newhost"].connections, 4);
        let three = text.replace(
            "[targets.newhost.imap]",
            "connections = 3\n[targets.newhost.imap]",
        );
        assert_eq!(
            parse(Path::new("/x.toml"), &three).unwrap().targets["newhost"].connections,
            3
        );
        let zero = text.replace(
            "[targets.newhost.imap]",
            "connections = 0\n[targets.newhost.imap]",
        );
        let err = parse(Path::new("/x.toml"), &zero).unwrap_err().to_string();
        assert!(err.contains("connections must be 1-16, not 0"), "{err}");
        let smtp = text.replace(
            "[targets.archive-inbox.smtp]",
            "connections = 2\n[targets.archive-inbox.smtp]",
        );
        let err = parse(Path::new("/x.toml"), &smtp).unwrap_err().to_string();
        assert!(err.contains("connections applies to IMAP targets"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
    }
}
