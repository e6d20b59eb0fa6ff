//! Maildir file names: the unique part, the `:2,` info and its letters, losslessly.
//!
//! The six standard letters map to flags; lowercase letters are keywords through the folder's
//! `dovecot-keywords` table; any other letter is kept as it was so a rename never drops what
//! another program wrote. Letters are written in ASCII order, as the Maildir spec asks.

use crate::model::{Flag, Flags, NearKey};
use crate::store::maildir::keywords::KeywordTable;

/// A parsed Maildir file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedName {
    /// Everything before the info separator.
    pub key: NearKey,
    /// The letters after `:2,`, as written (empty when there is no info).
    pub letters: String,
}

/// Splits a file name into its unique part and info letters. Names starting with `.` are not
/// messages (editors' and tools' temporary files) and give `None`.
pub fn parse_file_name(name: &str) -> Option<ParsedName> {
    if name.is_empty() || name.starts_with('.') {
        return None;
    }
    match name.rfind(':') {
        Some(colon) => {
            let info = name.get(colon.saturating_add(1)..).unwrap_or("");
            let letters = info.strip_prefix("2,").unwrap_or("");
            Some(ParsedName {
                key: NearKey(name[..colon].to_string()),
                letters: letters.to_string(),
            })
        }
        None => Some(ParsedName {
            key: NearKey(name.to_string()),
            letters: String::new(),
        }),
    }
}

/// What the letters of a file name say: flags, and letters we could not interpret (kept).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodedInfo {
    /// Flags, keywords included where the table knows the letter.
    pub flags: Flags,
    /// Letters with no meaning we know, written back unchanged.
    pub unknown: String,
}

/// Interprets info letters.
pub fn decode_letters(letters: &str, table: &KeywordTable) -> DecodedInfo {
    let mut out = DecodedInfo::default();
    for c in letters.chars() {
        if let Some(flag) = Flag::from_maildir_letter(c) {
            out.flags.insert(flag);
        } else if let Some(word) = c.is_ascii_lowercase().then(|| table.word(c)).flatten() {
            out.flags.insert(Flag::Keyword(word.to_string()));
        } else if !out.unknown.contains(c) {
            out.unknown.push(c);
        }
    }
    out
}

/// Builds the info letters for `flags` plus kept unknown letters. Keywords the table has no
/// letter for are left out (they live in the state database).
pub fn encode_letters(flags: &Flags, unknown: &str, table: &KeywordTable) -> String {
    let mut letters: Vec<char> = flags
        .iter()
        .filter_map(|f| match f {
            Flag::Keyword(word) => table.letter(word),
            other => other.maildir_letter(),
        })
        .collect();
    letters.extend(unknown.chars());
    letters.sort_unstable();
    letters.dedup();
    letters.into_iter().collect()
}

/// The file name for `key` with `letters`: `key:2,letters`.
pub fn file_name(key: &NearKey, letters: &str) -> String {
    format!("{}:2,{}", key.0, letters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rebuilds_names() {
        let p = parse_file_name("123.M4P5.host:2,FRS").unwrap();
        assert_eq!(p.key.0, "123.M4P5.host");
        assert_eq!(p.letters, "FRS");
        assert_eq!(parse_file_name("123.host").unwrap().letters, "");
        assert!(parse_file_name(".nfs123").is_none());
    }

    #[test]
    fn unknown_letters_survive_a_flag_change() {
        let table = KeywordTable::default();
        let d = decode_letters("SXZ", &table);
        assert_eq!(d.unknown, "XZ");
        let mut flags = d.flags.clone();
        flags.insert(Flag::Flagged);
        assert_eq!(encode_letters(&flags, &d.unknown, &table), "FSXZ");
    }

    #[test]
    fn keywords_use_the_table() {
        let mut table = KeywordTable::default();
        table.ensure("work");
        table.ensure("$Junk");
        let flags: Flags = [
            Flag::Seen,
            Flag::Keyword("$Junk".into()),
            Flag::Keyword("work".into()),
        ]
        .into_iter()
        .collect();
        let letters = encode_letters(&flags, "", &table);
        assert_eq!(letters, "Sab");
        assert_eq!(decode_letters(&letters, &table).flags, flags);
        // A letter with no table entry is kept, not turned into a flag.
        assert_eq!(decode_letters("Sz", &table).unknown, "z");
    }
}
