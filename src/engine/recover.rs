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
                        object_id: None,
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
        let evidence: Vec<Option<UploadEvidence>> = uploads.iter().map(evidence_of).collect();
        let claimed: BTreeSet<Uid> = db
            .messages(fid)?
            .iter()
            .filter_map(|r| r.state.far)
            .collect();
        let hits = find_crashed_uploads(conn, wire, &evidence, &claimed).await?;
        record_copies(db, fid, &uploads, &hits)?;
    }
    Ok(intents.len())
}

/// Finds the server copies of uploads a killed run may have made to the folder `wire` (each
/// `None` evidence: cannot be found). The killed run's APPENDs may still be landing on the
/// server, so this looks only once the folder has stopped growing, and looks again, after
/// another quiet period, for what the first look did not find: a server under load can take
/// longer than one quiet period to start storing what a dead connection left in its buffer
/// (a MULTIAPPEND batch lands all at once, after a silence), and one look duplicated a whole
/// batch in a loaded test run. `claimed`: UIDs already linked to something else.
pub async fn find_crashed_uploads(
    conn: &mut ImapConn,
    wire: &str,
    evidence: &[Option<UploadEvidence>],
    claimed: &BTreeSet<Uid>,
) -> Result<Vec<Option<Uid>>, Error> {
    conn.wait_until_quiet(wire, QUIET, QUIET_LIMIT).await?;
    let mut hits = look_for_copies(conn, evidence, claimed).await?;
    let missing: Vec<Option<UploadEvidence>> = evidence
        .iter()
        .zip(&hits)
        .map(|(e, h)| if h.is_none() { e.clone() } else { None })
        .collect();
    if missing.iter().any(Option::is_some) {
        conn.wait_until_quiet(wire, QUIET, QUIET_LIMIT).await?;
        let mut taken = claimed.clone();
        taken.extend(hits.iter().flatten());
        let second = look_for_copies(conn, &missing, &taken).await?;
        for (hit, again) in hits.iter_mut().zip(second) {
            if hit.is_none() {
                *hit = again;
            }
        }
    }
    Ok(hits)
}

/// How long a folder must stay unchanged before a crashed run's uploads are looked for...
pub const QUIET: std::time::Duration = std::time::Duration::from_millis(2000);
/// ...waiting at most this long.
pub const QUIET_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

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

/// Finds the server copies of upload intents ([`recovery::match_uploads`]) right after our own
/// APPENDs (a server without UIDPLUS does not say the new UIDs), links those found and drops
/// every intent. Returns how many were found.
pub async fn resolve_uploads(
    conn: &mut ImapConn,
    db: &mut StateDb,
    fid: i64,
    intents: &[Intent],
) -> Result<usize, Error> {
    let evidence: Vec<Option<UploadEvidence>> = intents.iter().map(evidence_of).collect();
    let claimed: BTreeSet<Uid> = db
        .messages(fid)?
        .iter()
        .filter_map(|r| r.state.far)
        .collect();
    let hits = look_for_copies(conn, &evidence, &claimed).await?;
    record_copies(db, fid, intents, &hits)?;
    Ok(hits.iter().flatten().count())
}

/// What an upload intent recorded to recognise its copy (`None`: not enough to search with).
fn evidence_of(intent: &Intent) -> Option<UploadEvidence> {
    Some(UploadEvidence {
        uidnext: intent.uidnext?,
        size: intent.size?,
        sha256: intent.sha256.clone()?,
    })
}

/// One look at the selected folder for the copy of each upload (in order), among messages not
/// in `claimed`.
pub async fn look_for_copies(
    conn: &mut ImapConn,
    evidence: &[Option<UploadEvidence>],
    claimed: &BTreeSet<Uid>,
) -> Result<Vec<Option<Uid>>, Error> {
    let searchable: Vec<(usize, UploadEvidence)> = evidence
        .iter()
        .enumerate()
        .filter_map(|(i, e)| Some((i, e.clone()?)))
        .collect();
    let wanted: Vec<UploadEvidence> = searchable.iter().map(|(_, e)| e.clone()).collect();
    let mut hits = vec![None; evidence.len()];
    let Some(from) = recovery::upload_search_start(&wanted) else {
        return Ok(hits);
    };
    let listed = conn.fetch_evidence(&format!("{from}:*")).await?;
    let candidates = recovery::upload_candidates(&wanted, &listed, |u| claimed.contains(&u));
    let hashes = server_hashes(conn, &candidates).await?;
    for ((i, _), hit) in searchable
        .iter()
        .zip(recovery::match_uploads(&wanted, &hashes))
    {
        if let Some(slot) = hits.get_mut(*i) {
            *slot = hit;
        }
    }
    Ok(hits)
}

/// Links the copies found and drops every intent, in one transaction.
fn record_copies(
    db: &mut StateDb,
    fid: i64,
    intents: &[Intent],
    hits: &[Option<Uid>],
) -> Result<(), Error> {
    let mut changes: Vec<Change> = intents
        .iter()
        .zip(hits)
        .filter_map(|(intent, hit)| {
            Some(Change::Link {
                far: (*hit)?,
                near: intent.near_key.clone(),
                flags: intent.flags.clone(),
                far_flags: intent.flags.clone(),
                message_id: intent.message_id.clone(),
                size: intent.size,
                object_id: None,
            })
        })
        .collect();
    changes.extend(intents.iter().map(|i| Change::RemoveIntent(i.id)));
    db.apply(fid, &changes)?;
    Ok(())
}
