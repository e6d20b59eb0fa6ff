//! Messages a mail reader moved between local folders, moved on the server too (UID MOVE,
//! RFC 6851) before the folders are synced: the server keeps the message, its flags and
//! internal date under a new UID in the other folder, where a naive sync would delete it and
//! upload the file again.
//!
//! Only folders whose Maildir changed since their last sync (directory mtimes against the
//! stored fingerprint) are looked at; a move changes both. The pairing is
//! [`renames::moves`] (Message-ID and size, one to one across the folders), confirmed by the
//! server copy's header section against the file's. Anything else is left to the folder syncs
//! (a deletion and an upload), never a wrong move.
//!
//! Crash safety: each move is announced in the destination folder as an upload intent of the
//! file (size and SHA-256 of its bytes, the destination's UIDNEXT) before the UID MOVE, so a
//! run killed between the move and the state update finds the moved copy as it finds any
//! upload a killed run made ([`super::recover`]); the source row then has neither a file nor
//! a server copy and is forgotten.

use super::error::Error;
use crate::config::ImapAccount;
use crate::db::{Change, FolderRow, Intent, IntentKind, StateDb};
use crate::model::{NearKey, Side, Uid};
use crate::names::FolderName;
use crate::store::eol;
use crate::store::imap::ImapConn;
use crate::store::maildir::{self, MaildirFolder, NearMessage, layout};
use crate::sync::renames;
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};

/// A folder looked at for moves.
struct Looked {
    row: FolderRow,
    wire: String,
    md: MaildirFolder,
    /// The Maildir as scanned.
    near: BTreeMap<NearKey, NearMessage>,
    /// The state's rows whose file is gone.
    gone: Vec<crate::db::MessageRow>,
    /// Keys of files no row (or intent) knows.
    unknown: Vec<NearKey>,
    /// Those files read: what pairing needs (filled only when some folder lost a file).
    fresh: BTreeMap<NearKey, super::labels::FileEvidence>,
}

/// Moves on the server the messages a mail reader moved between the local folders of `names`
/// (folders synced in this run, present on both sides; `wire` gives their server names).
/// Returns notes per destination folder. Does nothing without MOVE and UIDPLUS or where the
/// account may not change the server.
pub async fn move_on_server(
    conn: &mut ImapConn,
    db: &mut StateDb,
    account: &ImapAccount,
    names: &[FolderName],
    wire: &BTreeMap<FolderName, String>,
) -> Result<BTreeMap<String, Vec<String>>, Error> {
    let mut notes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if !conn.has("MOVE") || !conn.has("UIDPLUS") || !account.policy().may_write(Side::Far) {
        return Ok(notes);
    }
    let wanted: BTreeSet<&str> = names.iter().map(FolderName::as_str).collect();
    let changed: Vec<(FolderRow, FolderName, std::path::PathBuf)> = db
        .folders()?
        .into_iter()
        .filter(|f| wanted.contains(f.name.as_str()) && f.uidvalidity.is_some())
        .filter_map(|f| {
            let name = FolderName::parse(&f.name).ok()?;
            let path = layout::folder_path(&account.maildir, account.layout, &name).ok()?;
            let now = maildir::dir_mtimes(&path)?;
            let same = f
                .fingerprint
                .is_some_and(|fp| (fp.cur_mtime, fp.new_mtime) == now);
            (!same).then_some((f, name, path))
        })
        .collect();
    if changed.len() < 2 {
        return Ok(notes);
    }
    let mut looked = Vec::new();
    for (row, name, path) in changed {
        let Some(wire) = wire.get(&name) else {
            continue;
        };
        // A folder that cannot be read is left to its sync, which says why.
        let Ok(md) = MaildirFolder::open(&path) else {
            continue;
        };
        let Ok(near) = md.scan() else { continue };
        let rows = db.messages(row.id)?;
        let mut known: BTreeSet<NearKey> =
            rows.iter().filter_map(|r| r.state.near.clone()).collect();
        known.extend(db.intents(row.id)?.into_iter().map(|i| i.near_key));
        let unknown = near
            .keys()
            .filter(|k| !known.contains(*k))
            .cloned()
            .collect();
        let gone = rows
            .into_iter()
            .filter(|r| r.state.near.as_ref().is_some_and(|k| !near.contains_key(k)))
            .collect();
        looked.push(Looked {
            row,
            wire: wire.clone(),
            md,
            near,
            gone,
            unknown,
            fresh: BTreeMap::new(),
        });
    }
    // Whether the server still has a copy is for its header to say, below.
    let vanished: Vec<(usize, renames::Vanished)> = looked
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            renames::vanished(
                l.gone.iter().map(super::labels::linked),
                |_| false,
                |_| true,
            )
            .into_iter()
            .map(move |v| (i, v))
        })
        .collect();
    // Nothing left a folder: nothing moved, and no file needs reading.
    if vanished.is_empty() {
        return Ok(notes);
    }
    for l in &mut looked {
        for key in &l.unknown {
            if let Some(raw) = l.near.get(key).and_then(|m| l.md.read(m).ok()) {
                l.fresh
                    .insert(key.clone(), super::labels::file_evidence(&raw));
            }
        }
    }
    let fresh: Vec<(usize, renames::Fresh)> = looked
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            l.fresh.iter().filter_map(move |(key, f)| {
                Some((
                    i,
                    renames::Fresh {
                        key: key.clone(),
                        message_id: f.message_id.clone()?,
                        size: f.size,
                    },
                ))
            })
        })
        .collect();
    let pairs = renames::moves(&vanished, &fresh);
    let mut by_source: BTreeMap<usize, Vec<renames::Move<usize>>> = BTreeMap::new();
    for m in pairs {
        by_source.entry(m.from).or_default().push(m);
    }
    for (from, moves) in by_source {
        let Some(source) = looked.get(from) else {
            continue;
        };
        let sel = conn.select_with(&source.wire, None).await?;
        if Some(sel.uidvalidity) != source.row.uidvalidity {
            continue; // its UIDs are void: the folder's sync re-pairs it
        }
        let uids: Vec<Uid> = moves.iter().map(|m| m.uid).collect();
        let server = conn.fetch_headers(&uids).await?;
        let mut by_dest: BTreeMap<usize, Vec<&renames::Move<usize>>> = BTreeMap::new();
        for m in &moves {
            let file = looked.get(m.to).and_then(|l| l.fresh.get(&m.key));
            let same = server
                .get(&m.uid)
                .zip(file)
                .is_some_and(|(s, f)| super::labels::header_section(s) == f.header.as_slice());
            if same {
                by_dest.entry(m.to).or_default().push(m);
            }
        }
        for (to, group) in by_dest {
            let Some(dest) = looked.get(to) else { continue };
            let moved = move_group(conn, db, source, dest, &group).await?;
            if moved > 0 {
                notes.entry(dest.row.name.clone()).or_default().push(format!(
                    "{moved} message(s) moved here from {} in the Maildir: moved on the server too (UID MOVE), not uploaded again",
                    source.row.name
                ));
            }
        }
    }
    Ok(notes)
}

/// Announces, moves and records one group of moves from `source` to `dest`; returns how many
/// the server moved.
async fn move_group(
    conn: &mut ImapConn,
    db: &mut StateDb,
    source: &Looked,
    dest: &Looked,
    group: &[&renames::Move<usize>],
) -> Result<usize, Error> {
    let row_of = |id| source.gone.iter().find(|r| r.state.id == id);
    let mut intents = Vec::new();
    for m in group {
        let (Some(row), Some(file)) = (row_of(m.row), dest.fresh.get(&m.key)) else {
            continue;
        };
        // The hash an interrupted run finds the moved copy by: only for what moves.
        let Some(raw) = dest.near.get(&m.key).and_then(|msg| dest.md.read(msg).ok()) else {
            continue;
        };
        intents.push((
            *m,
            Intent {
                id: 0,
                kind: IntentKind::Upload,
                far_uid: None,
                near_key: m.key.clone(),
                uidvalidity: dest.row.uidvalidity,
                uidnext: Some(dest.row.uidnext.unwrap_or(1)),
                // The last synced flags: the folder's sync pushes what the reader changed.
                flags: row.state.flags.clone(),
                message_id: file.message_id.clone(),
                size: Some(file.size),
                sha256: Some(sha2::Sha256::digest(eol::lf_to_crlf(&raw)).to_vec()),
            },
        ));
    }
    let ids = db.apply(
        dest.row.id,
        &intents
            .iter()
            .map(|(_, i)| Change::AddIntent(i.clone()))
            .collect::<Vec<_>>(),
    )?;
    let uids: Vec<Uid> = intents.iter().map(|(m, _)| m.uid).collect();
    let new_uids = match conn.move_messages(&uids, &dest.wire).await {
        Ok(moved) => moved,
        // Refused: nothing moved; the folders' syncs delete and upload as without MOVE.
        Err(e @ crate::store::imap::ImapError::Refused { .. }) => {
            tracing::info!(
                "moving {} message(s) from {} to {} on the server was refused ({e}); they are uploaded instead",
                uids.len(),
                source.row.name,
                dest.row.name
            );
            db.apply(
                dest.row.id,
                &ids.iter()
                    .map(|id| Change::RemoveIntent(*id))
                    .collect::<Vec<_>>(),
            )?;
            return Ok(0);
        }
        // The outcome is unknown: the intents stay, and the destination's sync finds what moved.
        Err(e) => return Err(e.into()),
    };
    let mut linked = Vec::new();
    let mut gone = Vec::new();
    for ((m, intent), id) in intents.iter().zip(ids) {
        let Some(row) = row_of(m.row) else { continue };
        gone.push(Change::Delete(m.row));
        if let Some(new) = new_uids.get(&m.uid) {
            linked.push(Change::Link {
                far: *new,
                near: m.key.clone(),
                flags: intent.flags.clone(),
                far_flags: row
                    .far_flags
                    .clone()
                    .unwrap_or_else(|| intent.flags.clone()),
                message_id: intent.message_id.clone(),
                size: intent.size,
                object_id: None,
            });
            linked.push(Change::RemoveIntent(id));
        }
        // Without the new UID the intent stays: the folder's sync finds the copy by its hash.
    }
    db.apply(dest.row.id, &linked)?;
    db.apply(source.row.id, &gone)?;
    Ok(gone.len())
}
