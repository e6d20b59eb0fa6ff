//! One run of one account, the same for `arctern sync` and the daemon.
//!
//! The steps, in this order: take the account lock and open its state database (once for the
//! run), sync (IMAP) or pull (POP3), add the run to the history, update the search index, write
//! the metrics file. Whoever reads the metrics file thus sees a run whose mail, history and
//! index are all in place. Nothing is printed here: the caller prints the report, and each
//! failure is in it once.

use super::error::Error;
use super::report::AccountReport;
use super::{SyncOptions, lock};
use crate::config::{AnyAccount, Config};
use crate::db::StateDb;
use crate::db::runs::{RunHistory, RunOutcome};
use crate::exit;

/// Index updates of different accounts take turns (tantivy allows one writer per index, and the
/// daemon runs accounts on threads of their own).
static INDEX_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What one run of an account did.
#[derive(Debug)]
pub struct AccountRun {
    /// The report (with `fatal` set when the account failed as a whole).
    pub report: AccountReport,
    /// The failure of the account as a whole, if any.
    pub error: Option<Error>,
    /// Why the run history could not be recorded, if it could not.
    pub history_error: Option<String>,
    /// Why the search index could not be updated, if it could not.
    pub index_error: Option<String>,
    /// Why the metrics file could not be written, if it could not.
    pub metrics_error: Option<String>,
}

impl AccountRun {
    /// The exit code of this run: the failure's kind decides; otherwise a folder that failed or
    /// an index that could not follow makes it partial.
    pub fn exit_code(&self) -> u8 {
        match &self.error {
            Some(e) => e.kind().exit_code(),
            None if self.report.has_errors() || self.index_error.is_some() => exit::PARTIAL,
            None => exit::OK,
        }
    }
}

/// Runs one account end to end (see the module doc).
pub async fn run_account(
    config: &Config,
    account: AnyAccount<'_>,
    options: SyncOptions,
    progress: &indicatif::ProgressBar,
) -> AccountRun {
    let started_at = crate::clock::unix_now();
    let started = std::time::Instant::now();
    let name = account.name();
    let mut report = AccountReport {
        account: name.to_string(),
        pop3: matches!(account, AnyAccount::Pop3(_)),
        ..Default::default()
    };
    // The index is written while the sync downloads when this run gets the index's turn at
    // once (another account's run may hold it: then this one indexes after its sync, as before).
    let mut turn = None;
    let mut live = None;
    if config.index && !options.dry_run && matches!(account, AnyAccount::Imap(_)) {
        turn = match INDEX_TURN.try_lock() {
            Ok(t) => Some(t),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if turn.is_some() {
            match crate::index::live::LiveIndex::start(&config.state_dir) {
                Ok(l) => live = Some(l),
                // The update after the sync tries again, and reports a failure.
                Err(e) => tracing::debug!("indexing during the sync not started: {e}"),
            }
        }
    }
    // The lock is held to the end of the run: history, index and metrics included.
    let (result, held) = match open_account(config, name) {
        Err(e) => (Err(e), None),
        Ok((lock, mut db)) => {
            let result = match account {
                AnyAccount::Imap(a) => {
                    let sink = live.as_ref().and_then(|l| l.sink());
                    super::sync_account(config, a, &mut db, options, progress, sink, &mut report)
                        .await
                }
                AnyAccount::Pop3(a) => {
                    super::pop3::pull_account(a, &mut db, options, progress, &mut report).await
                }
            };
            (result, Some((lock, db)))
        }
    };
    let live_error = match live.map(crate::index::live::LiveIndex::finish) {
        Some(Ok(n)) => {
            tracing::debug!(account = name, "indexed {n} message(s) during the sync");
            None
        }
        Some(Err(e)) => Some(e),
        None => None,
    };
    let error = result.err();
    if let Some(e) = &error {
        report.fatal = Some(e.to_string());
    }
    report.elapsed = started.elapsed();
    let mut run = AccountRun {
        report,
        error,
        history_error: None,
        index_error: None,
        metrics_error: None,
    };
    // A dry run changes nothing; a run that could not take the lock or open the state did not
    // run (and has nowhere to record anything): no history, no index, no metrics.
    let Some((_lock, db)) = held.filter(|_| !options.dry_run) else {
        return run;
    };
    let history = match record_history(&db, &run.report, started_at) {
        Ok(h) => Some(h),
        Err(e) => {
            run.history_error = Some(e.to_string());
            None
        }
    };
    // The search index follows every sync that ran, so it never shows a message that is gone.
    if config.index && run.error.is_none() {
        let _turn = turn.unwrap_or_else(|| INDEX_TURN.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(e) = &live_error {
            // What the live indexer could not do, the update does now.
            tracing::warn!("indexing during the sync stopped: {e}");
        }
        if let Err(e) = crate::index::accounts::update(config, &[account], &|_, _| {}) {
            run.index_error = Some(e);
        }
    }
    tracing::debug!(account = name, "index updated");
    let known = history.map(|h| (name, h));
    if let Err(e) = crate::metrics::write(config, known.as_ref().map(|(n, h)| (*n, h))) {
        run.metrics_error = Some(e);
    }
    run
}

/// Creates the state dir, takes the account lock and opens the state database.
fn open_account(config: &Config, name: &str) -> Result<(lock::AccountLock, StateDb), Error> {
    std::fs::create_dir_all(&config.state_dir)
        .map_err(Error::io("cannot create state_dir", &config.state_dir))?;
    let lock = lock::acquire(&config.state_dir, name)?;
    let db = StateDb::open(&config.state_path(name))?;
    Ok((lock, db))
}

/// Adds the finished run to the account's history; returns the history as it now stands.
fn record_history(
    db: &StateDb,
    report: &AccountReport,
    started: i64,
) -> Result<RunHistory, crate::db::DbError> {
    let error = report.fatal.clone().or_else(|| {
        report
            .folders
            .iter()
            .find_map(|f| f.error.as_ref().map(|e| format!("{}: {e}", f.folder)))
    });
    let outcome = RunOutcome {
        started,
        finished: crate::clock::unix_now(),
        error,
        messages_down: report.total(|f| f.downloaded) as u64,
        messages_up: report.total(|f| f.uploaded) as u64,
        bytes_down: report.folders.iter().map(|f| f.bytes_down).sum(),
        bytes_up: report.folders.iter().map(|f| f.bytes_up).sum(),
        duration_ms: u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
        report: serde_json::to_string(report).unwrap_or_default(),
    };
    db.add_to_history(&outcome)?;
    db.run_history()
}
