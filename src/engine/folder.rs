//! Syncing one folder: snapshot both sides, settle unfinished intents, re-pair after a
//! UIDVALIDITY change, plan, guard, execute, record.
//!
//! Order of effects, chosen so a kill at any point converges on the next run:
//! flags (idempotent) → deletions (idempotent: a message gone from both sides is forgotten) →
//! downloads and uploads (announced as intents first, linked in SQLite after the Maildir
//! directory is fsynced or the server confirmed).

use super::SyncOptions;
use super::recover;
use super::report::FolderReport;
use crate::config::Account;
use crate::db::{Change, Fingerprint, FolderCompletion, Intent, IntentKind, StateDb};
use crate::model::{Flag, Flags, NearKey, Uid, UidValidity};
use crate::names::FolderName;
use crate::store::eol;
use crate::store::imap::{self, ImapConn};
use crate::store::maildir::{self, MaildirFolder, NearMessage};
use crate::sync::planner::{self, Plan, Policy, StateRow};
use crate::sync::{delta, repair};
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::Path;

/// Messages fetched per batch; the batch is made durable once (one directory fsync, one commit).
const DOWNLOAD_BATCH: usize = 200;
/// Messages appended per batch between intent commits.
const UPLOAD_BATCH: usize = 100;

/// Syncs one existing folder pair. Errors are returned as text for the report.
#[allow(clippy::too_many_arguments)]
pub async fn sync_folder(
    conn: &mut ImapConn,
    db: &mut StateDb,
    account: &Account,
    name: &FolderName,
    wire: &str,
    path: &Path,
    options: SyncOptions,
    progress: &indicatif::ProgressBar,
    fr: &mut FolderReport,
) -> Result<(), String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    let folder_row = if options.dry_run {
        match db
            .folders()
            .map_err(|e| s(&e))?
            .into_iter()
            .find(|f| f.name == name.as_str())
        {
            Some(f) => f,
            None => crate::db::FolderRow {
                id: -1,
                name: name.to_string(),
                uidvalidity: None,
                uidnext: None,
                last_sync: None,
                far_count: 0,
                near_count: 0,
                fingerprint: None,
            },
        }
    } else {
        db.ensure_folder(name.as_str()).map_err(|e| s(&e))?
    };
    let fid = folder_row.id;
    // In a dry run a folder that would be created does not exist yet: plan against an empty side.
    if options.dry_run
        && (!path.exists() || fr.planned.iter().any(|p| p.starts_with("create server")))
    {
        return dry_run_new_folder(conn, path, wire, account, fr).await;
    }
    // The Maildir is read on a blocking thread while the server answers the SELECT: on a big
    // folder both take milliseconds, and neither needs the other.
    let scan_path = path.to_path_buf();
    let local_scan = tokio::task::spawn_blocking(move || {
        let md = MaildirFolder::open(&scan_path)?;
        // Taken before the scan: a change made during or after it moves the mtime past this value.
        let mtimes = dir_mtimes(&scan_path);
        let near = md.scan()?;
        Ok::<_, maildir::MaildirError>((md, mtimes, near))
    });
    // With QRESYNC the changes since the last completed sync come inside the SELECT.
    let known = match (folder_row.uidvalidity, fid < 0) {
        (Some(v), false) => db.sync_modseq(fid).map_err(|e| s(&e))?.map(|m| (v, m)),
        _ => None,
    };
    let sel = conn.select_with(wire, known).await.map_err(|e| s(&e))?;
    let (mut md, mtimes_before_scan, mut near) = local_scan
        .await
        .map_err(|e| format!("reading the Maildir folder {}: {e}", path.display()))?
        .map_err(|e| s(&e))?;
    let mut touched = false;
    let mut full_scan_needed = false;

    if !options.dry_run {
        fr.recovered += recover::settle_intents(conn, db, fid, wire, &sel, &md, &near)
            .await
            .map_err(|e| format!("recovering an interrupted run: {e}"))?;
        touched |= fr.recovered > 0;
        full_scan_needed |= fr.recovered > 0;
    } else {
        let pending = db.intent_count(fid).unwrap_or(0);
        if pending > 0 {
            fr.planned.push(format!(
                "settle {pending} operation(s) interrupted by an earlier run"
            ));
        }
    }

    // UIDVALIDITY: a change voids every stored UID; re-pair by evidence.
    match folder_row.uidvalidity {
        Some(old) if old != sel.uidvalidity => {
            touched = true;
            full_scan_needed = true;
            let rows = db.messages(fid).map_err(|e| s(&e))?;
            let far_ev = if sel.exists > 0 {
                conn.fetch_evidence("1:*").await.map_err(|e| s(&e))?
            } else {
                Vec::new()
            };
            let row_ev: Vec<repair::RowEvidence> = rows
                .into_iter()
                .map(|r| repair::RowEvidence {
                    row: r.state,
                    message_id: r.message_id,
                    size: r.size,
                })
                .collect();
            let rep = repair::repair(&row_ev, &far_ev);
            let relinked = rep.relinked.iter().filter(|(_, u)| u.is_some()).count();
            fr.notes.push(format!(
                "UIDVALIDITY changed from {old} to {}: re-paired {relinked} message(s) by Message-ID and size; {} local message(s) without a match will be uploaded, unmatched server messages downloaded",
                sel.uidvalidity,
                rep.unmatched_near.len()
            ));
            if !options.dry_run {
                // Drop rows first, then move the survivors to their new UIDs: a new UID may equal
                // an old one still held by another row, so clear them all before relinking.
                let mut changes: Vec<Change> =
                    rep.dropped.iter().map(|r| Change::Delete(*r)).collect();
                changes.extend(
                    rep.relinked
                        .iter()
                        .filter(|(_, u)| u.is_some())
                        .map(|(r, _)| Change::Relink(*r, None)),
                );
                changes.extend(
                    rep.relinked
                        .iter()
                        .filter(|(_, u)| u.is_some())
                        .map(|(r, u)| Change::Relink(*r, *u)),
                );
                db.apply(fid, &changes).map_err(|e| s(&e))?;
                db.set_uidvalidity(fid, sel.uidvalidity)
                    .map_err(|e| s(&e))?;
            }
        }
        Some(_) => {}
        None => {
            if !options.dry_run {
                db.set_uidvalidity(fid, sel.uidvalidity)
                    .map_err(|e| s(&e))?;
            }
        }
    }

    let phase = std::time::Instant::now();
    tracing::debug!(folder = %name, messages = near.len(), "selected and scanned");
    let message_rows = if fid < 0 {
        Vec::new()
    } else {
        db.messages(fid).map_err(|e| s(&e))?
    };
    // The server side: only what changed since the last completed sync where the server and the
    // stored state allow it (CONDSTORE/QRESYNC), else every UID and its flags.
    let stored_modseq = if fid < 0 || full_scan_needed {
        None
    } else {
        db.sync_modseq(fid).map_err(|e| s(&e))?
    };
    tracing::debug!(folder = %name, rows = message_rows.len(), ms = phase.elapsed().as_millis() as u64, "state loaded");
    let far = match delta_snapshot(conn, &sel, stored_modseq, &message_rows).await {
        Some(far) => far,
        None => conn.fetch_all_flags(sel.exists).await.map_err(|e| s(&e))?,
    };
    let mut rows: Vec<StateRow> = message_rows.iter().map(|r| r.state.clone()).collect();
    if rows.is_empty() && !far.is_empty() && !near.is_empty() {
        rows = pair_existing(conn, db, fid, &md, &near, &far, options, fr).await?;
        touched = true;
    }
    let near_flags = complete_near_flags(&rows, &near, &md);
    let policy = Policy {
        mode: account.sync,
        expunge: account.expunge,
    };
    tracing::debug!(folder = %name, ms = phase.elapsed().as_millis() as u64, "server listing ready");
    let plan = planner::plan(&rows, &far, &near_flags, policy);
    tracing::debug!(folder = %name, ms = phase.elapsed().as_millis() as u64, "planned");
    if !options.force {
        planner::check_deletion_guard(&plan, &rows, account.max_delete_percent)
            .map_err(|e| s(&e))?;
    }
    if options.dry_run {
        describe(&plan, fr);
        return Ok(());
    }

    // Keep the stored server flags true, so the next resync can start from them.
    let far_updated: std::collections::BTreeSet<i64> = plan
        .flags
        .iter()
        .filter(|u| u.far.is_some())
        .map(|u| u.row)
        .collect();
    let far_flag_fixes: Vec<Change> = message_rows
        .iter()
        .filter(|r| !far_updated.contains(&r.state.id))
        .filter_map(|r| {
            let now = far.get(&r.state.far?)?;
            (r.far_flags.as_ref() != Some(now))
                .then(|| Change::SetFarFlags(r.state.id, now.clone()))
        })
        .collect();
    let mut exec = Executor {
        pending: far_flag_fixes,
        conn,
        db,
        fid,
        md: &mut md,
        near: &mut near,
        far: &far,
        wire,
        uidvalidity: sel.uidvalidity,
        uidnext: sel
            .uidnext
            .unwrap_or_else(|| far.keys().last().map_or(1, |u| u.0 + 1)),
        progress,
        folder: name.as_str(),
    };
    exec.flags(&plan, fr).await?;
    tracing::debug!(folder = %name, ms = phase.elapsed().as_millis() as u64, "flags done");
    exec.deletions(&plan, fr).await?;
    exec.downloads(&plan, fr).await?;
    exec.uploads(&plan, fr).await?;
    // Only a folder this run found in sync and left untouched gets a fingerprint: after our own
    // changes the values we saw are stale, and trusting them could hide someone else's change.
    touched |= !plan.is_empty();
    let fingerprint = match (touched, sel.uidnext, sel.highestmodseq, mtimes_before_scan) {
        (false, Some(uidnext), Some(modseq), Some((cur_mtime, new_mtime))) => Some(Fingerprint {
            exists: sel.exists,
            uidnext,
            modseq,
            cur_mtime,
            new_mtime,
        }),
        _ => None,
    };
    // Everything the server had at SELECT time is now known: the next run can ask only for
    // changes since then (our own changes come back as changes, harmlessly).
    tracing::debug!(folder = %name, ms = phase.elapsed().as_millis() as u64, "executed");
    db.complete_folder(
        fid,
        &FolderCompletion {
            uidvalidity: sel.uidvalidity,
            uidnext: sel.uidnext,
            now: super::unix_now(),
            sync_modseq: sel.highestmodseq,
            fingerprint,
        },
    )
    .map_err(|e| s(&e))?;
    Ok(())
}

/// Rebuilds the server's complete listing from the stored server flags plus what changed since
/// `stored_modseq`: reported by the QRESYNC SELECT itself, else asked with
/// `UID FETCH 1:* (FLAGS) (CHANGEDSINCE m)` (and `VANISHED` under QRESYNC). Returns `None` (do a full scan) whenever the result cannot be proven complete: no
/// CONDSTORE, no stored position, a row whose server flags are unknown, or a message count that
/// does not add up (expunges on a CONDSTORE-only server, messages never linked). Unknown is never
/// taken for gone: a UID leaves the listing only when the server says VANISHED or the full scan
/// does not list it.
async fn delta_snapshot(
    conn: &mut ImapConn,
    sel: &imap::SelectInfo,
    stored_modseq: Option<u64>,
    rows: &[crate::db::MessageRow],
) -> Option<BTreeMap<Uid, Flags>> {
    let (Some(since), Some(now)) = (stored_modseq, sel.highestmodseq) else {
        return None;
    };
    if !conn.has("CONDSTORE") || now < since {
        return None;
    }
    let stored: Vec<(Uid, Option<Flags>)> = rows
        .iter()
        .filter_map(|r| Some((r.state.far?, r.far_flags.clone())))
        .collect();
    // Nothing to ask when a stored row's server flags are unknown: the rebuild would fail anyway.
    if stored.iter().any(|(_, f)| f.is_none()) {
        return None;
    }
    let (changed, vanished) = if let Some(delta) = sel.qresync.as_ref().filter(|d| d.since == since)
    {
        (delta.changed.clone(), Some(delta.vanished.clone()))
    } else if now > since {
        conn.fetch_changed(since).await.ok()?
    } else {
        (BTreeMap::new(), Some(Vec::new()))
    };
    let listing = delta::rebuild_listing(&stored, changed, vanished.as_deref(), sel.exists);
    if listing.is_none() {
        tracing::debug!(
            exists = sel.exists,
            "changed-since listing does not add up; doing a full scan"
        );
    }
    listing
}

/// Nanosecond mtimes of `cur/` and `new/`: any delivery, rename or deletion changes one.
pub fn dir_mtimes(path: &Path) -> Option<(i64, i64)> {
    let ns = |sub: &str| -> Option<i64> {
        let t = std::fs::metadata(path.join(sub)).ok()?.modified().ok()?;
        Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos() as i64)
    };
    Some((ns("cur")?, ns("new")?))
}

/// True when a folder is provably unchanged on both sides since it was last fully in sync: the
/// server's STATUS (MESSAGES, UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ) and the Maildir's directory
/// mtimes all equal the stored fingerprint. One round trip and two stats instead of a full scan.
pub async fn unchanged(
    conn: &mut ImapConn,
    db: &StateDb,
    row: &crate::db::FolderRow,
    wire: &str,
    path: &Path,
) -> bool {
    let Some(fp) = row.fingerprint else {
        return false;
    };
    if !conn.has("CONDSTORE") || db.intent_count(row.id).unwrap_or(1) != 0 {
        return false;
    }
    let Ok(st) = conn.status(wire).await else {
        return false;
    };
    st.messages == Some(fp.exists)
        && st.uidnext == Some(fp.uidnext)
        && st.highestmodseq == Some(fp.modseq)
        && st.uidvalidity.is_some()
        && st.uidvalidity == row.uidvalidity
        && dir_mtimes(path) == Some((fp.cur_mtime, fp.new_mtime))
}

/// First sync with mail on both sides: link copies that are the same message (Message-ID and
/// size) instead of copying everything both ways. Returns the resulting rows.
#[allow(clippy::too_many_arguments)]
async fn pair_existing(
    conn: &mut ImapConn,
    db: &mut StateDb,
    fid: i64,
    md: &MaildirFolder,
    near: &BTreeMap<NearKey, NearMessage>,
    far: &BTreeMap<Uid, Flags>,
    options: SyncOptions,
    fr: &mut FolderReport,
) -> Result<Vec<StateRow>, String> {
    let far_ev = conn.fetch_evidence("1:*").await.map_err(s)?;
    let mut near_ev = Vec::new();
    for (key, msg) in near {
        let raw = md.read(msg).map_err(s)?;
        let bare_lf = raw
            .iter()
            .enumerate()
            .filter(|(i, b)| **b == b'\n' && (*i == 0 || raw[i - 1] != b'\r'))
            .count();
        near_ev.push((
            key.clone(),
            crate::message::message_id(&raw),
            (raw.len() + bare_lf) as u32,
        ));
    }
    let pairs = repair::pair_initial(&far_ev, &near_ev);
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    fr.notes.push(format!(
        "first sync with mail on both sides: {} message(s) already present on both sides were linked, not copied",
        pairs.len()
    ));
    let evidence: BTreeMap<&NearKey, &(NearKey, Option<String>, u32)> =
        near_ev.iter().map(|e| (&e.0, e)).collect();
    let mut changes = Vec::new();
    let mut rows = Vec::new();
    for (i, (uid, key)) in pairs.iter().enumerate() {
        // Base = what both have: each side's extra flags then count as additions, so no flag is lost.
        let base = far[uid].intersection(&near[key].flags);
        let (_, message_id, size) = evidence[key];
        changes.push(Change::Link {
            far: *uid,
            near: key.clone(),
            flags: base.clone(),
            far_flags: far[uid].clone(),
            message_id: message_id.clone(),
            size: Some(*size),
        });
        rows.push(StateRow {
            id: -1 - i as i64,
            far: Some(*uid),
            near: Some(key.clone()),
            flags: base,
        });
    }
    if options.dry_run || fid < 0 {
        return Ok(rows);
    }
    db.apply(fid, &changes).map_err(s)?;
    Ok(db
        .messages(fid)
        .map_err(s)?
        .into_iter()
        .map(|r| r.state)
        .collect())
}

/// Plans a folder that a dry run would first create on one side (so that side is empty).
async fn dry_run_new_folder(
    conn: &mut ImapConn,
    path: &Path,
    wire: &str,
    account: &Account,
    fr: &mut FolderReport,
) -> Result<(), String> {
    let (far, near) = if path.exists() {
        let md = MaildirFolder::open(path).map_err(s)?;
        let near = md.scan().map_err(s)?;
        (
            BTreeMap::new(),
            near.into_iter().map(|(k, m)| (k, m.flags)).collect(),
        )
    } else {
        let sel = conn.select(wire).await.map_err(s)?;
        (
            conn.fetch_all_flags(sel.exists).await.map_err(s)?,
            BTreeMap::new(),
        )
    };
    let policy = Policy {
        mode: account.sync,
        expunge: account.expunge,
    };
    describe(&planner::plan(&[], &far, &near, policy), fr);
    Ok(())
}

/// Near flags as the planner must see them: keywords the folder cannot write into file names
/// (no letter left in dovecot-keywords) are taken from the base, so their absence on disk is not
/// read as "removed locally".
fn complete_near_flags(
    rows: &[StateRow],
    near: &BTreeMap<NearKey, NearMessage>,
    md: &MaildirFolder,
) -> BTreeMap<NearKey, Flags> {
    let mut out: BTreeMap<NearKey, Flags> = near
        .iter()
        .map(|(k, m)| (k.clone(), m.flags.clone()))
        .collect();
    for row in rows {
        if let Some(k) = &row.near
            && let Some(flags) = out.get_mut(k)
        {
            for f in row.flags.iter() {
                if !md.can_represent(f) {
                    flags.insert(f.clone());
                }
            }
        }
    }
    out
}

fn describe(plan: &Plan, fr: &mut FolderReport) {
    for (u, f) in &plan.downloads {
        fr.planned
            .push(format!("download UID {u} {}", f.to_imap_list()));
    }
    for (k, f) in &plan.uploads {
        fr.planned.push(format!("upload {k} {}", f.to_imap_list()));
    }
    for u in &plan.flags {
        if let Some((uid, f)) = &u.far {
            fr.planned.push(format!(
                "set server flags of UID {uid} to {}",
                f.to_imap_list()
            ));
        }
        if let Some((k, f)) = &u.near {
            fr.planned
                .push(format!("set local flags of {k} to {}", f.to_imap_list()));
        }
    }
    for (_, k) in &plan.delete_near {
        fr.planned
            .push(format!("delete local {k} (expunged on the server)"));
    }
    for (_, u) in &plan.delete_far {
        fr.planned
            .push(format!("delete server UID {u} (deleted locally)"));
    }
    for (_, side) in &plan.detach {
        fr.planned.push(format!(
            "keep the {side} copy of a message deleted on the other side"
        ));
    }
    fr.downloaded = plan.downloads.len();
    fr.uploaded = plan.uploads.len();
    fr.flags_far = plan.flag_changes(crate::model::Side::Far);
    fr.flags_near = plan.flag_changes(crate::model::Side::Near);
    fr.deleted_near = plan.delete_near.len();
    fr.deleted_far = plan.delete_far.len();
}

/// A downloaded batch written to `tmp/` and waiting for its durability barrier.
struct WrittenBatch {
    keys: BTreeMap<Uid, (NearKey, Flags)>,
    intent_of: BTreeMap<Uid, i64>,
    /// (uid, flags written, Message-ID, server size) of each message in `tmp/`.
    written: Vec<(Uid, Flags, Option<String>, u32)>,
    local_error: Option<String>,
}

struct Executor<'a> {
    /// State changes whose file-system side is done but not yet made durable and committed;
    /// flag changes ride along with the deletions' commit (one directory fsync and one commit
    /// for both). Losing them in a crash is harmless: both sides then show the same new flags.
    pending: Vec<Change>,
    conn: &'a mut ImapConn,
    db: &'a mut StateDb,
    fid: i64,
    md: &'a mut MaildirFolder,
    near: &'a mut BTreeMap<NearKey, NearMessage>,
    far: &'a BTreeMap<Uid, Flags>,
    wire: &'a str,
    uidvalidity: UidValidity,
    uidnext: u32,
    progress: &'a indicatif::ProgressBar,
    folder: &'a str,
}

/// About this many bytes per upload batch: a batch is held in memory while it is sent.
const UPLOAD_BATCH_BYTES: u64 = 32 * 1024 * 1024;

/// Consecutive slices of `uploads` of at most [`UPLOAD_BATCH`] messages and about
/// [`UPLOAD_BATCH_BYTES`] bytes (a larger message travels alone).
fn upload_batches<'p>(
    md: &MaildirFolder,
    near: &BTreeMap<NearKey, NearMessage>,
    uploads: &'p [(NearKey, Flags)],
) -> Vec<&'p [(NearKey, Flags)]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, (key, _)) in uploads.iter().enumerate() {
        let size = near
            .get(key)
            .and_then(|m| std::fs::metadata(md.message_path(m)).ok())
            .map_or(0, |x| x.len());
        if i > start && (i - start >= UPLOAD_BATCH || bytes + size > UPLOAD_BATCH_BYTES) {
            out.push(&uploads[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < uploads.len() {
        out.push(&uploads[start..]);
    }
    out
}

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Executor<'_> {
    async fn flags(&mut self, plan: &Plan, fr: &mut FolderReport) -> Result<(), String> {
        if plan.flags.is_empty() {
            return Ok(());
        }
        // Server: group identical changes so one STORE covers many messages.
        let mut adds: BTreeMap<Flags, Vec<Uid>> = BTreeMap::new();
        let mut removes: BTreeMap<Flags, Vec<Uid>> = BTreeMap::new();
        for u in &plan.flags {
            if let Some((uid, new)) = &u.far {
                let old = &self.far[uid];
                let add = new.minus(old);
                let remove = old.minus(new);
                if !add.is_empty() {
                    adds.entry(add).or_default().push(*uid);
                }
                if !remove.is_empty() {
                    removes.entry(remove).or_default().push(*uid);
                }
                fr.flags_far += 1;
            }
        }
        for (flags, uids) in &adds {
            self.conn.store_flags(uids, flags, true).await.map_err(s)?;
        }
        for (flags, uids) in &removes {
            self.conn.store_flags(uids, flags, false).await.map_err(s)?;
        }
        // Maildir: one rename each.
        for u in &plan.flags {
            if let Some((key, new)) = &u.near {
                let msg =
                    self.near.get(key).cloned().ok_or_else(|| {
                        format!("local message {key} vanished while syncing flags")
                    })?;
                let renamed = self.md.set_flags(&msg, new).map_err(s)?;
                self.near.insert(key.clone(), renamed);
                fr.flags_near += 1;
            }
        }
        // Made durable and committed together with the deletions (see `pending`).
        self.pending.extend(
            plan.flags
                .iter()
                .map(|u| Change::SetFlags(u.row, u.base.clone())),
        );
        self.pending.extend(
            plan.flags
                .iter()
                .filter_map(|u| Some(Change::SetFarFlags(u.row, u.far.as_ref()?.1.clone()))),
        );
        Ok(())
    }

    /// Deletions, then one directory fsync and one commit for them and everything pending.
    async fn deletions(&mut self, plan: &Plan, fr: &mut FolderReport) -> Result<(), String> {
        let mut changes = std::mem::take(&mut self.pending);
        for (row, key) in &plan.delete_near {
            if let Some(msg) = self.near.remove(key) {
                self.md.delete(&msg).map_err(s)?;
            }
            changes.push(Change::Delete(*row));
            fr.deleted_near += 1;
        }
        // Local renames and unlinks are durable before the server is told anything more and
        // before the state records them.
        self.md.sync_dirs().map_err(s)?;
        if !plan.delete_far.is_empty() {
            let ours: Vec<Uid> = plan.delete_far.iter().map(|(_, u)| *u).collect();
            let others_deleted = self
                .far
                .iter()
                .any(|(u, f)| f.contains(&Flag::Deleted) && !ours.contains(u));
            let expunged = self
                .conn
                .delete_messages(&ours, others_deleted)
                .await
                .map_err(s)?;
            if expunged {
                changes.extend(plan.delete_far.iter().map(|(row, _)| Change::Delete(*row)));
                fr.deleted_far += ours.len();
            } else {
                fr.notes.push(format!(
                    "{} server message(s) marked \\Deleted but not expunged: the server lacks UIDPLUS and other messages are marked \\Deleted too",
                    ours.len()
                ));
            }
        }
        for (row, side) in &plan.detach {
            changes.push(Change::Detach(*row, *side));
        }
        changes.extend(plan.forget.iter().map(|r| Change::Delete(*r)));
        self.db.apply(self.fid, &changes).map_err(s)?;
        Ok(())
    }

    /// Downloads in batches, pipelined: while batch k is made durable (one `syncfs`, shared with
    /// other folders' workers), batch k+1 is fetched and written to `tmp/`. A batch is published (renamed
    /// into `new/`/`cur/`) only after its barrier, and linked in SQLite only after the renames are
    /// fsynced, so the order intent → durable file → state holds for every message.
    async fn downloads(&mut self, plan: &Plan, fr: &mut FolderReport) -> Result<(), String> {
        let total = plan.downloads.len();
        let mut in_flight: Option<(WrittenBatch, tokio::task::JoinHandle<std::io::Result<()>>)> =
            None;
        let mut failure: Option<String> = None;
        for (done, batch) in plan.downloads.chunks(DOWNLOAD_BATCH).enumerate() {
            self.progress.set_message(format!(
                "{}: ↓ {}/{}",
                self.folder,
                done * DOWNLOAD_BATCH,
                total
            ));
            let written = match self.fetch_batch(batch).await {
                Ok(w) => w,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            if let Some((prev, barrier)) = in_flight.take() {
                self.finish_batch(prev, barrier, fr).await?;
            }
            let local_error = written.local_error.clone();
            let barrier = tokio::spawn(maildir::durability::make_durable(
                self.md.path().to_path_buf(),
            ));
            in_flight = Some((written, barrier));
            if let Some(e) = local_error {
                failure = Some(e);
                break;
            }
        }
        if let Some((prev, barrier)) = in_flight.take() {
            self.finish_batch(prev, barrier, fr).await?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Announces a batch, fetches it and writes every message to `tmp/` (not yet durable).
    async fn fetch_batch(&mut self, batch: &[(Uid, Flags)]) -> Result<WrittenBatch, String> {
        let keys: BTreeMap<Uid, (NearKey, Flags)> = batch
            .iter()
            .map(|(u, f)| (*u, (maildir::new_key(), f.clone())))
            .collect();
        let intents: Vec<Change> = keys
            .iter()
            .map(|(u, (k, f))| {
                Change::AddIntent(Intent {
                    id: 0,
                    kind: IntentKind::Download,
                    far_uid: Some(*u),
                    near_key: k.clone(),
                    uidvalidity: Some(self.uidvalidity),
                    uidnext: None,
                    flags: f.clone(),
                    message_id: None,
                    size: None,
                    sha256: None,
                })
            })
            .collect();
        let ids = self.db.apply(self.fid, &intents).map_err(s)?;
        let intent_of: BTreeMap<Uid, i64> = keys.keys().copied().zip(ids).collect();
        let uids: Vec<Uid> = keys.keys().copied().collect();
        let mut written = Vec::new();
        let mut local_error: Option<String> = None;
        let md = &*self.md;
        let fetched = self
            .conn
            .fetch_bodies(&uids, |m| {
                if local_error.is_some() {
                    return Ok(());
                }
                let Some((key, planned)) = keys.get(&m.uid) else {
                    return Ok(());
                };
                let flags = m.flags.clone().unwrap_or_else(|| planned.clone());
                let mtime = m
                    .internal_date
                    .as_deref()
                    .and_then(imap::parse_internal_date);
                match md.write_tmp_from_crlf(key, m.body, mtime) {
                    Ok(()) => written.push((
                        m.uid,
                        flags,
                        crate::message::message_id(m.body),
                        m.size.unwrap_or(m.body.len() as u32),
                    )),
                    Err(e) => local_error = Some(e.to_string()),
                }
                Ok(())
            })
            .await;
        let batch = WrittenBatch {
            keys,
            intent_of,
            written,
            local_error,
        };
        match fetched {
            Ok(()) => Ok(batch),
            Err(e) => {
                // Nothing of this batch is published; roll its intents back now.
                let mut changes = Vec::new();
                for (u, id) in &batch.intent_of {
                    self.md.remove_tmp(&batch.keys[u].0);
                    changes.push(Change::RemoveIntent(*id));
                }
                self.db.apply(self.fid, &changes).map_err(s)?;
                Err(e.to_string())
            }
        }
    }

    /// Waits for a batch's durability barrier, publishes its files, fsyncs the directories and
    /// records the links (dropping the intents of messages that were not delivered).
    async fn finish_batch(
        &mut self,
        batch: WrittenBatch,
        barrier: tokio::task::JoinHandle<std::io::Result<()>>,
        fr: &mut FolderReport,
    ) -> Result<(), String> {
        barrier
            .await
            .map_err(|e| format!("durability barrier failed: {e}"))?
            .map_err(|e| format!("syncfs on {}: {e}", self.md.path().display()))?;
        let mut changes = Vec::new();
        let mut linked = std::collections::BTreeSet::new();
        for (uid, flags, message_id, size) in batch.written {
            let key = &batch.keys[&uid].0;
            let msg = self.md.publish(key, &flags).map_err(s)?;
            self.near.insert(key.clone(), msg);
            linked.insert(uid);
            fr.downloaded += 1;
            fr.bytes_down += u64::from(size);
            changes.push(Change::Link {
                far: uid,
                near: key.clone(),
                far_flags: flags.clone(),
                flags,
                message_id,
                size: Some(size),
            });
        }
        // The renames are durable before the state says so.
        self.md.sync_dirs().map_err(s)?;
        for (u, id) in &batch.intent_of {
            if !linked.contains(u) {
                // Not delivered (expunged meanwhile, or a local error): roll the intent back.
                self.md.remove_tmp(&batch.keys[u].0);
            }
            changes.push(Change::RemoveIntent(*id));
        }
        self.db.apply(self.fid, &changes).map_err(s)?;
        Ok(())
    }

    async fn uploads(&mut self, plan: &Plan, fr: &mut FolderReport) -> Result<(), String> {
        let total = plan.uploads.len();
        let mut sent = 0;
        for batch in upload_batches(self.md, self.near, &plan.uploads) {
            self.progress
                .set_message(format!("{}: ↑ {}/{}", self.folder, sent, total));
            sent += batch.len();
            struct Pending {
                intent: Intent,
                body: Vec<u8>,
                date: Option<String>,
            }
            let mut pending = Vec::new();
            for (key, flags) in batch {
                let Some(msg) = self.near.get(key) else {
                    continue;
                };
                let raw = match self.md.read(msg) {
                    Ok(r) => r,
                    Err(e) => {
                        // Gone since the scan (a mail reader moved it): next run sees it again.
                        fr.notes.push(format!("skipped upload of {key}: {e}"));
                        continue;
                    }
                };
                let body = eol::lf_to_crlf(&raw);
                let date = self.md.mtime(msg).and_then(imap::format_internal_date);
                pending.push(Pending {
                    intent: Intent {
                        id: 0,
                        kind: IntentKind::Upload,
                        far_uid: None,
                        near_key: key.clone(),
                        uidvalidity: Some(self.uidvalidity),
                        uidnext: Some(self.uidnext),
                        flags: flags.clone(),
                        message_id: crate::message::message_id(&raw),
                        size: Some(body.len() as u32),
                        sha256: Some(sha2::Sha256::digest(&body).to_vec()),
                    },
                    body,
                    date,
                });
            }
            let ids = self
                .db
                .apply(
                    self.fid,
                    &pending
                        .iter()
                        .map(|p| Change::AddIntent(p.intent.clone()))
                        .collect::<Vec<_>>(),
                )
                .map_err(s)?;
            for (p, id) in pending.iter_mut().zip(ids) {
                p.intent.id = id;
            }
            let mut changes = Vec::new();
            let mut unresolved = Vec::new();
            let items: Vec<(Flags, Option<String>, Vec<u8>)> = pending
                .iter_mut()
                .map(|p| {
                    (
                        p.intent.flags.clone(),
                        p.date.take(),
                        std::mem::take(&mut p.body),
                    )
                })
                .collect();
            let results = self.conn.append_many(self.wire, &items).await.map_err(s)?;
            for (p, result) in pending.into_iter().zip(results) {
                match result {
                    Ok(Some((v, uid))) if v == self.uidvalidity => {
                        changes.push(Change::Link {
                            far: uid,
                            near: p.intent.near_key.clone(),
                            flags: p.intent.flags.clone(),
                            far_flags: p.intent.flags.clone(),
                            message_id: p.intent.message_id.clone(),
                            size: p.intent.size,
                        });
                        changes.push(Change::RemoveIntent(p.intent.id));
                        fr.uploaded += 1;
                        fr.bytes_up += p.intent.size.map_or(0, u64::from);
                    }
                    Ok(_) => unresolved.push(p.intent),
                    Err(e) => {
                        // Refused by the server: nothing was stored there; tried again next run.
                        fr.error = Some(format!("upload of {} refused: {e}", p.intent.near_key));
                        changes.push(Change::RemoveIntent(p.intent.id));
                    }
                }
            }
            self.db.apply(self.fid, &changes).map_err(s)?;
            if !unresolved.is_empty() {
                // No APPENDUID (server without UIDPLUS): find the new UIDs by content.
                let found = recover::resolve_uploads(self.conn, self.db, self.fid, &unresolved)
                    .await
                    .map_err(s)?;
                fr.uploaded += found;
            }
        }
        Ok(())
    }
}
