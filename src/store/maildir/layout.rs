//! Where each folder lives under the Maildir root, and which folders exist on disk.
//!
//! Maildir++ (default): INBOX is the root; `Lists/rust` is `<root>/.Lists.rust`; a `.` or `%`
//! inside a component is written `%2E` / `%25` so that names never collide. Verbatim: every
//! folder, INBOX included, is a nested directory. Names are UTF-8 on disk, or modified UTF-7
//! with `utf7_names = true` (as mbsync and offlineimap write them). Paths are built only from
//! validated [`FolderName`] components, so a path can never leave the root.

use crate::config::Layout;
use crate::names::{FolderName, decode_mutf7, encode_mutf7};
use std::path::{Path, PathBuf};

/// The directory of `name` under `root`. Verbatim layout refuses components that would collide
/// with a Maildir's own `cur`, `new` and `tmp`.
pub fn folder_path(root: &Path, layout: Layout, name: &FolderName) -> Result<PathBuf, String> {
    let on_disk = |c: &str| -> String {
        if layout.utf7_names() && !(c == "INBOX" && name.is_inbox()) {
            encode_mutf7(c)
        } else {
            c.to_string()
        }
    };
    match layout.is_maildir_plus_plus() {
        true => {
            if name.is_inbox() {
                return Ok(root.to_path_buf());
            }
            let escaped: Vec<String> = name
                .components()
                .iter()
                .map(|c| escape(&on_disk(c)))
                .collect();
            Ok(root.join(format!(".{}", escaped.join("."))))
        }
        false => {
            let mut p = root.to_path_buf();
            for c in name.components() {
                let c = on_disk(c);
                let c = c.as_str();
                if matches!(c, "cur" | "new" | "tmp") {
                    return Err(format!(
                        "folder {name}: a component named {c:?} cannot be stored in the verbatim layout"
                    ));
                }
                p.push(c);
            }
            Ok(p)
        }
    }
}

fn escape(component: &str) -> String {
    component.replace('%', "%25").replace('.', "%2E")
}

fn unescape(component: &str) -> String {
    component
        .replace("%2E", ".")
        .replace("%2e", ".")
        .replace("%25", "%")
}

/// True when `dir` looks like a Maildir (has `cur/`).
pub fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir()
}

/// The folders present under `root`. Directory names that do not form a valid folder name are
/// returned as problems instead of being guessed at.
pub fn list_folders(
    root: &Path,
    layout: Layout,
) -> std::io::Result<(Vec<FolderName>, Vec<String>)> {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    match layout.is_maildir_plus_plus() {
        true => {
            if is_maildir(root) {
                found.push(FolderName::parse("INBOX").expect("INBOX is valid"));
            }
            for entry in std::fs::read_dir(root)? {
                let entry = entry?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    problems.push(format!(
                        "{}: directory name is not UTF-8",
                        entry.path().display()
                    ));
                    continue;
                };
                let Some(body) = name.strip_prefix('.') else {
                    continue;
                };
                if body.is_empty() || body == "." || !is_maildir(&entry.path()) {
                    continue;
                }
                let parts: Vec<String> = body.split('.').map(unescape).collect();
                let parts = match from_disk(parts, layout) {
                    Ok(p) => p,
                    Err(e) => {
                        problems.push(format!("{}: {e}", entry.path().display()));
                        continue;
                    }
                };
                match FolderName::from_components(&parts) {
                    // ".INBOX" alone is not a second INBOX.
                    Ok(n) if n.is_inbox() => {}
                    Ok(n) => found.push(n),
                    Err(e) => problems.push(format!("{}: {e}", entry.path().display())),
                }
            }
        }
        false => walk_verbatim(root, layout, &mut Vec::new(), &mut found, &mut problems)?,
    }
    found.sort();
    found.dedup();
    Ok((found, problems))
}

/// Directory-name components as folder-name components: decoded from modified UTF-7 when the
/// layout keeps names that way.
fn from_disk(parts: Vec<String>, layout: Layout) -> Result<Vec<String>, String> {
    if !layout.utf7_names() {
        return Ok(parts);
    }
    parts
        .iter()
        .map(|p| decode_mutf7(p).map_err(|e| format!("not a modified UTF-7 name: {e}")))
        .collect()
}

fn walk_verbatim(
    dir: &Path,
    layout: Layout,
    prefix: &mut Vec<String>,
    found: &mut Vec<FolderName>,
    problems: &mut Vec<String>,
) -> std::io::Result<()> {
    if prefix.len() > crate::names::MAX_DEPTH {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if matches!(name.as_str(), "cur" | "new" | "tmp") || name.starts_with('.') {
            continue;
        }
        prefix.push(name);
        if is_maildir(&entry.path()) {
            match from_disk(prefix.clone(), layout)
                .and_then(|p| FolderName::from_components(&p).map_err(|e| e.to_string()))
            {
                Ok(n) => found.push(n),
                Err(e) => problems.push(format!("{}: {e}", entry.path().display())),
            }
        }
        walk_verbatim(&entry.path(), layout, prefix, found, problems)?;
        prefix.pop();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> FolderName {
        FolderName::parse(s).unwrap()
    }

    #[test]
    fn maildirpp_paths() {
        let root = Path::new("/m");
        let l = Layout::MaildirPlusPlus;
        assert_eq!(
            folder_path(root, l, &n("INBOX")).unwrap(),
            PathBuf::from("/m")
        );
        assert_eq!(
            folder_path(root, l, &n("Lists/rust")).unwrap(),
            PathBuf::from("/m/.Lists.rust")
        );
        assert_eq!(
            folder_path(root, l, &n("Entwürfe")).unwrap(),
            PathBuf::from("/m/.Entwürfe")
        );
        assert_eq!(
            folder_path(root, l, &n("v1.2/a%b")).unwrap(),
            PathBuf::from("/m/.v1%2E2.a%25b")
        );
    }

    #[test]
    fn verbatim_paths() {
        let root = Path::new("/m");
        let l = Layout::Verbatim;
        assert_eq!(
            folder_path(root, l, &n("INBOX")).unwrap(),
            PathBuf::from("/m/INBOX")
        );
        assert_eq!(
            folder_path(root, l, &n("Lists/rust")).unwrap(),
            PathBuf::from("/m/Lists/rust")
        );
        assert!(folder_path(root, l, &n("a/cur")).is_err());
    }

    #[test]
    fn utf7_names_on_disk() {
        let root = Path::new("/m");
        assert_eq!(
            folder_path(root, Layout::MaildirPlusPlusUtf7, &n("Entwürfe/Alt")).unwrap(),
            PathBuf::from("/m/.Entw&APw-rfe.Alt")
        );
        assert_eq!(
            folder_path(root, Layout::VerbatimUtf7, &n("INBOX")).unwrap(),
            PathBuf::from("/m/INBOX")
        );
        assert_eq!(
            folder_path(root, Layout::VerbatimUtf7, &n("Entwürfe")).unwrap(),
            PathBuf::from("/m/Entw&APw-rfe")
        );
    }

    #[test]
    fn listing_round_trips_paths() {
        for layout in [
            Layout::MaildirPlusPlus,
            Layout::Verbatim,
            Layout::MaildirPlusPlusUtf7,
            Layout::VerbatimUtf7,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let names = ["INBOX", "Archive", "Lists/rust", "Entwürfe", "v1.2/x%y"];
            for s in names {
                let p = folder_path(dir.path(), layout, &n(s)).unwrap();
                std::fs::create_dir_all(p.join("cur")).unwrap();
            }
            let (found, problems) = list_folders(dir.path(), layout).unwrap();
            assert!(problems.is_empty(), "{problems:?}");
            let mut want: Vec<FolderName> = names.iter().map(|s| n(s)).collect();
            want.sort();
            assert_eq!(found, want, "{layout:?}");
        }
    }
}
