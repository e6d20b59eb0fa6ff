//! The index as the accounts of a config see it: every Maildir folder of an account is a
//! source, and one call brings the index up to date for some accounts.

use super::{FolderSource, MailIndex, UpdateReport};
use crate::config::{AnyAccount, Config, Layout};
use crate::store::maildir::layout;
use std::path::Path;

/// Every Maildir folder of an account, as index sources.
pub fn sources_of(account: AnyAccount<'_>) -> Result<Vec<FolderSource>, String> {
    let (name, root, lay): (&str, &Path, Layout) = match account {
        AnyAccount::Imap(a) => (&a.name, &a.maildir, a.layout),
        AnyAccount::Pop3(a) => (&a.name, &a.maildir, a.layout),
    };
    if !root.exists() {
        return Ok(Vec::new());
    }
    let (folders, _problems) = layout::list_folders(root, lay)
        .map_err(|e| format!("{name}: cannot list Maildir {}: {e}", root.display()))?;
    let mut out = Vec::new();
    for f in folders {
        let path = layout::folder_path(root, lay, &f).map_err(|e| format!("{name}: {f}: {e}"))?;
        out.push(FolderSource {
            account: name.to_string(),
            folder: f.to_string(),
            path,
        });
    }
    Ok(out)
}

/// Brings the index in `state_dir` up to date with the Maildirs of `accounts`; `progress` is
/// told (done, total) as messages are indexed. The error is printable.
pub fn update(
    config: &Config,
    accounts: &[AnyAccount<'_>],
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<UpdateReport, String> {
    let mut sources = Vec::new();
    for a in accounts {
        sources.extend(sources_of(*a)?);
    }
    let names: Vec<String> = accounts.iter().map(|a| a.name().to_string()).collect();
    let opening = std::time::Instant::now();
    let mut index = MailIndex::open(&config.state_dir).map_err(|e| e.to_string())?;
    tracing::debug!(ms = opening.elapsed().as_millis() as u64, "index opened");
    index
        .update(&names, &sources, progress)
        .map_err(|e| e.to_string())
}
