//! Our own Maildir store: scanning, delivery, flag renames and deletion for one folder.
//!
//! Why not the `maildir` crate (0.6): it does not fsync the directory after a rename (a crash can
//! lose a delivered message), rescans `cur/` for every flag change (hours for a flag sync at 100k
//! messages), and has no Maildir++ hierarchy, name encoding or `maildirfolder` file. Here the
//! state database maps each message to its file name, so a flag change is one rename.
//!
//! Every write follows tmp/ → fsync → rename; callers fsync the directories once per batch with
//! [`MaildirFolder::sync_dirs`] *before* recording the result in the state database.

pub mod durability;
pub mod info;
pub mod keywords;
pub mod layout;

use crate::model::{Flag, Flags, NearKey};
use keywords::KeywordTable;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// A Maildir operation failed; names the path and what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct MaildirError {
    /// What was being done.
    pub op: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

fn err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> MaildirError + 'a {
    move |source| MaildirError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Which subdirectory a message file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sub {
    /// `new/`: not yet seen by a mail reader. Usually no info, but mail readers may add one
    /// (neomutt flags unread mail in place), and it counts as in `cur/`.
    New,
    /// `cur/`.
    Cur,
}

impl Sub {
    /// The subdirectory's name.
    pub fn dir(self) -> &'static str {
        match self {
            Sub::New => "new",
            Sub::Cur => "cur",
        }
    }
}

/// One message file as found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearMessage {
    /// The unique part of the file name.
    pub key: NearKey,
    /// `new/` or `cur/`.
    pub sub: Sub,
    /// The full file name.
    pub file_name: String,
    /// The flags its info letters say.
    pub flags: Flags,
    /// Info letters we do not interpret, kept across renames.
    pub unknown: String,
}

/// One Maildir folder (a directory with `cur/`, `new/`, `tmp/`).
#[derive(Debug)]
pub struct MaildirFolder {
    path: PathBuf,
    keywords: KeywordTable,
    /// Which of `new/` and `cur/` had entries renamed or removed since the last
    /// [`MaildirFolder::sync_dirs`]: only those need an fsync.
    dirty: std::cell::Cell<DirtyDirs>,
}

/// `new/` and `cur/` with changes not yet made durable.
#[derive(Clone, Copy, Debug, Default)]
struct DirtyDirs {
    new: bool,
    cur: bool,
}

static KEY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The name prefix of a file [`MaildirFolder::depart`] keeps in `tmp/`.
pub const DEPARTED_PREFIX: &str = "arctern-departed.";

/// A new unique file-name part, following the Maildir convention
/// `<seconds>.M<micros>P<pid>Q<counter>.<host>`.
pub fn new_key() -> NearKey {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let n = KEY_COUNTER.fetch_add(1, Ordering::Relaxed);
    NearKey(format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        n,
        host_name()
    ))
}

/// A unique file-name part that carries `tag` (letters, digits and `-`), for files whose
/// name must say where they came from: `<seconds>.<tag>.<host>`. The caller makes the tag
/// unique (the mbox import puts the message's hash in it).
pub fn tagged_key(tag: &str) -> NearKey {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    NearKey(format!("{}.{tag}.{}", now.as_secs(), host_name()))
}

fn host_name() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .unwrap_or_else(|_| "localhost".to_string());
        let clean: String = raw
            .trim()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if clean.is_empty() {
            "localhost".to_string()
        } else {
            clean
        }
    })
}

fn fsync_dir(dir: &Path) -> Result<(), MaildirError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(err("fsync", dir))
}

/// Nanosecond mtimes of `cur/` and `new/`: any delivery, rename or deletion changes one.
pub fn dir_mtimes(path: &Path) -> Option<(i64, i64)> {
    let ns = |sub: &str| -> Option<i64> {
        let t = std::fs::metadata(path.join(sub)).ok()?.modified().ok()?;
        Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos() as i64)
    };
    Some((ns("cur")?, ns("new")?))
}

impl MaildirFolder {
    /// Opens an existing folder. A missing or unreadable folder is an error, never an empty one.
    pub fn open(path: &Path) -> Result<MaildirFolder, MaildirError> {
        for sub in ["cur", "new", "tmp"] {
            let p = path.join(sub);
            let meta = std::fs::metadata(&p).map_err(err("open Maildir folder", &p))?;
            if !meta.is_dir() {
                return Err(MaildirError {
                    op: "open Maildir folder",
                    path: p,
                    source: std::io::Error::other("not a directory"),
                });
            }
        }
        let keywords = KeywordTable::load(path).map_err(err("read keywords of", path))?;
        Ok(MaildirFolder {
            path: path.to_path_buf(),
            keywords,
            dirty: Default::default(),
        })
    }

    /// Creates the folder (and `maildirfolder` for a Maildir++ subfolder), durably.
    pub fn create(path: &Path, subfolder: bool) -> Result<MaildirFolder, MaildirError> {
        for sub in ["cur", "new", "tmp"] {
            let p = path.join(sub);
            std::fs::create_dir_all(&p).map_err(err("create", &p))?;
        }
        if subfolder {
            let marker = path.join("maildirfolder");
            std::fs::File::create(&marker).map_err(err("create", &marker))?;
        }
        fsync_dir(path)?;
        if let Some(parent) = path.parent() {
            fsync_dir(parent)?;
        }
        Self::open(path)
    }

    /// The folder's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keyword letter table.
    pub fn keywords(&self) -> &KeywordTable {
        &self.keywords
    }

    /// Every message in `new/` and `cur/`, by key. When the same key is in both, `cur/` wins.
    pub fn scan(&self) -> Result<BTreeMap<NearKey, NearMessage>, MaildirError> {
        let mut out = BTreeMap::new();
        for sub in [Sub::New, Sub::Cur] {
            let dir = self.path.join(sub.dir());
            let entries = std::fs::read_dir(&dir).map_err(err("read", &dir))?;
            for entry in entries {
                let entry = entry.map_err(err("read", &dir))?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    tracing::warn!(path = %entry.path().display(), "skipping file with a non-UTF-8 name");
                    continue;
                };
                let Some(parsed) = info::parse_file_name(&name) else {
                    continue;
                };
                // The info counts wherever the file is: mutt and neomutt keep unread mail in
                // `new/` and flag it there (`new/<key>:2,F`) without moving it to `cur/`.
                let decoded = info::decode_letters(&parsed.letters, &self.keywords);
                out.insert(
                    parsed.key.clone(),
                    NearMessage {
                        key: parsed.key,
                        sub,
                        file_name: name,
                        flags: decoded.flags,
                        unknown: decoded.unknown,
                    },
                );
            }
        }
        Ok(out)
    }

    /// The full path of a message.
    pub fn message_path(&self, msg: &NearMessage) -> PathBuf {
        self.path.join(msg.sub.dir()).join(&msg.file_name)
    }

    /// Reads a message's bytes.
    pub fn read(&self, msg: &NearMessage) -> Result<Vec<u8>, MaildirError> {
        let p = self.message_path(msg);
        std::fs::read(&p).map_err(err("read", &p))
    }

    /// A message file's modification time (Dovecot's convention for INTERNALDATE).
    pub fn mtime(&self, msg: &NearMessage) -> Option<SystemTime> {
        std::fs::metadata(self.message_path(msg))
            .and_then(|m| m.modified())
            .ok()
    }

    /// True when this table can store `flag` in a file name (system flags always; keywords
    /// when the table has a letter for them).
    pub fn can_represent(&self, flag: &Flag) -> bool {
        match flag {
            Flag::Keyword(w) => self.keywords.knows(w),
            _ => true,
        }
    }

    fn letters_for(&mut self, flags: &Flags, unknown: &str) -> Result<String, MaildirError> {
        for f in flags.iter() {
            if let Flag::Keyword(w) = f {
                self.keywords.ensure(w);
            }
        }
        self.keywords
            .save_if_changed(&self.path)
            .map_err(err("write keywords of", &self.path))?;
        Ok(info::encode_letters(flags, unknown, &self.keywords))
    }

    /// Writes one message: `tmp/` → fsync → rename into `new/` (no flags) or `cur/`. The
    /// directory is not fsynced here: call [`MaildirFolder::sync_dirs`] once per batch. (Bulk
    /// downloads use the batched [`MaildirFolder::write_tmp`] / barrier / `publish` instead.)
    pub fn deliver(
        &mut self,
        key: &NearKey,
        body: &[u8],
        flags: &Flags,
        mtime: Option<SystemTime>,
    ) -> Result<NearMessage, MaildirError> {
        self.write_tmp(key, body, mtime)?;
        let tmp = self.path.join("tmp").join(&key.0);
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(err("fsync", &tmp))?;
        self.publish(key, flags)
    }

    /// First half of a batched delivery: writes `tmp/<key>` (and its mtime) without an fsync.
    /// Run [`durability::make_durable`] once for the batch, then
    /// [`MaildirFolder::publish`] each message.
    pub fn write_tmp(
        &self,
        key: &NearKey,
        body: &[u8],
        mtime: Option<SystemTime>,
    ) -> Result<(), MaildirError> {
        let tmp = self.path.join("tmp").join(&key.0);
        let mut f = std::fs::File::create(&tmp).map_err(err("create", &tmp))?;
        f.write_all(body).map_err(err("write", &tmp))?;
        if let Some(t) = mtime {
            f.set_modified(t).map_err(err("set mtime of", &tmp))?;
        }
        Ok(())
    }

    /// Like [`MaildirFolder::write_tmp`] for a message with CRLF line ends (as IMAP sends it):
    /// converted to LF on the way to the file, in pieces, never copied whole.
    pub fn write_tmp_from_crlf(
        &self,
        key: &NearKey,
        crlf: &[u8],
        mtime: Option<SystemTime>,
    ) -> Result<(), MaildirError> {
        let tmp = self.path.join("tmp").join(&key.0);
        let f = std::fs::File::create(&tmp).map_err(err("create", &tmp))?;
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, f);
        crate::store::eol::write_crlf_as_lf(crlf, &mut w).map_err(err("write", &tmp))?;
        let f = w
            .into_inner()
            .map_err(|e| err("write", &tmp)(e.into_error()))?;
        if let Some(t) = mtime {
            f.set_modified(t).map_err(err("set mtime of", &tmp))?;
        }
        Ok(())
    }

    /// Second half of a batched delivery: renames `tmp/<key>` into `new/` (no flags) or `cur/`.
    /// The directories are fsynced by [`MaildirFolder::sync_dirs`] once per batch.
    pub fn publish(&mut self, key: &NearKey, flags: &Flags) -> Result<NearMessage, MaildirError> {
        let tmp = self.path.join("tmp").join(&key.0);
        let (sub, file_name) = if flags.is_empty() {
            (Sub::New, key.0.clone())
        } else {
            let letters = self.letters_for(flags, "")?;
            (Sub::Cur, info::file_name(key, &letters))
        };
        let dest = self.path.join(sub.dir()).join(&file_name);
        std::fs::rename(&tmp, &dest).map_err(err("rename into", &dest))?;
        self.mark_dirty(sub);
        Ok(NearMessage {
            key: key.clone(),
            sub,
            file_name,
            flags: flags.clone(),
            unknown: String::new(),
        })
    }

    /// Where [`MaildirFolder::publish`] expects a message written by a streaming writer.
    pub fn tmp_path(&self, key: &NearKey) -> PathBuf {
        self.path.join("tmp").join(&key.0)
    }

    /// Removes a leftover `tmp/` file of an interrupted delivery, if any.
    pub fn remove_tmp(&self, key: &NearKey) {
        let _ = std::fs::remove_file(self.path.join("tmp").join(&key.0));
    }

    /// Renames a message so its info says `flags` (moving it to `cur/`).
    pub fn set_flags(
        &mut self,
        msg: &NearMessage,
        flags: &Flags,
    ) -> Result<NearMessage, MaildirError> {
        let letters = self.letters_for(flags, &msg.unknown)?;
        let file_name = info::file_name(&msg.key, &letters);
        let from = self.message_path(msg);
        let to = self.path.join("cur").join(&file_name);
        if from != to {
            std::fs::rename(&from, &to).map_err(err("rename", &from))?;
            self.mark_dirty(msg.sub);
            self.mark_dirty(Sub::Cur);
        }
        let decoded = info::decode_letters(&letters, &self.keywords);
        Ok(NearMessage {
            key: msg.key.clone(),
            sub: Sub::Cur,
            file_name,
            flags: decoded.flags,
            unknown: msg.unknown.clone(),
        })
    }

    /// Deletes a message file. A file already gone is not an error.
    pub fn delete(&self, msg: &NearMessage) -> Result<(), MaildirError> {
        let p = self.message_path(msg);
        self.mark_dirty(msg.sub);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err("delete", &p)(e)),
        }
    }

    /// Takes a message out of the folder as [`MaildirFolder::delete`] does, but keeps its file
    /// for the rest of the run under `tmp/` (which mail readers ignore), where another folder
    /// may link it: a message the server moved out of this folder is found there by the folder
    /// it moved to. Returns the kept file, or `None` when it was deleted instead (the rename
    /// failed).
    pub fn depart(&self, msg: &NearMessage) -> Result<Option<PathBuf>, MaildirError> {
        let from = self.message_path(msg);
        let kept = self
            .path
            .join("tmp")
            .join(format!("{DEPARTED_PREFIX}{}", msg.key.0));
        self.mark_dirty(msg.sub);
        match std::fs::rename(&from, &kept) {
            Ok(()) => Ok(Some(kept)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(_) => self.delete(msg).map(|()| None),
        }
    }

    /// Removes files [`MaildirFolder::depart`] kept in `tmp/` that `keep` does not want (left by
    /// an earlier run that was interrupted before it removed them).
    pub fn sweep_departed(&self, keep: impl Fn(&Path) -> bool) {
        let Ok(entries) = std::fs::read_dir(self.path.join("tmp")) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(DEPARTED_PREFIX))
                && !keep(&path)
            {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// Makes renames and deletions in `new/` and `cur/` durable: fsyncs whichever of the two
    /// changed since the last call (none, one or both).
    pub fn sync_dirs(&self) -> Result<(), MaildirError> {
        let dirty = self.dirty.get();
        if dirty.new {
            fsync_dir(&self.path.join("new"))?;
        }
        if dirty.cur {
            fsync_dir(&self.path.join("cur"))?;
        }
        self.dirty.set(DirtyDirs::default());
        Ok(())
    }

    fn mark_dirty(&self, sub: Sub) {
        let mut d = self.dirty.get();
        match sub {
            Sub::New => d.new = true,
            Sub::Cur => d.cur = true,
        }
        self.dirty.set(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliver_scan_rename_delete() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = MaildirFolder::create(&dir.path().join(".A"), true).unwrap();
        assert!(dir.path().join(".A/maildirfolder").exists());
        let k1 = new_key();
        let k2 = new_key();
        assert_ne!(k1, k2);
        let m1 = f
            .deliver(&k1, b"Subject: a\n\nx\n", &Flags::new(), None)
            .unwrap();
        assert_eq!(m1.sub, Sub::New);
        let flags: Flags = [Flag::Seen, Flag::Keyword("work".into())]
            .into_iter()
            .collect();
        let m2 = f.deliver(&k2, b"Subject: b\n\ny\n", &flags, None).unwrap();
        assert_eq!(m2.file_name, format!("{}:2,Sa", k2.0));
        f.sync_dirs().unwrap();

        let reopened = MaildirFolder::open(f.path()).unwrap();
        let scan = reopened.scan().unwrap();
        assert_eq!(scan.len(), 2);
        assert_eq!(scan[&k2].flags, flags);
        assert_eq!(reopened.read(&scan[&k1]).unwrap(), b"Subject: a\n\nx\n");

        let m1b = f
            .set_flags(&scan[&k1], &[Flag::Flagged].into_iter().collect())
            .unwrap();
        assert_eq!(m1b.sub, Sub::Cur);
        assert_eq!(f.scan().unwrap()[&k1].flags, m1b.flags);
        f.delete(&m1b).unwrap();
        f.delete(&m1b).unwrap();
        assert_eq!(f.scan().unwrap().len(), 1);
    }

    #[test]
    fn info_of_a_file_in_new_counts() {
        // What neomutt leaves when an unread message is flagged: the file stays in new/.
        let dir = tempfile::tempdir().unwrap();
        let f = MaildirFolder::create(&dir.path().join(".A"), true).unwrap();
        std::fs::write(
            f.path().join("new/1700000000.M1P2.host:2,F"),
            b"Subject: a\n\nx\n",
        )
        .unwrap();
        std::fs::write(
            f.path().join("new/1700000001.M1P2.host"),
            b"Subject: b\n\ny\n",
        )
        .unwrap();
        let scan = f.scan().unwrap();
        let flagged = &scan[&NearKey("1700000000.M1P2.host".into())];
        assert_eq!(flagged.sub, Sub::New);
        assert_eq!(flagged.flags, [Flag::Flagged].into_iter().collect());
        assert!(
            scan[&NearKey("1700000001.M1P2.host".into())]
                .flags
                .is_empty()
        );
    }

    #[test]
    fn a_missing_folder_is_an_error_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        let e = MaildirFolder::open(&dir.path().join("gone")).unwrap_err();
        assert!(e.to_string().contains("gone"), "{e}");
    }
}
