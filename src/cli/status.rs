//! `arctern status`: what the state database knows, per account and folder, plus local changes
//! waiting for the next sync (found by scanning the Maildir; the server is not contacted).

use super::exit;
use crate::config::{AnyAccount, Config, Pop3Account};
use crate::db::StateDb;
use crate::model::{Flags, NearKey, Side, StateRow, Uid};
use crate::names::FolderName;
use crate::store::maildir::{MaildirFolder, NearMessage, layout};
use crate::sync::planner::{self, Plan};
use crate::sync::snapshot;
use std::collections::BTreeMap;

/// One folder's status line.
#[derive(Debug, serde::Serialize)]
pub struct FolderStatus {
    /// Account.
    pub account: String,
    /// "imap", or "pop3" (then server_messages counts stored messages the server still keeps,
    /// local_messages every message pulled, and last_sync the last pull).
    pub kind: &'static str,
    /// Folder.
    pub folder: String,
    /// Messages on the server at the last sync.
    pub server_messages: i64,
    /// Messages in the Maildir at the last sync.
    pub local_messages: i64,
    /// Unix time of the last sync of this folder.
    pub last_sync: Option<i64>,
    /// UIDVALIDITY at the last sync.
    pub uidvalidity: Option<u32>,
    /// Interrupted operations waiting to be settled.
    pub pending_intents: i64,
    /// Local messages not yet uploaded.
    pub pending_local_new: usize,
    /// Linked local messages deleted since the last sync.
    pub pending_local_deleted: usize,
    /// Linked local messages whose flags changed since the last sync.
    pub pending_local_flags: usize,
    /// A problem reading the local folder.
    pub local_error: Option<String>,
    /// Messages left alone at the last sync for being larger than `max_size`.
    pub too_large: Vec<crate::model::TooLarge>,
    /// Local messages the server refused to store: not offered again while unchanged.
    pub refused: Vec<RefusedUpload>,
    /// The account's last run without errors (Unix time).
    pub last_success: Option<i64>,
    /// The account's last run with an error (Unix time).
    pub last_failure: Option<i64>,
    /// What went wrong in that run.
    pub last_error: Option<String>,
}

/// A local message the server refused to store.
#[derive(Debug, serde::Serialize)]
pub struct RefusedUpload {
    /// The Maildir file's unique part.
    pub item: String,
    /// Its size when refused.
    pub size: u64,
    /// The server's answer.
    pub reason: String,
}

impl FolderStatus {
    /// A folder's line with nothing known yet but the account's run history.
    fn new(
        account: &str,
        kind: &'static str,
        folder: &str,
        history: &crate::db::runs::RunHistory,
    ) -> FolderStatus {
        FolderStatus {
            account: account.to_string(),
            kind,
            folder: folder.to_string(),
            server_messages: 0,
            local_messages: 0,
            last_sync: None,
            uidvalidity: None,
            pending_intents: 0,
            pending_local_new: 0,
            pending_local_deleted: 0,
            pending_local_flags: 0,
            local_error: None,
            too_large: Vec::new(),
            refused: Vec::new(),
            last_success: history.last_success,
            last_failure: history.last_failure,
            last_error: history.last_error.clone(),
        }
    }
}

/// The account's run history in one line: last success, last failure and why, totals.
fn history_line(name: &str, h: &crate::db::runs::RunHistory) -> Option<String> {
    if h.runs_total == 0 {
        return None;
    }
    let mut line = format!("{name}: last success {}", format_time(h.last_success));
    if let Some(t) = h.last_failure {
        line.push_str(&format!(
            "; last failure {}: {}",
            format_time(Some(t)),
            h.last_error.as_deref().unwrap_or("?")
        ));
    }
    line.push_str(&format!(
        "; {} run(s), {} failed; {} ↓ {} ↑ messages, {:.1} ↓ {:.1} ↑ MB in all",
        h.runs_total,
        h.failures_total,
        h.messages_down_total,
        h.messages_up_total,
        h.bytes_down_total as f64 / 1e6,
        h.bytes_up_total as f64 / 1e6
    ));
    Some(line)
}

/// Runs `status` and returns the exit code.
pub fn run(config: &Config, accounts: &[String], json: bool) -> u8 {
    let selected = match config.select_accounts(accounts) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::CONFIG;
        }
    };
    let mut all = Vec::new();
    for account in selected {
        let account = match account {
            AnyAccount::Imap(a) => a,
            AnyAccount::Pop3(a) => match pop3_status(config, a, json) {
                Ok(Some(st)) => {
                    all.push(st);
                    continue;
                }
                Ok(None) => continue,
                Err(e) => {
                    eprintln!("{}: {e}", a.name);
                    return exit::LOCAL;
                }
            },
        };
        let path = config.state_path(&account.name);
        let db = match StateDb::open_existing(&path) {
            Ok(Some(db)) => db,
            Ok(None) => {
                if !json {
                    println!("{}: never synced", account.name);
                }
                continue;
            }
            Err(e) => {
                eprintln!("{}: {e}", account.name);
                return exit::LOCAL;
            }
        };
        let history = db.run_history().unwrap_or_default();
        let folders = match db.folders() {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{}: {e}", account.name);
                return exit::LOCAL;
            }
        };
        for f in folders {
            let mut st = FolderStatus::new(&account.name, "imap", &f.name, &history);
            st.server_messages = f.far_count;
            st.local_messages = f.near_count;
            st.last_sync = f.last_sync;
            st.uidvalidity = f.uidvalidity.map(|v| v.0);
            st.pending_intents = db.intent_count(f.id).unwrap_or(0);
            let scanned = FolderName::parse(&f.name)
                .map_err(|e| e.to_string())
                .and_then(|n| layout::folder_path(&account.maildir, account.layout, &n))
                .and_then(|p| {
                    let md = MaildirFolder::open(&p).map_err(|e| e.to_string())?;
                    let near = md.scan().map_err(|e| e.to_string())?;
                    Ok((md, near))
                });
            match (scanned, db.messages(f.id)) {
                (Ok((md, near)), Ok(rows)) => {
                    let pending = pending_local_work(account, &md, &near, &rows);
                    st.pending_local_new = pending.uploads.len();
                    st.pending_local_flags = pending.flag_changes(Side::Far);
                    st.pending_local_deleted = pending.delete_far.len()
                        + pending
                            .detach
                            .iter()
                            .filter(|(_, kept)| *kept == Side::Far)
                            .count();
                }
                (Err(e), _) => st.local_error = Some(e),
                (_, Err(e)) => st.local_error = Some(e.to_string()),
            }
            st.too_large = db.too_large(f.id).unwrap_or_default();
            st.refused = db
                .refused_uploads(f.id)
                .unwrap_or_default()
                .into_iter()
                .map(|(item, (size, reason))| RefusedUpload { item, size, reason })
                .collect();
            // Not waiting to go up: they stay until the file changes.
            st.pending_local_new = st.pending_local_new.saturating_sub(st.refused.len());
            all.push(st);
        }
        if !json {
            match (history.last_finished, history.last_ok) {
                (Some(finished), Some(ok)) => println!(
                    "{}: last run {} ({})",
                    account.name,
                    format_time(Some(finished)),
                    if ok { "ok" } else { "with errors" }
                ),
                _ => println!("{}: no completed run", account.name),
            }
            if let Some(line) = history_line(&account.name, &history) {
                println!("{line}");
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    } else {
        println!(
            "{:<12} {:<24} {:>8} {:>8} {:>12} {:<20} pending",
            "ACCOUNT", "FOLDER", "SERVER", "LOCAL", "UIDVALIDITY", "LAST SYNC"
        );
        for s in &all {
            let mut pending = Vec::new();
            if s.pending_local_new > 0 {
                pending.push(format!("{} new ↑", s.pending_local_new));
            }
            if s.pending_local_flags > 0 {
                pending.push(format!("{} flags ↑", s.pending_local_flags));
            }
            if s.pending_local_deleted > 0 {
                pending.push(format!("{} deleted ↑", s.pending_local_deleted));
            }
            if s.pending_intents > 0 {
                pending.push(format!("{} interrupted", s.pending_intents));
            }
            if !s.too_large.is_empty() {
                pending.push(format!("{} over max_size", s.too_large.len()));
            }
            if !s.refused.is_empty() {
                pending.push(format!("{} refused by the server", s.refused.len()));
            }
            if let Some(e) = &s.local_error {
                pending.push(format!("local error: {e}"));
            }
            println!(
                "{:<12} {:<24} {:>8} {:>8} {:>12} {:<20} {}",
                s.account,
                s.folder,
                s.server_messages,
                s.local_messages,
                s.uidvalidity
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                format_time(s.last_sync),
                if pending.is_empty() {
                    "-".to_string()
                } else {
                    pending.join(", ")
                }
            );
        }
    }
    exit::OK
}

/// A POP3 account's one status line; `None` when it was never pulled.
fn pop3_status(
    config: &Config,
    account: &Pop3Account,
    json: bool,
) -> Result<Option<FolderStatus>, crate::db::DbError> {
    let path = config.state_path(&account.name);
    let Some(db) = StateDb::open_existing(&path)? else {
        if !json {
            println!("{}: never pulled", account.name);
        }
        return Ok(None);
    };
    let (stored, kept) = db.pop3_counts()?;
    let rows = db.pop3_rows()?;
    let pending = rows
        .values()
        .filter(|r| !r.stored && r.near_key.is_some())
        .count();
    let history = db.run_history()?;
    let last = history.last_finished.zip(history.last_ok);
    if !json {
        if let Some(line) = history_line(&account.name, &history) {
            println!("{line}");
        }
        match &last {
            Some((finished, ok)) => println!(
                "{}: last pull {} ({}); {stored} message(s) pulled, {kept} still kept on the server",
                account.name,
                format_time(Some(*finished)),
                if *ok { "ok" } else { "with errors" }
            ),
            None => println!("{}: no completed pull", account.name),
        }
    }
    let mut st = FolderStatus::new(&account.name, "pop3", account.folder.as_str(), &history);
    st.server_messages = kept;
    st.local_messages = stored;
    st.last_sync = last.map(|(t, _)| t);
    st.pending_intents = pending as i64;
    Ok(Some(st))
}

/// What the next sync would do with the local changes, as the planner decides it: the server
/// taken as it was at the last sync (its recorded flags), the Maildir as it is now.
fn pending_local_work(
    account: &crate::config::ImapAccount,
    md: &MaildirFolder,
    near: &BTreeMap<NearKey, NearMessage>,
    rows: &[crate::db::MessageRow],
) -> Plan {
    let state: Vec<StateRow> = rows.iter().map(|r| r.state.clone()).collect();
    let far: BTreeMap<Uid, Flags> = rows
        .iter()
        .filter_map(|r| {
            let flags = r.far_flags.clone().unwrap_or_else(|| r.state.flags.clone());
            Some((r.state.far?, flags))
        })
        .collect();
    let near_flags =
        snapshot::complete_near_flags(&state, near.iter().map(|(k, m)| (k, &m.flags)), |f| {
            md.can_represent(f)
        });
    let policy = account.policy();
    planner::plan(&state, &far, &near_flags, policy)
}

fn format_time(t: Option<i64>) -> String {
    t.and_then(|secs| jiff::Timestamp::from_second(secs).ok())
        .map(|ts| ts.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "never".into())
}
