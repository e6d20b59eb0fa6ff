//! `arctern daemon`: keeps every account mirrored within seconds of a change on either side.
//!
//! One task per account runs the same engine as `arctern sync`, woken by its [`schedule`]: at
//! start, every `interval`, when an IDLE watcher ([`idle`]) reports a server change, or when the
//! Maildir changes ([`local`]); failures back off exponentially with jitter, a refused login
//! pauses the account (until the config is reloaded, or an hour), and one account's trouble never
//! touches another's. SIGTERM/SIGINT let the sync in flight finish (a few seconds at most, then
//! it is dropped, which is as safe as a kill: every effect is announced in SQLite first), SIGHUP
//! reloads the config (new accounts start, removed ones stop, changed ones restart). A lock on
//! `<state_dir>/.daemon.lock` keeps a second daemon off the same state; `arctern sync` from cron
//! still works alongside (the per-account lock serialises the two).

pub mod idle;
pub mod local;
pub mod schedule;
pub mod systemd;

use crate::clock::jitter;
use crate::config::{AnyAccount, Config};
use crate::engine::run::{AccountRun, run_account};
use crate::engine::{self, DaemonAction, SyncOptions};
use crate::sync::backoff::Backoff;
use schedule::{Timetable, Trigger, Wake};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long a sync in flight may go on after a stop request.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long an account whose login was refused waits before trying again on its own.
const AUTH_PAUSE: Duration = Duration::from_secs(3600);
/// How long to wait when another process (a cron `arctern sync`) holds the account.
const LOCKED_RETRY: Duration = Duration::from_secs(15);

/// Timing knobs (tests shorten them through the environment).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Quiet time after a change report before syncing.
    pub debounce: Duration,
    /// IDLE is re-issued after this long.
    pub idle_renew: Duration,
}

impl Timing {
    /// Defaults, overridable by `ARCTERN_DEBOUNCE_MS` and `ARCTERN_IDLE_RENEW_SECONDS`.
    pub fn from_env() -> Timing {
        let ms = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        Timing {
            debounce: Duration::from_millis(ms("ARCTERN_DEBOUNCE_MS").unwrap_or(500)),
            idle_renew: Duration::from_secs(ms("ARCTERN_IDLE_RENEW_SECONDS").unwrap_or(29 * 60)),
        }
    }
}

struct RunningAccount {
    /// The account's config as it was started (compared on reload).
    fingerprint: String,
    stop: watch::Sender<bool>,
    /// The account runs on its own thread with its own single-threaded runtime: the engine's
    /// futures hold SQLite and Maildir handles across awaits and are not `Send`.
    task: std::thread::JoinHandle<()>,
}

fn fingerprint(config: &Config, account: AnyAccount<'_>) -> String {
    // Debug output covers every setting (passwords print redacted; a changed password_command
    // still differs). Global settings that the account task uses are part of it too.
    let body = match account {
        AnyAccount::Imap(a) => format!("{a:?}"),
        AnyAccount::Pop3(a) => format!("{a:?}"),
    };
    format!(
        "{body}|{:?}|{}|{:?}",
        config.state_dir, config.index, config.metrics_file
    )
}

/// Runs the daemon until SIGTERM/SIGINT; returns the exit code.
pub async fn run(config_path: PathBuf, only: Vec<String>, first: Config) -> u8 {
    use crate::exit;
    use tokio::signal::unix::{SignalKind, signal};
    if let Err(e) = std::fs::create_dir_all(&first.state_dir) {
        tracing::error!("cannot create state_dir {}: {e}", first.state_dir.display());
        return exit::LOCAL;
    }
    let _lock = match engine::lock::acquire_daemon(&first.state_dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::LOCKED;
        }
    };
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            tracing::error!("cannot install signal handlers");
            return exit::LOCAL;
        }
    };
    let timing = Timing::from_env();
    let mut running: BTreeMap<String, RunningAccount> = BTreeMap::new();
    let mut config = Arc::new(first);
    if let Err(e) = reconcile(&config, &only, timing, &mut running) {
        eprintln!("arctern: {e}");
        return exit::CONFIG;
    }
    let names: Vec<&str> = running.keys().map(String::as_str).collect();
    tracing::info!(
        "arctern daemon ready: {} account(s): {}",
        names.len(),
        names.join(", ")
    );
    systemd::notify(&format!(
        "READY=1\nSTATUS=watching {} account(s)",
        running.len()
    ));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                systemd::notify("RELOADING=1");
                match crate::config::load(&config_path) {
                    Ok(new) => {
                        let new = Arc::new(new);
                        match reconcile(&new, &only, timing, &mut running) {
                            Ok(()) => {
                                config = new;
                                tracing::info!(
                                    "configuration reloaded from {}: {} account(s)",
                                    config_path.display(),
                                    running.len()
                                );
                            }
                            Err(e) => tracing::error!("configuration not reloaded: {e}"),
                        }
                    }
                    Err(e) => tracing::error!("configuration not reloaded (keeping the old one): {e}"),
                }
                systemd::notify(&format!("READY=1\nSTATUS=watching {} account(s)", running.len()));
            }
        }
    }
    systemd::notify("STOPPING=1");
    tracing::info!("stopping: finishing the work in flight");
    stop_all(&mut running).await;
    let _ = &config;
    tracing::info!("stopped");
    exit::OK
}

/// Starts, stops and restarts account tasks so they match `config`.
fn reconcile(
    config: &Arc<Config>,
    only: &[String],
    timing: Timing,
    running: &mut BTreeMap<String, RunningAccount>,
) -> Result<(), String> {
    let selected = config.select_accounts(only)?;
    let wanted: BTreeMap<String, String> = selected
        .iter()
        .map(|a| (a.name().to_string(), fingerprint(config, *a)))
        .collect();
    let stale: Vec<String> = running
        .iter()
        .filter(|(name, r)| wanted.get(*name) != Some(&r.fingerprint))
        .map(|(name, _)| name.clone())
        .collect();
    for name in stale {
        if let Some(r) = running.remove(&name) {
            tracing::info!(
                account = name,
                "stopping (removed or changed in the config)"
            );
            let _ = r.stop.send(true);
            // The thread finishes on its own; its lock and connections go with it.
            drop(r.task);
        }
    }
    for (name, fp) in wanted {
        if running.contains_key(&name) {
            continue;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let (cfg, n) = (config.clone(), name.clone());
        let task = std::thread::Builder::new()
            .name(format!("account {name}"))
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(account_task(cfg, n, timing, stop_rx)),
                    Err(e) => tracing::error!(account = n, "cannot start its runtime: {e}"),
                }
            })
            .map_err(|e| format!("account {name}: cannot start its thread: {e}"))?;
        running.insert(
            name,
            RunningAccount {
                fingerprint: fp,
                stop: stop_tx,
                task,
            },
        );
    }
    Ok(())
}

async fn stop_all(running: &mut BTreeMap<String, RunningAccount>) {
    for r in running.values() {
        let _ = r.stop.send(true);
    }
    for (name, r) in std::mem::take(running) {
        let joined = tokio::task::spawn_blocking(move || r.task.join());
        if tokio::time::timeout(STOP_GRACE + Duration::from_secs(5), joined)
            .await
            .is_err()
        {
            tracing::warn!(account = name, "did not stop in time");
        }
    }
}

/// Starts the account's watchers: IDLE connections (IMAP) and the Maildir watch.
async fn start_watchers(
    config: &Config,
    name: &str,
    timing: Timing,
    triggers: &mpsc::Sender<Trigger>,
    stop: &watch::Receiver<bool>,
) -> Option<notify::RecommendedWatcher> {
    let account = config.account(name)?;
    if let AnyAccount::Imap(a) = account
        && !a.idle.is_empty()
    {
        tokio::spawn(idle::watch_account(
            a.clone(),
            timing.idle_renew,
            triggers.clone(),
            stop.clone(),
        ));
    }

    let root = match account {
        AnyAccount::Imap(a) => &a.maildir,
        AnyAccount::Pop3(_) => return None, // a POP3 Maildir's changes have nowhere to go
    };
    if !root.exists() {
        return None;
    }
    match local::watch_maildir(root, triggers.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(
                account = name,
                "{e}; local changes are picked up every interval"
            );
            None
        }
    }
}

/// One account: wait, sync, schedule, until stopped.
async fn account_task(
    config: Arc<Config>,
    name: String,
    timing: Timing,
    mut stop: watch::Receiver<bool>,
) {
    let Some(account) = config.account(&name) else {
        return;
    };
    let interval = match account {
        AnyAccount::Imap(a) => a.interval,
        AnyAccount::Pop3(a) => a.interval,
    };
    let (tx, mut rx) = mpsc::channel::<Trigger>(64);
    let mut watcher: Option<notify::RecommendedWatcher> = None;
    let mut watchers_started = false;
    let mut timetable = Timetable::new(timing.debounce);
    let mut backoff = Backoff::new(Duration::from_secs(1));
    loop {
        let wake = timetable.next_wake(&mut rx, &mut stop).await;
        let why = match &wake {
            Wake::Stop => break,
            Wake::Interval => "scheduled".to_string(),
            Wake::Changes { server, local } => {
                let mut parts: Vec<String> = server.iter().cloned().collect();
                if *local {
                    parts.push("local Maildir".into());
                }
                format!("changes in {}", parts.join(", "))
            }
        };
        tracing::debug!(account = name, "sync: {why}");
        let Some(run) = sync_once(&config, account, &mut stop).await else {
            break; // stopped mid-sync
        };
        let now = tokio::time::Instant::now();
        for problem in [&run.history_error, &run.index_error, &run.metrics_error]
            .into_iter()
            .flatten()
        {
            tracing::warn!(account = name, "{problem}");
        }
        let Some(error) = &run.error else {
            backoff.reset();
            timetable.next_full = now + interval;
            let report = &run.report;
            // Every failed folder and why, so the cause reaches the journal.
            for f in &report.folders {
                if let Some(e) = &f.error {
                    tracing::warn!(account = name, folder = f.folder, "{e}");
                }
            }
            let line = report.summary_line();
            if report.has_errors() {
                tracing::warn!(account = name, "{line}");
            } else {
                tracing::info!(account = name, "{line}");
            }
            if !watchers_started {
                // After the first successful sync: the Maildir exists and the login works.
                watchers_started = true;
                watcher = start_watchers(&config, &name, timing, &tx, &stop).await;
            }
            continue;
        };
        match error.kind().daemon_action() {
            DaemonAction::Pause => {
                tracing::error!(
                    account = name,
                    "{error}; account paused for {} min (fix the password and send SIGHUP to retry now)",
                    AUTH_PAUSE.as_secs() / 60
                );
                timetable.next_full = now + AUTH_PAUSE;
            }
            DaemonAction::RetrySoon => {
                tracing::info!(
                    account = name,
                    "another arctern process is syncing this account; trying again in {}s",
                    LOCKED_RETRY.as_secs()
                );
                timetable.next_full = now + LOCKED_RETRY;
            }
            DaemonAction::Backoff => {
                let wait = backoff.next_delay(jitter());
                tracing::warn!(
                    account = name,
                    "{error} (failure {} in a row); retrying in {:.0}s",
                    backoff.failures(),
                    wait.as_secs_f64()
                );
                timetable.next_full = now + wait;
            }
        }
    }
    drop(watcher);
    tracing::debug!(account = name, "account task ended");
}

/// Runs the account once through the engine's run pipeline (sync, history, index, metrics).
/// A stop request lets it run on for [`STOP_GRACE`]; `None` when it had to be dropped.
async fn sync_once(
    config: &Config,
    account: AnyAccount<'_>,
    stop: &mut watch::Receiver<bool>,
) -> Option<AccountRun> {
    let progress = indicatif::ProgressBar::hidden();
    // Blocking inside (SQLite, the index) is fine here: the account has its own thread.
    let sync = run_account(config, account, SyncOptions::default(), &progress);
    tokio::pin!(sync);
    tokio::select! {
        r = &mut sync => Some(r),
        _ = stop.changed() => {
            match tokio::time::timeout(STOP_GRACE, &mut sync).await {
                Ok(r) => Some(r),
                Err(_) => {
                    tracing::warn!(
                        account = account.name(),
                        "sync interrupted by the stop; the next run completes it"
                    );
                    None
                }
            }
        }
    }
}
