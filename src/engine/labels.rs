//! Stored copies of a message across an account's folders, linked instead of downloaded again.
//!
//! Label-model accounts (Gmail's labels; any server with a SPECIAL-USE `\All` folder): every
//! folder is mirrored, but a message the Maildir already holds in another folder is not
//! downloaded again; its new file is a hard link to the stored one (one inode, flags per file
//! as Maildir keeps them). Every other account, on a resync: a message the server moved to
//! another folder (UID MOVE, or COPY and EXPUNGE) is linked from the file of the folder it left
//! (still in place, or kept in `tmp/` for the run by [`StoredCopies::depart`] when that folder
//! was synced first), so a move costs no download. A link needs evidence: the server's own
//! identity of the message (Gmail's X-GM-MSGID, RFC 8474's EMAILID) recorded with the stored
//! copy, or, where the server has none or the copy was stored without one, the same Message-ID
//! and size in the state and the stored file's header section equal, byte for byte, to the
//! server's (`BODY.PEEK[HEADER]`). Anything less is downloaded, never linked to the wrong
//! message; a stored namesake whose identity differs is a different message.

use crate::config::ImapAccount;
use crate::db::{DbError, StateDb, StoredCopy};
use crate::names::FolderName;
use crate::store::eol;
use crate::store::imap::Identity;
use crate::store::maildir::{MaildirFolder, layout};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;

/// Finds stored copies of messages across the account's folders; folder listings are read
/// once per run and shared by its folder workers.
pub struct StoredCopies<'a> {
    account: &'a ImapAccount,
    /// Folder name → Maildir key → file path.
    listings: RefCell<HashMap<String, Rc<BTreeMap<String, PathBuf>>>>,
    /// Files of messages the server took out of a folder, kept until the run ends, by the
    /// Message-ID and size of their message.
    departed: RefCell<HashMap<(String, u32), Vec<PathBuf>>>,
}

impl<'a> StoredCopies<'a> {
    /// For `account`.
    pub fn new(account: &'a ImapAccount) -> StoredCopies<'a> {
        StoredCopies {
            account,
            listings: RefCell::new(HashMap::new()),
            departed: RefCell::new(HashMap::new()),
        }
    }

    /// Keeps the file at `path` (taken out of its folder by [`MaildirFolder::depart`]) as a
    /// copy of the message with `message_id` and server `size`, until [`StoredCopies::sweep`].
    pub fn depart(&self, message_id: String, size: u32, path: PathBuf) {
        self.departed
            .borrow_mut()
            .entry((message_id, size))
            .or_default()
            .push(path);
    }

    /// Whether a departed file may be the message with `message_id` and `size`.
    pub fn has_departed(&self, message_id: &str, size: u32) -> bool {
        self.departed
            .borrow()
            .contains_key(&(message_id.to_string(), size))
    }

    /// Whether `path` is a departed file of this run.
    pub fn is_departed(&self, path: &std::path::Path) -> bool {
        self.departed.borrow().values().flatten().any(|p| p == path)
    }

    /// A departed file with `message_id` and `size` whose header section equals
    /// `server_header`.
    pub fn find_departed(
        &self,
        message_id: &str,
        size: u32,
        server_header: &[u8],
    ) -> Option<PathBuf> {
        let departed = self.departed.borrow();
        departed
            .get(&(message_id.to_string(), size))?
            .iter()
            .find(|p| {
                std::fs::read(p).is_ok_and(|raw| {
                    header_section(&eol::lf_to_crlf(&raw)) == header_section(server_header)
                })
            })
            .cloned()
    }

    /// Removes the departed files (their messages now live in the folders they moved to, or
    /// on the server only, as its deletion said).
    pub fn sweep(&self) {
        for path in self.departed.borrow_mut().drain().flat_map(|(_, v)| v) {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }

    /// Forgets a folder's listing (it changed).
    pub fn forget(&self, folder: &str) {
        self.listings.borrow_mut().remove(folder);
    }

    fn listing(&self, folder: &str) -> Option<Rc<BTreeMap<String, PathBuf>>> {
        if let Some(l) = self.listings.borrow().get(folder) {
            return Some(l.clone());
        }
        let name = FolderName::parse(folder).ok()?;
        let path = layout::folder_path(&self.account.maildir, self.account.layout, &name).ok()?;
        let md = MaildirFolder::open(&path).ok()?;
        let scanned = md.scan().ok()?;
        let map: BTreeMap<String, PathBuf> = scanned
            .values()
            .map(|m| (m.key.0.clone(), md.message_path(m)))
            .collect();
        let map = Rc::new(map);
        self.listings
            .borrow_mut()
            .insert(folder.to_string(), map.clone());
        Some(map)
    }

    fn path_of(&self, copy: &StoredCopy) -> Option<PathBuf> {
        self.listing(&copy.folder)
            .and_then(|l| l.get(&copy.key).cloned())
    }

    /// The first of `copies` (the same message, by the server's identity) still on disk. A
    /// folder's listing is read once per run; a copy made after it (earlier in this run) is
    /// not found there, and its message is downloaded.
    pub fn find_any(&self, copies: &[StoredCopy]) -> Option<PathBuf> {
        copies.iter().find_map(|c| {
            let path = self.path_of(c)?;
            if path.is_file() {
                Some(path)
            } else {
                self.forget(&c.folder);
                None
            }
        })
    }

    /// A stored file among `copies` (what the state knows under the message's Message-ID and
    /// size) whose header section equals `server_header` (CRLF, as the server sends
    /// `BODY[HEADER]`).
    pub fn find(&self, copies: &[StoredCopy], server_header: &[u8]) -> Option<PathBuf> {
        for copy in copies {
            let folder = &copy.folder;
            let Some(path) = self.path_of(copy) else {
                continue;
            };
            let Ok(raw) = std::fs::read(&path) else {
                // Renamed by a mail reader since the listing: read it again next time.
                self.forget(folder);
                continue;
            };
            let crlf = eol::lf_to_crlf(&raw);
            if header_section(&crlf) == header_section(server_header) {
                return Some(path);
            }
        }
        None
    }
}

impl Drop for StoredCopies<'_> {
    /// The run is over (or failed): departed files go, whatever happened.
    fn drop(&mut self) {
        self.sweep();
    }
}

/// Why a server message may be one already stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// Stored copies recorded under the server's identity of this message: the same message.
    SameObject(Vec<StoredCopy>),
    /// Stored copies with its Message-ID and size, to be confirmed by the header section.
    Namesakes(Vec<StoredCopy>),
}

/// What the state holds that may be `id`'s message, or `None` (download it).
pub fn evidence_for(db: &StateDb, id: &Identity) -> Result<Option<Evidence>, DbError> {
    if let Some(object) = &id.object_id {
        let same = db.copies_by_object_id(object)?;
        if !same.is_empty() {
            return Ok(Some(Evidence::SameObject(same)));
        }
    }
    let Some(mid) = &id.message_id else {
        return Ok(None);
    };
    let namesakes = namesakes_to_compare(db.stored_copies(mid, id.size)?, id.object_id.as_deref());
    Ok((!namesakes.is_empty()).then_some(Evidence::Namesakes(namesakes)))
}

/// Of the copies with a message's Message-ID and size, those its header may confirm: a copy
/// recorded under another identity of the same scheme is another message (Gmail keeps two
/// messages with one Message-ID apart), never a link.
pub fn namesakes_to_compare(copies: Vec<StoredCopy>, object_id: Option<&str>) -> Vec<StoredCopy> {
    let scheme = |o: &str| o.split(':').next().unwrap_or("").to_string();
    copies
        .into_iter()
        .filter(|c| match (c.object_id.as_deref(), object_id) {
            (Some(theirs), Some(ours)) => scheme(theirs) != scheme(ours),
            _ => true,
        })
        .collect()
}

/// What pairing reads of a local file: its Message-ID, its size as the server counts it (CRLF)
/// and its header section (CRLF).
pub struct FileEvidence {
    /// Normalised Message-ID, if any.
    pub message_id: Option<String>,
    /// Size with CRLF line ends.
    pub size: u32,
    /// Header section, CRLF.
    pub header: Vec<u8>,
}

/// [`FileEvidence`] of a file's bytes (LF, as stored).
pub fn file_evidence(raw: &[u8]) -> FileEvidence {
    let crlf = eol::lf_to_crlf(raw);
    FileEvidence {
        message_id: crate::message::message_id(raw),
        size: u32::try_from(crlf.len()).unwrap_or(u32::MAX),
        header: header_section(&crlf).to_vec(),
    }
}

/// A state row as the rename and move pairing reads it.
pub fn linked(r: &crate::db::MessageRow) -> crate::sync::renames::Linked<'_> {
    crate::sync::renames::Linked {
        row: r.state.id,
        uid: r.state.far,
        key: r.state.near.as_ref(),
        message_id: r.message_id.as_deref(),
        size: r.size,
    }
}

/// The header section of a message (up to and including the empty line), or all of it.
pub fn header_section(crlf: &[u8]) -> &[u8] {
    crlf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .and_then(|i| crlf.get(..i.saturating_add(4)))
        .unwrap_or(crlf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(folder: &str, object_id: Option<&str>) -> StoredCopy {
        StoredCopy {
            folder: folder.into(),
            key: "k".into(),
            object_id: object_id.map(str::to_string),
        }
    }

    #[test]
    fn a_namesake_under_another_identity_is_another_message() {
        let copies = vec![
            copy("a", Some("gm:1")),
            copy("b", None),
            copy("c", Some("emailid:M1")),
        ];
        let kept: Vec<String> = namesakes_to_compare(copies.clone(), Some("gm:2"))
            .into_iter()
            .map(|c| c.folder)
            .collect();
        assert_eq!(kept, ["b", "c"]);
        assert_eq!(namesakes_to_compare(copies, None).len(), 3);
    }

    #[test]
    fn header_sections() {
        assert_eq!(
            header_section(b"A: b\r\n\r\nbody\r\n\r\nx"),
            b"A: b\r\n\r\n"
        );
        assert_eq!(header_section(b"A: b\r\n"), b"A: b\r\n");
    }
}
