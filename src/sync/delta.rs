//! Rebuilding a complete server listing from the stored server flags plus what the server says
//! changed (CONDSTORE `CHANGEDSINCE`, QRESYNC `VANISHED`, RFC 7162). Pure: the engine fetches,
//! this decides whether the result can stand in for a full scan.

use crate::model::{Flags, Uid};
use std::collections::BTreeMap;

/// The stored listing (`uid → server flags`, `None` when unknown) minus `vanished`, updated with
/// `changed`. `None` — do a full scan — when a stored flag set is unknown or the result does not
/// have exactly `exists` messages (an expunge the server did not report, or a message never
/// linked). `vanished` is `None` when the server cannot report expunges (CONDSTORE only): then
/// only the count can prove that nothing was expunged.
pub fn rebuild_listing(
    stored: &[(Uid, Option<Flags>)],
    changed: BTreeMap<Uid, Flags>,
    vanished: Option<&[Uid]>,
    exists: u32,
) -> Option<BTreeMap<Uid, Flags>> {
    let mut listing = BTreeMap::new();
    for (uid, flags) in stored {
        listing.insert(*uid, flags.clone()?);
    }
    for uid in vanished.unwrap_or_default() {
        listing.remove(uid);
    }
    listing.extend(changed);
    (listing.len() == exists as usize).then_some(listing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Flag;

    fn seen() -> Flags {
        [Flag::Seen].into_iter().collect()
    }

    #[test]
    fn applies_changes_and_vanished() {
        let stored = vec![
            (Uid(1), Some(Flags::new())),
            (Uid(2), Some(Flags::new())),
            (Uid(3), Some(Flags::new())),
        ];
        let changed = BTreeMap::from([(Uid(1), seen()), (Uid(4), Flags::new())]);
        let got = rebuild_listing(&stored, changed, Some(&[Uid(2)]), 3).unwrap();
        assert_eq!(
            got.keys().copied().collect::<Vec<_>>(),
            vec![Uid(1), Uid(3), Uid(4)]
        );
        assert_eq!(got[&Uid(1)], seen());
    }

    #[test]
    fn an_unreported_expunge_or_unknown_flags_force_a_full_scan() {
        let stored = vec![(Uid(1), Some(Flags::new())), (Uid(2), Some(Flags::new()))];
        // CONDSTORE only, and the server now has one message: something was expunged.
        assert!(rebuild_listing(&stored, BTreeMap::new(), None, 1).is_none());
        assert!(rebuild_listing(&stored, BTreeMap::new(), None, 2).is_some());
        let unknown = vec![(Uid(1), None)];
        assert!(rebuild_listing(&unknown, BTreeMap::new(), Some(&[]), 1).is_none());
    }
}
