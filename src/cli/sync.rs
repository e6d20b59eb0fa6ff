//! `arctern sync`: runs each account through the engine's run pipeline and prints what it did: a
//! summary line each (or the plan with `--dry-run`), and every failure once, on stderr.

use super::exit;
use crate::config::Config;
use crate::engine::SyncOptions;
use crate::engine::run::{AccountRun, run_account};
use std::io::IsTerminal;

/// Runs `sync` and returns the exit code.
pub async fn run(config: &Config, accounts: &[String], options: SyncOptions) -> u8 {
    let selected = match config.select_accounts(accounts) {
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
        let run = run_account(config, account, options, &progress).await;
        progress.suspend(|| print_run(&run, options));
        code = exit::combine(code, run.exit_code());
    }
    progress.finish_and_clear();
    code
}

/// Prints one account's run: notes and plans on stdout, folder failures on stderr, then the
/// summary line (stdout) or, for a failure of the whole account, its one line (stderr).
pub fn print_run(run: &AccountRun, options: SyncOptions) {
    let report = &run.report;
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
    match &run.error {
        Some(e) => eprintln!("{}: {e}", report.account),
        None if options.dry_run => println!("(dry run) {}", report.summary_line()),
        None => println!("{}", report.summary_line()),
    }
    if let Some(e) = &run.history_error {
        eprintln!("{}: run history not recorded: {e}", report.account);
    }
    if let Some(e) = &run.index_error {
        eprintln!("{}: search index not updated: {e}", report.account);
    }
    if let Some(e) = &run.metrics_error {
        eprintln!("arctern: {e}");
    }
}
