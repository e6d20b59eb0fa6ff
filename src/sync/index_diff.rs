//! What an index update must do, decided purely: which folders' documents go because the folder
//! is gone, which files of a folder are new, renamed (flags changed: re-indexed) or removed, and
//! whether a folder's directory mtimes may be trusted to skip it next time.

use std::collections::HashMap;

/// The changes one folder's documents need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderDiff {
    /// (key, file name) of messages not indexed yet.
    pub add: Vec<(String, String)>,
    /// (key, new file name) of indexed messages whose file name changed (flags).
    pub reindex: Vec<(String, String)>,
    /// Document ids of messages whose file is gone.
    pub remove: Vec<String>,
}

/// Compares a folder on disk (`key → file name`) with its indexed documents
/// (`key → (document id, file name)`). Sorted by key, so the result is deterministic.
pub fn folder_diff(
    on_disk: &HashMap<String, String>,
    indexed: &HashMap<String, (String, String)>,
) -> FolderDiff {
    let mut out = FolderDiff::default();
    for (key, name) in on_disk {
        match indexed.get(key) {
            None => out.add.push((key.clone(), name.clone())),
            Some((_, old)) if old != name => out.reindex.push((key.clone(), name.clone())),
            Some(_) => {}
        }
    }
    for (key, (id, _)) in indexed {
        if !on_disk.contains_key(key) {
            out.remove.push(id.clone());
        }
    }
    out.add.sort();
    out.reindex.sort();
    out.remove.sort();
    out
}

/// Indexed folders (account, folder) of the accounts being updated that are no longer among
/// the sources: their documents go.
pub fn gone_folders(
    indexed: &[(String, String)],
    accounts: &[String],
    sources: &[(String, String)],
) -> Vec<(String, String)> {
    indexed
        .iter()
        .filter(|(a, f)| accounts.contains(a) && !sources.iter().any(|(sa, sf)| sa == a && sf == f))
        .cloned()
        .collect()
}

/// The directory mtimes (nanoseconds) to record for skipping an unchanged folder next time, or
/// `None`: a change made just after the listing could hide behind an equal mtime when the clock
/// had not yet moved past it by the timestamp granularity. `now_ns` is read before the listing.
/// On a file system with nanosecond timestamps (any sub-second part in the mtimes) the margin is
/// [`FINE_GRANULARITY_NS`], a kernel tick with room to spare; where both mtimes are whole
/// seconds (a file system that keeps only seconds, or an unlucky instant) it is two seconds.
pub fn settled_mtimes(mtimes: Option<(i64, i64)>, now_ns: i64) -> Option<(i64, i64)> {
    const SECOND: i64 = 1_000_000_000;
    mtimes.filter(|(c, n)| {
        let newest = (*c).max(*n);
        let coarse = c.rem_euclid(SECOND) == 0 && n.rem_euclid(SECOND) == 0;
        let margin = if coarse {
            2 * SECOND
        } else {
            FINE_GRANULARITY_NS
        };
        now_ns.saturating_sub(newest) >= margin
    })
}

/// The margin past a fine-grained mtime after which a listing can be trusted (20 ms: the
/// kernel's timestamp tick is at most 10 ms with HZ=100).
pub const FINE_GRANULARITY_NS: i64 = 20_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn new_renamed_and_removed_files_are_told_apart() {
        let on_disk = map(&[("a", "a:2,S"), ("b", "b:2,FS"), ("c", "c")]);
        let indexed: HashMap<String, (String, String)> = [
            ("b", ("id-b", "b:2,S")),
            ("c", ("id-c", "c")),
            ("d", ("id-d", "d:2,")),
        ]
        .iter()
        .map(|(k, (id, n))| (k.to_string(), (id.to_string(), n.to_string())))
        .collect();
        assert_eq!(
            folder_diff(&on_disk, &indexed),
            FolderDiff {
                add: vec![("a".into(), "a:2,S".into())],
                reindex: vec![("b".into(), "b:2,FS".into())],
                remove: vec!["id-d".into()],
            }
        );
    }

    #[test]
    fn only_the_updated_accounts_lose_gone_folders() {
        let s = |a: &str, f: &str| (a.to_string(), f.to_string());
        let indexed = vec![s("work", "INBOX"), s("work", "Old"), s("home", "Old")];
        let gone = gone_folders(&indexed, &["work".into()], &[s("work", "INBOX")]);
        assert_eq!(gone, vec![s("work", "Old")]);
    }

    #[test]
    fn fresh_mtimes_are_not_trusted() {
        let ns = |s: i64| s * 1_000_000_000;
        // Whole seconds: two seconds of margin.
        assert_eq!(
            settled_mtimes(Some((ns(100), ns(98))), ns(102)),
            Some((ns(100), ns(98)))
        );
        assert_eq!(settled_mtimes(Some((ns(100), ns(101))), ns(102)), None);
        assert_eq!(settled_mtimes(None, ns(102)), None);
        // Nanoseconds: 20 ms.
        let fine = ns(100) + 123_456;
        assert_eq!(
            settled_mtimes(Some((fine, ns(90))), fine + 25_000_000),
            Some((fine, ns(90)))
        );
        assert_eq!(settled_mtimes(Some((fine, ns(90))), fine + 5_000_000), None);
    }
}
