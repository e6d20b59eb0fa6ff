//! Label-model accounts (Gmail's labels; any server with a SPECIAL-USE `\All` folder): every
//! folder is mirrored, but a message the Maildir already holds in another folder is not
//! downloaded again; its new file is a hard link to the stored one (one inode, flags per file
//! as Maildir keeps them). A link needs evidence: the same Message-ID and size in the state,
//! and the stored file's header section equal, byte for byte, to the server's
//! (`BODY.PEEK[HEADER]`); anything less is downloaded, never linked to the wrong message.

use crate::config::ImapAccount;
use crate::names::FolderName;
use crate::store::eol;
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
}

impl<'a> StoredCopies<'a> {
    /// For `account`.
    pub fn new(account: &'a ImapAccount) -> StoredCopies<'a> {
        StoredCopies {
            account,
            listings: RefCell::new(HashMap::new()),
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

    /// A stored file among `copies` (folder name, Maildir key: what the state knows under
    /// the message's Message-ID and size) whose header section equals `server_header` (CRLF,
    /// as the server sends `BODY[HEADER]`). A folder's listing is read once per run; a copy
    /// made after it (earlier in this run) is not found there, and its message is downloaded.
    pub fn find(&self, copies: &[(String, String)], server_header: &[u8]) -> Option<PathBuf> {
        for (folder, key) in copies {
            let Some(path) = self.listing(folder).and_then(|l| l.get(key).cloned()) else {
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

    #[test]
    fn header_sections() {
        assert_eq!(
            header_section(b"A: b\r\n\r\nbody\r\n\r\nx"),
            b"A: b\r\n\r\n"
        );
        assert_eq!(header_section(b"A: b\r\n"), b"A: b\r\n");
    }
}
