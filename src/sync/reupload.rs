//! Re-uploading to a target, pure: where each local folder goes on the target, how folders are
//! shared among connections, which local messages the target already has, and how a local
//! folder and a target folder compare.
//!
//! A message is identified across the two sides by its Message-ID and its size with CRLF line
//! ends, or, without a Message-ID, by the SHA-256 of its bytes (CRLF). Matching is a multiset
//! match: two identical local messages need two copies on the target.

use crate::model::Uid;
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use crate::model::SpecialUse;

/// The special use a local folder name suggests (English names the big providers and mail
/// readers use), when any.
pub fn special_use_of_name(name: &str) -> Option<SpecialUse> {
    let leaf = name.rsplit('/').next().unwrap_or(name).to_lowercase();
    Some(match leaf.as_str() {
        "sent" | "sent mail" | "sent messages" | "sent items" => SpecialUse::Sent,
        "drafts" | "draft" => SpecialUse::Drafts,
        "trash" | "deleted" | "deleted items" | "deleted messages" | "bin" => SpecialUse::Trash,
        "junk" | "spam" | "junk e-mail" | "junk email" | "bulk mail" => SpecialUse::Junk,
        "archive" | "archives" | "all mail" => SpecialUse::Archive,
        _ => return None,
    })
}

/// What a push does with a local folder of an account whose server had the label model (a
/// `\All` folder: Gmail), from the special use the server gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushRole {
    /// Pushed as it is (a label, or any folder of an ordinary account).
    AsIs,
    /// Pushed into the target's folder with this special use (created under its English name
    /// where the target has none).
    Into(SpecialUse),
    /// All Mail: only the messages in no other folder (archived ones), into the target's
    /// Archive; the rest arrive with their labels.
    Unlabelled,
    /// Not pushed, for the reason given.
    Skip(&'static str),
}

/// The [`PushRole`] of a local folder: `special` is the use the server gave it, `label_model`
/// whether the account's server had an All Mail, `named` whether the push's `--folders` named
/// the folder itself (Spam and Trash go only then).
pub fn push_role(special: Option<SpecialUse>, label_model: bool, named: bool) -> PushRole {
    if !label_model {
        return PushRole::AsIs;
    }
    match special {
        Some(SpecialUse::All) => PushRole::Unlabelled,
        Some(SpecialUse::Flagged) => {
            PushRole::Skip("Starred: its messages arrive flagged in their own folders")
        }
        Some(SpecialUse::Important) => {
            PushRole::Skip("Important: a Gmail ranking, its messages arrive in their own folders")
        }
        Some(SpecialUse::Junk) if !named => {
            PushRole::Skip("spam: pushed only when --folders names it")
        }
        Some(SpecialUse::Trash) if !named => {
            PushRole::Skip("trash: pushed only when --folders names it")
        }
        Some(
            u @ (SpecialUse::Sent | SpecialUse::Drafts | SpecialUse::Junk | SpecialUse::Trash),
        ) => PushRole::Into(u),
        Some(SpecialUse::Archive) | None => PushRole::AsIs,
    }
}

/// The English name a target folder for `use_` gets where the target has none.
pub fn default_name(use_: SpecialUse) -> &'static str {
    match use_ {
        SpecialUse::Sent => "Sent",
        SpecialUse::Drafts => "Drafts",
        SpecialUse::Trash => "Trash",
        SpecialUse::Junk => "Junk",
        SpecialUse::Archive | SpecialUse::All => "Archive",
        SpecialUse::Flagged => "Flagged",
        SpecialUse::Important => "Important",
    }
}

/// Where a local folder goes on the target: `folder_map` first (exact canonical names), then,
/// for a top-level folder whose name means a special use, the target's folder with that use,
/// else the same name.
pub fn target_folder(
    local: &str,
    folder_map: &BTreeMap<String, String>,
    target_special: &HashMap<SpecialUse, String>,
) -> String {
    if let Some(t) = folder_map.get(local) {
        return t.clone();
    }
    if !local.contains('/')
        && let Some(t) = special_use_of_name(local).and_then(|u| target_special.get(&u))
    {
        return t.clone();
    }
    local.to_string()
}

/// How a message is recognised on the other side.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// Message-ID (without brackets) and size with CRLF line ends.
    IdSize(String, u32),
    /// SHA-256 of the CRLF bytes (messages without a Message-ID).
    Hash(Vec<u8>),
}

/// The upload's units of work, one per target folder, biggest first: each is the target folder
/// and the local folders that go into it (in the given order). `folders` are (local folder,
/// its target folder, its size). A unit goes up on one connection, so a target folder never
/// has two writers; biggest first so that parallel connections finish together.
pub fn upload_units<F>(folders: Vec<(F, String, u64)>) -> Vec<(String, Vec<F>)> {
    let mut units: Vec<(u64, String, Vec<F>)> = Vec::new();
    for (folder, target, size) in folders {
        match units.iter_mut().find(|u| u.1 == target) {
            Some(unit) => {
                unit.0 += size;
                unit.2.push(folder);
            }
            None => units.push((size, target, vec![folder])),
        }
    }
    // Stable: equal sizes keep the folders' order.
    units.sort_by_key(|u| std::cmp::Reverse(u.0));
    units.into_iter().map(|(_, t, f)| (t, f)).collect()
}

/// Which local messages still need uploading: those whose identity the target does not have
/// (as many times as they occur locally). `stored_as[i]`, when given, is the identity the
/// target would give `local[i]` after normalising it as Courier does ([`normalised_size`]):
/// a copy in that form is the message too, so a rerun never uploads it again. Returns the
/// indexes into `local` to upload.
pub fn missing_on_target(
    local: &[Identity],
    stored_as: &[Option<Identity>],
    target: &[Identity],
) -> Vec<usize> {
    let mut available: HashMap<&Identity, usize> = HashMap::new();
    for t in target {
        *available.entry(t).or_default() += 1;
    }
    let mut out = Vec::new();
    let mut unmatched = Vec::new();
    for (i, l) in local.iter().enumerate() {
        match available.get_mut(l) {
            Some(n) if *n > 0 => *n -= 1,
            _ => unmatched.push(i),
        }
    }
    // Second pass, so that an exact copy is never taken for another message's normalised one.
    for i in unmatched {
        match stored_as
            .get(i)
            .and_then(Option::as_ref)
            .and_then(|alt| available.get_mut(alt))
        {
            Some(n) if *n > 0 => *n -= 1,
            _ => out.push(i),
        }
    }
    out
}

/// The size of a message (CRLF line ends) as a server that normalises what it stores keeps
/// it: every bare CR removed and a final CRLF added when the last line has none (Courier-IMAP
/// 5.0 does both). `None` when that is the size it already has.
pub fn normalised_size(crlf: &[u8]) -> Option<u32> {
    let bare_crs = crlf
        .iter()
        .enumerate()
        .filter(|(i, b)| **b == b'\r' && crlf.get(i.saturating_add(1)) != Some(&b'\n'))
        .count();
    let without = crlf.len().saturating_sub(bare_crs);
    let ends_open = !crlf.is_empty() && !crlf.ends_with(b"\r\n") && !crlf.ends_with(b"\n");
    let size = if ends_open {
        without.saturating_add(2)
    } else {
        without
    };
    (size != crlf.len())
        .then(|| u32::try_from(size).ok())
        .flatten()
}

/// How a header section a server stored (`stored`) differs from the one sent (`sent`), or
/// `None` when they are the same. Cyrus stores raw 8-bit header bytes as `X`, keeping the size.
pub fn header_change(sent: &[u8], stored: &[u8]) -> Option<String> {
    if sent == stored {
        return None;
    }
    if sent.len() != stored.len() {
        return Some(format!(
            "header section stored {} byte(s) instead of {}",
            stored.len(),
            sent.len()
        ));
    }
    let changed: Vec<(u8, u8)> = sent
        .iter()
        .zip(stored)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (*a, *b))
        .collect();
    let as_x = changed.iter().all(|(a, b)| *a >= 0x80 && *b == b'X');
    Some(if as_x {
        format!("{} raw 8-bit header byte(s) replaced by X", changed.len())
    } else {
        format!("{} header byte(s) changed", changed.len())
    })
}

/// True when a header section holds bytes servers are known to rewrite without changing the
/// size (raw 8-bit bytes, NUL): only such messages have their stored header compared.
pub fn header_at_risk(header: &[u8]) -> bool {
    header.iter().any(|b| *b >= 0x80 || *b == 0)
}

/// How a local folder and its target folder compare.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Comparison {
    /// Local messages (counted with multiplicity) the target lacks.
    pub missing: usize,
    /// Target messages with no local counterpart.
    pub extra: usize,
    /// Target copies beyond the local count of the same message.
    pub duplicated: usize,
    /// Messages on both sides.
    pub matched: usize,
    /// Messages the target holds in another form: same Message-ID, another size (Courier adds
    /// a final newline and drops bare CRs; Cyrus rewrites 8-bit header bytes). Counted neither
    /// missing nor extra.
    pub altered: Vec<Altered>,
}

/// A message the target stored changed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Altered {
    /// Its Message-ID.
    pub message_id: String,
    /// Size of the local copy (CRLF).
    pub local_size: u32,
    /// Size of the target's copy.
    pub target_size: u32,
    /// What changed, when known (`bare CRs removed or a final CRLF added`, `3 raw 8-bit header
    /// byte(s) replaced by X`).
    pub how: Option<String>,
}

impl Altered {
    /// How the copy differs, for people: `<id> stored 2 bytes longer`.
    pub fn describe(&self) -> String {
        let d = i64::from(self.target_size) - i64::from(self.local_size);
        let size = match d {
            0 => None,
            d if d > 0 => Some(format!("stored {} byte(s) longer", d.unsigned_abs())),
            d => Some(format!("stored {} byte(s) shorter", d.unsigned_abs())),
        };
        match (size, &self.how) {
            (Some(size), Some(how)) => format!("<{}> {size}: {how}", self.message_id),
            (Some(size), None) => format!("<{}> {size}", self.message_id),
            (None, Some(how)) => format!("<{}> stored with {how}", self.message_id),
            (None, None) => format!("<{}> stored changed", self.message_id),
        }
    }
}

impl Comparison {
    /// Counts a matched message as altered: its stored header differs though its size does not.
    pub fn header_altered(&mut self, message_id: &str, size: u32, how: String) {
        self.matched = self.matched.saturating_sub(1);
        self.altered.push(Altered {
            message_id: message_id.to_string(),
            local_size: size,
            target_size: size,
            how: Some(how),
        });
    }

    /// True when the target holds exactly the local messages (altered copies count as held:
    /// the server changed them as it stores everything, see [`Comparison::altered`]).
    pub fn is_match(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.duplicated == 0
    }
}

/// Which push records of a folder no longer stand, given the UIDs the target lists now:
/// `records` are (local key, target UID when known). A record with a UID is gone when the
/// listing lacks that UID; when any is, or the folder lists fewer messages than were recorded,
/// the records without a UID (found present, or uploaded without APPENDUID) are to be checked
/// again by identity too.
pub fn gone_records(records: &[(String, Option<u32>)], listed: &BTreeSet<Uid>) -> Vec<String> {
    let mut gone: Vec<String> = records
        .iter()
        .filter(|(_, uid)| matches!(uid, Some(u) if !listed.contains(&Uid(*u))))
        .map(|(k, _)| k.clone())
        .collect();
    if !gone.is_empty() || listed.len() < records.len() {
        gone.extend(
            records
                .iter()
                .filter(|(_, uid)| uid.is_none())
                .map(|(k, _)| k.clone()),
        );
    }
    gone
}

/// Compares the identities of a local folder and a target folder.
pub fn compare(local: &[Identity], target: &[Identity]) -> Comparison {
    let mut l: HashMap<&Identity, usize> = HashMap::new();
    for x in local {
        *l.entry(x).or_default() += 1;
    }
    let mut t: HashMap<&Identity, usize> = HashMap::new();
    for x in target {
        *t.entry(x).or_default() += 1;
    }
    let mut c = Comparison::default();
    for (id, &ln) in &l {
        let tn = t.get(id).copied().unwrap_or(0);
        c.matched += ln.min(tn);
        c.missing += ln.saturating_sub(tn);
        c.duplicated += tn.saturating_sub(ln);
    }
    for (id, &tn) in &t {
        if !l.contains_key(id) {
            c.extra += tn;
        }
    }
    // What is left on both sides under the same Message-ID is one message stored changed.
    let mut left_local: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (id, &ln) in &l {
        if let Identity::IdSize(mid, size) = id {
            let extra = ln.saturating_sub(t.get(id).copied().unwrap_or(0));
            left_local
                .entry(mid)
                .or_default()
                .extend(std::iter::repeat_n(*size, extra));
        }
    }
    let mut left_target: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (id, &tn) in &t {
        if let Identity::IdSize(mid, size) = id
            && !l.contains_key(id)
        {
            left_target
                .entry(mid)
                .or_default()
                .extend(std::iter::repeat_n(*size, tn));
        }
    }
    for (mid, mut locals) in left_local {
        let Some(mut targets) = left_target.remove(mid) else {
            continue;
        };
        locals.sort_unstable();
        targets.sort_unstable();
        for (ls, ts) in locals.into_iter().zip(targets) {
            c.altered.push(Altered {
                message_id: mid.to_string(),
                local_size: ls,
                target_size: ts,
                how: None,
            });
            c.missing = c.missing.saturating_sub(1);
            c.extra = c.extra.saturating_sub(1);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_whose_copies_are_gone_are_checked_again() {
        let rec = |k: &str, uid: Option<u32>| (k.to_string(), uid);
        let listed: BTreeSet<Uid> = [Uid(1), Uid(2), Uid(9)].into();
        // All there: nothing.
        let all = vec![rec("a", Some(1)), rec("b", Some(2)), rec("p", None)];
        assert!(gone_records(&all, &listed).is_empty());
        // UID 3 gone: that record, and the ones without a UID (they cannot be checked by UID).
        let one_gone = vec![rec("a", Some(1)), rec("c", Some(3)), rec("p", None)];
        assert_eq!(gone_records(&one_gone, &listed), vec!["c", "p"]);
        // Fewer listed than recorded: the UID-less records are checked again.
        let many = vec![
            rec("p", None),
            rec("q", None),
            rec("r", None),
            rec("s", None),
        ];
        assert_eq!(gone_records(&many, &listed).len(), 4);
    }

    #[test]
    fn a_copy_the_server_changed_is_altered_not_missing_and_extra() {
        let id = |m: &str, n: u32| Identity::IdSize(m.into(), n);
        let local = vec![
            id("a", 100),
            id("b", 200),
            id("c", 300),
            Identity::Hash(vec![1]),
        ];
        let target = vec![id("a", 100), id("b", 202), id("d", 50)];
        let c = compare(&local, &target);
        assert_eq!((c.matched, c.missing, c.extra, c.duplicated), (1, 2, 1, 0));
        assert_eq!(
            c.altered,
            vec![Altered {
                message_id: "b".into(),
                local_size: 200,
                target_size: 202,
                how: None,
            }]
        );
        assert_eq!(c.altered[0].describe(), "<b> stored 2 byte(s) longer");
        assert!(!c.is_match());
        let c = compare(&[id("b", 200)], &[id("b", 199)]);
        assert!(c.is_match() && c.altered.len() == 1);
    }

    #[test]
    fn upload_units_group_by_target_folder_biggest_first() {
        let units = upload_units(vec![
            ("INBOX", "INBOX".to_string(), 40),
            ("Lists/rust", "Lists".to_string(), 10),
            ("Sent", "Sent Items".to_string(), 30),
            ("Lists/debian", "Lists".to_string(), 25),
            ("Drafts", "Drafts".to_string(), 30),
        ]);
        assert_eq!(
            units,
            vec![
                ("INBOX".to_string(), vec!["INBOX"]),
                ("Lists".to_string(), vec!["Lists/rust", "Lists/debian"]),
                ("Sent Items".to_string(), vec!["Sent"]),
                ("Drafts".to_string(), vec!["Drafts"]),
            ]
        );
        assert!(upload_units::<&str>(Vec::new()).is_empty());
    }
    use proptest::prelude::*;

    fn id(s: &str, n: u32) -> Identity {
        Identity::IdSize(s.into(), n)
    }

    #[test]
    fn gmail_folders_are_pushed_by_their_special_use() {
        use PushRole::*;
        assert_eq!(
            push_role(Some(SpecialUse::All), false, false),
            AsIs,
            "ordinary account"
        );
        assert_eq!(push_role(Some(SpecialUse::All), true, false), Unlabelled);
        assert!(matches!(
            push_role(Some(SpecialUse::Flagged), true, true),
            Skip(_)
        ));
        assert!(matches!(
            push_role(Some(SpecialUse::Important), true, false),
            Skip(_)
        ));
        assert!(matches!(
            push_role(Some(SpecialUse::Junk), true, false),
            Skip(_)
        ));
        assert_eq!(
            push_role(Some(SpecialUse::Junk), true, true),
            Into(SpecialUse::Junk)
        );
        assert_eq!(
            push_role(Some(SpecialUse::Sent), true, false),
            Into(SpecialUse::Sent)
        );
        assert_eq!(push_role(None, true, false), AsIs);
        assert_eq!(default_name(SpecialUse::All), "Archive");
    }

    #[test]
    fn special_use_mapping() {
        let special: HashMap<SpecialUse, String> = [
            (SpecialUse::Sent, "Sent Items".to_string()),
            (SpecialUse::Trash, "Deleted Items".to_string()),
        ]
        .into();
        let map: BTreeMap<String, String> = [("Old/Stuff".into(), "Archive/Old".into())].into();
        assert_eq!(target_folder("Sent", &map, &special), "Sent Items");
        assert_eq!(target_folder("sent messages", &map, &special), "Sent Items");
        assert_eq!(target_folder("Trash", &map, &special), "Deleted Items");
        assert_eq!(
            target_folder("Junk", &map, &special),
            "Junk",
            "no \\Junk on target"
        );
        assert_eq!(target_folder("Old/Stuff", &map, &special), "Archive/Old");
        assert_eq!(target_folder("Lists/Sent", &map, &special), "Lists/Sent");
        assert_eq!(target_folder("INBOX", &map, &special), "INBOX");
    }

    #[test]
    fn missing_counts_multiplicity() {
        let local = vec![id("a", 1), id("a", 1), id("b", 2), Identity::Hash(vec![1])];
        let target = vec![id("a", 1), id("b", 3), Identity::Hash(vec![1])];
        assert_eq!(missing_on_target(&local, &[], &target), vec![1, 2]);
        // b stored normalised (size 3) is b.
        let alt = vec![None, None, Some(id("b", 3)), None];
        assert_eq!(missing_on_target(&local, &alt, &target), vec![1]);
    }

    #[test]
    fn what_servers_change_is_named() {
        assert_eq!(normalised_size(b"a\r\nb\r\n"), None);
        assert_eq!(normalised_size(b"a\r\nb"), Some(6));
        assert_eq!(normalised_size(b"a\rb\r\n"), Some(4));
        assert_eq!(normalised_size(b"a\rb"), Some(4));
        assert_eq!(header_change(b"Subject: x\r\n", b"Subject: x\r\n"), None);
        assert_eq!(
            header_change("Subject: Grüße\r\n".as_bytes(), b"Subject: GrXXXXe\r\n").unwrap(),
            "4 raw 8-bit header byte(s) replaced by X"
        );
        assert_eq!(
            header_change(b"Subject: a\r\n", b"Subject: b\r\n").unwrap(),
            "1 header byte(s) changed"
        );
        assert!(header_at_risk("Subject: Grüße".as_bytes()));
        assert!(!header_at_risk(b"Subject: plain"));
        let mut c = Comparison {
            matched: 2,
            ..Default::default()
        };
        c.header_altered("m", 10, "3 raw 8-bit header byte(s) replaced by X".into());
        assert_eq!(c.matched, 1);
        assert_eq!(
            c.altered[0].describe(),
            "<m> stored with 3 raw 8-bit header byte(s) replaced by X"
        );
    }

    #[test]
    fn comparison_finds_missing_extra_and_duplicates() {
        let local = vec![id("a", 1), id("b", 1), id("c", 1)];
        let target = vec![id("a", 1), id("a", 1), id("b", 1), id("x", 9)];
        let c = compare(&local, &target);
        assert_eq!(
            c,
            Comparison {
                missing: 1,
                extra: 1,
                duplicated: 1,
                matched: 2,
                altered: vec![],
            }
        );
        assert!(!c.is_match());
        assert!(compare(&local, &local).is_match());
    }

    proptest! {
        /// Uploading what `missing_on_target` names makes the comparison a match when the
        /// target held nothing else, and uploading it again is never needed.
        #[test]
        fn upload_missing_then_nothing_missing(
            local in proptest::collection::vec(0u8..6, 0..20),
            target in proptest::collection::vec(0u8..6, 0..20),
        ) {
            let l: Vec<Identity> = local.iter().map(|n| id(&n.to_string(), 1)).collect();
            let mut t: Vec<Identity> = target.iter().map(|n| id(&n.to_string(), 1)).collect();
            for i in missing_on_target(&l, &[], &t) {
                t.push(l[i].clone());
            }
            prop_assert!(missing_on_target(&l, &[], &t).is_empty());
            prop_assert_eq!(compare(&l, &t).missing, 0);
        }
    }
}
