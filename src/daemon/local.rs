//! Local Maildir changes for the daemon: an inotify watch (through the `notify` crate) on the
//! account's Maildir tree that reports a [`Trigger::Local`] when a message file appears,
//! disappears or is renamed (a flag change) in a `cur/` or `new/` directory. `tmp/` and dot
//! files are ignored. The daemon's own syncs cause reports too; the sync after them finds
//! nothing to do and changes nothing, so this settles.

use super::schedule::Trigger;
use notify::{EventKind, RecursiveMode, Watcher};
use std::path::Path;
use tokio::sync::mpsc;

/// True for a path whose change may need a sync: a file directly in `cur/` or `new/`.
pub fn is_message_path(path: &Path) -> bool {
    let in_mail_dir = path
        .parent()
        .and_then(|d| d.file_name())
        .is_some_and(|n| n == "cur" || n == "new");
    let visible = path
        .file_name()
        .is_some_and(|n| !n.to_string_lossy().starts_with('.'));
    in_mail_dir && visible
}

/// Starts watching `root` recursively; the watch ends when the returned watcher is dropped.
pub fn watch_maildir(
    root: &Path,
    triggers: mpsc::Sender<Trigger>,
) -> Result<notify::RecommendedWatcher, String> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let relevant = matches!(
            event.kind,
            EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(_)
        ) && event.paths.iter().any(|p| is_message_path(p));
        if relevant {
            // A full channel already holds a report: nothing is lost by dropping this one.
            let _ = triggers.try_send(Trigger::Local);
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", root.display()))?;
    watcher
        .watch(root, RecursiveMode::Recursive)
        .map_err(|e| format!("cannot watch {}: {e}", root.display()))?;
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_message_files_count() {
        assert!(is_message_path(Path::new("/m/cur/123.host:2,S")));
        assert!(is_message_path(Path::new("/m/.Archive/new/123.host")));
        assert!(!is_message_path(Path::new("/m/tmp/123.host")));
        assert!(!is_message_path(Path::new("/m/cur/.hidden")));
        assert!(!is_message_path(Path::new("/m/dovecot-keywords")));
        assert!(!is_message_path(Path::new("/m/cur")));
    }
}
