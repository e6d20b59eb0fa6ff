//! The folder planner: which folders to create where, which to sync, and which to refuse.
//!
//! A folder known to the state but missing on one side is reported, never deleted on the other
//! side: a renamed server folder or an unmounted disk must not cost the other copy.

use crate::model::Side;
use crate::names::{FolderName, FolderPatterns};
use crate::sync::planner::Policy;
use std::collections::BTreeSet;

/// What to do with one folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FolderAction {
    /// Exists on both sides: sync its messages.
    Sync(FolderName),
    /// Exists on one side only and is new: create it on `Side`, then sync.
    Create(FolderName, Side),
    /// Known from an earlier sync but gone from `Side`: left alone and reported.
    Missing(FolderName, Side),
    /// Gone from both sides: drop its state.
    Forget(FolderName),
    /// Exists on one side only and the sync mode forbids creating it on `Side`.
    NotCreated(FolderName, Side),
}

/// Local folders that another tool (mbsync, offlineimap) keeps under another spelling of a
/// server folder's name: the server's modified UTF-7 name (RFC 3501 §5.1.3; `Entw&APw-rfe` is
/// the server's `Entwürfe`), and with `flat_dots` (offlineimap's default local separator `.` in
/// a layout of nested directories) one directory `Lists.rust` for the server's `Lists/rust`.
/// Each pair is (name on disk, the server folder's name) for a local folder that is not the
/// server folder of its own name, whose other spelling is a server folder, and neither name
/// known to the state (an arctern-made folder of that spelling is left alone) nor the server's
/// one on disk already (never two copies). The engine renames each on disk before planning, so
/// it is that folder.
pub fn foreign_renames(
    far: &BTreeSet<FolderName>,
    near: &BTreeSet<FolderName>,
    known: &BTreeSet<FolderName>,
    flat_dots: bool,
) -> Vec<(FolderName, FolderName)> {
    let candidates = |n: &FolderName| -> Vec<FolderName> {
        let mut out = Vec::new();
        if let Ok(decoded) = FolderName::from_wire(n.as_str(), Some('/')) {
            out.push(decoded);
        }
        if flat_dots && n.components().len() == 1 && n.as_str().contains('.') {
            // `.` separates levels; each level may be modified UTF-7 as well.
            if let Ok(nested) = FolderName::from_wire(n.as_str(), Some('.')) {
                out.push(nested);
            }
        }
        out
    };
    near.iter()
        .filter(|n| !far.contains(*n) && !known.contains(*n))
        .filter_map(|n| {
            candidates(n)
                .into_iter()
                .find(|c| c != n && far.contains(c) && !near.contains(c) && !known.contains(c))
                .map(|c| (n.clone(), c))
        })
        .collect()
}

/// Folders the state records under the server's personal namespace prefix (`INBOX/Lists`, the
/// name an arctern that did not read NAMESPACE gave Courier's `INBOX.Lists`) that the server
/// now lists without it: each (recorded name, name without the prefix), shallowest first. Only
/// when the new name is a server folder the state does not know and the old one is not.
pub fn prefixed_renames(
    known: &BTreeSet<FolderName>,
    far: &BTreeSet<FolderName>,
    prefix: &[String],
) -> Vec<(FolderName, FolderName)> {
    if prefix.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<(FolderName, FolderName)> = known
        .iter()
        .filter(|old| !far.contains(*old))
        .filter_map(|old| {
            let parts = old.components();
            let under = parts.len() > prefix.len()
                && parts
                    .iter()
                    .zip(prefix)
                    .all(|(a, b)| a.eq_ignore_ascii_case(b));
            if !under {
                return None;
            }
            let new = FolderName::from_components(parts.get(prefix.len()..)?).ok()?;
            (far.contains(&new) && !known.contains(&new)).then(|| (old.clone(), new))
        })
        .collect();
    out.sort_by_key(|(old, _)| old.components().len());
    out
}

/// Plans folders from the selected names on each side and the names in the state.
pub fn plan_folders(
    far: &BTreeSet<FolderName>,
    near: &BTreeSet<FolderName>,
    known: &BTreeSet<FolderName>,
    patterns: &FolderPatterns,
    policy: Policy,
) -> Vec<FolderAction> {
    let all: BTreeSet<&FolderName> = far.iter().chain(near).chain(known).collect();
    let mut out = Vec::new();
    for name in all {
        let (on_far, on_near, was_known) = (
            far.contains(name),
            near.contains(name),
            known.contains(name),
        );
        if !was_known && !patterns.selects(name) {
            continue;
        }
        let action = match (on_far, on_near, was_known) {
            (true, true, _) => FolderAction::Sync(name.clone()),
            (false, false, _) => FolderAction::Forget(name.clone()),
            (true, false, true) => FolderAction::Missing(name.clone(), Side::Near),
            (false, true, true) => FolderAction::Missing(name.clone(), Side::Far),
            (true, false, false) => create_or_not(name, Side::Near, policy),
            (false, true, false) => create_or_not(name, Side::Far, policy),
        };
        if !patterns.selects(name) && !matches!(action, FolderAction::Forget(_)) {
            // No longer selected: keep its state, touch nothing.
            continue;
        }
        out.push(action);
    }
    out
}

fn create_or_not(name: &FolderName, side: Side, policy: Policy) -> FolderAction {
    if policy.may_write(side) {
        FolderAction::Create(name.clone(), side)
    } else {
        FolderAction::NotCreated(name.clone(), side)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_recorded_with_the_personal_prefix_are_renamed_once() {
        let set = |v: &[&str]| -> BTreeSet<FolderName> {
            v.iter().map(|n| FolderName::parse(n).unwrap()).collect()
        };
        let prefix = vec!["INBOX".to_string()];
        let known = set(&[
            "INBOX",
            "INBOX/Lists",
            "INBOX/Lists/rust",
            "INBOX/Old",
            "Sent",
        ]);
        let far = set(&["INBOX", "Lists", "Lists/rust", "Sent", "INBOX/Old", "Old"]);
        let got = prefixed_renames(&known, &far, &prefix);
        let want: Vec<(FolderName, FolderName)> =
            [("INBOX/Lists", "Lists"), ("INBOX/Lists/rust", "Lists/rust")]
                .iter()
                .map(|(a, b)| (FolderName::parse(a).unwrap(), FolderName::parse(b).unwrap()))
                .collect();
        // INBOX/Old is still on the server: not renamed.
        assert_eq!(got, want);
        // After the rename nothing is left to do; without a prefix nothing ever is.
        let known = set(&["INBOX", "Lists", "Lists/rust", "Sent"]);
        assert!(prefixed_renames(&known, &far, &prefix).is_empty());
        assert!(prefixed_renames(&set(&["INBOX/Lists"]), &far, &[]).is_empty());
    }
    use crate::model::SyncMode;
    use crate::model::policy::ExpungePolicy;

    fn set(names: &[&str]) -> BTreeSet<FolderName> {
        names
            .iter()
            .map(|n| FolderName::parse(n).unwrap())
            .collect()
    }

    #[test]
    fn a_local_folder_under_the_servers_utf7_name_is_that_folder() {
        let far = set(&["INBOX", "Entwürfe", "Archiv/Zürich"]);
        let near = set(&["INBOX", "Entw&APw-rfe", "Archiv/Z&APw-rich", "A&B"]);
        let renames = foreign_renames(&far, &near, &set(&[]), false);
        assert_eq!(
            renames,
            vec![
                (
                    FolderName::parse("Archiv/Z&APw-rich").unwrap(),
                    FolderName::parse("Archiv/Zürich").unwrap()
                ),
                (
                    FolderName::parse("Entw&APw-rfe").unwrap(),
                    FolderName::parse("Entwürfe").unwrap()
                ),
            ]
        );
        // Both spellings on disk, or either known to the state: left alone (never two copies,
        // never a folder arctern made itself).
        let both = set(&["Entw&APw-rfe", "Entwürfe"]);
        assert!(foreign_renames(&far, &both, &set(&[]), false).is_empty());
        assert!(
            foreign_renames(
                &far,
                &near,
                &set(&["Entw&APw-rfe", "Archiv/Z&APw-rich"]),
                false
            )
            .is_empty()
        );
        // A server folder whose own name has an '&' is not renamed.
        let far2 = set(&["A&B"]);
        assert!(foreign_renames(&far2, &set(&["A&B"]), &set(&[]), false).is_empty());
    }

    #[test]
    fn offlineimaps_flat_dotted_folders_are_the_servers_nested_ones() {
        let far = set(&["INBOX", "Lists/rust", "Archiv/Zürich", "v1.2"]);
        let near = set(&["INBOX", "Lists.rust", "Archiv.Z&APw-rich", "v1.2"]);
        assert_eq!(
            foreign_renames(&far, &near, &set(&[]), true),
            vec![
                (
                    FolderName::parse("Archiv.Z&APw-rich").unwrap(),
                    FolderName::parse("Archiv/Zürich").unwrap()
                ),
                (
                    FolderName::parse("Lists.rust").unwrap(),
                    FolderName::parse("Lists/rust").unwrap()
                ),
            ]
        );
        // Not in Maildir++ (there `.` is the separator already and a dot in a name is escaped).
        assert!(foreign_renames(&far, &set(&["Lists.rust"]), &set(&[]), false).is_empty());
    }

    #[test]
    fn creates_new_folders_and_reports_vanished_ones() {
        let policy = Policy {
            mode: SyncMode::TwoWay,
            expunge: ExpungePolicy::Both,
        };
        let pats = FolderPatterns::new(&["*".into(), "!Trash".into()]);
        let actions = plan_folders(
            &set(&["INBOX", "Archive", "Trash", "Old"]),
            &set(&["INBOX", "Drafts", "Gone"]),
            &set(&["INBOX", "Old", "Gone", "Both"]),
            &pats,
            policy,
        );
        let n = |s: &str| FolderName::parse(s).unwrap();
        assert_eq!(
            actions,
            vec![
                FolderAction::Create(n("Archive"), Side::Near),
                FolderAction::Forget(n("Both")),
                FolderAction::Create(n("Drafts"), Side::Far),
                FolderAction::Missing(n("Gone"), Side::Far),
                FolderAction::Sync(n("INBOX")),
                FolderAction::Missing(n("Old"), Side::Near),
            ]
        );
        let pull = Policy {
            mode: SyncMode::Pull,
            ..policy
        };
        let actions = plan_folders(&set(&[]), &set(&["Drafts"]), &set(&[]), &pats, pull);
        assert_eq!(
            actions,
            vec![FolderAction::NotCreated(n("Drafts"), Side::Far)]
        );
    }
}
