//! The message planner for one folder: last state + far snapshot + near snapshot → plan.
//!
//! Rules (see the README for the user's view):
//! - A state row links a server UID and a Maildir key with the flags both had when last synced
//!   (the *base*). Flags merge three-way per flag: each side receives the other side's changes
//!   since the base. Booleans cannot conflict: when both sides changed a flag they agree.
//! - A message in a snapshot but in no row is new and is copied to the other side (unless the
//!   sync mode forbids writing there).
//! - A linked message missing from one side was deleted there. Whether the deletion is carried out
//!   on the other side depends on `expunge` and the sync mode; if not, the row is *detached* so the
//!   survivor is never copied back.
//! - Snapshots given to the planner are complete listings. A partial listing must never reach
//!   this function: absence here means deletion.

use crate::model::{Flags, NearKey, Side, SyncMode, Uid};
pub use crate::model::{Policy, RowId, StateRow};
use std::collections::{BTreeMap, BTreeSet};

/// A flag change on one linked message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagUpdate {
    /// The row.
    pub row: RowId,
    /// New flags for the server copy, when they change.
    pub far: Option<(Uid, Flags)>,
    /// New flags for the local copy, when they change.
    pub near: Option<(NearKey, Flags)>,
    /// The base to record afterwards.
    pub base: Flags,
}

/// Everything the executor must do for one folder. Empty means in sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// New server messages to copy into the Maildir, with their flags.
    pub downloads: Vec<(Uid, Flags)>,
    /// New local messages to APPEND to the server, with their flags.
    pub uploads: Vec<(NearKey, Flags)>,
    /// Flag changes on linked messages.
    pub flags: Vec<FlagUpdate>,
    /// Local copies to delete because the server copy was expunged.
    pub delete_near: Vec<(RowId, NearKey)>,
    /// Server copies to delete because the local copy was deleted.
    pub delete_far: Vec<(RowId, Uid)>,
    /// Rows whose message is gone from one side and kept on the other (never copied back).
    pub detach: Vec<(RowId, Side)>,
    /// Rows whose message is gone from both sides.
    pub forget: Vec<RowId>,
}

impl Plan {
    /// True when nothing needs doing.
    pub fn is_empty(&self) -> bool {
        self.downloads.is_empty()
            && self.uploads.is_empty()
            && self.flags.is_empty()
            && self.delete_near.is_empty()
            && self.delete_far.is_empty()
            && self.detach.is_empty()
            && self.forget.is_empty()
    }

    /// How many flag changes go to `side`.
    pub fn flag_changes(&self, side: Side) -> usize {
        self.flags
            .iter()
            .filter(|u| match side {
                Side::Far => u.far.is_some(),
                Side::Near => u.near.is_some(),
            })
            .count()
    }
}

/// Plans one folder. `far` and `near` must be complete listings of each side.
pub fn plan(
    rows: &[StateRow],
    far: &BTreeMap<Uid, Flags>,
    near: &BTreeMap<NearKey, Flags>,
    policy: Policy,
) -> Plan {
    let mut p = Plan::default();
    let mut known_far: BTreeSet<Uid> = BTreeSet::new();
    let mut known_near: BTreeSet<&NearKey> = BTreeSet::new();

    for row in rows {
        if let Some(u) = row.far {
            known_far.insert(u);
        }
        if let Some(k) = &row.near {
            known_near.insert(k);
        }
        let far_flags = row.far.and_then(|u| far.get(&u));
        let near_flags = row.near.as_ref().and_then(|k| near.get(k));
        match (row.far, &row.near, far_flags, near_flags) {
            (Some(u), Some(k), Some(f), Some(n)) => {
                if let Some(update) = merge_flags(row.id, u, k, &row.flags, f, n, policy) {
                    p.flags.push(update);
                }
            }
            (Some(_), Some(k), None, Some(_)) => {
                if policy.may_write(Side::Near) && policy.expunge.deletes_near() {
                    p.delete_near.push((row.id, k.clone()));
                } else {
                    p.detach.push((row.id, Side::Near));
                }
            }
            (Some(u), Some(_), Some(_), None) => {
                if policy.may_write(Side::Far) && policy.expunge.deletes_far() {
                    p.delete_far.push((row.id, u));
                } else {
                    p.detach.push((row.id, Side::Far));
                }
            }
            (Some(_), Some(_), None, None) => p.forget.push(row.id),
            // Detached rows: forget them once the survivor is gone too...
            (Some(_), None, None, _) | (None, Some(_), _, None) => p.forget.push(row.id),
            // ...and leave them alone while it is there (never copied back).
            (Some(_), None, Some(_), _) | (None, Some(_), _, Some(_)) => {}
            (None, None, _, _) => p.forget.push(row.id),
        }
    }

    if policy.may_write(Side::Near) {
        for (u, f) in far {
            if !known_far.contains(u) {
                p.downloads.push((*u, f.clone()));
            }
        }
    }
    if policy.may_write(Side::Far) {
        for (k, n) in near {
            if !known_near.contains(k) {
                p.uploads.push((k.clone(), n.clone()));
            }
        }
    }
    p
}

/// Three-way flag merge for one linked message.
fn merge_flags(
    row: RowId,
    uid: Uid,
    key: &NearKey,
    base: &Flags,
    far: &Flags,
    near: &Flags,
    policy: Policy,
) -> Option<FlagUpdate> {
    let (far_new, near_new, base_new) = match policy.mode {
        SyncMode::TwoWay => {
            let merged = near.apply_change(base, far);
            (merged.clone(), merged.clone(), merged)
        }
        SyncMode::Pull => (far.clone(), near.apply_change(base, far), far.clone()),
        SyncMode::Push => (far.apply_change(base, near), near.clone(), near.clone()),
    };
    if &far_new == far && &near_new == near && &base_new == base {
        return None;
    }
    Some(FlagUpdate {
        row,
        far: (&far_new != far).then_some((uid, far_new)),
        near: (&near_new != near).then(|| (key.clone(), near_new)),
        base: base_new,
    })
}

/// Copies kept in a plan, and those split off with their sizes.
pub type SizeSplit<T> = (Vec<(T, Flags)>, Vec<(T, u64)>);

/// Splits planned copies by size: those at most `max` bytes (or of unknown size: the server
/// did not say) stay in the plan, larger ones are returned with their sizes, to be named in the
/// report and left alone. `max = None` keeps everything.
pub fn split_by_size<T: Clone>(
    copies: &[(T, Flags)],
    size_of: impl Fn(&T) -> Option<u64>,
    max: Option<u64>,
) -> SizeSplit<T> {
    let Some(max) = max else {
        return (copies.to_vec(), Vec::new());
    };
    let mut keep = Vec::with_capacity(copies.len());
    let mut large = Vec::new();
    for (item, flags) in copies {
        match size_of(item) {
            Some(size) if size > max => large.push((item.clone(), size)),
            _ => keep.push((item.clone(), flags.clone())),
        }
    }
    (keep, large)
}

/// Splits planned uploads by what the server refused before (`refused`: key → file size then):
/// a file refused at its current size is not offered again; one whose size changed is offered
/// and its record is to be cleared. Returns (uploads to try, records to clear).
pub fn split_refused<V>(
    uploads: Vec<(NearKey, Flags)>,
    refused: &BTreeMap<String, (u64, V)>,
    size_of: impl Fn(&NearKey) -> Option<u64>,
) -> (Vec<(NearKey, Flags)>, Vec<String>) {
    let mut keep = Vec::with_capacity(uploads.len());
    let mut cleared = Vec::new();
    for (key, flags) in uploads {
        match (refused.get(&key.0), size_of(&key)) {
            (Some((size, _)), Some(now)) if *size == now => continue,
            (Some(_), _) => cleared.push(key.0.clone()),
            (None, _) => {}
        }
        keep.push((key, flags));
    }
    (keep, cleared)
}

/// Deletions below this count never trip the mass-deletion guard (a one-message folder emptied
/// by hand is not an accident worth stopping for).
pub const GUARD_MIN_DELETIONS: usize = 3;

/// The mass-deletion guard tripped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "would delete {count} of {total} messages ({percent}%) on the {side} side, more than max_delete_percent = {limit}; nothing was changed in this folder (rerun with --force if this is intended)"
)]
pub struct GuardError {
    /// The side that would lose messages.
    pub side: Side,
    /// How many.
    pub count: usize,
    /// Out of how many linked messages on that side.
    pub total: usize,
    /// count/total, rounded down.
    pub percent: usize,
    /// The configured limit.
    pub limit: u8,
}

/// Refuses a plan that deletes more than `limit` percent of a side's linked messages.
pub fn check_deletion_guard(plan: &Plan, rows: &[StateRow], limit: u8) -> Result<(), GuardError> {
    for side in [Side::Near, Side::Far] {
        let count = match side {
            Side::Near => plan.delete_near.len(),
            Side::Far => plan.delete_far.len(),
        };
        let total = rows
            .iter()
            .filter(|r| match side {
                Side::Near => r.near.is_some(),
                Side::Far => r.far.is_some(),
            })
            .count();
        if count >= GUARD_MIN_DELETIONS && total > 0 && count * 100 > usize::from(limit) * total {
            return Err(GuardError {
                side,
                count,
                total,
                percent: count * 100 / total,
                limit,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
