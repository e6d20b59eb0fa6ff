//! Dovecot's `dovecot-keywords` file: the table that gives IMAP keywords the lowercase info
//! letters `a`–`z` in one Maildir folder (line `N word` means letter `a`+N).
//!
//! We read Dovecot's table and extend it the same way, so Dovecot, mutt and arctern agree on what
//! a letter means. A keyword that does not fit (more than 26) is kept only in the state database.

use std::io::Write;
use std::path::Path;

/// The file name inside a Maildir folder.
pub const FILE_NAME: &str = "dovecot-keywords";

/// Letter ↔ keyword table for one folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeywordTable {
    words: Vec<Option<String>>,
    changed: bool,
}

impl KeywordTable {
    /// Reads the table of the folder at `dir`; a missing file is an empty table.
    pub fn load(dir: &Path) -> std::io::Result<KeywordTable> {
        let text = match std::fs::read_to_string(dir.join(FILE_NAME)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e),
        };
        let mut table = KeywordTable::default();
        for line in text.lines() {
            let Some((idx, word)) = line.split_once(' ') else {
                continue;
            };
            let Ok(idx) = idx.parse::<usize>() else {
                continue;
            };
            if idx < 26 && !word.is_empty() {
                if table.words.len() <= idx {
                    table.words.resize(idx.saturating_add(1), None);
                }
                if let Some(slot) = table.words.get_mut(idx) {
                    *slot = Some(word.to_string());
                }
            }
        }
        Ok(table)
    }

    /// The keyword for a lowercase letter.
    pub fn word(&self, letter: char) -> Option<&str> {
        let idx = (letter as u32).checked_sub('a' as u32)? as usize;
        self.words.get(idx)?.as_deref()
    }

    /// The letter for a keyword (IMAP keywords compare case-insensitively).
    pub fn letter(&self, word: &str) -> Option<char> {
        self.words
            .iter()
            .position(|w| w.as_deref().is_some_and(|w| w.eq_ignore_ascii_case(word)))
            .and_then(|i| u8::try_from(i).ok())
            .and_then(|i| b'a'.checked_add(i))
            .map(char::from)
    }

    /// True when the table has a letter for `word`.
    pub fn knows(&self, word: &str) -> bool {
        self.letter(word).is_some()
    }

    /// Gives `word` a letter if it has none and one is free. Returns whether it has one now.
    pub fn ensure(&mut self, word: &str) -> bool {
        if self.knows(word) {
            return true;
        }
        if let Some(free) = self.words.iter_mut().find(|w| w.is_none()) {
            *free = Some(word.to_string());
        } else if self.words.len() < 26 {
            self.words.push(Some(word.to_string()));
        } else {
            return false;
        }
        self.changed = true;
        true
    }

    /// Writes the table back (temp file, fsync, rename) if `ensure` added anything.
    pub fn save_if_changed(&mut self, dir: &Path) -> std::io::Result<()> {
        if !self.changed {
            return Ok(());
        }
        let mut text = String::new();
        for (i, w) in self.words.iter().enumerate() {
            if let Some(w) = w {
                text.push_str(&format!("{i} {w}\n"));
            }
        }
        let tmp = dir.join(format!(".{FILE_NAME}.arctern-tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(FILE_NAME))?;
        self.changed = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dovecot_format_and_extends_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "0 $Junk\n2 work\n").unwrap();
        let mut t = KeywordTable::load(dir.path()).unwrap();
        assert_eq!(t.word('a'), Some("$Junk"));
        assert_eq!(t.word('b'), None);
        assert_eq!(t.letter("WORK"), Some('c'));
        assert!(t.ensure("home"));
        assert_eq!(t.letter("home"), Some('b'));
        t.save_if_changed(dir.path()).unwrap();
        let again = KeywordTable::load(dir.path()).unwrap();
        assert_eq!(again.letter("home"), Some('b'));
        assert_eq!(again.letter("$Junk"), Some('a'));
    }

    #[test]
    fn a_full_table_refuses_more() {
        let mut t = KeywordTable::default();
        for i in 0..26 {
            assert!(t.ensure(&format!("k{i}")));
        }
        assert!(!t.ensure("one-too-many"));
    }
}
