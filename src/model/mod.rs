//! Shared vocabulary: identifiers, flags and the two sides of a sync.
//!
//! Owns the newtypes that cross module boundaries (`Uid`, `UidValidity`, `NearKey`), the flag set
//! model shared by IMAP and Maildir, and `Side`. Holds no I/O and no policy.

pub mod policy;
pub mod rows;
pub mod state;

pub use policy::{Policy, SyncMode};
pub use rows::{Pop3Row, SmtpRow, SmtpState};
pub use state::{Fingerprint, Intent, IntentKind, RowId, StateRow};

use std::fmt;

/// An IMAP message UID (RFC 3501 §2.3.1.1): unique within a mailbox for one UIDVALIDITY.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uid(pub u32);

/// A mailbox's UIDVALIDITY (RFC 3501 §2.3.1.1). When it changes, every stored UID is void.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UidValidity(pub u32);

/// The unique part of a Maildir file name (everything before `:2,`): our identity for a local
/// message, stable across flag changes and moves between `new/` and `cur/`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NearKey(pub String);

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for UidValidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for NearKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the server says of one message that can identify it across UIDVALIDITY changes and
/// other sync tools: its size and Message-ID. Only evidence, never identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// UID.
    pub uid: Uid,
    /// RFC822.SIZE (CRLF size).
    pub size: u32,
    /// Normalised Message-ID (without `<>`).
    pub message_id: Option<String>,
    /// Bytes of sync-marker header lines (`X-TUID`, `X-OfflineIMAP`) in the server's copy: a
    /// copy another tool uploaded carries them, the Maildir original does not.
    pub markers: u32,
}

/// RFC 6154 special uses that matter when moving mail between providers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpecialUse {
    /// Sent mail.
    Sent,
    /// Drafts.
    Drafts,
    /// Deleted mail.
    Trash,
    /// Spam.
    Junk,
    /// Archive.
    Archive,
    /// Every message of the store (Gmail's "All Mail"): the mark of a label model, where the
    /// other folders show the same messages again.
    All,
    /// The flagged messages (Gmail's "Starred").
    Flagged,
    /// The messages a provider deems important (RFC 8457; Gmail's "Important").
    Important,
}

impl SpecialUse {
    /// The attribute's name without the backslash, as the state keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecialUse::Sent => "Sent",
            SpecialUse::Drafts => "Drafts",
            SpecialUse::Trash => "Trash",
            SpecialUse::Junk => "Junk",
            SpecialUse::Archive => "Archive",
            SpecialUse::All => "All",
            SpecialUse::Flagged => "Flagged",
            SpecialUse::Important => "Important",
        }
    }

    /// The inverse of [`SpecialUse::as_str`] (any case, backslash optional).
    pub fn parse(text: &str) -> Option<SpecialUse> {
        let t = text.trim_start_matches('\\');
        [
            SpecialUse::Sent,
            SpecialUse::Drafts,
            SpecialUse::Trash,
            SpecialUse::Junk,
            SpecialUse::Archive,
            SpecialUse::All,
            SpecialUse::Flagged,
            SpecialUse::Important,
        ]
        .into_iter()
        .find(|u| u.as_str().eq_ignore_ascii_case(t))
    }
}

/// A message a sync left alone because it is larger than the account's `max_size`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TooLarge {
    /// Where the message is: `Far` (not downloaded) or `Near` (not uploaded).
    pub side: Side,
    /// `UID 42` on the server, the file's key in the Maildir.
    pub item: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The two ends of a sync, named as isync does: `Far` is the server, `Near` the Maildir.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The IMAP server.
    Far,
    /// The local Maildir.
    Near,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Far => "server",
            Side::Near => "local",
        })
    }
}

/// One message flag: an IMAP system flag or a keyword.
///
/// `\Recent` is deliberately absent: it is session state, not something a client can sync.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flag {
    /// `\Draft`, Maildir `D`.
    Draft,
    /// `\Flagged`, Maildir `F`.
    Flagged,
    /// `$Forwarded` keyword, Maildir `P` (passed), as isync and Dovecot map it.
    Forwarded,
    /// `\Answered`, Maildir `R` (replied).
    Answered,
    /// `\Seen`, Maildir `S`.
    Seen,
    /// `\Deleted`, Maildir `T` (trashed).
    Deleted,
    /// Any other IMAP keyword (RFC 3501 §2.3.2 flag-keyword), kept as the server spelled it.
    Keyword(String),
}

impl Flag {
    /// Parses one IMAP flag as sent on the wire (`\Seen`, `$Forwarded`, `work`). Returns `None`
    /// for `\Recent`, the `\*` wildcard and anything that is not a valid atom.
    pub fn from_imap(s: &str) -> Option<Flag> {
        if let Some(system) = s.strip_prefix('\\') {
            return match system.to_ascii_lowercase().as_str() {
                "seen" => Some(Flag::Seen),
                "answered" => Some(Flag::Answered),
                "flagged" => Some(Flag::Flagged),
                "deleted" => Some(Flag::Deleted),
                "draft" => Some(Flag::Draft),
                _ => None,
            };
        }
        if s.eq_ignore_ascii_case("$Forwarded") {
            return Some(Flag::Forwarded);
        }
        if is_imap_atom(s) {
            Some(Flag::Keyword(s.to_string()))
        } else {
            None
        }
    }

    /// The IMAP spelling of this flag.
    pub fn to_imap(&self) -> &str {
        match self {
            Flag::Draft => "\\Draft",
            Flag::Flagged => "\\Flagged",
            Flag::Forwarded => "$Forwarded",
            Flag::Answered => "\\Answered",
            Flag::Seen => "\\Seen",
            Flag::Deleted => "\\Deleted",
            Flag::Keyword(k) => k,
        }
    }

    /// The Maildir info letter of a system flag; keywords have none of their own.
    pub fn maildir_letter(&self) -> Option<char> {
        match self {
            Flag::Draft => Some('D'),
            Flag::Flagged => Some('F'),
            Flag::Forwarded => Some('P'),
            Flag::Answered => Some('R'),
            Flag::Seen => Some('S'),
            Flag::Deleted => Some('T'),
            Flag::Keyword(_) => None,
        }
    }

    /// The flag a Maildir info letter stands for, if it is one of the standard six.
    pub fn from_maildir_letter(c: char) -> Option<Flag> {
        match c {
            'D' => Some(Flag::Draft),
            'F' => Some(Flag::Flagged),
            'P' => Some(Flag::Forwarded),
            'R' => Some(Flag::Answered),
            'S' => Some(Flag::Seen),
            'T' => Some(Flag::Deleted),
            _ => None,
        }
    }
}

/// Bytes as lower-case hex (digests in file names, records and manifests).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// True when `s` is a non-empty IMAP atom usable as a keyword (RFC 3501 §9: no specials, no
/// controls, no space, ASCII only).
pub fn is_imap_atom(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        })
}

/// A set of flags, ordered deterministically.
///
/// Kept as a sorted, deduplicated vector: a message has a handful of flags at most, and a sync of
/// a 100,000-message folder holds several sets per message (a `BTreeSet` allocates a ~370-byte
/// node for even one flag; this allocates one `Flag` per flag set, and nothing when empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flags(Vec<Flag>);

impl Flags {
    /// The empty set.
    pub fn new() -> Flags {
        Flags(Vec::new())
    }

    /// Builds a set from IMAP flag strings, skipping `\Recent` and invalid ones.
    pub fn from_imap<'a>(items: impl IntoIterator<Item = &'a str>) -> Flags {
        items.into_iter().filter_map(Flag::from_imap).collect()
    }

    /// True when the flag is set.
    pub fn contains(&self, flag: &Flag) -> bool {
        self.0.binary_search(flag).is_ok()
    }

    /// Adds a flag; false when it was already set.
    pub fn insert(&mut self, flag: Flag) -> bool {
        match self.0.binary_search(&flag) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, flag);
                true
            }
        }
    }

    /// Removes a flag; false when it was not set.
    pub fn remove(&mut self, flag: &Flag) -> bool {
        match self.0.binary_search(flag) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// True when no flag is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the flags in order.
    pub fn iter(&self) -> impl Iterator<Item = &Flag> {
        self.0.iter()
    }

    /// The parenthesised IMAP flag list, e.g. `(\Flagged \Seen)`.
    pub fn to_imap_list(&self) -> String {
        let items: Vec<&str> = self.0.iter().map(Flag::to_imap).collect();
        format!("({})", items.join(" "))
    }

    /// A stable text form for the state database: IMAP spellings separated by spaces.
    pub fn to_db(&self) -> String {
        let items: Vec<&str> = self.0.iter().map(Flag::to_imap).collect();
        items.join(" ")
    }

    /// Parses the text form written by [`Flags::to_db`].
    pub fn from_db(s: &str) -> Flags {
        Flags::from_imap(s.split(' ').filter(|p| !p.is_empty()))
    }

    /// The flags in `self` but not in `other`.
    pub fn minus(&self, other: &Flags) -> Flags {
        Flags(
            self.0
                .iter()
                .filter(|f| !other.contains(f))
                .cloned()
                .collect(),
        )
    }

    /// Flags from Maildir info letters (`DFPRST`, as Maildir file names, mbsync's state and
    /// offlineimap's status write them); other characters are ignored.
    pub fn from_maildir_letters(letters: &str) -> Flags {
        letters
            .chars()
            .filter_map(Flag::from_maildir_letter)
            .collect()
    }

    /// The flags in both.
    pub fn intersection(&self, other: &Flags) -> Flags {
        Flags(
            self.0
                .iter()
                .filter(|f| other.contains(f))
                .cloned()
                .collect(),
        )
    }

    /// Applies the changes that turned `from` into `to` onto `self`: flags added there are added
    /// here, flags removed there are removed here, everything else is left alone.
    pub fn apply_change(&self, from: &Flags, to: &Flags) -> Flags {
        let mut out = self.clone();
        for added in to.minus(from).0 {
            out.insert(added);
        }
        for removed in from.minus(to).0 {
            out.remove(&removed);
        }
        out
    }
}

impl FromIterator<Flag> for Flags {
    fn from_iter<I: IntoIterator<Item = Flag>>(iter: I) -> Self {
        let mut v: Vec<Flag> = iter.into_iter().collect();
        v.sort();
        v.dedup();
        v.shrink_to_fit();
        Flags(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imap_flags_parse_case_insensitively_and_skip_recent() {
        let f = Flags::from_imap(["\\SEEN", "\\Recent", "$forwarded", "work", "bad(atom"]);
        assert_eq!(
            f,
            [Flag::Seen, Flag::Forwarded, Flag::Keyword("work".into())]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn db_form_round_trips() {
        let f: Flags = [Flag::Seen, Flag::Draft, Flag::Keyword("$Label1".into())]
            .into_iter()
            .collect();
        assert_eq!(Flags::from_db(&f.to_db()), f);
        assert_eq!(Flags::from_db(""), Flags::new());
    }

    #[test]
    fn apply_change_adds_and_removes_only_what_changed() {
        let base: Flags = [Flag::Seen].into_iter().collect();
        let changed: Flags = [Flag::Flagged].into_iter().collect();
        let other: Flags = [Flag::Seen, Flag::Answered].into_iter().collect();
        let got = other.apply_change(&base, &changed);
        assert_eq!(got, [Flag::Flagged, Flag::Answered].into_iter().collect());
    }
}
