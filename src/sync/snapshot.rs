//! Snapshots as the planner must see them, and what a folder's sync leaves for the next one:
//! the local flags completed with what file names cannot hold, the stored server flags that
//! went stale, and the unchanged-folder fingerprint (when a folder may be skipped without
//! SELECT, and when a sync may record one).

use crate::model::{Fingerprint, Flag, Flags, NearKey, RowId, StateRow, Uid, UidValidity};
use crate::sync::planner::Plan;
use std::collections::{BTreeMap, BTreeSet};

/// Local flags as the planner must see them: keywords the folder cannot write into file names
/// (`representable` says no: no letter left in `dovecot-keywords`) are taken from the base, so
/// their absence on disk is not read as "removed locally".
pub fn complete_near_flags<'a>(
    rows: &[StateRow],
    near: impl IntoIterator<Item = (&'a NearKey, &'a Flags)>,
    representable: impl Fn(&Flag) -> bool,
) -> BTreeMap<NearKey, Flags> {
    let mut out: BTreeMap<NearKey, Flags> = near
        .into_iter()
        .map(|(k, f)| (k.clone(), f.clone()))
        .collect();
    for row in rows {
        if let Some(k) = &row.near
            && let Some(flags) = out.get_mut(k)
        {
            for f in row.flags.iter() {
                if !representable(f) {
                    flags.insert(f.clone());
                }
            }
        }
    }
    out
}

/// Stored server flags (`stored`: row, UID, flags as last recorded) that differ from the
/// listing `far` and that the plan does not update anyway: the new values to record, so the
/// next resync can start from true server flags.
pub fn stale_far_flags<'a>(
    stored: impl IntoIterator<Item = (RowId, Uid, Option<&'a Flags>)>,
    far: &BTreeMap<Uid, Flags>,
    plan: &Plan,
) -> Vec<(RowId, Flags)> {
    let updated: BTreeSet<RowId> = plan
        .flags
        .iter()
        .filter(|u| u.far.is_some())
        .map(|u| u.row)
        .collect();
    stored
        .into_iter()
        .filter(|(row, _, _)| !updated.contains(row))
        .filter_map(|(row, uid, recorded)| {
            let now = far.get(&uid)?;
            (recorded != Some(now)).then(|| (row, now.clone()))
        })
        .collect()
}

/// What the server's STATUS and the Maildir's directories say of a folder now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FolderProbe {
    /// MESSAGES.
    pub messages: Option<u32>,
    /// UIDNEXT.
    pub uidnext: Option<u32>,
    /// UIDVALIDITY.
    pub uidvalidity: Option<UidValidity>,
    /// HIGHESTMODSEQ.
    pub highestmodseq: Option<u64>,
    /// Nanosecond mtimes of `cur/` and `new/`.
    pub mtimes: Option<(i64, i64)>,
}

/// Whether asking the server (STATUS) can prove a folder unchanged at all: only with a stored
/// fingerprint, CONDSTORE (so HIGHESTMODSEQ moves with every flag change) and no pending intent.
pub fn worth_probing(
    fingerprint: Option<Fingerprint>,
    condstore: bool,
    pending_intents: i64,
) -> bool {
    fingerprint.is_some() && condstore && pending_intents == 0
}

/// True when a folder is provably unchanged on both sides since it was last found in sync:
/// the server supports CONDSTORE (so HIGHESTMODSEQ moves with every flag change), no intent is
/// pending, and the probe equals the stored fingerprint in every part. Anything unknown is a
/// change.
pub fn unchanged(
    fingerprint: Option<Fingerprint>,
    stored_uidvalidity: Option<UidValidity>,
    condstore: bool,
    pending_intents: i64,
    probe: &FolderProbe,
) -> bool {
    let Some(fp) = fingerprint.filter(|_| worth_probing(fingerprint, condstore, pending_intents))
    else {
        return false;
    };
    probe.messages == Some(fp.exists)
        && probe.uidnext == Some(fp.uidnext)
        && probe.highestmodseq == Some(fp.modseq)
        && probe.uidvalidity.is_some()
        && probe.uidvalidity == stored_uidvalidity
        && probe.mtimes == Some((fp.cur_mtime, fp.new_mtime))
}

/// True when carrying out `plan` changes nothing on the server (no upload, no server flag
/// change, no server deletion): the server is then still as the SELECT that started the sync
/// saw it.
pub fn only_local_changes(plan: &Plan) -> bool {
    plan.uploads.is_empty()
        && plan.delete_far.is_empty()
        && plan.flags.iter().all(|u| u.far.is_none())
}

/// The fingerprint a folder sync may record: only when the run found the folder in sync and
/// changed nothing (`touched` false): after our own changes the values seen are stale, and
/// trusting them could hide someone else's change. `mtimes` must be taken before the scan.
pub fn fingerprint_after(
    touched: bool,
    exists: u32,
    uidnext: Option<u32>,
    highestmodseq: Option<u64>,
    mtimes: Option<(i64, i64)>,
) -> Option<Fingerprint> {
    match (touched, uidnext, highestmodseq, mtimes) {
        (false, Some(uidnext), Some(modseq), Some((cur_mtime, new_mtime))) => Some(Fingerprint {
            exists,
            uidnext,
            modseq,
            cur_mtime,
            new_mtime,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::planner::FlagUpdate;

    fn flags(letters: &[Flag]) -> Flags {
        letters.iter().cloned().collect()
    }

    #[test]
    fn only_a_plan_without_server_work_leaves_the_server_as_selected() {
        let mut plan = Plan {
            downloads: vec![(Uid(1), Flags::new())],
            delete_near: vec![(1, NearKey("k".into()))],
            ..Default::default()
        };
        assert!(only_local_changes(&plan));
        plan.flags.push(crate::sync::planner::FlagUpdate {
            row: 1,
            far: None,
            near: Some((NearKey("k".into()), Flags::new())),
            base: Flags::new(),
        });
        assert!(only_local_changes(&plan));
        plan.flags[0].far = Some((Uid(1), Flags::new()));
        assert!(!only_local_changes(&plan));
        plan.flags.clear();
        plan.uploads.push((NearKey("n".into()), Flags::new()));
        assert!(!only_local_changes(&plan));
        plan.uploads.clear();
        plan.delete_far.push((2, Uid(2)));
        assert!(!only_local_changes(&plan));
    }

    #[test]
    fn keywords_without_a_letter_are_not_removals() {
        let rows = vec![StateRow {
            id: 1,
            far: Some(Uid(1)),
            near: Some(NearKey("k".into())),
            flags: flags(&[Flag::Seen, Flag::Keyword("work".into())]),
        }];
        let near: BTreeMap<NearKey, Flags> = [(NearKey("k".into()), flags(&[Flag::Seen]))].into();
        let out = complete_near_flags(&rows, &near, |f| !matches!(f, Flag::Keyword(_)));
        assert_eq!(
            out[&NearKey("k".into())],
            flags(&[Flag::Seen, Flag::Keyword("work".into())])
        );
        // Representable: its absence on disk is a removal, left as it is.
        let out = complete_near_flags(&rows, &near, |_| true);
        assert_eq!(out[&NearKey("k".into())], flags(&[Flag::Seen]));
    }

    #[test]
    fn stale_server_flags_are_recorded_unless_the_plan_sets_them() {
        let seen = flags(&[Flag::Seen]);
        let far: BTreeMap<Uid, Flags> = [
            (Uid(1), seen.clone()),
            (Uid(2), seen.clone()),
            (Uid(3), seen.clone()),
        ]
        .into();
        let empty = Flags::new();
        let plan = Plan {
            flags: vec![FlagUpdate {
                row: 12,
                far: Some((Uid(2), flags(&[Flag::Seen, Flag::Flagged]))),
                near: None,
                base: seen.clone(),
            }],
            ..Default::default()
        };
        let stored = vec![
            (11, Uid(1), Some(&empty)), // stale
            (12, Uid(2), Some(&empty)), // stale, but the plan writes it
            (13, Uid(3), Some(&seen)),  // true
            (14, Uid(4), None),         // gone from the listing
        ];
        assert_eq!(stale_far_flags(stored, &far, &plan), vec![(11, seen)]);
    }

    #[test]
    fn a_folder_is_unchanged_only_when_every_part_matches() {
        let fp = Fingerprint {
            exists: 10,
            uidnext: 11,
            modseq: 99,
            cur_mtime: 5,
            new_mtime: 6,
        };
        let probe = FolderProbe {
            messages: Some(10),
            uidnext: Some(11),
            uidvalidity: Some(UidValidity(7)),
            highestmodseq: Some(99),
            mtimes: Some((5, 6)),
        };
        let v = Some(UidValidity(7));
        assert!(unchanged(Some(fp), v, true, 0, &probe));
        assert!(!unchanged(None, v, true, 0, &probe));
        assert!(!unchanged(Some(fp), v, false, 0, &probe));
        assert!(!unchanged(Some(fp), v, true, 1, &probe));
        assert!(!unchanged(Some(fp), Some(UidValidity(8)), true, 0, &probe));
        for changed in [
            FolderProbe {
                messages: Some(9),
                ..probe
            },
            FolderProbe {
                uidnext: Some(12),
                ..probe
            },
            FolderProbe {
                highestmodseq: None,
                ..probe
            },
            FolderProbe {
                uidvalidity: None,
                ..probe
            },
            FolderProbe {
                mtimes: Some((5, 7)),
                ..probe
            },
        ] {
            assert!(!unchanged(Some(fp), v, true, 0, &changed), "{changed:?}");
        }
        assert_eq!(
            fingerprint_after(false, 10, Some(11), Some(99), Some((5, 6))),
            Some(fp)
        );
        assert_eq!(
            fingerprint_after(true, 10, Some(11), Some(99), Some((5, 6))),
            None
        );
        assert_eq!(
            fingerprint_after(false, 10, None, Some(99), Some((5, 6))),
            None
        );
    }
}
