//! Settling intents: operations announced in the state database whose outcome was not recorded,
//! because the run was killed or the server did not say (no UIDPLUS).
//!
//! - A download intent names the Maildir key chosen before fetching. If that file exists, the
//!   delivery happened: link it. If not, it did not: drop the intent (and any tmp/ leftover).
//! - An upload intent records the folder's UIDNEXT before the APPEND, the size and the SHA-256 of
//!   the bytes sent. A server message at or above that UID with the same size and hash is the
//!   upload: link it. None: the APPEND never completed, and the next plan uploads it again.
//!   This needs no marker header, so uploaded bodies stay byte-identical.

use super::error::Error;
use crate::db::{Change, Intent, IntentKind, StateDb};
use crate::model::{NearKey, Uid};
use crate::store::eol;
use crate::store::imap::{ImapConn, SelectInfo};
use crate::store::maildir::{MaildirFolder, NearMessage};
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};

/// Settles every intent of folder `fid`; returns how many were settled.
pub async fn settle_intents(
    conn: &mut ImapConn,
    db: &mut StateDb,
    fid: i64,
    wire: &str,
    sel: &SelectInfo,
    md: &MaildirFolder,
    near: &BTreeMap<NearKey, NearMessage>,
) -> Result<usize, Error> {
    let intents = db.intents(fid)?;
    if intents.is_empty() {
        return Ok(0);
    }
    let rows = db.messages(fid)?;
    let linked_near: BTreeSet<&NearKey> =
        rows.iter().filter_map(|r| r.state.near.as_ref()).collect();
    let linked_far: BTreeSet<Uid> = rows.iter().filter_map(|r| r.state.far).collect();
    let mut changes = Vec::new();
    let mut uploads = Vec::new();
    for intent in &intents {
        match intent.kind {
            IntentKind::Download => {
                let delivered = near.get(&intent.near_key);
                match (delivered, intent.far_uid) {
                    (Some(msg), Some(uid))
                        if !linked_near.contains(&intent.near_key)
                            && !linked_far.contains(&uid) =>
                    {
                        let raw = md.read(msg)?;
                        let wire = eol::lf_to_crlf(&raw);
                        changes.push(Change::Link {
                            far: uid,
                            near: intent.near_key.clone(),
                            flags: intent.flags.clone(),
                            far_flags: intent.flags.clone(),
                            message_id: crate::message::message_id(&raw),
                            size: Some(wire.len() as u32),
                        });
                    }
                    _ => md.remove_tmp(&intent.near_key),
                }
                changes.push(Change::RemoveIntent(intent.id));
            }
            IntentKind::Upload => {
                if intent.uidvalidity == Some(sel.uidvalidity)
                    && !linked_near.contains(&intent.near_key)
                {
                    uploads.push(intent.clone());
                } else {
                    changes.push(Change::RemoveIntent(intent.id));
                }
            }
        }
    }
    db.apply(fid, &changes)?;
    if !uploads.is_empty() {
        // The killed run's pipelined APPENDs may still be landing on the server: look for the
        // copies only once the folder has stopped growing.
        conn.wait_until_quiet(
            wire,
            std::time::Duration::from_millis(1000),
            std::time::Duration::from_secs(15),
        )
        .await?;
        resolve_uploads(conn, db, fid, &uploads).await?;
    }
    Ok(intents.len())
}

/// Finds the server copies of upload intents by UID range, size and SHA-256, links those found
/// and drops every intent. Returns how many were found.
pub async fn resolve_uploads(
    conn: &mut ImapConn,
    db: &mut StateDb,
    fid: i64,
    intents: &[Intent],
) -> Result<usize, Error> {
    let Some(from) = intents.iter().filter_map(|i| i.uidnext).min() else {
        let drop: Vec<Change> = intents.iter().map(|i| Change::RemoveIntent(i.id)).collect();
        db.apply(fid, &drop)?;
        return Ok(0);
    };
    let linked: BTreeSet<Uid> = db
        .messages(fid)?
        .iter()
        .filter_map(|r| r.state.far)
        .collect();
    let sizes: BTreeSet<u32> = intents.iter().filter_map(|i| i.size).collect();
    let evidence = conn.fetch_evidence(&format!("{}:*", from.max(1))).await?;
    let candidates: Vec<Uid> = evidence
        .iter()
        .filter(|e| e.uid.0 >= from && sizes.contains(&e.size) && !linked.contains(&e.uid))
        .map(|e| e.uid)
        .collect();
    let mut hashes: BTreeMap<Uid, Vec<u8>> = BTreeMap::new();
    if !candidates.is_empty() {
        conn.fetch_bodies(&candidates, |m| {
            hashes.insert(m.uid, sha2::Sha256::digest(m.body).to_vec());
            Ok(())
        })
        .await?;
    }
    let mut taken: BTreeSet<Uid> = BTreeSet::new();
    let mut changes = Vec::new();
    let mut found = 0;
    for intent in intents {
        let hit = hashes.iter().find(|(uid, h)| {
            !taken.contains(uid)
                && intent.uidnext.is_some_and(|n| uid.0 >= n)
                && intent.sha256.as_deref() == Some(h.as_slice())
        });
        if let Some((uid, _)) = hit {
            taken.insert(*uid);
            found += 1;
            changes.push(Change::Link {
                far: *uid,
                near: intent.near_key.clone(),
                flags: intent.flags.clone(),
                far_flags: intent.flags.clone(),
                message_id: intent.message_id.clone(),
                size: intent.size,
            });
        }
        changes.push(Change::RemoveIntent(intent.id));
    }
    db.apply(fid, &changes)?;
    Ok(found)
}
