//! Finding another sync tool's records for a folder arctern adopts: mbsync's sync state and
//! offlineimap's status, in the places those tools keep them (or where the account's
//! `mbsync_state` / `offlineimap_status` keys say). Files are only read. What the records
//! decide is [`crate::sync::adopt`]'s job; this module only locates, reads and checks them.

use crate::config::{AdoptSources, ImapAccount};
use crate::names::{FolderName, encode_mutf7};
use crate::sync::adopt::{self, Records};
use md5::Digest;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One folder being adopted.
pub struct Place<'a> {
    /// arctern's name of the folder.
    pub name: &'a FolderName,
    /// The server's (modified UTF-7) name.
    pub wire: &'a str,
    /// The local Maildir folder.
    pub path: &'a Path,
    /// The server folder's UIDVALIDITY now.
    pub uidvalidity: u32,
}

/// The records that apply to `place`, and notes on records found but not used (their
/// UIDVALIDITY differs, they are unreadable, several match).
pub fn find(account: &ImapAccount, place: &Place<'_>) -> (Option<Records>, Vec<String>) {
    let mut notes = Vec::new();
    let home = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf());
    let mut found = mbsync(&account.adopt, home.as_deref(), place, &mut notes);
    found.extend(offlineimap(
        &account.adopt,
        home.as_deref(),
        place,
        &mut notes,
    ));
    match found.len() {
        0 => (None, notes),
        1 => (found.pop(), notes),
        _ => {
            let sources: Vec<String> = found.iter().map(|r| r.source.clone()).collect();
            notes.push(format!(
                "several sync records fit this folder ({}); none used, pairing by content",
                sources.join(", ")
            ));
            (None, notes)
        }
    }
}

/// The names another tool may give the folder: arctern's (UTF-8, `/`-separated), the same in
/// modified UTF-7, and the server's own name, each also with `.` as separator (offlineimap's
/// default local separator, and the server delimiter of many Dovecot and Courier setups).
fn name_forms(place: &Place<'_>) -> BTreeSet<String> {
    let utf7: Vec<String> = place
        .name
        .components()
        .iter()
        .map(|c| encode_mutf7(c))
        .collect();
    let mut forms: BTreeSet<String> = [
        place.name.as_str().to_string(),
        utf7.join("/"),
        place.wire.to_string(),
    ]
    .into();
    for f in forms.clone() {
        forms.insert(f.replace('/', "."));
    }
    forms
}

/// mbsync's state for the folder: `.mbsyncstate` inside it (`SyncState *`), then under the
/// configured `mbsync_state` or mbsync's default `~/.mbsync/`: `<dir>/<box>` (a channel's
/// `SyncState dir/`), `<prefix><box>`, or `<dir>/:<far store>:<box>_:<near store>:<box>` (the
/// global default), `/` in box names written `!` as mbsync does.
fn mbsync(
    sources: &AdoptSources,
    home: Option<&Path>,
    place: &Place<'_>,
    notes: &mut Vec<String>,
) -> Vec<Records> {
    let boxes: BTreeSet<String> = name_forms(place)
        .into_iter()
        .map(|f| f.replace('/', "!"))
        .collect();
    let mut candidates: BTreeSet<PathBuf> = [place.path.join(".mbsyncstate")].into();
    let configured = sources.mbsync_state.clone();
    let base = configured.or_else(|| home.map(|h| h.join(".mbsync/")));
    if let Some(base) = base {
        let text = base.to_string_lossy().into_owned();
        if text.ends_with('/') || base.is_dir() {
            for b in &boxes {
                candidates.insert(base.join(b));
            }
            if let Ok(entries) = std::fs::read_dir(&base) {
                for e in entries.flatten() {
                    let file = e.file_name().to_string_lossy().into_owned();
                    if [".journal", ".new", ".lock"]
                        .iter()
                        .any(|s| file.ends_with(s))
                    {
                        continue;
                    }
                    let fits = boxes.iter().any(|near| {
                        file.starts_with(':')
                            && file.ends_with(&format!(":{near}"))
                            && boxes.iter().any(|far| file.contains(&format!(":{far}_:")))
                    });
                    if fits {
                        candidates.insert(e.path());
                    }
                }
            }
        } else {
            for b in &boxes {
                candidates.insert(PathBuf::from(format!("{text}{b}")));
            }
        }
    }
    let maildir_validity = std::fs::read_to_string(place.path.join(".uidvalidity"))
        .ok()
        .and_then(|t| t.lines().next()?.trim().parse::<u32>().ok());
    let mut out = Vec::new();
    for file in candidates {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let source = format!("mbsync state {}", file.display());
        let state = match adopt::parse_mbsync_state(&text) {
            Ok(s) => s,
            Err(e) => {
                notes.push(format!("{source} not used: {e}"));
                continue;
            }
        };
        match Records::from_mbsync(&state, source.clone(), place.uidvalidity, maildir_validity) {
            Ok(r) => {
                if PathBuf::from(format!("{}.journal", file.display())).exists() {
                    notes.push(format!(
                        "{source}: mbsync was interrupted (a journal is beside it); what it did after its last complete sync is paired by content"
                    ));
                }
                out.push(r);
            }
            Err(e) => notes.push(format!("not used: {e}")),
        }
    }
    out
}

/// offlineimap's status for the folder: under the configured `offlineimap_status` (an
/// `Account-NAME` directory) or the only `~/.offlineimap/Account-*`: `LocalStatus-sqlite/<name>`
/// (the default backend) or `LocalStatus/<name>` (plain text), with the UIDVALIDITY it saw in a
/// sibling `Repository-*/FolderValidity/<name>`.
fn offlineimap(
    sources: &AdoptSources,
    home: Option<&Path>,
    place: &Place<'_>,
    notes: &mut Vec<String>,
) -> Option<Records> {
    let account_dir = match &sources.offlineimap_status {
        Some(p) => p.clone(),
        None => only_offlineimap_account(&home?.join(".offlineimap"))?,
    };
    let forms = name_forms(place);
    let md5s: BTreeSet<String> = forms
        .iter()
        .map(|f| crate::model::hex(&md5::Md5::digest(f.as_bytes())))
        .collect();
    for form in &forms {
        let sqlite = account_dir.join("LocalStatus-sqlite").join(form);
        let text = account_dir.join("LocalStatus").join(form);
        let (status, file) = if sqlite.is_file() {
            (crate::db::foreign::offlineimap_status(&sqlite), sqlite)
        } else if text.is_file() {
            let parsed = std::fs::read_to_string(&text)
                .map_err(|e| e.to_string())
                .and_then(|t| adopt::parse_offlineimap_status(&t))
                .map_err(|e| format!("{}: {e}", text.display()));
            (parsed, text)
        } else {
            continue;
        };
        let source = format!("offlineimap status {}", file.display());
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                notes.push(format!("offlineimap status not used: {e}"));
                return None;
            }
        };
        let validity = recorded_validity(&account_dir, form, place.uidvalidity);
        return match Records::from_offlineimap(&status, source, validity, place.uidvalidity, md5s) {
            Ok(r) => Some(r),
            Err(e) => {
                notes.push(format!("not used: {e}"));
                None
            }
        };
    }
    None
}

/// The one `Account-*` directory under offlineimap's metadata directory; with several it is
/// not guessed which one this account is (the `offlineimap_status` key says).
fn only_offlineimap_account(metadata: &Path) -> Option<PathBuf> {
    let mut accounts = std::fs::read_dir(metadata)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("Account-"))
        .map(|e| e.path());
    let first = accounts.next()?;
    accounts.next().is_none().then_some(first)
}

/// The UIDVALIDITY offlineimap recorded for `form` in the repositories beside the account
/// directory: the server's if any repository recorded it (the local repository records its
/// own), else the first recorded value.
fn recorded_validity(account_dir: &Path, form: &str, server: u32) -> Option<u32> {
    let metadata = account_dir.parent()?;
    let mut first = None;
    for e in std::fs::read_dir(metadata).ok()?.flatten() {
        if !e.file_name().to_string_lossy().starts_with("Repository-") {
            continue;
        }
        let file = e.path().join("FolderValidity").join(form);
        let Some(v) = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if v == server {
            return Some(v);
        }
        first.get_or_insert(v);
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_forms_cover_utf7_and_separators() {
        let name = FolderName::parse("Entwürfe/Alt").unwrap();
        let place = Place {
            name: &name,
            wire: "Entw&APw-rfe.Alt",
            path: Path::new("/x"),
            uidvalidity: 1,
        };
        let forms = name_forms(&place);
        for f in [
            "Entwürfe/Alt",
            "Entw&APw-rfe/Alt",
            "Entw&APw-rfe.Alt",
            "Entwürfe.Alt",
        ] {
            assert!(forms.contains(f), "{f} missing from {forms:?}");
        }
    }

    #[test]
    fn mbsync_default_state_file_is_found_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Mail");
        std::fs::create_dir_all(&maildir).unwrap();
        std::fs::write(maildir.join(".uidvalidity"), "77\n3\n").unwrap();
        let state = dir.path().join(".mbsync");
        std::fs::create_dir_all(&state).unwrap();
        let body =
            "FarUidValidity 5\nNearUidValidity 77\nMaxPulledUid 2\nMaxPushedUid 2\n\n1 1 S\n2 2 \n";
        std::fs::write(state.join(":far:INBOX_:near:INBOX"), body).unwrap();
        // Another channel's folder with the same server box but another near box: not a fit.
        std::fs::write(state.join(":far:INBOX_:near:Other"), body).unwrap();
        let name = FolderName::parse("INBOX").unwrap();
        let mut place = Place {
            name: &name,
            wire: "INBOX",
            path: &maildir,
            uidvalidity: 5,
        };
        let mut notes = Vec::new();
        let found = mbsync(
            &AdoptSources::default(),
            Some(dir.path()),
            &place,
            &mut notes,
        );
        assert_eq!(found.len(), 1, "{notes:?}");
        assert_eq!(found[0].by_name_uid.len(), 2);
        // The server's UIDVALIDITY changed since: not used, and said so.
        place.uidvalidity = 6;
        let found = mbsync(
            &AdoptSources::default(),
            Some(dir.path()),
            &place,
            &mut notes,
        );
        assert!(found.is_empty());
        assert!(
            notes.iter().any(|n| n.contains("UIDVALIDITY 5")),
            "{notes:?}"
        );
    }
}
