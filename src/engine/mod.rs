//! The engine: runs plans against the stores and records results in the state database.
//!
//! Per account: take the lock, open the state, check the Maildir root, connect, plan folders,
//! then sync each folder ([`folder`]). Errors in one folder are recorded and the run goes on; a
//! broken connection is reopened once. Every effect that could duplicate a message is announced
//! as an intent in SQLite first ([`recover`] settles intents left by a killed run).
// Nothing a server or a file holds may make it panic: no indexing that could (tests may).
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

pub mod adopt;
pub mod budget;
pub mod credentials;
pub mod error;
pub mod folder;
pub mod labels;
pub mod local_moves;
pub mod lock;
pub mod mbox;
pub mod pop3;
pub mod recover;
pub mod report;
pub mod reupload;
pub mod reupload_smtp;
pub mod run;

pub use error::{DaemonAction, Error, ErrorKind};

use crate::config::{Config, ImapAccount};
use crate::db::StateDb;
use crate::model::Side;
use crate::names::{FolderName, FolderPatterns};
use crate::store::imap::{self, ImapConn};
use crate::store::maildir::{MaildirFolder, layout};
use crate::sync::folders::{FolderAction, plan_folders};
use report::{AccountReport, FolderReport};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Options of one `sync` run.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncOptions {
    /// Plan and print, change nothing.
    pub dry_run: bool,
    /// Skip the mass-deletion guard.
    pub force: bool,
}

/// Syncs one IMAP account once its lock is held and its state database open (see [`run`]).
/// Never panics on bad data: folder failures go into `report`, a failure of the account as a
/// whole is returned. Nothing is printed or logged here: the caller reports each failure once.
pub async fn sync_account(
    config: &Config,
    account: &ImapAccount,
    db: &mut StateDb,
    options: SyncOptions,
    progress: &indicatif::ProgressBar,
    live_index: Option<&crate::index::live::LiveSink>,
    report: &mut AccountReport,
) -> Result<(), Error> {
    let known_folders = db.folders()?;

    // A missing Maildir root is never "everything was deleted".
    let root = &account.maildir;
    match std::fs::read_dir(root) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && known_folders.is_empty() => {
            if !options.dry_run {
                std::fs::create_dir_all(root)
                    .map_err(Error::io("cannot create Maildir root", root))?;
            }
        }
        Err(e) => {
            return Err(Error::LocalState(format!(
                "Maildir root {} is not readable ({e}); it was synced before, so arctern stops instead of treating it as empty",
                root.display()
            )));
        }
    }

    progress.set_message(format!("{}: connecting", account.name));
    let (mut conn, password) = credentials::imap_login(&account.imap, &account.name).await?;

    // Far folders.
    let listed = conn.folders().await?;
    // A label model (a `\All` folder): each message stored once, its other folders' files
    // linked to it; All Mail is synced first, alone, so the others find their messages.
    let all_mail = listed.all_mail().cloned();
    // On a resync, a message the server moved between folders is linked from the file of the
    // folder it left, not downloaded again (not on the first pull: nothing is stored yet).
    let copies = (all_mail.is_some() || !known_folders.is_empty())
        .then(|| labels::StoredCopies::new(account));
    // Kept with the state, for a later push of the Maildir (Gmail's All Mail, Starred, Sent).
    let special_uses: Vec<(String, Option<crate::model::SpecialUse>)> = listed
        .by_name
        .iter()
        .map(|(n, e)| (n.to_string(), e.special_use))
        .collect();
    let far: BTreeMap<FolderName, String> = listed.wire_names();
    // LIST-STATUS: each folder's STATUS came with the listing.
    let listed_status: BTreeMap<FolderName, imap::MailboxStatus> = listed
        .by_name
        .iter()
        .filter_map(|(n, e)| Some((n.clone(), e.status?)))
        .collect();
    let names = listed.names;
    for (wire, why) in listed.skipped {
        report.folders.push(FolderReport {
            folder: wire,
            error: Some(format!("server folder skipped: {why}")),
            ..Default::default()
        });
    }

    let mut renamed_paths = BTreeMap::new();
    let known_folders = {
        let far_names: BTreeSet<FolderName> = far.keys().cloned().collect();
        let renamed = rename_prefixed_folders(
            account,
            db,
            &known_folders,
            &far_names,
            &names,
            options,
            report,
        )?;
        if renamed.is_empty() {
            known_folders
        } else if options.dry_run {
            // Planned as if renamed: the folder at its current path, under its new name.
            let mut rows = known_folders;
            for (old, new, from) in renamed {
                if let Some(row) = rows.iter_mut().find(|r| r.name == old.as_str()) {
                    row.name = new.to_string();
                }
                renamed_paths.insert(new, from);
            }
            rows
        } else {
            db.folders()?
        }
    };

    // Near folders.
    let mut near: BTreeSet<FolderName> = if root.exists() {
        let (found, problems) = layout::list_folders(root, account.layout).map_err(|e| {
            Error::LocalState(format!("cannot list Maildir {}: {e}", root.display()))
        })?;
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
    let policy = account.policy();
    let patterns = FolderPatterns::new(&account.folders);
    let far_names: BTreeSet<FolderName> = far.keys().cloned().collect();
    let mut dry_run_paths =
        adopt_foreign_folders(account, &far_names, &mut near, &known, options, report);
    for (name, from) in renamed_paths {
        near.insert(name.clone());
        dry_run_paths.insert(name, from);
    }
    let actions = plan_folders(&far_names, &near, &known, &patterns, policy);

    let mut work: std::collections::VecDeque<(FolderName, Option<Side>)> = Default::default();
    for action in actions {
        match &action {
            FolderAction::Sync(n) => work.push_back((n.clone(), None)),
            FolderAction::Create(n, side) => work.push_back((n.clone(), Some(*side))),
            FolderAction::Missing(n, side) => {
                report.folders.push(FolderReport {
                    folder: n.to_string(),
                    error: Some(format!(
                        "folder was synced before but is gone from the {side} side; nothing was deleted on the other side. Restore it, or exclude it with \"!{n}\" in folders"
                    )),
                    ..Default::default()
                });
            }
            FolderAction::Forget(n) => {
                if !options.dry_run
                    && let Some(f) = known_folders.iter().find(|f| f.name == n.as_str())
                {
                    db.forget_folder(f.id)?;
                }
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
            }
        }
    }

    // First, on this one connection, drop the folders provably unchanged on both sides (one
    // STATUS and two stats each): a quiet account then never opens a second connection.
    if !options.dry_run {
        let mut pending = std::collections::VecDeque::new();
        while let Some((name, create)) = work.pop_front() {
            if create.is_none()
                && let (Some(row), Some(wire)) = (
                    known_folders.iter().find(|f| f.name == name.as_str()),
                    far.get(&name),
                )
                && let Ok(path) = layout::folder_path(&account.maildir, account.layout, &name)
                && folder::unchanged(&mut conn, db, row, wire, &path, listed_status.get(&name))
                    .await
            {
                report.folders.push(FolderReport {
                    folder: name.to_string(),
                    unchanged: true,
                    ..Default::default()
                });
            } else {
                pending.push_back((name, create));
            }
        }
        work = pending;
    }

    // Folders are synced by up to `connections` workers, each with its own IMAP connection and
    // its own SQLite connection (WAL lets them share the file; the account lock keeps other
    // processes out). They run concurrently in this task: while one waits for the server or a
    // durability barrier, another works.
    if conn.is_poisoned() {
        conn = imap::connect(&account.imap, &password).await?;
    }
    // Files a mail reader moved between folders: moved on the server first, so the folder
    // syncs find them in place instead of deleting and uploading them.
    let mut move_notes = BTreeMap::new();
    if !options.dry_run && !known_folders.is_empty() {
        let existing: Vec<FolderName> = work
            .iter()
            .filter(|(_, create)| create.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        match local_moves::move_on_server(&mut conn, db, account, &existing, &far).await {
            Ok(notes) => move_notes = notes,
            // What was not moved is synced as without moves: deleted and uploaded, or, for a
            // move whose outcome is unknown, found by its upload intent.
            Err(e) => tracing::warn!(account = %account.name, "moving messages on the server: {e}"),
        }
        if conn.is_poisoned() {
            conn = imap::connect(&account.imap, &password).await?;
        }
    }
    let state_file = config.state_path(&account.name);
    let budgets = budget::Budgets::open(
        db,
        account.download_budget,
        account.upload_budget,
        crate::clock::unix_now(),
    )?;
    let settle = std::cell::RefCell::new(Vec::new());
    let aids = folder::RunAids {
        copies: copies.as_ref(),
        budgets: &budgets,
        index: live_index,
        settle: &settle,
    };
    let mut far = far;
    let mut relisted = false;
    let mut later: std::collections::VecDeque<(FolderName, Option<Side>)> = Default::default();
    if let Some(all) = &all_mail
        && work.len() > 1
        && let Some(first) = work
            .iter()
            .position(|(n, _)| n == all)
            .and_then(|i| work.remove(i))
    {
        later = std::mem::replace(&mut work, std::collections::VecDeque::from([first]));
    }
    loop {
        let shared = Shared {
            account,
            password: &password,
            far: &far,
            names: &names,
            dry_run_paths: &dry_run_paths,
            options,
            progress,
            queue: std::cell::RefCell::new(work),
            reports: std::cell::RefCell::new(Vec::new()),
            created_far: std::cell::Cell::new(false),
            aids: &aids,
        };
        shared.run(conn, db, &state_file).await;
        let created_far = shared.created_far.get();
        report.folders.extend(shared.reports.into_inner());
        if !later.is_empty() {
            // The label folders, now that All Mail is stored.
            work = std::mem::take(&mut later);
            conn = imap::connect(&account.imap, &password).await?;
            continue;
        }
        if !created_far || options.dry_run || relisted {
            break;
        }
        relisted = true;
        // Some servers (Cyrus) create the missing parents of a folder they are asked to create,
        // as real folders: list again and sync those in this run, so that the next one has
        // nothing to do.
        // A failure here leaves them to the next run.
        let relisted = match imap::connect(&account.imap, &password).await {
            Ok(mut c) => c.folders().await.map(|listed| (c, listed)),
            Err(e) => Err(e),
        };
        let (next_conn, listed) = match relisted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(account = %account.name, "listing again after CREATE failed: {e}");
                break;
            }
        };
        conn = next_conn;
        let appeared: BTreeSet<FolderName> = listed
            .by_name
            .keys()
            .filter(|n| !far.contains_key(*n) && !near.contains(*n) && !known.contains(*n))
            .cloned()
            .collect();
        far = listed.wire_names();
        work = Default::default();
        let none = BTreeSet::new();
        for action in plan_folders(&appeared, &none, &none, &patterns, policy) {
            match action {
                FolderAction::Create(n, side) => work.push_back((n, Some(side))),
                FolderAction::NotCreated(n, side) => report.folders.push(FolderReport {
                    folder: n.to_string(),
                    notes: vec![format!(
                        "made by the server with a folder created in it; not created on the {side} side in {:?} mode",
                        account.sync
                    )],
                    ..Default::default()
                }),
                _ => {}
            }
        }
        if work.is_empty() {
            conn.logout().await;
            break;
        }
    }
    // The index commits what it has while the folders are proven settled.
    if let Some(sink) = live_index {
        sink.flush();
    }
    folder::settle_fingerprints(db, settle.take(), live_index).await;
    if !options.dry_run {
        db.record_special_uses(&special_uses)?;
    }
    for (folder, notes) in move_notes {
        match report.folders.iter_mut().find(|f| f.folder == folder) {
            Some(fr) => fr.notes.splice(0..0, notes).for_each(drop),
            None => report.folders.push(FolderReport {
                folder,
                notes,
                ..Default::default()
            }),
        }
    }
    report.folders.sort_by(|a, b| a.folder.cmp(&b.folder));
    Ok(())
}

/// True when a Verbatim folder directory holds other folders (anything but `cur`, `new`, `tmp`
/// that is a directory).
fn has_subfolders(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            !matches!(name.to_str(), Some("cur" | "new" | "tmp"))
                && e.file_type().is_ok_and(|t| t.is_dir())
        })
    })
}

/// The local directories of a folder renamed from `old` to `new`.
fn rename_paths(
    account: &ImapAccount,
    old: &FolderName,
    new: &FolderName,
) -> Option<(PathBuf, PathBuf)> {
    let from = layout::folder_path(&account.maildir, account.layout, old).ok()?;
    let to = layout::folder_path(&account.maildir, account.layout, new).ok()?;
    Some((from, to))
}

/// A path as notes show it: relative to the account's Maildir root.
fn shown_in_maildir(account: &ImapAccount, p: &std::path::Path) -> String {
    p.strip_prefix(&account.maildir)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// Moves the folders an earlier arctern recorded with the server's personal namespace prefix
/// (`INBOX/Lists` for Courier's `INBOX.Lists`) to their names without it
/// ([`crate::sync::folders::prefixed_renames`]): local directory and state together, one note
/// each. A dry run changes nothing and returns what it would rename. Returns (old name, new
/// name, the directory's current path) for each rename done or planned.
#[allow(clippy::too_many_arguments)]
fn rename_prefixed_folders(
    account: &ImapAccount,
    db: &StateDb,
    rows: &[crate::db::FolderRow],
    far: &BTreeSet<FolderName>,
    names: &crate::names::ServerNames,
    options: SyncOptions,
    report: &mut AccountReport,
) -> Result<Vec<(FolderName, FolderName, PathBuf)>, Error> {
    let known: BTreeSet<FolderName> = rows
        .iter()
        .filter_map(|f| FolderName::parse(&f.name).ok())
        .collect();
    let mut done = Vec::new();
    for (old, new) in
        crate::sync::folders::prefixed_renames(&known, far, &names.prefix_components())
    {
        let Some((from, to)) = rename_paths(account, &old, &new) else {
            continue;
        };
        let shown = |p: &std::path::Path| shown_in_maildir(account, p);
        let why = format!(
            "local names no longer show the server's personal namespace prefix {:?}",
            names.prefix()
        );
        let mut fr = FolderReport {
            folder: new.to_string(),
            ..Default::default()
        };
        if options.dry_run {
            fr.planned.push(format!(
                "rename local folder {} to {} ({why})",
                shown(&from),
                shown(&to)
            ));
            report.folders.push(fr);
            done.push((old, new, from));
            continue;
        }
        // In the verbatim layout a child moves with its parent, renamed just before.
        let moved = if from.exists() && to.exists() {
            Err(format!("{} exists already", shown(&to)))
        } else if from.exists() {
            to.parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::rename(&from, &to))
                .map_err(|e| e.to_string())
        } else {
            Ok(())
        };
        match moved {
            Ok(()) => {
                db.rename_folder(old.as_str(), new.as_str())?;
                fr.notes.push(format!(
                    "renamed local folder {} to {}: {why}; point your mail reader at the new name",
                    shown(&from),
                    shown(&to)
                ));
                done.push((old, new, from));
            }
            Err(e) => {
                fr.error = Some(format!(
                    "local folder {} is the server's {new} but could not be renamed to {}: {e}; both are kept, the second synced as the server's folder",
                    shown(&from),
                    shown(&to)
                ));
            }
        }
        report.folders.push(fr);
    }
    Ok(done)
}

/// Renames local folders another tool keeps under another spelling of a server folder's name
/// (modified UTF-7; offlineimap's flat `Lists.rust` in the verbatim layout) to the server
/// folder's own name ([`crate::sync::folders::foreign_renames`]), so they are that folder and
/// never a second copy; one note each, for the mail reader's mailbox list. Maildir++ folders,
/// and top-level Verbatim folders without subfolders (offlineimap's layout); a dry run says
/// what it would rename.
fn adopt_foreign_folders(
    account: &ImapAccount,
    far: &BTreeSet<FolderName>,
    near: &mut BTreeSet<FolderName>,
    known: &BTreeSet<FolderName>,
    options: SyncOptions,
    report: &mut AccountReport,
) -> BTreeMap<FolderName, PathBuf> {
    let mut dry_run_paths = BTreeMap::new();
    // With `utf7_names = true` the UTF-7 directory already is the folder (listed decoded).
    if account.layout.utf7_names() {
        return dry_run_paths;
    }
    let flat_dots = !account.layout.is_maildir_plus_plus();
    for (old, new) in crate::sync::folders::foreign_renames(far, near, known, flat_dots) {
        let Some((from, to)) = rename_paths(account, &old, &new) else {
            continue;
        };
        // Verbatim nests folders inside each other: only a top-level folder with no folders
        // inside is renamed alone (a parent would carry children whose names change too).
        if !account.layout.is_maildir_plus_plus()
            && (old.components().len() != 1 || has_subfolders(&from))
        {
            continue;
        }
        let (from_name, to_name) = (
            shown_in_maildir(account, &from),
            shown_in_maildir(account, &to),
        );
        let mut fr = FolderReport {
            folder: new.to_string(),
            ..Default::default()
        };
        if options.dry_run {
            fr.planned.push(format!(
                "rename local folder {from_name} to {to_name} (the server's {new}, kept by another tool under another spelling)"
            ));
            dry_run_paths.insert(new.clone(), from);
        } else {
            // A nested name's parent directories (verbatim layout) may not exist yet.
            let parent_ready = to.parent().map_or(Ok(()), std::fs::create_dir_all);
            match parent_ready.and_then(|()| std::fs::rename(&from, &to)) {
                Ok(()) => fr.notes.push(format!(
                    "renamed local folder {from_name} to {to_name}: it is the server's {new} (another tool kept it under another spelling); point your mail reader at the new name"
                )),
                Err(e) => {
                    fr.error = Some(format!(
                        "local folder {from_name} is the server's {new} but could not be renamed to {to_name}: {e}; it is not synced"
                    ));
                    near.remove(&old);
                    report.folders.push(fr);
                    continue;
                }
            }
        }
        near.remove(&old);
        near.insert(new);
        report.folders.push(fr);
    }
    dry_run_paths
}

/// How long the first connection works alone before extra connections are opened for the
/// folders still waiting.
const EXTRA_CONNECTION_DELAY: std::time::Duration = std::time::Duration::from_millis(150);

/// What the folder workers of one account share.
struct Shared<'a> {
    account: &'a ImapAccount,
    password: &'a crate::config::Secret,
    far: &'a BTreeMap<FolderName, String>,
    /// How the server spells folder names (delimiter, personal namespace).
    names: &'a crate::names::ServerNames,
    /// A dry run's folders that a real run would first rename: planned at their current path.
    dry_run_paths: &'a BTreeMap<FolderName, PathBuf>,
    options: SyncOptions,
    progress: &'a indicatif::ProgressBar,
    queue: std::cell::RefCell<std::collections::VecDeque<(FolderName, Option<Side>)>>,
    reports: std::cell::RefCell<Vec<FolderReport>>,
    /// Set when a folder was created on the server.
    created_far: std::cell::Cell<bool>,
    /// Stored copies, budgets, the live index.
    aids: &'a folder::RunAids<'a>,
}

impl Shared<'_> {
    /// Syncs the queued folders: the first worker on `conn` and `db`, up to `connections - 1`
    /// more once it has been busy for [`EXTRA_CONNECTION_DELAY`] with folders still waiting;
    /// folders left when no connection could be reopened are reported.
    async fn run(&self, conn: ImapConn, db: &mut StateDb, state_file: &std::path::Path) {
        let workers = usize::from(self.account.connections)
            .min(self.queue.borrow().len())
            .max(1);
        let (first_done, first_done_rx) = tokio::sync::watch::channel(false);
        let first = async {
            self.worker(Some(conn), Some(db), state_file.to_path_buf())
                .await;
            let _ = first_done.send(true);
        };
        let extra = (1..workers).map(|_| async {
            let mut first_done = first_done_rx.clone();
            // Extra connections only once the first has been busy for a while with folders
            // still waiting: a resync with a few small changes then costs no extra login
            // (which on a small machine competes with the real work for the CPU), a big pull
            // barely notices.
            tokio::select! {
                _ = tokio::time::sleep(EXTRA_CONNECTION_DELAY) => {}
                _ = first_done.wait_for(|done| *done) => return,
            }
            if !self.queue.borrow().is_empty() {
                self.worker(None, None, state_file.to_path_buf()).await;
            }
        });
        futures_util::future::join(first, futures_util::future::join_all(extra)).await;
        for (name, _) in self.queue.borrow_mut().drain(..) {
            self.reports.borrow_mut().push(FolderReport {
                folder: name.to_string(),
                error: Some("not synced: the connection was lost and could not be reopened".into()),
                ..Default::default()
            });
        }
    }

    /// Takes folders off the queue until it is empty; reconnects after a connection error and
    /// stops (leaving the rest to other workers) when that fails.
    async fn worker(&self, conn: Option<ImapConn>, db: Option<&mut StateDb>, state_file: PathBuf) {
        let account = self.account;
        let mut conn = match conn {
            Some(c) => c,
            None => match imap::connect(&account.imap, self.password).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(account = %account.name, "extra connection failed: {e}");
                    return;
                }
            },
        };
        // The first worker uses the run's own connection to the state database; each extra one
        // opens its own (WAL lets them share the file; the account lock keeps others out).
        let mut own_db;
        let db: &mut StateDb = match db {
            Some(db) => db,
            None => match StateDb::open(&state_file) {
                Ok(d) => {
                    own_db = d;
                    &mut own_db
                }
                Err(e) => {
                    tracing::warn!(account = %account.name, "{e}");
                    return;
                }
            },
        };
        loop {
            let Some((name, create)) = self.queue.borrow_mut().pop_front() else {
                break;
            };
            if conn.is_poisoned() {
                match imap::connect(&account.imap, self.password).await {
                    Ok(c) => conn = c,
                    Err(e) => {
                        tracing::warn!(account = %account.name, "reconnect failed: {e}");
                        self.queue.borrow_mut().push_front((name, create));
                        return;
                    }
                }
            }
            self.progress
                .set_message(format!("{}: {}", account.name, name));
            let report = self.sync_one(&mut conn, db, &name, create).await;
            self.reports.borrow_mut().push(report);
        }
        conn.logout().await;
    }

    async fn sync_one(
        &self,
        conn: &mut ImapConn,
        db: &mut StateDb,
        name: &FolderName,
        create: Option<Side>,
    ) -> FolderReport {
        let account = self.account;
        let mut fr = FolderReport {
            folder: name.to_string(),
            ..Default::default()
        };
        let result = prepare_and_sync(
            conn,
            db,
            account,
            name,
            create,
            self.far.get(name).cloned(),
            self.names,
            self.dry_run_paths.get(name),
            self.options,
            self.progress,
            self.aids,
            &mut fr,
        )
        .await;
        match result {
            Err(e) => {
                tracing::debug!(account = %account.name, folder = %name, "{e}");
                fr.error = Some(e.to_string());
            }
            Ok(()) if create == Some(Side::Far) && !self.options.dry_run => {
                self.created_far.set(true);
            }
            Ok(()) => {}
        }
        fr
    }
}

#[allow(clippy::too_many_arguments)]
async fn prepare_and_sync(
    conn: &mut ImapConn,
    db: &mut StateDb,
    account: &ImapAccount,
    name: &FolderName,
    create: Option<Side>,
    wire: Option<String>,
    names: &crate::names::ServerNames,
    dry_run_path: Option<&PathBuf>,
    options: SyncOptions,
    progress: &indicatif::ProgressBar,
    aids: &folder::RunAids<'_>,
    fr: &mut FolderReport,
) -> Result<(), Error> {
    let path = match dry_run_path {
        Some(p) => p.clone(),
        None => layout::folder_path(&account.maildir, account.layout, name)
            .map_err(Error::FolderName)?,
    };
    let wire = match wire {
        Some(w) => w,
        None => names
            .encode(name)
            .map_err(|e| Error::FolderName(e.to_string()))?,
    };
    match create {
        Some(Side::Near) if options.dry_run => {
            fr.planned
                .push(format!("create local folder {}", path.display()));
        }
        Some(Side::Near) => {
            fr.notes.push("created locally".into());
            let subfolder = account.layout.is_maildir_plus_plus() && !name.is_inbox();
            MaildirFolder::create(&path, subfolder)?;
        }
        Some(Side::Far) if options.dry_run => {
            fr.planned.push(format!("create server folder {wire}"));
        }
        Some(Side::Far) => {
            conn.create(&wire).await?;
            // Said once the server has answered: a refused CREATE is an error, not a note.
            fr.notes.push("created on the server".into());
        }
        None => {}
    }
    folder::sync_folder(
        conn, db, account, name, &wire, &path, options, progress, aids, fr,
    )
    .await
}
