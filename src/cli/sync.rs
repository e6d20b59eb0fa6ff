//! `arctern sync`: runs the engine per account and prints a summary line each (or the plan with
//! `--dry-run`).

use super::exit;
use crate::config::{AnyAccount, Config};
use crate::engine::{self, FatalKind, SyncOptions};
use std::io::IsTerminal;

/// Runs `sync` and returns the exit code.
pub async fn run(config: &Config, accounts: &[String], options: SyncOptions) -> u8 {
    let selected = match super::select_accounts(config, accounts) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::CONFIG;
        }
    };
    let progress = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut code = exit::OK;
    for account in selected {
        let started = engine::unix_now();
        let (report, fatal) = match account {
            AnyAccount::Imap(a) => engine::sync_account(config, a, options, &progress).await,
            AnyAccount::Pop3(a) => engine::pop3::pull_account(config, a, options, &progress).await,
        };
        progress.suspend(|| {
            for f in &report.folders {
                for n in &f.notes {
                    println!("{}: {}: {n}", report.account, f.folder);
                }
                for p in &f.planned {
                    println!("{}: {}: would {p}", report.account, f.folder);
                }
                if let Some(e) = &f.error {
                    eprintln!("{}: {}: error: {e}", report.account, f.folder);
                }
            }
            if options.dry_run {
                println!("(dry run) {}", report.summary_line());
            } else {
                println!("{}", report.summary_line());
            }
        });
        if !options.dry_run
            && let Err(e) = engine::record_run(config, &report, fatal, started)
        {
            tracing::warn!(account = account.name(), "run history not recorded: {e}");
        }
        // The search index follows every sync, so it never shows a message that is gone.
        if config.index
            && !options.dry_run
            && let Err(e) = super::search::update_index(config, &[account], false)
        {
            eprintln!("{}: search index not updated: {e}", account.name());
            if code == exit::OK {
                code = exit::PARTIAL;
            }
        }
        let this = match fatal {
            Some(FatalKind::Locked) => exit::LOCKED,
            Some(FatalKind::Connect | FatalKind::Auth) => exit::CONNECT,
            Some(FatalKind::Local) => exit::LOCAL,
            None if report.has_errors() => exit::PARTIAL,
            None => exit::OK,
        };
        if code == exit::OK || (code == exit::PARTIAL && this > exit::PARTIAL) {
            code = this;
        }
    }
    progress.finish_and_clear();
    if !options.dry_run
        && let Err(e) = crate::metrics::write(config)
    {
        eprintln!("arctern: {e}");
    }
    code
}
