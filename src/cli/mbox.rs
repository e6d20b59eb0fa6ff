//! `arctern import mbox FILE... --account NAME [--folder F]` and
//! `arctern export mbox ACCOUNT [--folders P...] [-o FILE]`: argument checks, the account lock,
//! the progress bar and the summary; the work is `engine::mbox`'s.

use super::{ExportTo, ImportFrom, MboxFormat, exit};
use crate::config::Config;
use crate::engine::lock;
use crate::engine::mbox::{self, ImportOptions, LocalMail};
use crate::names::FolderName;
use crate::store::mbox::Quoting;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

fn local_mail(config: &Config, account: &str) -> Result<LocalMail, String> {
    let a = config
        .select_accounts(&[account.to_string()])?
        .pop()
        .ok_or_else(|| format!("no account {account:?}"))?;
    Ok(LocalMail {
        root: a.maildir().to_path_buf(),
        layout: a.layout(),
    })
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let template = if total > 0 {
        "{spinner} importing [{bar:24}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
    } else {
        "{spinner} importing {bytes} {bytes_per_sec}"
    };
    let style = indicatif::ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Runs `import mbox` (other `import` forms need no config: `cli::import`).
pub fn run_import(config: &Config, from: &ImportFrom) -> u8 {
    let ImportFrom::Mbox {
        files,
        account,
        folder,
        format,
    } = from
    else {
        return super::import::run(from);
    };
    let local = match local_mail(config, account) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::CONFIG;
        }
    };
    let folder = match folder.as_deref().map(FolderName::parse).transpose() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("arctern: --folder: {e}");
            return exit::CONFIG;
        }
    };
    let sources: Vec<Option<PathBuf>> = files
        .iter()
        .map(|f| (f.as_os_str() != "-").then(|| f.clone()))
        .collect();
    if sources.iter().filter(|s| s.is_none()).count() > 1 {
        eprintln!("arctern: standard input (-) can be read once");
        return exit::CONFIG;
    }
    if let Err(e) = std::fs::create_dir_all(&config.state_dir) {
        eprintln!("arctern: cannot create {}: {e}", config.state_dir.display());
        return exit::LOCAL;
    }
    // A sync of the same account must not plan against a half-imported folder.
    let _lock = match lock::acquire(&config.state_dir, account) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::LOCKED;
        }
    };
    let total: u64 = sources
        .iter()
        .map(|s| {
            s.as_deref()
                .and_then(|p| p.metadata().ok())
                .map_or(0, |m| m.len())
        })
        .sum();
    let bar = progress_bar(total);
    let options = ImportOptions {
        folder,
        quoting: match format {
            MboxFormat::Mboxrd => Quoting::Mboxrd,
            MboxFormat::Mboxo => Quoting::Mboxo,
        },
    };
    let result = mbox::import(&local, &sources, &options, &bar);
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "arctern: {account}: import stopped: {e}; nothing stored is lost, rerun to go on"
            );
            return exit::LOCAL;
        }
    };
    for p in &report.problems {
        eprintln!("arctern: {account}: {p}");
    }
    let mut out = std::io::stdout().lock();
    for (folder, c) in &report.folders {
        let _ = writeln!(
            out,
            "{account}: {folder}: {} stored, {} already there",
            c.stored, c.already
        );
    }
    let _ = writeln!(
        out,
        "{account}: {} message(s) read{}; run `arctern sync {account}` to upload them",
        report.read,
        if report.expunged > 0 {
            format!(
                ", {} marked deleted by Thunderbird left out",
                report.expunged
            )
        } else {
            String::new()
        }
    );
    exit::OK
}

/// Runs `export mbox`.
pub fn run_export(config: &Config, to: &ExportTo) -> u8 {
    let ExportTo::Mbox {
        account,
        folders,
        output,
        manifest,
    } = to;
    let local = match local_mail(config, account) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::CONFIG;
        }
    };
    let manifest_path = manifest.clone().or_else(|| {
        output
            .as_ref()
            .map(|o| PathBuf::from(format!("{}.sha256", o.display())))
    });
    let create = |p: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(p)
            .map_err(|e| format!("cannot create {} (it must not exist yet): {e}", p.display()))
    };
    let mut manifest_file = match manifest_path.as_deref().map(create).transpose() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("arctern: {e}");
            return exit::LOCAL;
        }
    };
    let manifest_writer = manifest_file.as_mut().map(|f| f as &mut dyn Write);
    let result = match output {
        Some(path) => match create(path) {
            Ok(f) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                mbox::export(&local, folders, f, manifest_writer, &name)
            }
            Err(e) => {
                eprintln!("arctern: {e}");
                return exit::LOCAL;
            }
        },
        None => mbox::export(
            &local,
            folders,
            std::io::stdout().lock(),
            manifest_writer,
            "-",
        ),
    };
    match result {
        Ok(r) => {
            let mut note = format!(
                "arctern: {account}: {} message(s) from {} folder(s) written as mboxrd (SHA-256 {})",
                r.messages, r.folders, r.sha256
            );
            if let Some(m) = &manifest_path {
                note.push_str(&format!("; manifest {}", m.display()));
            }
            if r.newline_added > 0 {
                note.push_str(&format!(
                    "; {} message(s) lacked a final newline and got one",
                    r.newline_added
                ));
            }
            eprintln!("{note}");
            exit::OK
        }
        Err(e) => {
            eprintln!("arctern: {account}: export failed: {e}");
            exit::LOCAL
        }
    }
}
