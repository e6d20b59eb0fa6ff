//! Re-pairing after a UIDVALIDITY change (RFC 3501 §2.3.1.1): every stored UID is void, so links
//! are rebuilt from evidence, Message-ID plus size, without downloading anything again.
//!
//! Linked rows whose evidence matches a message in the new listing get its new UID. Rows that
//! match nothing are dropped: their local copy then counts as new and is uploaded, and unmatched
//! server messages count as new and are downloaded, so nothing is lost and nothing that matched
//! is copied twice.

use crate::model::{Flags, NearKey, Uid};
use crate::model::{RowId, StateRow};
use std::collections::BTreeMap;

/// A state row with the evidence recorded when it was linked.
#[derive(Clone, Debug)]
pub struct RowEvidence {
    /// The row.
    pub row: StateRow,
    /// Normalised Message-ID (without `<>`), if the message had one.
    pub message_id: Option<String>,
    /// RFC822.SIZE on the server (CRLF size).
    pub size: Option<u32>,
}

/// What the server says of one message in the new UIDVALIDITY.
pub use crate::model::Evidence as FarEvidence;

/// The outcome of re-pairing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Repair {
    /// Rows kept, with their new UIDs.
    pub relinked: Vec<(RowId, Option<Uid>)>,
    /// Rows dropped (no evidence matched).
    pub dropped: Vec<RowId>,
    /// Local keys that will now be uploaded as new.
    pub unmatched_near: Vec<NearKey>,
}

/// Server UIDs by (Message-ID, size), each list highest first so that `pop()` hands them out
/// lowest first (duplicates then pair in order). Messages without a Message-ID are left out.
///
/// `without_markers`: key by the size less the server copy's sync-marker lines, to compare with
/// a local copy measured the same way (first-sync pairing); otherwise by RFC822.SIZE as
/// recorded (UIDVALIDITY re-pairing compares server sizes with server sizes).
fn uids_by_evidence(far: &[FarEvidence], without_markers: bool) -> BTreeMap<(&str, u32), Vec<Uid>> {
    let mut sorted_far: Vec<&FarEvidence> = far.iter().collect();
    sorted_far.sort_by_key(|f| std::cmp::Reverse(f.uid));
    let mut by_evidence: BTreeMap<(&str, u32), Vec<Uid>> = BTreeMap::new();
    for f in sorted_far {
        if let Some(id) = &f.message_id {
            let size = if without_markers {
                f.size.saturating_sub(f.markers)
            } else {
                f.size
            };
            by_evidence
                .entry((id.as_str(), size))
                .or_default()
                .push(f.uid);
        }
    }
    by_evidence
}

/// Matches rows to the new listing by (Message-ID, size); duplicates pair in order.
pub fn repair(rows: &[RowEvidence], far: &[FarEvidence]) -> Repair {
    let mut by_evidence = uids_by_evidence(far, false);
    let mut sorted_rows: Vec<&RowEvidence> = rows.iter().collect();
    sorted_rows.sort_by_key(|r| r.row.id);
    let mut out = Repair::default();
    for r in sorted_rows {
        if r.row.far.is_none() {
            // Never was on the server (detached): nothing to re-pair.
            out.relinked.push((r.row.id, None));
            continue;
        }
        let matched = match (&r.message_id, r.size) {
            (Some(id), Some(size)) => by_evidence
                .get_mut(&(id.as_str(), size))
                .and_then(|uids| uids.pop()),
            _ => None,
        };
        match matched {
            Some(uid) => out.relinked.push((r.row.id, Some(uid))),
            None => {
                out.dropped.push(r.row.id);
                if let Some(k) = &r.row.near {
                    out.unmatched_near.push(k.clone());
                }
            }
        }
    }
    out
}

/// One step of carrying out a [`Repair`] in the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairStep {
    /// Drop the row (no evidence matched).
    Drop(RowId),
    /// Give the row this server UID (`None`: clear it).
    SetUid(RowId, Option<Uid>),
}

impl Repair {
    /// The steps, in the only safe order: dropped rows first, then every surviving row's old
    /// UID cleared, then each given its new one. A new UID may equal an old one another row
    /// still holds (the unique index on (folder, UID) would refuse it), so no row gets its new
    /// UID before all old ones are gone.
    pub fn steps(&self) -> Vec<RepairStep> {
        let moved: Vec<(RowId, Uid)> = self
            .relinked
            .iter()
            .filter_map(|(r, u)| Some((*r, (*u)?)))
            .collect();
        let mut out: Vec<RepairStep> = self.dropped.iter().map(|r| RepairStep::Drop(*r)).collect();
        out.extend(moved.iter().map(|(r, _)| RepairStep::SetUid(*r, None)));
        out.extend(moved.iter().map(|(r, u)| RepairStep::SetUid(*r, Some(*u))));
        out
    }

    /// How many rows keep a server message (with a new UID).
    pub fn relinked_count(&self) -> usize {
        self.relinked.iter().filter(|(_, u)| u.is_some()).count()
    }
}

/// First sync of a folder that already has mail on both sides (an existing Maildir, or state
/// lost): pairs messages with the same Message-ID and size so they are linked instead of copied
/// both ways. `near` is (key, Message-ID, size as sent on the wire less the copy's sync-marker
/// lines); the server's sizes are taken less their marker lines too, so an mbsync or offlineimap
/// copy (`X-TUID`, `X-OfflineIMAP`) pairs with its original. Duplicates pair in order.
pub fn pair_initial(
    far: &[FarEvidence],
    near: &[(NearKey, Option<String>, u32)],
) -> Vec<(Uid, NearKey)> {
    let mut by_evidence = uids_by_evidence(far, true);
    let mut sorted_near: Vec<&(NearKey, Option<String>, u32)> = near.iter().collect();
    sorted_near.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for (key, id, size) in sorted_near {
        if let Some(id) = id
            && let Some(uid) = by_evidence
                .get_mut(&(id.as_str(), *size))
                .and_then(Vec::pop)
        {
            out.push((uid, key.clone()));
        }
    }
    out
}

/// A link the first-sync pairing decided on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialLink {
    /// The server message.
    pub far: Uid,
    /// The local message.
    pub near: NearKey,
    /// The synced base. Pairing by content has no record of which side changed what, so the
    /// server wins: the base is the local flags, and the server's differences count as its
    /// changes. (Links from another tool's records carry the flags it recorded instead.)
    pub base: Flags,
    /// The server's flags as listed.
    pub far_flags: Flags,
    /// The Message-ID both share.
    pub message_id: Option<String>,
    /// The server message's size (RFC822.SIZE).
    pub size: u32,
}

/// The links of a first sync with mail on both sides: [`pair_initial`] over the evidence, kept
/// only where both flag listings (`far`, `near`) hold the message. Evidence is fetched after
/// the flag listing, so it may name a message that arrived in between (or a hostile server may
/// invent one): such a message is left to the next sync, never paired against a listing that
/// does not have it.
pub fn initial_links(
    far: &BTreeMap<Uid, Flags>,
    near: &BTreeMap<NearKey, Flags>,
    far_evidence: &[FarEvidence],
    near_evidence: &[(NearKey, Option<String>, u32)],
) -> Vec<InitialLink> {
    let far_evidence: Vec<FarEvidence> = far_evidence
        .iter()
        .filter(|e| far.contains_key(&e.uid))
        .cloned()
        .collect();
    let far_sizes: BTreeMap<Uid, u32> = far_evidence.iter().map(|e| (e.uid, e.size)).collect();
    let evidence: BTreeMap<&NearKey, (&Option<String>, u32)> = near_evidence
        .iter()
        .map(|(k, id, size)| (k, (id, *size)))
        .collect();
    pair_initial(&far_evidence, near_evidence)
        .into_iter()
        .filter_map(|(uid, key)| {
            let far_flags = far.get(&uid)?;
            let near_flags = near.get(&key)?;
            let (message_id, _) = evidence.get(&key)?;
            Some(InitialLink {
                far: uid,
                base: near_flags.clone(),
                far_flags: far_flags.clone(),
                near: key,
                message_id: (*message_id).clone(),
                // The server's size, as every link records (UIDVALIDITY re-pairing compares it).
                size: far_sizes.get(&uid).copied()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(uid: u32, message_id: &str, size: u32) -> FarEvidence {
        FarEvidence {
            uid: Uid(uid),
            message_id: Some(message_id.into()),
            size,
            markers: 0,
        }
    }

    fn row(id: i64, uid: u32, key: &str, mid: Option<&str>, size: u32) -> RowEvidence {
        RowEvidence {
            row: StateRow {
                id,
                far: Some(Uid(uid)),
                near: Some(NearKey(key.into())),
                flags: Flags::new(),
            },
            message_id: mid.map(str::to_string),
            size: Some(size),
        }
    }

    #[test]
    fn initial_pairing_matches_once_each() {
        let far = vec![ev(1, "a", 10), ev(2, "a", 10), ev(3, "b", 10)];
        let near = vec![
            (NearKey("x".into()), Some("a".into()), 10),
            (NearKey("y".into()), Some("b".into()), 11),
            (NearKey("z".into()), None, 10),
        ];
        assert_eq!(
            pair_initial(&far, &near),
            vec![(Uid(1), NearKey("x".into()))]
        );
    }

    #[test]
    fn evidence_for_a_message_missing_from_the_flag_listing_is_not_paired() {
        // The flag listing saw UID 1 only; UID 7 arrived before the evidence FETCH (or a
        // hostile server made it up) and matches a local copy. It used to panic the sync.
        let flags = |f: &[crate::model::Flag]| f.iter().cloned().collect::<Flags>();
        use crate::model::Flag;
        let far: BTreeMap<Uid, Flags> = [(Uid(1), flags(&[Flag::Seen, Flag::Flagged]))].into();
        let near: BTreeMap<NearKey, Flags> = [
            (NearKey("x".into()), flags(&[Flag::Seen])),
            (NearKey("y".into()), flags(&[])),
        ]
        .into();
        let far_ev = vec![ev(1, "a", 10), ev(7, "b", 20)];
        let near_ev = vec![
            (NearKey("x".into()), Some("a".into()), 10),
            (NearKey("y".into()), Some("b".into()), 20),
            // Evidence for a key the scan does not have: ignored too.
            (NearKey("z".into()), Some("c".into()), 30),
        ];
        let links = initial_links(&far, &near, &far_ev, &near_ev);
        assert_eq!(
            links,
            vec![InitialLink {
                far: Uid(1),
                near: NearKey("x".into()),
                base: flags(&[Flag::Seen]),
                far_flags: flags(&[Flag::Seen, Flag::Flagged]),
                message_id: Some("a".into()),
                size: 10,
            }]
        );
    }

    #[test]
    fn repair_steps_clear_every_old_uid_before_giving_new_ones() {
        // Row 1 moves to UID 2, which row 2 held before (row 2 moves to UID 3); row 3 is dropped.
        let rep = Repair {
            relinked: vec![(1, Some(Uid(2))), (2, Some(Uid(3))), (4, None)],
            dropped: vec![3],
            unmatched_near: vec![],
        };
        assert_eq!(
            rep.steps(),
            vec![
                RepairStep::Drop(3),
                RepairStep::SetUid(1, None),
                RepairStep::SetUid(2, None),
                RepairStep::SetUid(1, Some(Uid(2))),
                RepairStep::SetUid(2, Some(Uid(3))),
            ]
        );
        assert_eq!(rep.relinked_count(), 2);
    }

    #[test]
    fn relinks_by_message_id_and_size() {
        let rows = vec![
            row(1, 10, "a", Some("x@y"), 100),
            row(2, 11, "b", Some("dup@y"), 50),
            row(3, 12, "c", Some("dup@y"), 50),
            row(4, 13, "d", None, 70),
            row(5, 14, "e", Some("gone@y"), 10),
        ];
        let far = vec![
            FarEvidence {
                uid: Uid(1),
                message_id: Some("x@y".into()),
                size: 100,
                markers: 0,
            },
            FarEvidence {
                uid: Uid(2),
                message_id: Some("dup@y".into()),
                size: 50,
                markers: 0,
            },
            FarEvidence {
                uid: Uid(3),
                message_id: Some("dup@y".into()),
                size: 50,
                markers: 0,
            },
            FarEvidence {
                uid: Uid(4),
                message_id: None,
                size: 70,
                markers: 0,
            },
        ];
        let r = repair(&rows, &far);
        assert_eq!(
            r.relinked,
            vec![(1, Some(Uid(1))), (2, Some(Uid(2))), (3, Some(Uid(3)))]
        );
        assert_eq!(r.dropped, vec![4, 5]);
        assert_eq!(
            r.unmatched_near,
            vec![NearKey("d".into()), NearKey("e".into())]
        );
    }
}
