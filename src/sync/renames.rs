//! Files renamed within a folder: some mail readers give a message a new file name, key
//! included, when they change its flags (mu4e with `mu4e-change-filenames-when-moving`, which
//! mbsync users are told to set). Read naively, the old file is gone (delete the server copy)
//! and a new one appeared (upload it): the server gets the same message again under a new UID,
//! for nothing. Pure: which vanished files and which new files are the same message, by
//! Message-ID and size, one to one; the engine confirms each pair against the server's header
//! section before it relinks the row, so an uncertain match stays an upload, never a wrong link.
//!
//! Files moved between folders: a mail reader that moves a message takes its file out of one
//! folder and puts it (often under a new name) into another. Read naively, the server copy is
//! deleted and the file uploaded again; paired here the same way ([`moves`]), across folders,
//! the engine moves the server copy instead (UID MOVE).

use crate::model::{NearKey, RowId, Uid};
use std::collections::BTreeMap;

/// A state row whose local file is gone while its server copy is still there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vanished {
    /// The row.
    pub row: RowId,
    /// Its server UID.
    pub uid: Uid,
    /// Its Message-ID.
    pub message_id: String,
    /// Its server size (CRLF).
    pub size: u32,
}

/// A state row as the pairing reads it.
#[derive(Clone, Copy, Debug)]
pub struct Linked<'a> {
    /// The row.
    pub row: RowId,
    /// Its server UID.
    pub uid: Option<Uid>,
    /// Its Maildir key.
    pub key: Option<&'a NearKey>,
    /// Its Message-ID.
    pub message_id: Option<&'a str>,
    /// Its server size.
    pub size: Option<u32>,
}

/// The rows whose local file is gone (`on_disk` says no) while their server copy is still
/// there (`on_server` says yes), with the evidence to pair them (rows without a Message-ID or
/// size pair nothing).
pub fn vanished<'a>(
    rows: impl IntoIterator<Item = Linked<'a>>,
    on_disk: impl Fn(&NearKey) -> bool,
    on_server: impl Fn(Uid) -> bool,
) -> Vec<Vanished> {
    rows.into_iter()
        .filter_map(|r| {
            let uid = r.uid?;
            (!on_disk(r.key?) && on_server(uid)).then_some(())?;
            Some(Vanished {
                row: r.row,
                uid,
                message_id: r.message_id?.to_string(),
                size: r.size?,
            })
        })
        .collect()
}

/// A local file no row knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fresh {
    /// Its key.
    pub key: NearKey,
    /// Its Message-ID.
    pub message_id: String,
    /// Its size with CRLF line ends (as the server would count it).
    pub size: u32,
}

/// A vanished row and the fresh file that may be its message under a new name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The row.
    pub row: RowId,
    /// Its server UID (whose header confirms the pair).
    pub uid: Uid,
    /// The file's key.
    pub key: NearKey,
}

/// Pairs vanished rows with fresh files of the same Message-ID and size, where that evidence is
/// one to one on both sides (two files or two rows sharing it pair nothing: a guess could link
/// the wrong copy).
pub fn candidates(vanished: &[Vanished], fresh: &[Fresh]) -> Vec<Candidate> {
    let vanished: Vec<((), &Vanished)> = vanished.iter().map(|v| ((), v)).collect();
    let fresh: Vec<((), &Fresh)> = fresh.iter().map(|f| ((), f)).collect();
    one_to_one(&vanished, &fresh)
        .into_iter()
        .map(|((), r, (), f)| Candidate {
            row: r.row,
            uid: r.uid,
            key: f.key.clone(),
        })
        .collect()
}

/// A file a mail reader moved from one folder (where its row's file vanished) to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move<F> {
    /// The folder it left.
    pub from: F,
    /// The row there.
    pub row: RowId,
    /// Its server UID there (whose header confirms the pair).
    pub uid: Uid,
    /// The folder it is in now.
    pub to: F,
    /// Its key there.
    pub key: NearKey,
}

/// Pairs vanished rows with fresh files of other folders by Message-ID and size, where that
/// evidence is one to one across every folder given (a rename within a folder is left to
/// [`candidates`]; two files or two rows sharing the evidence pair nothing).
pub fn moves<F: Clone + PartialEq>(
    vanished: &[(F, Vanished)],
    fresh: &[(F, Fresh)],
) -> Vec<Move<F>> {
    let vanished: Vec<(F, &Vanished)> = vanished.iter().map(|(f, v)| (f.clone(), v)).collect();
    let fresh: Vec<(F, &Fresh)> = fresh.iter().map(|(f, x)| (f.clone(), x)).collect();
    one_to_one(&vanished, &fresh)
        .into_iter()
        .filter(|(from, _, to, _)| from != to)
        .map(|(from, r, to, f)| Move {
            from,
            row: r.row,
            uid: r.uid,
            to,
            key: f.key.clone(),
        })
        .collect()
}

/// The (row, file) pairs whose Message-ID and size no other row or file shares.
fn one_to_one<'a, F: Clone>(
    vanished: &[(F, &'a Vanished)],
    fresh: &[(F, &'a Fresh)],
) -> Vec<(F, &'a Vanished, F, &'a Fresh)> {
    let mut rows: BTreeMap<(&str, u32), Vec<&(F, &Vanished)>> = BTreeMap::new();
    for v in vanished {
        rows.entry((v.1.message_id.as_str(), v.1.size))
            .or_default()
            .push(v);
    }
    let mut files: BTreeMap<(&str, u32), Vec<&(F, &Fresh)>> = BTreeMap::new();
    for f in fresh {
        files
            .entry((f.1.message_id.as_str(), f.1.size))
            .or_default()
            .push(f);
    }
    rows.iter()
        .filter_map(|(evidence, rs)| {
            let fs = files.get(evidence)?;
            match (rs.as_slice(), fs.as_slice()) {
                ([(rf, r)], [(ff, f)]) => Some((rf.clone(), *r, ff.clone(), *f)),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(row: RowId, mid: &str, size: u32) -> Vanished {
        Vanished {
            row,
            uid: Uid(row as u32 + 100),
            message_id: mid.into(),
            size,
        }
    }

    fn f(key: &str, mid: &str, size: u32) -> Fresh {
        Fresh {
            key: NearKey(key.into()),
            message_id: mid.into(),
            size,
        }
    }

    #[test]
    fn one_to_one_evidence_pairs_and_anything_else_does_not() {
        let got = candidates(
            &[
                v(1, "a@x", 10),
                v(2, "b@x", 20),
                v(3, "c@x", 30),
                v(4, "c@x", 30),
            ],
            &[f("ka", "a@x", 10), f("kb", "b@x", 21), f("kc", "c@x", 30)],
        );
        assert_eq!(
            got,
            vec![Candidate {
                row: 1,
                uid: Uid(101),
                key: NearKey("ka".into())
            }]
        );
        // Two fresh files with the same evidence: neither is paired.
        assert!(
            candidates(
                &[v(1, "a@x", 10)],
                &[f("k1", "a@x", 10), f("k2", "a@x", 10)]
            )
            .is_empty()
        );
    }

    #[test]
    fn vanished_rows_are_those_gone_locally_and_still_on_the_server() {
        let (k1, k2, k3) = (
            NearKey("k1".into()),
            NearKey("k2".into()),
            NearKey("k3".into()),
        );
        let row = |row, uid, key, mid| Linked {
            row,
            uid: Some(Uid(uid)),
            key: Some(key),
            message_id: mid,
            size: Some(10),
        };
        let got = vanished(
            [
                row(1, 1, &k1, Some("a@x")),
                row(2, 2, &k2, Some("b@x")),
                row(3, 3, &k3, Some("c@x")),
                row(4, 4, &k3, None),
            ],
            |k| k == &k2,
            |u| u != Uid(3),
        );
        assert_eq!(got, vec![v(1, "a@x", 10).with_uid(1)]);
    }

    impl Vanished {
        fn with_uid(mut self, uid: u32) -> Vanished {
            self.uid = Uid(uid);
            self
        }
    }

    #[test]
    fn a_move_pairs_across_folders_and_a_rename_is_left_to_the_folder() {
        let got = moves(
            &[
                ("inbox", v(1, "a@x", 10)),
                ("inbox", v(2, "b@x", 20)),
                ("inbox", v(3, "c@x", 30)),
            ],
            &[
                ("archive", f("ka", "a@x", 10)),
                ("inbox", f("kb", "b@x", 20)),
                ("archive", f("kc1", "c@x", 30)),
                ("work", f("kc2", "c@x", 30)),
            ],
        );
        assert_eq!(
            got,
            vec![Move {
                from: "inbox",
                row: 1,
                uid: Uid(101),
                to: "archive",
                key: NearKey("ka".into())
            }]
        );
    }

    proptest! {
        #[test]
        fn a_row_and_a_file_are_each_paired_at_most_once(
            rows in proptest::collection::vec((0u8..4, 0u32..3), 0..12),
            files in proptest::collection::vec((0u8..4, 0u32..3), 0..12),
        ) {
            let vanished: Vec<Vanished> = rows.iter().enumerate()
                .map(|(i, (m, s))| v(i as RowId, &format!("m{m}"), *s)).collect();
            let fresh: Vec<Fresh> = files.iter().enumerate()
                .map(|(i, (m, s))| f(&format!("k{i}"), &format!("m{m}"), *s)).collect();
            let got = candidates(&vanished, &fresh);
            let mut seen_rows = std::collections::BTreeSet::new();
            let mut seen_keys = std::collections::BTreeSet::new();
            for c in &got {
                prop_assert!(seen_rows.insert(c.row));
                prop_assert!(seen_keys.insert(c.key.clone()));
                let r = vanished.iter().find(|x| x.row == c.row).unwrap();
                let k = fresh.iter().find(|x| x.key == c.key).unwrap();
                prop_assert_eq!((&r.message_id, r.size), (&k.message_id, k.size));
            }
        }
    }
}
