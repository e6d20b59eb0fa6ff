//! `arctern push`, `arctern migrate` and `arctern verify`: an account's Maildir onto a target.

use super::exit;
use crate::config::{AnyAccount, Config, Target, TargetKind};
use crate::db::StateDb;
use crate::engine::reupload::{self, LocalSide};
use crate::engine::reupload_smtp::{self, SmtpReuploadOptions};
use crate::engine::{SyncOptions, lock};
use std::io::IsTerminal;

fn resolve<'a>(
    config: &'a Config,
    account: &str,
    target: &str,
) -> Result<(AnyAccount<'a>, &'a Target), String> {
    let a = config
        .select_accounts(&[account.to_string()])?
        .pop()
        .expect("one name, one account");
    let t = config.targets.get(target).ok_or_else(|| {
        format!(
            "no target {target:?} in {} (targets: {})",
            config.path.display(),
            config
                .targets
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    Ok((a, t))
}

fn local_side(a: AnyAccount<'_>) -> LocalSide<'_> {
    LocalSide {
        account: a.name(),
        root: a.maildir(),
        layout: a.layout(),
    }
}

/// A progress bar on a terminal (hidden otherwise): bytes sent of the bytes to send, with the
/// byte rate and the time left; the message names the folder and counts messages.
fn progress_bar() -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:24}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// `arctern push ACCOUNT --to TARGET [--folders P...] [--dry-run] [--rate N]`.
pub async fn run_push(
    config: &Config,
    account: &str,
    target: &str,
    folders: &[String],
    dry_run: bool,
    rate: Option<f64>,
) -> u8 {
    let (a, t) = match resolve(config, account, target) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::CONFIG;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&config.state_dir) {
        eprintln!(
            "arctern: cannot create state_dir {}: {e}",
            config.state_dir.display()
        );
        return exit::LOCAL;
    }
    let _lock = match lock::acquire(&config.state_dir, a.name()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::LOCKED;
        }
    };
    let db = match StateDb::open(&config.state_path(a.name())) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::LOCAL;
        }
    };
    let started = std::time::Instant::now();
    let bar = progress_bar();
    let all_targets: Vec<&Target> = config.targets.values().collect();
    let result = match &t.kind {
        TargetKind::Imap(_) => {
            reupload::reupload(&db, &local_side(a), t, folders, dry_run, &bar).await
        }
        TargetKind::Smtp(_) => {
            let opts = SmtpReuploadOptions { dry_run, rate };
            reupload_smtp::reupload(&db, &local_side(a), t, &all_targets, folders, opts, &bar).await
        }
    };
    bar.finish_and_clear();
    let reports = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("arctern: {e}");
            return e.kind().exit_code();
        }
    };
    let mut code = exit::OK;
    let (mut up, mut present, mut earlier, mut rejected, mut bytes) = (0, 0, 0, 0, 0u64);
    let (sent_word, present_word) = match t.kind {
        TargetKind::Imap(_) => ("↑", "already there"),
        TargetKind::Smtp(_) => ("sent", "duplicates of sent ones"),
    };
    for r in &reports {
        if let Some(why) = &r.skipped {
            println!("{}: {} not pushed: {why}", a.name(), r.folder);
        }
        if let Some(note) = &r.deferred_note {
            println!("{}: {} → {}: {note}", a.name(), r.folder, r.target_folder);
        }
        if let Some(p) = &r.planned {
            println!(
                "{}: {} → {}: would {p}",
                a.name(),
                r.folder,
                r.target_folder
            );
        }
        for x in &r.rejected {
            eprintln!("{}: rejected by {}: {x}", a.name(), t.name);
        }
        for x in &r.unconfirmed {
            eprintln!(
                "{}: sent again to {} (an interrupted run may have delivered it already; confirm_via can check): {x}",
                a.name(),
                t.name
            );
        }
        for x in &r.uncertain {
            eprintln!(
                "{}: {}: delivery unknown, settled by the next run: {x}",
                a.name(),
                t.name
            );
            code = exit::PARTIAL;
        }
        if let Some(e) = &r.error {
            eprintln!(
                "{}: {} → {}: error: {e}",
                a.name(),
                r.folder,
                r.target_folder
            );
            code = exit::PARTIAL;
        }
        if r.gone > 0 {
            println!(
                "{}: {} → {}: {} message(s) recorded as pushed were no longer on the target; checked again, and uploaded where missing",
                a.name(),
                r.folder,
                r.target_folder,
                r.gone
            );
        }
        up += r.uploaded;
        present += r.present;
        earlier += r.earlier;
        rejected += r.rejected.len();
        bytes += r.bytes;
    }
    if rejected > 0 {
        code = exit::PARTIAL;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}{} → {}: +{up} {sent_word} ({:.1} MB, {:.1} MB/s), {present} {present_word}, {earlier} pushed before, {rejected} rejected in {secs:.1}s",
        if dry_run { "(dry run) " } else { "" },
        a.name(),
        t.name,
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs.max(0.001)
    );
    code
}

/// `arctern migrate ACCOUNT --to TARGET`: pull from the account's server (one sync), then push.
pub async fn run_migrate(config: &Config, account: &str, target: &str, folders: &[String]) -> u8 {
    let a = match resolve(config, account, target) {
        Ok((a, _)) => a,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::CONFIG;
        }
    };
    let code = super::sync::run(config, &[a.name().to_string()], SyncOptions::default()).await;
    if code > exit::PARTIAL {
        eprintln!("arctern: the pull from {} failed; nothing pushed", a.name());
        return code;
    }
    let push_code = run_push(config, account, target, folders, false, None).await;
    code.max(push_code)
}

/// `arctern verify ACCOUNT --to TARGET [--folders P...] [--json]`.
pub async fn run_verify(
    config: &Config,
    account: &str,
    target: &str,
    folders: &[String],
    json: bool,
) -> u8 {
    let (a, t) = match resolve(config, account, target) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::CONFIG;
        }
    };
    let all_targets: Vec<&Target> = config.targets.values().collect();
    let result = match &t.kind {
        TargetKind::Imap(_) => {
            let db = StateDb::open(&config.state_path(a.name())).ok();
            reupload::verify(db.as_ref(), &local_side(a), t, folders).await
        }
        TargetKind::Smtp(_) => match StateDb::open(&config.state_path(a.name())) {
            Ok(db) => reupload_smtp::verify(&db, &local_side(a), t, &all_targets, folders).await,
            Err(e) => Err(e.into()),
        },
    };
    let reports = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::CONNECT;
        }
    };
    let mut all_match = true;
    for r in &reports {
        if !r.comparison.as_ref().is_some_and(|c| c.is_match()) {
            all_match = false;
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        );
    } else {
        for r in &reports {
            match &r.comparison {
                None => println!(
                    "{} → {}: MISSING FOLDER on the target ({} local message(s))",
                    r.folder, r.target_folder, r.local
                ),
                Some(c) => {
                    println!(
                        "{} → {}: {} matched, {} missing, {} extra, {} duplicated{}{}",
                        r.folder,
                        r.target_folder,
                        c.matched,
                        c.missing,
                        c.extra,
                        c.duplicated,
                        if c.altered.is_empty() {
                            String::new()
                        } else {
                            format!(", {} stored changed by the server", c.altered.len())
                        },
                        if c.is_match() { "" } else { "  ← differs" }
                    );
                    for a in c.altered.iter().take(20) {
                        println!("  {}: {}", r.folder, a.describe());
                    }
                }
            }
        }
        println!(
            "{} → {}: {}",
            a.name(),
            t.name,
            if all_match {
                "the target holds exactly the local messages"
            } else {
                "DIFFERENCES found"
            }
        );
    }
    if all_match { exit::OK } else { exit::PARTIAL }
}
