//! The `arctern` binary: parse arguments, set up logging, run, map the outcome to an exit code.

use arctern::cli::{self, Cli, Command, LogFormat, exit};
use arctern::engine::SyncOptions;
use clap::Parser;
use std::process::ExitCode;

fn init_logging(verbose: u8, daemon: bool, format: LogFormat) {
    let default = match verbose {
        // The daemon reports each sync at info level; other crates only warn.
        0 if daemon => "warn,arctern=info",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Deliberately no `log` → tracing bridge: async-imap logs raw protocol lines (LOGIN and
    // AUTHENTICATE included) through `log` at trace level, and passwords must never reach a log.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => {
            tracing::subscriber::set_global_default(builder.json().flatten_event(true).finish())
        }
        // Under systemd (stderr connected to the journal) the journal adds the time, and a
        // "<N>" prefix gives each line its priority.
        LogFormat::Text if std::env::var_os("JOURNAL_STREAM").is_some() => {
            tracing::subscriber::set_global_default(
                builder
                    .with_ansi(false)
                    .without_time()
                    .event_format(cli::logging::JournalPriority::new(
                        tracing_subscriber::fmt::format()
                            .without_time()
                            .with_ansi(false),
                    ))
                    .finish(),
            )
        }
        LogFormat::Text => tracing::subscriber::set_global_default(
            builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .finish(),
        ),
    };
}

fn main() -> ExitCode {
    let args = Cli::parse();
    let daemon = matches!(args.command, Command::Daemon { .. });
    init_logging(args.verbose, daemon, args.log_format);
    // Translating another tool's config needs no arctern config: it makes one.
    if let Command::Import { from } = &args.command
        && !matches!(from, cli::ImportFrom::Mbox { .. })
    {
        return ExitCode::from(cli::import::run(from));
    }
    let config = match cli::load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("arctern: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    // Commands that never touch the network run without an async runtime (a search is a few
    // milliseconds; starting worker threads would be a noticeable part of it).
    let offline = match &args.command {
        Command::Status { accounts, json } => Some(cli::status::run(&config, accounts, *json)),
        Command::Index { accounts, rebuild } => {
            Some(cli::search::run_index(&config, accounts, *rebuild))
        }
        Command::Search {
            query,
            limit,
            sort,
            json,
        } => Some(cli::search::run_search(
            &config,
            &query.join(" "),
            *limit,
            (*sort).into(),
            *json,
        )),
        Command::Show { what, raw } => Some(cli::search::run_show(&config, what, *raw)),
        Command::Import { from } => Some(cli::mbox::run_import(&config, from)),
        Command::Export { to } => Some(cli::mbox::run_export(&config, to)),
        Command::Sync { .. }
        | Command::Daemon { .. }
        | Command::Check { .. }
        | Command::Push { .. }
        | Command::Migrate { .. }
        | Command::Verify { .. }
        | Command::Auth { .. } => None,
    };
    if let Some(code) = offline {
        return ExitCode::from(code);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("arctern: cannot start the async runtime: {e}");
            return ExitCode::from(exit::LOCAL);
        }
    };
    let code = runtime.block_on(async {
        match &args.command {
            Command::Sync {
                accounts,
                dry_run,
                force,
            } => {
                cli::sync::run(
                    &config,
                    accounts,
                    SyncOptions {
                        dry_run: *dry_run,
                        force: *force,
                    },
                )
                .await
            }
            Command::Check { accounts } => cli::check::run(&config, accounts).await,
            Command::Auth { action } => cli::auth::run(&config, action).await,
            Command::Daemon { accounts } => {
                arctern::daemon::run(config.path.clone(), accounts.clone(), config.clone()).await
            }
            Command::Push {
                what,
                dry_run,
                rate,
            } => {
                cli::reupload::run_push(
                    &config,
                    &what.account,
                    &what.to,
                    &what.folders,
                    *dry_run,
                    *rate,
                )
                .await
            }
            Command::Migrate { what } => {
                cli::reupload::run_migrate(&config, &what.account, &what.to, &what.folders).await
            }
            Command::Verify { what, json } => {
                cli::reupload::run_verify(&config, &what.account, &what.to, &what.folders, *json)
                    .await
            }
            _ => unreachable!("offline commands ran above"),
        }
    });
    ExitCode::from(code)
}
