//! Settling what a killed run left unfinished, decided purely: which intents were carried out,
//! and which server message is the copy of an upload whose outcome was never recorded.
//!
//! - A download intent names the Maildir key chosen before fetching. If that file exists (and
//!   neither side of it is linked to something else), the delivery happened: link it. If not,
//!   it did not: drop the intent (and any `tmp/` leftover).
//! - An upload intent records the folder's UIDNEXT before the APPEND, the size and the SHA-256
//!   of the bytes sent. A server message at or above that UID with the same size and hash is
//!   the upload. None: the APPEND never completed, and the next plan uploads it again. One
//!   matcher serves the sync's uploads and `arctern push` (both record the same evidence).

use crate::model::{Evidence, Intent, IntentKind, NearKey, Uid, UidValidity};
use std::collections::{BTreeMap, BTreeSet};

/// What to do with one intent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// The download was delivered: link its file to its UID.
    LinkDownload,
    /// The download did not happen (or its sides are taken): drop the intent and any leftover.
    DropDownload,
    /// The upload may have happened: look for its copy on the server.
    FindUpload,
    /// The upload cannot be found any more (another UIDVALIDITY, or the file is linked already):
    /// drop the intent; the planner decides afresh.
    DropUpload,
}

/// Decides each intent of a folder (in order). `delivered` says whether a download's file is
/// in the Maildir; `linked_near`/`linked_far` are what the state rows already link.
pub fn settle(
    intents: &[Intent],
    uidvalidity: UidValidity,
    linked_near: &BTreeSet<&NearKey>,
    linked_far: &BTreeSet<Uid>,
    delivered: impl Fn(&NearKey) -> bool,
) -> Vec<Settle> {
    intents
        .iter()
        .map(|intent| match intent.kind {
            IntentKind::Download => match intent.far_uid {
                Some(uid)
                    if delivered(&intent.near_key)
                        && !linked_near.contains(&intent.near_key)
                        && !linked_far.contains(&uid) =>
                {
                    Settle::LinkDownload
                }
                _ => Settle::DropDownload,
            },
            IntentKind::Upload => {
                if intent.uidvalidity == Some(uidvalidity)
                    && !linked_near.contains(&intent.near_key)
                {
                    Settle::FindUpload
                } else {
                    Settle::DropUpload
                }
            }
        })
        .collect()
}

/// What an upload recorded before its APPEND, to recognise its copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadEvidence {
    /// The folder's UIDNEXT before the APPEND: the copy's UID is at least this.
    pub uidnext: u32,
    /// Size of the bytes sent (CRLF).
    pub size: u32,
    /// SHA-256 of the bytes sent.
    pub sha256: Vec<u8>,
}

/// Where to look for the copies of `uploads`: the first UID to list evidence from (`None`:
/// nothing to look for), and, given that evidence, the server messages whose bodies are worth
/// hashing (at or above some UIDNEXT, a size some upload had, not claimed by a link already).
pub fn upload_search_start(uploads: &[UploadEvidence]) -> Option<u32> {
    uploads.iter().map(|u| u.uidnext).min().map(|n| n.max(1))
}

/// See [`upload_search_start`]: the candidate UIDs in `evidence`.
pub fn upload_candidates(
    uploads: &[UploadEvidence],
    evidence: &[Evidence],
    claimed: impl Fn(Uid) -> bool,
) -> Vec<Uid> {
    let Some(from) = upload_search_start(uploads) else {
        return Vec::new();
    };
    let sizes: BTreeSet<u32> = uploads.iter().map(|u| u.size).collect();
    evidence
        .iter()
        .filter(|e| e.uid.0 >= from && sizes.contains(&e.size) && !claimed(e.uid))
        .map(|e| e.uid)
        .collect()
}

/// Matches each upload (in order) to the lowest unclaimed candidate at or above its UIDNEXT
/// whose body hashes the same; each server message is taken once.
pub fn match_uploads(
    uploads: &[UploadEvidence],
    hashes: &BTreeMap<Uid, Vec<u8>>,
) -> Vec<Option<Uid>> {
    let mut taken: BTreeSet<Uid> = BTreeSet::new();
    uploads
        .iter()
        .map(|u| {
            let hit = hashes
                .iter()
                .find(|(uid, h)| uid.0 >= u.uidnext && !taken.contains(uid) && **h == u.sha256)
                .map(|(uid, _)| *uid);
            if let Some(uid) = hit {
                taken.insert(uid);
            }
            hit
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Flags;

    fn intent(kind: IntentKind, uid: Option<u32>, key: &str, validity: u32) -> Intent {
        Intent {
            id: 0,
            kind,
            far_uid: uid.map(Uid),
            near_key: NearKey(key.into()),
            uidvalidity: Some(UidValidity(validity)),
            uidnext: Some(10),
            flags: Flags::new(),
            message_id: None,
            size: Some(5),
            sha256: Some(vec![1]),
        }
    }

    #[test]
    fn intents_settle_by_what_is_on_disk_and_already_linked() {
        let intents = vec![
            intent(IntentKind::Download, Some(1), "delivered", 7),
            intent(IntentKind::Download, Some(2), "missing", 7),
            intent(IntentKind::Download, Some(3), "linked", 7),
            intent(IntentKind::Download, Some(4), "uid-taken", 7),
            intent(IntentKind::Upload, None, "up", 7),
            intent(IntentKind::Upload, None, "old-validity", 6),
            intent(IntentKind::Upload, None, "linked", 7),
        ];
        let linked_key = NearKey("linked".into());
        let linked_near: BTreeSet<&NearKey> = [&linked_key].into();
        let linked_far: BTreeSet<Uid> = [Uid(4)].into();
        let on_disk = |k: &NearKey| k.0 != "missing";
        assert_eq!(
            settle(&intents, UidValidity(7), &linked_near, &linked_far, on_disk),
            vec![
                Settle::LinkDownload,
                Settle::DropDownload,
                Settle::DropDownload,
                Settle::DropDownload,
                Settle::FindUpload,
                Settle::DropUpload,
                Settle::DropUpload,
            ]
        );
    }

    #[test]
    fn uploads_match_by_uid_range_size_and_hash_once_each() {
        let up = |uidnext, size, h: u8| UploadEvidence {
            uidnext,
            size,
            sha256: vec![h],
        };
        // Two identical uploads and one other.
        let uploads = vec![up(10, 100, 1), up(10, 100, 1), up(12, 50, 2)];
        assert_eq!(upload_search_start(&uploads), Some(10));
        assert_eq!(upload_search_start(&[]), None);
        let ev = |uid, size| Evidence {
            uid: Uid(uid),
            size,
            message_id: None,
            markers: 0,
        };
        let evidence = vec![ev(9, 100), ev(10, 100), ev(11, 100), ev(12, 50), ev(13, 77)];
        let candidates = upload_candidates(&uploads, &evidence, |u| u == Uid(11));
        assert_eq!(candidates, vec![Uid(10), Uid(12)]);
        let hashes: BTreeMap<Uid, Vec<u8>> =
            [(Uid(10), vec![1]), (Uid(11), vec![1]), (Uid(12), vec![2])].into();
        assert_eq!(
            match_uploads(&uploads, &hashes),
            vec![Some(Uid(10)), Some(Uid(11)), Some(Uid(12))]
        );
        // A copy below the upload's UIDNEXT is someone else's message.
        assert_eq!(
            match_uploads(&[up(11, 100, 1)], &[(Uid(10), vec![1])].into()),
            vec![None]
        );
    }
}
