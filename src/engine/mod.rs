//! The engine: runs plans against the stores and records results in the state database.
//!
//! Per account: take the lock, open the state, check the Maildir root, connect, plan folders,
//! then sync each folder ([`folder`]). Errors in one folder are recorded and the run goes on; a
//! broken connection is reopened once. Every effect that could duplicate a message is announced
//! as an intent in SQLite first ([`recover`] settles intents left by a killed run).

pub mod folder;
pub mod lock;
pub mod recover;
pub mod report;

use crate::config::{Account, Config, Layout};
use crate::db::StateDb;
use crate::model::Side;
use crate::names::{FolderName, FolderPatterns};
use crate::store::imap::{self, ImapConn, ImapError};
use crate::store::maildir::{MaildirFolder, layout};
use crate::sync::folders::{FolderAction, plan_folders};
use crate::sync::planner::Policy;
use report::{AccountReport, FolderReport};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

/// Options of one `sync` run.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncOptions {
    /// Plan and print, change nothing.
    pub dry_run: bool,
    /// Skip the mass-deletion guard.
    pub force: bool,
}

/// How an account failed as a whole; decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FatalKind {
    /// Another process holds the account lock.
    Locked,
    /// Connection, TLS or login failed.
    Connect,
    /// The state database or the Maildir root is unusable.
    Local,
}

/// The state database path of an account.
pub fn state_path(config: &Config, account: &str) -> PathBuf {
    config.state_dir.join(format!("{account}.sqlite3"))
}

/// Syncs one account. Never panics on bad data; everything goes into the report.
pub async fn sync_account(
    config: &Config,
    account: &Account,
    options: SyncOptions,
    progress: &indicatif::ProgressBar,
) -> (AccountReport, Option<FatalKind>) {
    let started = Instant::now();
    let mut report = AccountReport {
        account: account.name.clone(),
        ..Default::default()
    };
    let fatal = run_account(config, account, options, progress, &mut report).await;
    if let Err((kind, message)) = &fatal {
        report.fatal = Some(message.clone());
        tracing::error!(account = %account.name, "{message}");
        let _ = kind;
    }
    report.elapsed = started.elapsed();
    (report, fatal.err().map(|(k, _)| k))
}

async fn run_account(
    config: &Config,
    account: &Account,
    options: SyncOptions,
    progress: &indicatif::ProgressBar,
    report: &mut AccountReport,
) -> Result<(), (FatalKind, String)> {
    let local = |m: String| (FatalKind::Local, m);
    let run_started = unix_now();
    std::fs::create_dir_all(&config.state_dir).map_err(|e| {
        local(format!(
            "cannot create state_dir {}: {e}",
            config.state_dir.display()
        ))
    })?;
    let _lock = lock::acquire(&config.state_dir, &account.name)
        .map_err(|e| (FatalKind::Locked, e.to_string()))?;
    let mut db =
        StateDb::open(&state_path(config, &account.name)).map_err(|e| local(e.to_string()))?;
    let known_folders = db.folders().map_err(|e| local(e.to_string()))?;

    // A missing Maildir root is never "everything was deleted".
    let root = &account.maildir;
    match std::fs::read_dir(root) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && known_folders.is_empty() => {
            if !options.dry_run {
                std::fs::create_dir_all(root).map_err(|e| {
                    local(format!(
                        "cannot create Maildir root {}: {e}",
                        root.display()
                    ))
                })?;
            }
        }
        Err(e) => {
            return Err(local(format!(
                "Maildir root {} is not readable ({e}); it was synced before, so arctern stops instead of treating it as empty",
                root.display()
            )));
        }
    }

    let password = account
        .imap
        .password
        .resolve(&account.name)
        .map_err(|m| (FatalKind::Connect, m))?;
    progress.set_message(format!("{}: connecting", account.name));
    let mut conn = imap::connect(&account.imap, &password)
        .await
        .map_err(|e| (FatalKind::Connect, e.to_string()))?;

    // Far folders.
    let entries = conn
        .list()
        .await
        .map_err(|e| (FatalKind::Connect, e.to_string()))?;
    let mut far: BTreeMap<FolderName, String> = BTreeMap::new();
    let mut delimiter = None;
    for entry in &entries {
        if delimiter.is_none() {
            delimiter = entry.delimiter;
        }
        if !entry.selectable {
            continue;
        }
        match FolderName::from_wire(&entry.wire_name, entry.delimiter) {
            Ok(name) => {
                far.insert(name, entry.wire_name.clone());
            }
            Err(e) => report.folders.push(FolderReport {
                folder: entry.wire_name.escape_debug().to_string(),
                error: Some(format!("server folder skipped: {e}")),
                ..Default::default()
            }),
        }
    }

    // Near folders.
    let near: BTreeSet<FolderName> = if root.exists() {
        let (found, problems) = layout::list_folders(root, account.layout)
            .map_err(|e| local(format!("cannot list Maildir {}: {e}", root.display())))?;
        for p in problems {
            report.folders.push(FolderReport {
                folder: p.clone(),
                error: Some(format!("local folder skipped: {p}")),
                ..Default::default()
            });
        }
        found.into_iter().collect()
    } else {
        BTreeSet::new()
    };
    let known: BTreeSet<FolderName> = known_folders
        .iter()
        .filter_map(|f| FolderName::parse(&f.name).ok())
        .collect();
    let policy = Policy {
        mode: account.sync,
        expunge: account.expunge,
    };
    let patterns = FolderPatterns::new(&account.folders);
    let far_names: BTreeSet<FolderName> = far.keys().cloned().collect();
    let actions = plan_folders(&far_names, &near, &known, &patterns, policy);

    for action in actions {
        let (name, create) = match &action {
            FolderAction::Sync(n) => (n.clone(), None),
            FolderAction::Create(n, side) => (n.clone(), Some(*side)),
            FolderAction::Missing(n, side) => {
                report.folders.push(FolderReport {
                    folder: n.to_string(),
                    error: Some(format!(
                        "folder was synced before but is gone from the {side} side; nothing was deleted on the other side. Restore it, or exclude it with \"!{n}\" in folders"
                    )),
                    ..Default::default()
                });
                continue;
            }
            FolderAction::Forget(n) => {
                if !options.dry_run
                    && let Some(f) = known_folders.iter().find(|f| f.name == n.as_str())
                {
                    db.forget_folder(f.id).map_err(|e| local(e.to_string()))?;
                }
                continue;
            }
            FolderAction::NotCreated(n, side) => {
                report.folders.push(FolderReport {
                    folder: n.to_string(),
                    notes: vec![format!(
                        "exists on one side only; not created on the {side} side in {:?} mode",
                        account.sync
                    )],
                    ..Default::default()
                });
                continue;
            }
        };
        progress.set_message(format!("{}: {}", account.name, name));
        if conn_is_dead(&conn) {
            match imap::connect(&account.imap, &password).await {
                Ok(c) => conn = c,
                Err(e) => {
                    return Err((
                        FatalKind::Connect,
                        format!("reconnect after an error failed: {e}"),
                    ));
                }
            }
        }
        if create.is_none()
            && !options.dry_run
            && let (Some(row), Some(wire)) = (
                known_folders.iter().find(|f| f.name == name.as_str()),
                far.get(&name),
            )
            && let Ok(path) = layout::folder_path(&account.maildir, account.layout, &name)
            && folder::unchanged(&mut conn, &db, row, wire, &path).await
        {
            report.folders.push(FolderReport {
                folder: name.to_string(),
                unchanged: true,
                ..Default::default()
            });
            continue;
        }
        let mut fr = FolderReport {
            folder: name.to_string(),
            ..Default::default()
        };
        let result = prepare_and_sync(
            &mut conn,
            &mut db,
            account,
            &name,
            create,
            far.get(&name).cloned(),
            delimiter,
            options,
            progress,
            &mut fr,
        )
        .await;
        if let Err(e) = result {
            tracing::warn!(account = %account.name, folder = %name, "{e}");
            fr.error = Some(e);
        }
        report.folders.push(fr);
    }
    if !options.dry_run {
        let _ = db.record_run(
            run_started,
            unix_now(),
            !report.has_errors(),
            &serde_json::to_string(&report).unwrap_or_default(),
        );
    }
    conn.logout().await;
    Ok(())
}

fn conn_is_dead(conn: &ImapConn) -> bool {
    conn.is_poisoned()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[allow(clippy::too_many_arguments)]
async fn prepare_and_sync(
    conn: &mut ImapConn,
    db: &mut StateDb,
    account: &Account,
    name: &FolderName,
    create: Option<Side>,
    wire: Option<String>,
    delimiter: Option<char>,
    options: SyncOptions,
    progress: &indicatif::ProgressBar,
    fr: &mut FolderReport,
) -> Result<(), String> {
    let path = layout::folder_path(&account.maildir, account.layout, name)?;
    let wire = match wire {
        Some(w) => w,
        None => name.to_wire(delimiter).map_err(|e| e.to_string())?,
    };
    match create {
        Some(Side::Near) if options.dry_run => {
            fr.planned
                .push(format!("create local folder {}", path.display()));
        }
        Some(Side::Near) => {
            fr.notes.push("created locally".into());
            let subfolder = account.layout == Layout::MaildirPlusPlus && !name.is_inbox();
            MaildirFolder::create(&path, subfolder).map_err(|e| e.to_string())?;
        }
        Some(Side::Far) if options.dry_run => {
            fr.planned.push(format!("create server folder {wire}"));
        }
        Some(Side::Far) => {
            fr.notes.push("created on the server".into());
            conn.create(&wire)
                .await
                .map_err(|e: ImapError| e.to_string())?;
        }
        None => {}
    }
    folder::sync_folder(conn, db, account, name, &wire, &path, options, progress, fr).await
}
