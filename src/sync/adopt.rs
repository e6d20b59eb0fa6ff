//! Adoption: the first sync of a folder another tool kept (mbsync, offlineimap), using that
//! tool's own records so pairing is exact and needs no download.
//!
//! Read, never written: mbsync's sync state (`FarUidValidity`/`NearUidValidity` header, then one
//! `far-UID near-UID flags` line per pair; the near UID is the `,U=<n>` in the Maildir file name)
//! and offlineimap's status (`,U=<server UID>` and `,FMD5=<md5 of the folder name>` in file names,
//! the flags of its last sync per UID). Everything here is pure: the engine finds and reads the
//! files, these functions parse them and decide the links.
//!
//! Flags on such a link: the base is the flags the other tool recorded at its last sync, so a
//! local change since then (the file's flags differ from the record) is kept and sent up, and
//! everything else follows the server. Without a record the server wins.

use crate::model::{Flags, NearKey, Uid};
use crate::sync::repair::{FarEvidence, InitialLink, initial_links};
use std::collections::{BTreeMap, BTreeSet};

fn flags_from_letters(letters: &str) -> Flags {
    Flags::from_maildir_letters(letters)
}

/// One pair in mbsync's sync state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MbsyncPair {
    /// The server UID.
    pub far: u32,
    /// The Maildir UID (`,U=` in the file name).
    pub near: u32,
    /// The flags both sides had at mbsync's last sync.
    pub flags: Flags,
}

/// mbsync's sync state of one folder (`.mbsyncstate`, or a file under `~/.mbsync/`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MbsyncState {
    /// The server folder's UIDVALIDITY when mbsync last synced it.
    pub far_validity: u32,
    /// The Maildir's UIDVALIDITY (its `.uidvalidity` file) when mbsync last synced it.
    pub near_validity: u32,
    /// Complete pairs: placeholders, expired and skipped entries and half pairs are left out.
    pub pairs: Vec<MbsyncPair>,
}

/// Parses mbsync's sync state: the header of mbsync 1.3 and later (`FarUidValidity 12`,
/// `NearUidValidity 34`, `MaxPulledUid`, …; the pre-1.4 names `MasterUidValidity` and
/// `SlaveUidValidity` too) or the one-line header of older versions (`12:40 34:0:17`), a blank
/// line, then the entries. The error names the line.
pub fn parse_mbsync_state(text: &str) -> Result<MbsyncState, String> {
    let mut state = MbsyncState::default();
    let mut lines = text.lines().enumerate();
    let mut seen_far = false;
    let mut seen_near = false;
    for (n, line) in lines.by_ref() {
        let line_no = n + 1;
        if line.is_empty() {
            break;
        }
        if n == 0 && line.contains(':') {
            // Before 1.1: `farval:maxpulled nearval:maxexpired:maxpushed`, entries follow at once.
            let mut halves = line.split_whitespace();
            let far = halves
                .next()
                .and_then(|h| h.split(':').next()?.parse().ok());
            let near = halves
                .next()
                .and_then(|h| h.split(':').next()?.parse().ok());
            let (Some(far), Some(near)) = (far, near) else {
                return Err(format!("line {line_no}: unreadable sync state header"));
            };
            state.far_validity = far;
            state.near_validity = near;
            seen_far = true;
            seen_near = true;
            break;
        }
        let mut parts = line.split_whitespace();
        let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("line {line_no}: malformed header entry {line:?}"));
        };
        let value: u32 = value
            .parse()
            .map_err(|_| format!("line {line_no}: {key} is not a number"))?;
        match key {
            "FarUidValidity" | "MasterUidValidity" => {
                state.far_validity = value;
                seen_far = true;
            }
            "NearUidValidity" | "SlaveUidValidity" => {
                state.near_validity = value;
                seen_near = true;
            }
            "MaxPulledUid"
            | "MaxPushedUid"
            | "MaxExpiredFarUid"
            | "MaxExpiredMasterUid"
            | "MaxExpiredSlaveUid" => {}
            _ => return Err(format!("line {line_no}: unknown header entry {key}")),
        }
    }
    if !(seen_far && seen_near) {
        return Err("the header names no UIDVALIDITY for both sides".into());
    }
    for (n, line) in lines {
        let line_no = n + 1;
        let mut parts = line.split_whitespace();
        let far = parts.next().map(str::parse::<u32>);
        let near = parts.next().map(str::parse::<u32>);
        let (Some(Ok(far)), Some(Ok(near))) = (far, near) else {
            return Err(format!("line {line_no}: malformed entry {line:?}"));
        };
        let mut flags = parts.next().unwrap_or("");
        // `<`/`>`: a placeholder stands on that side; `^` skipped, `~`/`X` expired.
        if flags.starts_with(['<', '>', '^', '~', 'X']) {
            continue;
        }
        if far == 0 || near == 0 || far == u32::MAX || near == u32::MAX {
            continue;
        }
        flags = flags.trim_start_matches(|c: char| !c.is_ascii_uppercase());
        state.pairs.push(MbsyncPair {
            far,
            near,
            flags: flags_from_letters(flags),
        });
    }
    Ok(state)
}

/// Parses offlineimap's plain-text status (`LocalStatus/<folder>`): a magic first line, then
/// `uid|flags|mtime|labels` (format 2) or `uid:flags` (format 1). Returns the flags per server UID.
pub fn parse_offlineimap_status(text: &str) -> Result<BTreeMap<u32, Flags>, String> {
    let mut lines = text.lines();
    let magic = lines.next().unwrap_or("");
    let format2 = if magic.starts_with("OFFLINEIMAP LocalStatus CACHE DATA") {
        magic.ends_with("FORMAT 2")
    } else {
        return Err("line 1: not an offlineimap status file".into());
    };
    let mut out = BTreeMap::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (uid, flags) = if format2 {
            let mut f = line.split('|');
            (f.next(), f.next())
        } else {
            let mut f = line.splitn(2, ':');
            (f.next(), f.next())
        };
        let uid = uid
            .and_then(|u| u.trim().parse::<u32>().ok())
            .ok_or_else(|| format!("line {}: malformed entry {line:?}", n + 2))?;
        out.insert(uid, flags_from_letters(flags.unwrap_or("")));
    }
    Ok(out)
}

/// The number after `,<tag>=` in a Maildir file's unique part (`,U=42` → 42), if any.
pub fn tagged_number(key: &str, tag: &str) -> Option<u32> {
    tagged_text(key, tag)?.parse().ok()
}

/// The text after `,<tag>=` up to the next comma (`,FMD5=ab12…`).
pub fn tagged_text<'a>(key: &'a str, tag: &str) -> Option<&'a str> {
    let marker = format!(",{tag}=");
    let start = key.find(&marker)? + marker.len();
    let rest = key.get(start..)?;
    Some(rest.split(',').next().unwrap_or(rest))
}

/// Which tool's records a folder is adopted from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// mbsync (isync).
    Mbsync,
    /// offlineimap.
    Offlineimap,
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tool::Mbsync => "mbsync",
            Tool::Offlineimap => "offlineimap",
        })
    }
}

/// Another tool's records for one folder, already checked against both sides' UIDVALIDITY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records {
    /// Whose records.
    pub tool: Tool,
    /// Where they were read (for the report).
    pub source: String,
    /// The number in a local file's name (`,U=<n>`) → the server UID and the flags recorded at
    /// the tool's last sync. For offlineimap the number is the server UID itself.
    pub by_name_uid: BTreeMap<u32, (Uid, Flags)>,
    /// offlineimap only: the `FMD5=` values a file of this folder may carry (a file with
    /// another one was moved in from a different folder and is not paired by its UID).
    pub folder_md5s: BTreeSet<String>,
}

impl Records {
    /// mbsync's state as records, or why it does not apply: its UIDVALIDITYs must be the
    /// server folder's and the Maildir's (`.uidvalidity`) as they are now.
    pub fn from_mbsync(
        state: &MbsyncState,
        source: String,
        server_validity: u32,
        maildir_validity: Option<u32>,
    ) -> Result<Records, String> {
        if state.far_validity != server_validity {
            return Err(format!(
                "{source}: recorded for server UIDVALIDITY {}, the folder now has {server_validity}",
                state.far_validity
            ));
        }
        match maildir_validity {
            Some(v) if v == state.near_validity => {}
            Some(v) => {
                return Err(format!(
                    "{source}: recorded for Maildir UIDVALIDITY {}, the folder's .uidvalidity says {v}",
                    state.near_validity
                ));
            }
            None => {
                return Err(format!(
                    "{source}: the Maildir has no .uidvalidity, so its UIDs cannot be checked"
                ));
            }
        }
        Ok(Records {
            tool: Tool::Mbsync,
            source,
            by_name_uid: state
                .pairs
                .iter()
                .map(|p| (p.near, (Uid(p.far), p.flags.clone())))
                .collect(),
            folder_md5s: BTreeSet::new(),
        })
    }

    /// offlineimap's status as records, or why it does not apply: the UIDVALIDITY offlineimap
    /// recorded for the server folder must be the folder's now.
    pub fn from_offlineimap(
        status: &BTreeMap<u32, Flags>,
        source: String,
        recorded_validity: Option<u32>,
        server_validity: u32,
        folder_md5s: BTreeSet<String>,
    ) -> Result<Records, String> {
        match recorded_validity {
            Some(v) if v == server_validity => {}
            Some(v) => {
                return Err(format!(
                    "{source}: recorded for server UIDVALIDITY {v}, the folder now has {server_validity}"
                ));
            }
            None => {
                return Err(format!(
                    "{source}: no recorded UIDVALIDITY (FolderValidity), so its UIDs cannot be checked"
                ));
            }
        }
        Ok(Records {
            tool: Tool::Offlineimap,
            source,
            by_name_uid: status
                .iter()
                .map(|(uid, f)| (*uid, (Uid(*uid), f.clone())))
                .collect(),
            folder_md5s,
        })
    }
}

/// A link taken from another tool's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordLink {
    /// The server message.
    pub far: Uid,
    /// The local file.
    pub near: NearKey,
    /// The flags the tool recorded at its last sync: the synced base.
    pub base: Flags,
}

/// The links the records give: a local file whose `,U=` number the records pair with a server
/// UID the listing (`far`) still holds. Each server UID and each file is linked at most once
/// (a file copied by hand under the same name is left to content pairing); an offlineimap file
/// whose `FMD5=` names another folder is not paired by its UID.
pub fn record_links(
    records: &Records,
    far: &BTreeMap<Uid, Flags>,
    near: &BTreeMap<NearKey, Flags>,
) -> Vec<RecordLink> {
    let mut taken: BTreeSet<Uid> = BTreeSet::new();
    let mut out = Vec::new();
    for key in near.keys() {
        let Some(n) = tagged_number(&key.0, "U") else {
            continue;
        };
        if records.tool == Tool::Offlineimap
            && let Some(md5) = tagged_text(&key.0, "FMD5")
            && !records.folder_md5s.contains(&md5.to_ascii_lowercase())
        {
            continue;
        }
        let Some((uid, flags)) = records.by_name_uid.get(&n) else {
            continue;
        };
        if !far.contains_key(uid) || !taken.insert(*uid) {
            continue;
        }
        out.push(RecordLink {
            far: *uid,
            near: key.clone(),
            base: flags.clone(),
        });
    }
    out
}

/// A message that shares its Message-ID with a message on the other side but not its text
/// (size less sync markers): kept on both sides, named in the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ambiguous {
    /// The Message-ID.
    pub message_id: String,
    /// The local files with it.
    pub near: Vec<NearKey>,
    /// The server UIDs with it.
    pub far: Vec<Uid>,
}

/// The Message-IDs that remain on both sides after pairing (`far`, `near`: the unpaired
/// messages' Message-IDs): each such message is copied to the other side as new, so both
/// versions are kept, and the report lists them.
pub fn ambiguous(
    far: &[(Uid, Option<String>)],
    near: &[(NearKey, Option<String>)],
) -> Vec<Ambiguous> {
    let mut far_by_id: BTreeMap<&str, Vec<Uid>> = BTreeMap::new();
    for (uid, id) in far {
        if let Some(id) = id {
            far_by_id.entry(id.as_str()).or_default().push(*uid);
        }
    }
    let mut near_by_id: BTreeMap<&str, Vec<NearKey>> = BTreeMap::new();
    for (key, id) in near {
        if let Some(id) = id
            && far_by_id.contains_key(id.as_str())
        {
            near_by_id.entry(id.as_str()).or_default().push(key.clone());
        }
    }
    near_by_id
        .into_iter()
        .map(|(id, mut near)| {
            near.sort();
            let mut far = far_by_id.get(id).cloned().unwrap_or_default();
            far.sort();
            Ambiguous {
                message_id: id.to_string(),
                near,
                far,
            }
        })
        .collect()
}

/// The local messages that content pairing needs evidence for: those the records left.
pub fn unrecorded(
    near: &BTreeMap<NearKey, Flags>,
    by_record: &[RecordLink],
) -> BTreeMap<NearKey, Flags> {
    let linked: BTreeSet<&NearKey> = by_record.iter().map(|l| &l.near).collect();
    near.iter()
        .filter(|(k, _)| !linked.contains(k))
        .map(|(k, f)| (k.clone(), f.clone()))
        .collect()
}

/// What the first sync of a folder with mail on both sides decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirstSync {
    /// Every link: those from the records first, then those by content.
    pub links: Vec<InitialLink>,
    /// How many came from the other tool's records.
    pub by_record: usize,
    /// How many were paired by content (Message-ID and size less sync markers).
    pub by_content: usize,
    /// Message-IDs left on both sides with different text.
    pub ambiguous: Vec<Ambiguous>,
}

/// Completes the pairing of a first sync: the record links (with the server's flags and the
/// evidence every link records), then content pairing of what the records left
/// (`near_evidence` covers exactly those local messages), then the ambiguous rest.
pub fn first_sync(
    by_record: Vec<RecordLink>,
    far: &BTreeMap<Uid, Flags>,
    near: &BTreeMap<NearKey, Flags>,
    far_evidence: &[FarEvidence],
    near_evidence: &[(NearKey, Option<String>, u32)],
) -> FirstSync {
    let evidence: BTreeMap<Uid, &FarEvidence> = far_evidence.iter().map(|e| (e.uid, e)).collect();
    let linked_far: BTreeSet<Uid> = by_record.iter().map(|l| l.far).collect();
    let far_rest: BTreeMap<Uid, Flags> = far
        .iter()
        .filter(|(u, _)| !linked_far.contains(u))
        .map(|(u, f)| (*u, f.clone()))
        .collect();
    let near_rest = unrecorded(near, &by_record);
    let by_content = initial_links(&far_rest, &near_rest, far_evidence, near_evidence);
    let content_far: BTreeSet<Uid> = by_content.iter().map(|l| l.far).collect();
    let content_near: BTreeSet<&NearKey> = by_content.iter().map(|l| &l.near).collect();
    let unpaired_far: Vec<(Uid, Option<String>)> = far_rest
        .keys()
        .filter(|u| !content_far.contains(u))
        .map(|u| (*u, evidence.get(u).and_then(|e| e.message_id.clone())))
        .collect();
    let unpaired_near: Vec<(NearKey, Option<String>)> = near_evidence
        .iter()
        .filter(|(k, _, _)| near_rest.contains_key(k) && !content_near.contains(k))
        .map(|(k, id, _)| (k.clone(), id.clone()))
        .collect();
    let ambiguous = ambiguous(&unpaired_far, &unpaired_near);
    let mut links: Vec<InitialLink> = by_record
        .into_iter()
        .filter_map(|l| {
            let ev = evidence.get(&l.far);
            Some(InitialLink {
                far_flags: far.get(&l.far)?.clone(),
                far: l.far,
                near: l.near,
                base: l.base,
                message_id: ev.and_then(|e| e.message_id.clone()),
                // 0 when the evidence FETCH did not list it: no size evidence for re-pairing.
                size: ev.map_or(0, |e| e.size),
            })
        })
        .collect();
    let by_record = links.len();
    let by_content_count = by_content.len();
    links.extend(by_content);
    FirstSync {
        links,
        by_record,
        by_content: by_content_count,
        ambiguous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(letters: &str) -> Flags {
        flags_from_letters(letters)
    }

    #[test]
    fn reads_mbsync_state_of_every_version() {
        let new = "FarUidValidity 1700000001\nNearUidValidity 1700000002\nMaxPulledUid 9\nMaxPushedUid 4\n\n\
                   1 1 S\n2 2 FS\n3 0 \n5 4 <\n6 5 ~S\n7 6 ^\n9 8 \n";
        let s = parse_mbsync_state(new).unwrap();
        assert_eq!((s.far_validity, s.near_validity), (1700000001, 1700000002));
        assert_eq!(
            s.pairs,
            vec![
                MbsyncPair {
                    far: 1,
                    near: 1,
                    flags: flags("S")
                },
                MbsyncPair {
                    far: 2,
                    near: 2,
                    flags: flags("FS")
                },
                MbsyncPair {
                    far: 9,
                    near: 8,
                    flags: flags("")
                },
            ]
        );
        let legacy = "MasterUidValidity 5\nSlaveUidValidity 6\nMaxPulledUid 1\nMaxExpiredSlaveUid 0\n\n1 3 RS\n";
        let s = parse_mbsync_state(legacy).unwrap();
        assert_eq!((s.far_validity, s.near_validity, s.pairs.len()), (5, 6, 1));
        let oldest = "5:2 6:0:3\n1 3 S\n2 4 \n";
        let s = parse_mbsync_state(oldest).unwrap();
        assert_eq!((s.far_validity, s.near_validity, s.pairs.len()), (5, 6, 2));
    }

    #[test]
    fn broken_mbsync_state_names_the_line() {
        let e = parse_mbsync_state("FarUidValidity 1\nNearUidValidity x\n\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let e = parse_mbsync_state("FarUidValidity 1\nNearUidValidity 2\n\n1 1 S\nbogus\n")
            .unwrap_err();
        assert!(e.contains("line 5"), "{e}");
        assert!(parse_mbsync_state("FarUidValidity 1\n\n").is_err());
        assert!(parse_mbsync_state("").is_err());
    }

    #[test]
    fn reads_offlineimap_status_formats() {
        let v2 = "OFFLINEIMAP LocalStatus CACHE DATA - DO NOT MODIFY - FORMAT 2\n3|FS|1700000000|\n4||0|\n";
        let s = parse_offlineimap_status(v2).unwrap();
        assert_eq!(s.get(&3), Some(&flags("FS")));
        assert_eq!(s.get(&4), Some(&flags("")));
        let v1 = "OFFLINEIMAP LocalStatus CACHE DATA - DO NOT MODIFY - FORMAT 1\n7:RS\n";
        assert_eq!(
            parse_offlineimap_status(v1).unwrap().get(&7),
            Some(&flags("RS"))
        );
        assert!(parse_offlineimap_status("nonsense\n1|S\n").is_err());
        let e = parse_offlineimap_status(
            "OFFLINEIMAP LocalStatus CACHE DATA - DO NOT MODIFY - FORMAT 2\nx|S|0|\n",
        )
        .unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn numbers_in_file_names() {
        let k = "1700000000_1.1234.host,U=42,FMD5=ABCDEF";
        assert_eq!(tagged_number(k, "U"), Some(42));
        assert_eq!(tagged_text(k, "FMD5"), Some("ABCDEF"));
        assert_eq!(tagged_number("1700000000.R1.host,U=7", "U"), Some(7));
        assert_eq!(tagged_number("1700000000.R1.host", "U"), None);
        assert_eq!(tagged_number("x,U=", "U"), None);
    }

    fn mbsync_records(pairs: &[(u32, u32, &str)]) -> Records {
        let state = MbsyncState {
            far_validity: 10,
            near_validity: 20,
            pairs: pairs
                .iter()
                .map(|(f, n, l)| MbsyncPair {
                    far: *f,
                    near: *n,
                    flags: flags(l),
                })
                .collect(),
        };
        Records::from_mbsync(&state, "state".into(), 10, Some(20)).unwrap()
    }

    #[test]
    fn records_apply_only_under_the_same_uidvalidities() {
        let state = MbsyncState {
            far_validity: 10,
            near_validity: 20,
            pairs: vec![],
        };
        assert!(Records::from_mbsync(&state, "s".into(), 11, Some(20)).is_err());
        assert!(Records::from_mbsync(&state, "s".into(), 10, Some(21)).is_err());
        assert!(Records::from_mbsync(&state, "s".into(), 10, None).is_err());
        let status = BTreeMap::new();
        assert!(Records::from_offlineimap(&status, "s".into(), None, 3, BTreeSet::new()).is_err());
        assert!(
            Records::from_offlineimap(&status, "s".into(), Some(4), 3, BTreeSet::new()).is_err()
        );
        assert!(
            Records::from_offlineimap(&status, "s".into(), Some(3), 3, BTreeSet::new()).is_ok()
        );
    }

    #[test]
    fn record_links_pair_each_side_once_with_the_recorded_base() {
        let r = mbsync_records(&[(100, 1, "S"), (101, 2, "FS"), (102, 3, ""), (103, 4, "")]);
        let far: BTreeMap<Uid, Flags> = [
            (Uid(100), flags("S")),
            (Uid(101), flags("S")),
            // 102 is gone from the server; 103 is still there.
            (Uid(103), flags("")),
        ]
        .into();
        let near: BTreeMap<NearKey, Flags> = [
            (NearKey("a.x.host,U=1".into()), flags("S")),
            (NearKey("b.x.host,U=2".into()), flags("FS")),
            (NearKey("c.x.host,U=3".into()), flags("")),
            // Two files claim U=4 (one copied by hand): the first is linked.
            (NearKey("d.x.host,U=4".into()), flags("")),
            (NearKey("e.x.host,U=4".into()), flags("")),
            (NearKey("f.x.host".into()), flags("")),
        ]
        .into();
        let links = record_links(&r, &far, &near);
        let got: Vec<(u32, &str, Flags)> = links
            .iter()
            .map(|l| (l.far.0, l.near.0.as_str(), l.base.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (100, "a.x.host,U=1", flags("S")),
                (101, "b.x.host,U=2", flags("FS")),
                (103, "d.x.host,U=4", flags("")),
            ]
        );
    }

    #[test]
    fn offlineimap_files_from_another_folder_are_not_paired_by_uid() {
        let status: BTreeMap<u32, Flags> = [(5, flags("S")), (6, flags(""))].into();
        let md5s: BTreeSet<String> = ["aaaa".to_string()].into();
        let r = Records::from_offlineimap(&status, "s".into(), Some(1), 1, md5s).unwrap();
        let far: BTreeMap<Uid, Flags> = [(Uid(5), flags("S")), (Uid(6), flags(""))].into();
        let near: BTreeMap<NearKey, Flags> = [
            (NearKey("1_1.2.h,U=5,FMD5=AAAA".into()), flags("S")),
            (NearKey("1_2.2.h,U=6,FMD5=bbbb".into()), flags("")),
        ]
        .into();
        let links = record_links(&r, &far, &near);
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].far, Uid(5));
    }

    #[test]
    fn first_sync_takes_records_then_content_then_names_the_rest() {
        let r = mbsync_records(&[(1, 1, "S")]);
        let far: BTreeMap<Uid, Flags> = [
            (Uid(1), flags("")),
            (Uid(2), flags("F")),
            (Uid(3), flags("")),
        ]
        .into();
        let near: BTreeMap<NearKey, Flags> = [
            (NearKey("a,U=1".into()), flags("S")),
            (NearKey("b".into()), flags("")),
            (NearKey("c".into()), flags("")),
        ]
        .into();
        let ev = |uid: u32, id: &str, size: u32| FarEvidence {
            uid: Uid(uid),
            message_id: Some(id.into()),
            size,
            markers: 0,
        };
        let far_ev = vec![ev(1, "one", 10), ev(2, "two", 20), ev(3, "three", 30)];
        let by_record = record_links(&r, &far, &near);
        let rest = unrecorded(&near, &by_record);
        assert_eq!(
            rest.keys().map(|k| k.0.as_str()).collect::<Vec<_>>(),
            vec!["b", "c"]
        );
        let near_ev = vec![
            (NearKey("b".into()), Some("two".into()), 20),
            (NearKey("c".into()), Some("three".into()), 31),
        ];
        let done = first_sync(by_record, &far, &near, &far_ev, &near_ev);
        assert_eq!((done.by_record, done.by_content), (1, 1));
        // The record link: the recorded base, the server's flags, the evidence's size.
        assert_eq!(done.links[0].base, flags("S"));
        assert_eq!(done.links[0].size, 10);
        // By content the local flags are the base: the server's win.
        assert_eq!(
            (done.links[1].far, done.links[1].base.clone()),
            (Uid(2), flags(""))
        );
        assert_eq!(done.ambiguous.len(), 1);
        assert_eq!(done.ambiguous[0].message_id, "three");
    }

    #[test]
    fn ambiguous_lists_ids_left_on_both_sides() {
        let far = vec![
            (Uid(1), Some("a@x".to_string())),
            (Uid(2), Some("b@x".to_string())),
            (Uid(3), None),
        ];
        let near = vec![
            (NearKey("k1".into()), Some("a@x".to_string())),
            (NearKey("k2".into()), Some("c@x".to_string())),
            (NearKey("k3".into()), None),
        ];
        assert_eq!(
            ambiguous(&far, &near),
            vec![Ambiguous {
                message_id: "a@x".into(),
                near: vec![NearKey("k1".into())],
                far: vec![Uid(1)],
            }]
        );
    }
}
