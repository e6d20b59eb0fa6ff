//! The command line: argument definitions and the wiring from subcommands to the engine. No sync
//! logic lives here; only parsing, printing and exit codes.

pub mod auth;
pub mod check;
pub mod import;
pub mod logging;
pub mod mbox;
pub mod reupload;
pub mod search;
pub mod status;
pub mod sync;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Exit codes, documented in the README.
pub use crate::exit;

/// arctern: mirror IMAP mailboxes into Maildir, both ways, and pull POP3 maildrops, crash-safe.
#[derive(Debug, Parser)]
#[command(name = "arctern", version, about)]
pub struct Cli {
    /// Config file (default: $XDG_CONFIG_HOME/arctern/config.toml).
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log format on stderr: "text" (under systemd with journald priority prefixes) or "json"
    /// (one object per line, for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring another tool's configuration or mail along: print (or write) the equivalent
    /// arctern config, or store an mbox's messages in an account's Maildir.
    Import {
        /// What to import.
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Write an account's mail out in another format.
    Export {
        /// The format.
        #[command(subcommand)]
        to: ExportTo,
    },
    /// Run until stopped: IDLE on the watched folders, a full resync every `interval`, local
    /// changes picked up as they happen (SIGHUP reloads the config, SIGTERM stops cleanly).
    Daemon {
        /// Accounts to run (default: all).
        accounts: Vec<String>,
    },
    /// Mirror the accounts' IMAP folders and their Maildirs, both ways, and pull POP3 maildrops.
    Sync {
        /// Accounts to sync (default: all).
        accounts: Vec<String>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Carry out deletions even above max_delete_percent.
        #[arg(long)]
        force: bool,
    },
    /// Sign in with OAuth2 (Gmail, Microsoft 365, ...) and keep the tokens under state_dir.
    Auth {
        /// What to do.
        #[command(subcommand)]
        action: AuthAction,
    },
    /// Validate the config, connect, log in and print the server's capabilities.
    Check {
        /// Accounts to check (default: all).
        accounts: Vec<String>,
    },
    /// Show per-folder state: messages on each side, last sync, UIDVALIDITY, pending work.
    Status {
        /// Accounts to show (default: all).
        accounts: Vec<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Bring the full-text index up to date with the Maildirs (sync does this too).
    Index {
        /// Accounts to index (default: all).
        accounts: Vec<String>,
        /// Throw the index away and build it again from the Maildirs.
        #[arg(long)]
        rebuild: bool,
    },
    /// Search every account's mail offline (query language: see the README).
    Search {
        /// The query, e.g. from:jane subject:"release notes" after:-30d.
        #[arg(required = true)]
        query: Vec<String>,
        /// At most this many hits.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Newest first, or best match first.
        #[arg(long, value_enum, default_value_t = Sort::Date)]
        sort: Sort,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Upload an account's local Maildir to a target (IMAP APPEND), idempotently.
    Push {
        /// The account, the target and the folders.
        #[command(flatten)]
        what: TargetArgs,
        /// Print what would be uploaded; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// SMTP targets: at most this many messages per second (overrides the target's `rate`).
        #[arg(long, value_parser = parse_rate)]
        rate: Option<f64>,
    },
    /// Pull the account from its server, then push it to the target, resumably.
    Migrate {
        /// The account, the target and the folders.
        #[command(flatten)]
        what: TargetArgs,
    },
    /// Compare the account's Maildir with the target folder by folder; exit 0 when they match.
    Verify {
        /// The account, the target and the folders.
        #[command(flatten)]
        what: TargetArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print a message readably (decoded headers and text), by file path or Message-ID.
    Show {
        /// A message file, or a Message-ID (with or without <>).
        what: String,
        /// Print the file's bytes as they are.
        #[arg(long)]
        raw: bool,
    },
}

/// Order of search hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Sort {
    /// Newest first.
    Date,
    /// Best match first.
    Relevance,
}

impl From<Sort> for crate::index::search::SortOrder {
    fn from(s: Sort) -> Self {
        match s {
            Sort::Date => crate::index::search::SortOrder::Date,
            Sort::Relevance => crate::index::search::SortOrder::Relevance,
        }
    }
}

/// The tools whose configuration `arctern import` reads.
#[derive(Debug, Subcommand)]
pub enum ImportFrom {
    /// An mbsync (isync) configuration: one account per IMAP <-> Maildir Channel.
    Mbsync {
        /// The mbsyncrc (default: ~/.mbsyncrc).
        file: Option<PathBuf>,
        /// Write the config there instead of printing it (refuses to overwrite a file).
        #[arg(long, value_name = "PATH")]
        write: Option<PathBuf>,
    },
    /// An offlineimap configuration: one account per offlineimap account (IMAP <-> Maildir).
    Offlineimap {
        /// The offlineimaprc (default: ~/.offlineimaprc).
        file: Option<PathBuf>,
        /// Write the config there instead of printing it (refuses to overwrite a file).
        #[arg(long, value_name = "PATH")]
        write: Option<PathBuf>,
    },
    /// mbox files (mboxo, mboxrd, Google Takeout, Thunderbird) into an account's Maildir; the
    /// next `sync` uploads them. Rerunnable: what is already there is never stored twice.
    Mbox {
        /// The mbox files ("-": standard input).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The account whose Maildir receives the mail.
        #[arg(long)]
        account: String,
        /// Store everything in this folder (default: Takeout's labels, else each file's name;
        /// standard input goes to INBOX).
        #[arg(long)]
        folder: Option<String>,
        /// How the files quote `From ` lines inside messages.
        #[arg(long, value_enum, default_value_t = MboxFormat::Mboxrd)]
        format: MboxFormat,
    },
}

/// How an mbox quotes `From ` lines.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum MboxFormat {
    /// `>From ` and `>>From ` each lose one `>` (mutt, Google Takeout, arctern's export).
    Mboxrd,
    /// Only `>From ` loses its `>` (older mail programs, Thunderbird).
    Mboxo,
}

/// The formats `arctern export` writes.
#[derive(Debug, Subcommand)]
pub enum ExportTo {
    /// An account's Maildir as one mboxrd file, with a SHA-256 manifest beside it.
    Mbox {
        /// The account.
        account: String,
        /// Only these folders (LIST-style patterns, "!" excludes).
        #[arg(long, num_args = 1..)]
        folders: Vec<String>,
        /// The mbox to write (default: standard output, no manifest unless --manifest).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Where the manifest goes (default: FILE.sha256 beside the mbox).
        #[arg(long, value_name = "PATH")]
        manifest: Option<PathBuf>,
    },
}

/// `arctern auth ...`.
#[derive(Debug, Subcommand)]
pub enum AuthAction {
    /// Sign in for an account or target with `auth = "oauth2"`: open the provider's page (the
    /// address is printed too), receive its answer on http://127.0.0.1:PORT/ and store the
    /// tokens (mode 0600); exit 0 when signed in.
    Login {
        /// The account or target.
        name: String,
        /// Print the address only; open no browser.
        #[arg(long)]
        no_browser: bool,
        /// Sign in on another device with a code (RFC 8628; Microsoft offers it, Google not
        /// for mail).
        #[arg(long, conflicts_with = "no_browser")]
        device: bool,
    },
    /// Whether each OAuth2 login has tokens, and until when the access token holds.
    Status {
        /// Accounts or targets (default: every one with OAuth2).
        names: Vec<String>,
    },
}

/// What `push`, `migrate` and `verify` work on.
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// The account whose Maildir is uploaded or compared.
    pub account: String,
    /// The target (a [targets.NAME] table).
    #[arg(long)]
    pub to: String,
    /// Only these folders (LIST-style patterns, "!" excludes).
    #[arg(long, num_args = 1..)]
    pub folders: Vec<String>,
}

/// `--rate`: a positive, finite number of messages per second.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
        _ => Err(format!(
            "{s:?} is not a positive number of messages per second"
        )),
    }
}

/// Loads the config named on the command line or the default one.
pub fn load_config(cli: &Cli) -> Result<crate::config::Config, crate::config::ConfigError> {
    let path = match &cli.config {
        Some(p) => p.clone(),
        None => crate::config::default_path()?,
    };
    crate::config::load(&path)
}
