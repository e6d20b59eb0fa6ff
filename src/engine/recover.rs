//! Settling intents: operations announced in the state database whose outcome was not recorded,
//! because the run was killed or the server did not say (no UIDPLUS). What each intent means is
//! decided by [`crate::sync::recovery`]; this module looks at the Maildir and the server and
//! records the outcome.

use super::error::Error;
use crate::db::{Change, Intent, StateDb};
use crate::model::{NearKey, Uid};
use crate::store::eol;
use crate::store::imap::{ImapConn, SelectInfo};
use crate::store::maildir::{MaildirFolder, NearMessage};
use crate::sync::recovery::{self, Settle, UploadEvidence};
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
    let decisions = recovery::settle(&intents, sel.uidvalidity, &linked_near, &linked_far, |k| {
        near.contains_key(k)
    });
    let mut changes = Vec::new();
    let mut uploads = Vec::new();
    for (intent, decision) in intents.iter().zip(decisions) {
        match decision {
            Settle::LinkDownload => {
                if let (Some(msg), Some(uid)) = (near.get(&intent.near_key), intent.far_uid) {
                    let raw = md.read(msg)?;
                    let wire_size = raw.len() + eol::bare_lf_count(&raw);
                    changes.push(Change::Link {
                        far: uid,
                        near: intent.near_key.clone(),
                        flags: intent.flags.clone(),
                        far_flags: intent.flags.clone(),
                        message_id: crate::message::message_id(&raw),
                        size: Some(u32::try_from(wire_size).unwrap_or(u32::MAX)),
                    });
                }
                changes.push(Change::RemoveIntent(intent.id));
            }
            Settle::DropDownload => {
                md.remove_tmp(&intent.near_key);
                changes.push(Change::RemoveIntent(intent.id));
            }
            Settle::FindUpload => uploads.push(intent.clone()),
            Settle::DropUpload => changes.push(Change::RemoveIntent(intent.id)),
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

/// Hashes of the server messages `uids` (their bodies as the server sends them).
pub async fn server_hashes(
    conn: &mut ImapConn,
    uids: &[Uid],
) -> Result<BTreeMap<Uid, Vec<u8>>, Error> {
    let mut hashes = BTreeMap::new();
    if !uids.is_empty() {
        conn.fetch_bodies(uids, |m| {
            hashes.insert(m.uid, sha2::Sha256::digest(m.body).to_vec());
            Ok(())
        })
        .await?;
    }
    Ok(hashes)
}

/// Finds the server copies of upload intents ([`recovery::match_uploads`]), links those found
/// and drops every intent. Returns how many were found.
pub async fn resolve_uploads(
    conn: &mut ImapConn,
    db: &mut StateDb,
    fid: i64,
    intents: &[Intent],
) -> Result<usize, Error> {
    // Intents without their evidence cannot be recognised: they are dropped, and the planner
    // uploads the message again.
    let searchable: Vec<(&Intent, UploadEvidence)> = intents
        .iter()
        .filter_map(|i| {
            Some((
                i,
                UploadEvidence {
                    uidnext: i.uidnext?,
                    size: i.size?,
                    sha256: i.sha256.clone()?,
                },
            ))
        })
        .collect();
    let evidence: Vec<UploadEvidence> = searchable.iter().map(|(_, e)| e.clone()).collect();
    let mut changes: Vec<Change> = intents.iter().map(|i| Change::RemoveIntent(i.id)).collect();
    let Some(from) = recovery::upload_search_start(&evidence) else {
        db.apply(fid, &changes)?;
        return Ok(0);
    };
    let linked: BTreeSet<Uid> = db
        .messages(fid)?
        .iter()
        .filter_map(|r| r.state.far)
        .collect();
    let listed = conn.fetch_evidence(&format!("{from}:*")).await?;
    let candidates = recovery::upload_candidates(&evidence, &listed, |u| linked.contains(&u));
    let hashes = server_hashes(conn, &candidates).await?;
    let mut found = 0;
    for ((intent, _), hit) in searchable
        .iter()
        .zip(recovery::match_uploads(&evidence, &hashes))
    {
        if let Some(uid) = hit {
            found += 1;
            changes.push(Change::Link {
                far: uid,
                near: intent.near_key.clone(),
                flags: intent.flags.clone(),
                far_flags: intent.flags.clone(),
                message_id: intent.message_id.clone(),
                size: intent.size,
            });
        }
    }
    // Links first, then the intents go (one transaction either way).
    changes.rotate_left(intents.len());
    db.apply(fid, &changes)?;
    Ok(found)
}
