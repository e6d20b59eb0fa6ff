//! Syncing one folder: snapshot both sides, settle unfinished intents, re-pair after a
//! UIDVALIDITY change, plan, guard, execute, record.
//!
//! Order of effects, chosen so a kill at any point converges on the next run:
//! flags (idempotent) → deletions (idempotent: a message gone from both sides is forgotten) →
//! downloads and uploads (announced as intents first, linked in SQLite after the Maildir
//! directory is fsynced or the server confirmed).

use super::SyncOptions;
use super::error::{Context, Error};
use super::recover;
use super::report::FolderReport;
use crate::config::ImapAccount;
use crate::db::{Change, FolderCompletion, Intent, IntentKind, StateDb};
use crate::model::{Flag, Flags, NearKey, Uid, UidValidity};
use crate::names::FolderName;
use crate::store::eol;
use crate::store::imap::{self, ImapConn};
use crate::store::maildir::{self, MaildirFolder, NearMessage};
use crate::sync::planner::{self, Plan, StateRow};
use crate::sync::{adopt, delta, repair, snapshot};
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::Path;

/// Messages fetched per batch; the batch is made durable once (one directory fsync, one commit).
const DOWNLOAD_BATCH: usize = 200;
/// Messages appended per batch between intent commits.
const UPLOAD_BATCH: usize = 100;

/// What a run shares with each folder's sync, beside the connection and the state.
pub struct RunAids<'a> {
    /// Messages stored in other folders (label model; on a resync, messages the server moved),
    /// linked instead of downloaded again.
    pub copies: Option<&'a super::labels::StoredCopies<'a>>,
    /// The account's daily transfer budgets.
    pub budgets: &'a super::budget::Budgets,
    /// Where published files go to be indexed during the sync (`index = true`).
    pub index: Option<&'a crate::index::live::LiveSink>,
    /// Folders whose sync changed only the Maildir: their fingerprints, recorded once the
    /// folders are proven to hold exactly the sync's changes ([`settle_fingerprints`]).
    pub settle: &'a std::cell::RefCell<Vec<PendingFingerprint>>,
}

/// The fingerprint of a folder whose sync changed only its Maildir, waiting for the proof that
/// the folder holds exactly what the sync left ([`settle_fingerprints`]).
#[derive(Debug)]
pub struct PendingFingerprint {
    fid: i64,
    path: std::path::PathBuf,
    /// What the sync left: how many files, and a digest of their names.
    count: usize,
    digest: [u8; 32],
    exists: u32,
    uidnext: u32,
    modseq: u64,
    /// The directories' mtimes when the sync read the folder, and the folder as the index
    /// knows it (`index = true`): told when the folder settles, so the index update can skip it.
    before: Option<(i64, i64)>,
    index: Option<std::sync::Arc<crate::index::FolderSource>>,
}

/// A digest of a folder listing's file names (in key order, as scanned).
fn listing_digest(near: &BTreeMap<NearKey, NearMessage>) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    for m in near.values() {
        h.update(m.sub.dir().as_bytes());
        h.update(b"/");
        h.update(m.file_name.as_bytes());
        h.update(b"\n");
    }
    h.finalize().into()
}

/// Records the fingerprints of `pending` folders that hold exactly what their syncs left, so
/// the next run skips them. One wait for all of them: the directories' mtimes are read first,
/// and the listing is taken once the clock has passed them by more than the timestamp
/// granularity, so a change before the listing shows in it and a change after it moves an
/// mtime past the one recorded (the "racy git" problem, solved the same way). Run after every
/// folder is synced, while the index finishes its commit on its own thread.
pub async fn settle_fingerprints(
    db: &StateDb,
    pending: Vec<PendingFingerprint>,
    index: Option<&crate::index::live::LiveSink>,
) {
    let read: Vec<(PendingFingerprint, Option<(i64, i64)>)> = pending
        .into_iter()
        .map(|p| {
            let m = maildir::dir_mtimes(&p.path);
            (p, m)
        })
        .collect();
    let newest = read
        .iter()
        .filter_map(|(_, m)| m.map(|(c, n)| c.max(n)))
        .max();
    if let Some(newest) = newest.and_then(|n| u64::try_from(n).ok()) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let age = std::time::Duration::from_nanos(
            u64::try_from(now.saturating_sub(u128::from(newest))).unwrap_or(u64::MAX),
        );
        if let Some(wait) = MTIME_GRANULARITY.checked_sub(age) {
            tokio::time::sleep(wait).await;
        }
    }
    for (p, mtimes) in read {
        let Some((cur_mtime, new_mtime)) = mtimes else {
            continue;
        };
        let same = MaildirFolder::open(&p.path)
            .and_then(|md| md.scan())
            .is_ok_and(|listed| listed.len() == p.count && listing_digest(&listed) == p.digest);
        if !same {
            tracing::debug!(folder = %p.path.display(), "changed during the sync: no fingerprint");
            continue;
        }
        let fingerprint = crate::model::Fingerprint {
            exists: p.exists,
            uidnext: p.uidnext,
            modseq: p.modseq,
            cur_mtime,
            new_mtime,
        };
        if let Err(e) = db.set_fingerprint(p.fid, fingerprint) {
            tracing::warn!("{e}");
        }
        if let (Some(sink), Some(source), Some(before)) = (index, &p.index, p.before) {
            sink.settled(source, before, (cur_mtime, new_mtime));
        }
    }
}

/// Syncs one existing folder pair. Errors are returned as text for the report.
#[allow(clippy::too_many_arguments)]
pub async fn sync_folder(
    conn: &mut ImapConn,
    db: &mut StateDb,
    account: &ImapAccount,
    name: &FolderName,
    wire: &str,
    path: &Path,
    options: SyncOptions,
    progress: &indicatif::ProgressBar,
    aids: &RunAids<'_>,
    fr: &mut FolderReport,
) -> Result<(), Error> {
    let folder_row = if options.dry_run {
        match db.folders()?.into_iter().find(|f| f.name == name.as_str()) {
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
        db.ensure_folder(name.as_str())?
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
        let mtimes = maildir::dir_mtimes(&scan_path);
        let near = md.scan()?;
        Ok::<_, maildir::MaildirError>((md, mtimes, near))
    });
    // With QRESYNC the changes since the last completed sync come inside the SELECT.
    let known = match (folder_row.uidvalidity, fid < 0) {
        (Some(v), false) => db.sync_modseq(fid)?.map(|m| (v, m)),
        _ => None,
    };
    let sel = conn.select_with(wire, known).await?;
    let (mut md, mtimes_before_scan, mut near) = local_scan.await.map_err(|e| {
        Error::LocalState(format!(
            "reading the Maildir folder {}: {e}",
            path.display()
        ))
    })??;
    let mut touched = false;
    let mut full_scan_needed = false;
    if let Some(copies) = aids.copies {
        md.sweep_departed(|p| copies.is_departed(p));
    }

    if !options.dry_run {
        fr.recovered += recover::settle_intents(conn, db, fid, wire, &sel, &md, &near)
            .await
            .context("recovering an interrupted run")?;
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
            let rows = db.messages(fid)?;
            let far_ev = if sel.exists > 0 {
                conn.fetch_evidence("1:*").await?
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
            let relinked = rep.relinked_count();
            fr.notes.push(format!(
                "UIDVALIDITY changed from {old} to {}: re-paired {relinked} message(s) by Message-ID and size; {} local message(s) without a match will be uploaded, unmatched server messages downloaded",
                sel.uidvalidity,
                rep.unmatched_near.len()
            ));
            if !options.dry_run {
                let changes: Vec<Change> = rep
                    .steps()
                    .into_iter()
                    .map(|step| match step {
                        repair::RepairStep::Drop(row) => Change::Delete(row),
                        repair::RepairStep::SetUid(row, uid) => Change::Relink(row, uid),
                    })
                    .collect();
                db.apply(fid, &changes)?;
                db.set_uidvalidity(fid, sel.uidvalidity)?;
            }
        }
        Some(_) => {}
        None => {
            if !options.dry_run {
                db.set_uidvalidity(fid, sel.uidvalidity)?;
            }
        }
    }

    let phase = std::time::Instant::now();
    tracing::debug!(folder = %name, messages = near.len(), "selected and scanned");
    let message_rows = if fid < 0 {
        Vec::new()
    } else {
        db.messages(fid)?
    };
    // The server side: only what changed since the last completed sync where the server and the
    // stored state allow it (CONDSTORE/QRESYNC), else every UID and its flags.
    let stored_modseq = if fid < 0 || full_scan_needed {
        None
    } else {
        db.sync_modseq(fid)?
    };
    tracing::debug!(folder = %name, rows = message_rows.len(), ms = phase.elapsed().as_millis() as u64, "state loaded");
    let far = match delta_snapshot(conn, &sel, stored_modseq, &message_rows).await {
        Some(far) => far,
        None => conn.fetch_all_flags(sel.exists).await?,
    };
    let mut rows: Vec<StateRow> = message_rows.iter().map(|r| r.state.clone()).collect();
    if rows.is_empty() && !far.is_empty() && !near.is_empty() {
        let place = super::adopt::Place {
            name,
            wire,
            path,
            uidvalidity: sel.uidvalidity.0,
        };
        rows = pair_existing(
            conn, db, account, &place, fid, &md, &near, &far, options, fr,
        )
        .await?;
        touched = true;
    }
    let policy = account.policy();
    if !options.dry_run && fid >= 0 && policy.may_write(crate::model::Side::Far) {
        let relinked =
            relink_renamed(conn, db, fid, &md, &near, &far, &message_rows, &mut rows).await?;
        if relinked > 0 {
            fr.notes.push(format!(
                "{relinked} file(s) renamed by a mail reader are the same messages: relinked, not uploaded again"
            ));
        }
    }
    let near_flags =
        snapshot::complete_near_flags(&rows, near.iter().map(|(k, m)| (k, &m.flags)), |f| {
            md.can_represent(f)
        });
    tracing::debug!(folder = %name, ms = phase.elapsed().as_millis() as u64, "server listing ready");
    let plan = planner::plan(&rows, &far, &near_flags, policy);
    tracing::debug!(folder = %name, ms = phase.elapsed().as_millis() as u64, "planned");
    if !options.force {
        planner::check_deletion_guard(&plan, &rows, account.max_delete_percent)?;
    }
    if options.dry_run {
        describe(&plan, fr);
        return Ok(());
    }

    // Keep the stored server flags true, so the next resync can start from them.
    let far_flag_fixes: Vec<Change> = snapshot::stale_far_flags(
        message_rows
            .iter()
            .filter_map(|r| Some((r.state.id, r.state.far?, r.far_flags.as_ref()))),
        &far,
        &plan,
    )
    .into_iter()
    .map(|(row, flags)| Change::SetFarFlags(row, flags))
    .collect();
    // What the messages the server took away were: another folder may find them in this run.
    let departing: BTreeMap<crate::model::RowId, (String, u32)> = match aids.copies {
        Some(_) if !plan.delete_near.is_empty() => {
            let going: std::collections::BTreeSet<_> =
                plan.delete_near.iter().map(|(r, _)| *r).collect();
            message_rows
                .iter()
                .filter(|r| going.contains(&r.state.id))
                .filter_map(|r| Some((r.state.id, (r.message_id.clone()?, r.size?))))
                .collect()
        }
        _ => BTreeMap::new(),
    };
    let mut exec = Executor {
        departing,
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
        max_size: account.max_size,
        copies: aids.copies,
        budgets: aids.budgets,
        index: aids.index.map(|sink| {
            (
                sink,
                std::sync::Arc::new(crate::index::FolderSource {
                    account: account.name.clone(),
                    folder: name.to_string(),
                    path: path.to_path_buf(),
                }),
            )
        }),
    };
    exec.flags(&plan, fr).await?;
    tracing::debug!(folder = %name, ms = phase.elapsed().as_millis() as u64, "flags done");
    exec.deletions(&plan, fr).await?;
    exec.downloads(&plan, fr).await?;
    exec.uploads(&plan, fr).await?;
    let index_source = exec.index.as_ref().map(|(_, source)| source.clone());
    if !fr.too_large.is_empty() {
        let names: Vec<String> = fr
            .too_large
            .iter()
            .map(|t| format!("{} {} ({:.1} MB)", t.side, t.item, t.size as f64 / 1e6))
            .collect();
        fr.notes.push(format!(
            "{} message(s) larger than max_size (or the server's APPENDLIMIT) left alone: {}",
            names.len(),
            names.join(", ")
        ));
    }
    db.set_too_large(fid, &fr.too_large)?;
    // A run that changed only the Maildir (a pull: downloads, links, local flags and
    // deletions) left the server as SELECT saw it: its fingerprint can be recorded with the
    // Maildir as it is now, once proven to hold exactly our changes, so the next run skips the
    // folder instead of listing it again.
    let local_only =
        !touched && snapshot::only_local_changes(&plan) && fr.deferred == 0 && fid >= 0;
    touched |= !plan.is_empty();
    // Such a folder's fingerprint waits for the proof, taken once for all folders at the end.
    if touched
        && local_only
        && let (Some(uidnext), Some(modseq)) = (sel.uidnext, sel.highestmodseq)
    {
        aids.settle.borrow_mut().push(PendingFingerprint {
            fid,
            path: path.to_path_buf(),
            count: near.len(),
            digest: listing_digest(&near),
            exists: sel.exists,
            uidnext,
            modseq,
            before: mtimes_before_scan,
            index: index_source,
        });
    }
    let fingerprint = snapshot::fingerprint_after(
        touched,
        sel.exists,
        sel.uidnext,
        sel.highestmodseq,
        mtimes_before_scan,
    );
    // Everything the server had at SELECT time is now known: the next run can ask only for
    // changes since then (our own changes come back as changes, harmlessly).
    tracing::debug!(folder = %name, ms = phase.elapsed().as_millis() as u64, "executed");
    db.complete_folder(
        fid,
        &FolderCompletion {
            uidvalidity: sel.uidvalidity,
            uidnext: sel.uidnext,
            now: crate::clock::unix_now(),
            sync_modseq: sel.highestmodseq,
            fingerprint,
        },
    )?;
    Ok(())
}

/// Rows whose file a mail reader renamed under a new key (mu4e does, when it changes flags):
/// paired by Message-ID and size with a file no row knows ([`renames::candidates`]) and
/// confirmed by the server copy's header section, they get the new key (in the state and in
/// `rows`), so the planner sees a flag change at most instead of a deletion and an upload.
/// Returns how many.
#[allow(clippy::too_many_arguments)]
async fn relink_renamed(
    conn: &mut ImapConn,
    db: &mut StateDb,
    fid: i64,
    md: &MaildirFolder,
    near: &BTreeMap<NearKey, NearMessage>,
    far: &BTreeMap<Uid, Flags>,
    message_rows: &[crate::db::MessageRow],
    rows: &mut [StateRow],
) -> Result<usize, Error> {
    use crate::sync::renames;
    let vanished = renames::vanished(
        message_rows.iter().map(super::labels::linked),
        |k| near.contains_key(k),
        |u| far.contains_key(&u),
    );
    if vanished.is_empty() {
        return Ok(0);
    }
    let known: std::collections::BTreeSet<&NearKey> =
        rows.iter().filter_map(|r| r.near.as_ref()).collect();
    let mut fresh = Vec::new();
    let mut headers_of: BTreeMap<NearKey, Vec<u8>> = BTreeMap::new();
    for (key, msg) in near.iter().filter(|(k, _)| !known.contains(k)) {
        let Ok(raw) = md.read(msg) else { continue };
        let file = super::labels::file_evidence(&raw);
        let Some(message_id) = file.message_id else {
            continue;
        };
        fresh.push(renames::Fresh {
            key: key.clone(),
            message_id,
            size: file.size,
        });
        headers_of.insert(key.clone(), file.header);
    }
    let candidates = renames::candidates(&vanished, &fresh);
    if candidates.is_empty() {
        return Ok(0);
    }
    let uids: Vec<Uid> = candidates.iter().map(|c| c.uid).collect();
    let server = conn.fetch_headers(&uids).await?;
    let mut changes = Vec::new();
    for c in &candidates {
        let same = server
            .get(&c.uid)
            .zip(headers_of.get(&c.key))
            .is_some_and(|(s, l)| super::labels::header_section(s) == l.as_slice());
        if !same {
            continue;
        }
        if let Some(row) = rows.iter_mut().find(|r| r.id == c.row) {
            row.near = Some(c.key.clone());
            changes.push(Change::Rekey(c.row, c.key.clone()));
        }
    }
    db.apply(fid, &changes)?;
    Ok(changes.len())
}

/// The timestamp granularity a directory mtime may have (a kernel tick, at most 10 ms with
/// HZ=100), with a margin.
const MTIME_GRANULARITY: std::time::Duration = std::time::Duration::from_millis(20);

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

/// True when a folder is provably unchanged on both sides since it was last fully in sync
/// ([`snapshot::unchanged`]): one STATUS (none when LIST-STATUS gave it, `listed`) and two
/// stats instead of a full scan.
pub async fn unchanged(
    conn: &mut ImapConn,
    db: &StateDb,
    row: &crate::db::FolderRow,
    wire: &str,
    path: &Path,
    listed: Option<&imap::MailboxStatus>,
) -> bool {
    // Nothing to ask the server when the stored state alone rules it out.
    let pending = db.intent_count(row.id).unwrap_or(1);
    let condstore = conn.has("CONDSTORE");
    if !snapshot::worth_probing(row.fingerprint, condstore, pending) {
        return false;
    }
    let st = match listed {
        Some(st) => *st,
        None => match conn.status(wire).await {
            Ok(st) => st,
            Err(_) => return false,
        },
    };
    let probe = snapshot::FolderProbe {
        messages: st.messages,
        uidnext: st.uidnext,
        uidvalidity: st.uidvalidity,
        highestmodseq: st.highestmodseq,
        mtimes: maildir::dir_mtimes(path),
    };
    snapshot::unchanged(row.fingerprint, row.uidvalidity, condstore, pending, &probe)
}

/// First sync with mail on both sides (adopting another tool's Maildir, or state lost): link
/// copies that are the same message instead of copying everything both ways. Another tool's
/// records pair exactly where they apply ([`super::adopt::find`]); the rest pairs by content
/// (Message-ID and size less sync markers), reading only the local files the records left.
/// Returns the resulting rows.
#[allow(clippy::too_many_arguments)]
async fn pair_existing(
    conn: &mut ImapConn,
    db: &mut StateDb,
    account: &ImapAccount,
    place: &super::adopt::Place<'_>,
    fid: i64,
    md: &MaildirFolder,
    near: &BTreeMap<NearKey, NearMessage>,
    far: &BTreeMap<Uid, Flags>,
    options: SyncOptions,
    fr: &mut FolderReport,
) -> Result<Vec<StateRow>, Error> {
    let (records, record_notes) = super::adopt::find(account, place);
    fr.notes.extend(record_notes);
    let near_flags: BTreeMap<NearKey, Flags> = near
        .iter()
        .map(|(k, m)| (k.clone(), m.flags.clone()))
        .collect();
    let by_record = match &records {
        Some(r) => adopt::record_links(r, far, &near_flags),
        None => Vec::new(),
    };
    let far_ev = conn.fetch_evidence("1:*").await?;
    // Only the local files the records did not pair are read.
    let mut near_ev = Vec::new();
    for key in adopt::unrecorded(&near_flags, &by_record).keys() {
        let Some(msg) = near.get(key) else { continue };
        let raw = md.read(msg)?;
        // As the other side has it: another tool's copy carries its sync-marker lines.
        let wire_size = (raw.len() + eol::bare_lf_count(&raw))
            .saturating_sub(crate::message::sync_marker_wire_bytes(&raw));
        near_ev.push((
            key.clone(),
            crate::message::message_id(&raw),
            u32::try_from(wire_size).unwrap_or(u32::MAX),
        ));
    }
    let done = adopt::first_sync(by_record, far, &near_flags, &far_ev, &near_ev);
    if !done.ambiguous.is_empty() {
        let shown: Vec<String> = done
            .ambiguous
            .iter()
            .take(20)
            .map(|a| {
                let near: Vec<&str> = a.near.iter().map(|k| k.0.as_str()).collect();
                let far: Vec<String> = a.far.iter().map(|u| u.0.to_string()).collect();
                format!(
                    "<{}> (local {}; server UID {})",
                    a.message_id,
                    near.join(", "),
                    far.join(", ")
                )
            })
            .collect();
        fr.notes.push(format!(
            "{} Message-ID(s) on both sides with different text: both versions kept on both sides: {}{}",
            done.ambiguous.len(),
            shown.join("; "),
            if done.ambiguous.len() > 20 { "; …" } else { "" }
        ));
    }
    if done.links.is_empty() {
        return Ok(Vec::new());
    }
    let how = match (&records, done.by_record, done.by_content) {
        (Some(r), n, 0) => format!("{n} by {}'s records ({})", r.tool, r.source),
        (Some(r), n, m) => format!(
            "{n} by {}'s records ({}), {m} by Message-ID and size",
            r.tool, r.source
        ),
        (None, _, m) => format!("{m} by Message-ID and size; flags as the server has them"),
    };
    fr.notes.push(format!(
        "first sync with mail on both sides: {} message(s) already present on both sides were linked, not copied ({how})",
        done.links.len()
    ));
    let mut changes = Vec::new();
    let mut rows = Vec::new();
    for (i, link) in done.links.into_iter().enumerate() {
        rows.push(StateRow {
            id: -1 - i as i64,
            far: Some(link.far),
            near: Some(link.near.clone()),
            flags: link.base.clone(),
        });
        changes.push(Change::Link {
            far: link.far,
            near: link.near,
            flags: link.base,
            far_flags: link.far_flags,
            message_id: link.message_id,
            size: (link.size > 0).then_some(link.size),
            object_id: None,
        });
    }
    if options.dry_run || fid < 0 {
        return Ok(rows);
    }
    db.apply(fid, &changes)?;
    Ok(db.messages(fid)?.into_iter().map(|r| r.state).collect())
}

/// Plans a folder that a dry run would first create on one side (so that side is empty).
async fn dry_run_new_folder(
    conn: &mut ImapConn,
    path: &Path,
    wire: &str,
    account: &ImapAccount,
    fr: &mut FolderReport,
) -> Result<(), Error> {
    let (far, near) = if path.exists() {
        let md = MaildirFolder::open(path)?;
        let near = md.scan()?;
        (
            BTreeMap::new(),
            near.into_iter().map(|(k, m)| (k, m.flags)).collect(),
        )
    } else {
        let sel = conn.select(wire).await?;
        (conn.fetch_all_flags(sel.exists).await?, BTreeMap::new())
    };
    let policy = account.policy();
    describe(&planner::plan(&[], &far, &near, policy), fr);
    Ok(())
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
    /// Each message in `tmp/`.
    written: Vec<Written>,
    local_error: Option<maildir::MaildirError>,
    /// Hard links to messages stored in other folders, not downloads.
    linked: bool,
    /// The fetch broke off (a lost connection, a server's BYE over a download limit) after
    /// the messages in `written` had arrived whole: those are kept, the rest is not.
    fetch_error: Option<Error>,
}

/// A message written to `tmp/`, with what its state row records.
struct Written {
    uid: Uid,
    /// The flags its file was given.
    flags: Flags,
    message_id: Option<String>,
    /// The server's identity of it (X-GM-MSGID, EMAILID).
    object_id: Option<String>,
    /// RFC822.SIZE.
    size: u32,
}

/// A batch's chosen keys and the ids of its download intents.
type AnnouncedBatch = (BTreeMap<Uid, (NearKey, Flags)>, BTreeMap<Uid, i64>);

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
    /// The account's `max_size`: larger messages are neither downloaded nor uploaded.
    max_size: Option<u64>,
    /// On a label-model account: the messages stored in other folders, linked instead of
    /// downloaded.
    copies: Option<&'a super::labels::StoredCopies<'a>>,
    /// The Message-ID and size of rows whose file goes because the server's copy went: kept
    /// for the run in `copies`, where the folder the message moved to finds it.
    departing: BTreeMap<crate::model::RowId, (String, u32)>,
    /// The account's daily transfer budgets, shared by the run's folders.
    budgets: &'a super::budget::Budgets,
    /// Where published files are told, to be indexed during the sync, and this folder.
    index: Option<(
        &'a crate::index::live::LiveSink,
        std::sync::Arc<crate::index::FolderSource>,
    )>,
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
            out.extend(uploads.get(start..i));
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < uploads.len() {
        out.extend(uploads.get(start..));
    }
    out
}

impl Executor<'_> {
    async fn flags(&mut self, plan: &Plan, fr: &mut FolderReport) -> Result<(), Error> {
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
            self.conn.store_flags(uids, flags, true).await?;
        }
        for (flags, uids) in &removes {
            self.conn.store_flags(uids, flags, false).await?;
        }
        // Maildir: one rename each.
        for u in &plan.flags {
            if let Some((key, new)) = &u.near {
                let msg = self.near.get(key).cloned().ok_or_else(|| {
                    Error::LocalState(format!("local message {key} vanished while syncing flags"))
                })?;
                let renamed = self.md.set_flags(&msg, new)?;
                if let Some((sink, source)) = &self.index {
                    sink.published(
                        source,
                        &renamed.key.0,
                        format!("{}/{}", renamed.sub.dir(), renamed.file_name),
                    );
                }
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
    async fn deletions(&mut self, plan: &Plan, fr: &mut FolderReport) -> Result<(), Error> {
        let mut changes = std::mem::take(&mut self.pending);
        for (row, key) in &plan.delete_near {
            if let Some(msg) = self.near.remove(key) {
                match (self.copies, self.departing.remove(row)) {
                    (Some(copies), Some((message_id, size))) => {
                        if let Some(kept) = self.md.depart(&msg)? {
                            copies.depart(message_id, size, kept);
                        }
                    }
                    _ => self.md.delete(&msg)?,
                }
                if let Some((sink, source)) = &self.index {
                    sink.removed(source, &msg.key.0);
                }
            }
            changes.push(Change::Delete(*row));
            fr.deleted_near += 1;
        }
        // Local renames and unlinks are durable before the server is told anything more and
        // before the state records them.
        self.md.sync_dirs()?;
        if !plan.delete_far.is_empty() {
            let ours: Vec<Uid> = plan.delete_far.iter().map(|(_, u)| *u).collect();
            let others_deleted = self
                .far
                .iter()
                .any(|(u, f)| f.contains(&Flag::Deleted) && !ours.contains(u));
            let expunged = self.conn.delete_messages(&ours, others_deleted).await?;
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
        self.db.apply(self.fid, &changes)?;
        Ok(())
    }

    /// Downloads in batches, pipelined: while batch k is made durable (one `syncfs`, shared with
    /// other folders' workers), batch k+1 is fetched and written to `tmp/`. A batch is published (renamed
    /// into `new/`/`cur/`) only after its barrier, and linked in SQLite only after the renames are
    /// fsynced, so the order intent → durable file → state holds for every message.
    async fn downloads(&mut self, plan: &Plan, fr: &mut FolderReport) -> Result<(), Error> {
        // With a max_size, the sizes first: an oversized message is never fetched. (The body
        // literal is buffered whole by the IMAP client, so this is also the bound on what a
        // server can make us hold in memory.)
        // A daily budget needs the sizes too, to stop before it is spent.
        let mut sizes = BTreeMap::new();
        let downloads = match self.max_size {
            _ if plan.downloads.is_empty() => Vec::new(),
            max if max.is_some() || self.budgets.down.is_some() => {
                let uids: Vec<Uid> = plan.downloads.iter().map(|(u, _)| *u).collect();
                sizes = self.conn.fetch_sizes(&uids).await?;
                let (keep, large) = planner::split_by_size(
                    &plan.downloads,
                    |u| sizes.get(u).map(|s| u64::from(*s)),
                    max,
                );
                fr.too_large
                    .extend(large.into_iter().map(|(uid, size)| crate::model::TooLarge {
                        side: crate::model::Side::Far,
                        item: format!("UID {uid}"),
                        size,
                    }));
                keep
            }
            _ => plan.downloads.clone(),
        };
        let downloads = match self.copies {
            Some(copies) if !downloads.is_empty() => {
                self.link_stored(copies, downloads, fr).await?
            }
            _ => downloads,
        };
        let allowed = super::budget::allow(self.budgets.down.as_ref(), downloads, |(u, _)| {
            sizes.get(u).map_or(0, |s| u64::from(*s))
        });
        fr.deferred += allowed.deferred;
        fr.notes.extend(allowed.note);
        let bytes_before = fr.bytes_down;
        let result = self.download_batches(allowed.items, fr).await;
        if let Some(budget) = &self.budgets.down {
            let moved = fr.bytes_down.saturating_sub(bytes_before);
            budget.settle(self.db, allowed.reserved, moved, crate::clock::unix_now())?;
        }
        result
    }

    /// Fetches `downloads` in pipelined batches (see [`Executor::downloads`]).
    async fn download_batches(
        &mut self,
        downloads: Vec<(Uid, Flags)>,
        fr: &mut FolderReport,
    ) -> Result<(), Error> {
        let total = downloads.len();
        let mut in_flight: Option<(WrittenBatch, tokio::task::JoinHandle<std::io::Result<()>>)> =
            None;
        let mut failure: Option<Error> = None;
        for (done, batch) in downloads.chunks(DOWNLOAD_BATCH).enumerate() {
            self.progress.set_message(format!(
                "{}: ↓ {}/{}",
                self.folder,
                done * DOWNLOAD_BATCH,
                total
            ));
            let mut written = match self.fetch_batch(batch).await {
                Ok(w) => w,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            if let Some((prev, barrier)) = in_flight.take() {
                self.finish_batch(prev, barrier, fr).await?;
            }
            let local_error = written.local_error.take();
            let fetch_error = written.fetch_error.take();
            let barrier = tokio::spawn(maildir::durability::make_durable(
                self.md.path().to_path_buf(),
            ));
            in_flight = Some((written, barrier));
            if let Some(e) = local_error {
                failure = Some(e.into());
                break;
            }
            if let Some(e) = fetch_error {
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

    /// The messages of `downloads` stored in another folder of the account (label model), or
    /// moved here by the server from another folder (a resync), are hard-linked from there;
    /// returns the rest, to download. Evidence: the server's identity
    /// of the message (X-GM-MSGID, EMAILID) where it has one, else Message-ID, size and an
    /// equal header section. A link that cannot be made (another file system) falls back to a
    /// download.
    async fn link_stored(
        &mut self,
        copies: &super::labels::StoredCopies<'_>,
        downloads: Vec<(Uid, Flags)>,
        fr: &mut FolderReport,
    ) -> Result<Vec<(Uid, Flags)>, Error> {
        use super::labels::Evidence;
        let uids: Vec<Uid> = downloads.iter().map(|(u, _)| *u).collect();
        let mut identities = Vec::new();
        for set in imap::uid_sets(&uids, 200) {
            identities.extend(self.conn.fetch_identities(&set).await?);
        }
        let mut candidates: BTreeMap<Uid, (imap::Identity, Evidence)> = BTreeMap::new();
        for id in identities {
            let evidence = match super::labels::evidence_for(self.db, &id)? {
                Some(e) => Some(e),
                // Moved here from a folder synced earlier in this run: only its kept file.
                None => id
                    .message_id
                    .as_deref()
                    .is_some_and(|m| copies.has_departed(m, id.size))
                    .then(|| Evidence::Namesakes(Vec::new())),
            };
            if let Some(evidence) = evidence {
                candidates.insert(id.uid, (id, evidence));
            }
        }
        if candidates.is_empty() {
            return Ok(downloads);
        }
        // Headers only for the messages whose evidence is their Message-ID.
        let wanted: Vec<Uid> = candidates
            .iter()
            .filter(|(_, (_, e))| matches!(e, Evidence::Namesakes(_)))
            .map(|(u, _)| *u)
            .collect();
        let headers = if wanted.is_empty() {
            BTreeMap::new()
        } else {
            self.conn.fetch_headers(&wanted).await?
        };
        let mut sources: BTreeMap<Uid, std::path::PathBuf> = BTreeMap::new();
        for (uid, (id, evidence)) in &candidates {
            let found = match evidence {
                Evidence::SameObject(known) => copies.find_any(known),
                Evidence::Namesakes(known) => headers.get(uid).and_then(|header| {
                    copies.find(known, header).or_else(|| {
                        let mid = id.message_id.as_deref()?;
                        copies.find_departed(mid, id.size, header)
                    })
                }),
            };
            if let Some(path) = found {
                sources.insert(*uid, path);
            }
        }
        if sources.is_empty() {
            return Ok(downloads);
        }
        let (to_link, rest): (Vec<_>, Vec<_>) = downloads
            .into_iter()
            .partition(|(u, _)| sources.contains_key(u));
        let mut fallback = Vec::new();
        for batch in to_link.chunks(DOWNLOAD_BATCH) {
            let (keys, intent_of) = self.announce_downloads(batch)?;
            let mut written = Vec::new();
            for (uid, (key, flags)) in &keys {
                let (Some(source), Some((id, _))) = (sources.get(uid), candidates.get(uid)) else {
                    continue;
                };
                match std::fs::hard_link(source, self.md.tmp_path(key)) {
                    Ok(()) => written.push(Written {
                        uid: *uid,
                        flags: flags.clone(),
                        message_id: id.message_id.clone(),
                        object_id: id.object_id.clone(),
                        size: id.size,
                    }),
                    Err(e) => {
                        tracing::debug!(folder = self.folder, %uid, "link from {} failed: {e}; downloading", source.display());
                        fallback.push((*uid, flags.clone()));
                    }
                }
            }
            let barrier = tokio::spawn(maildir::durability::make_durable(
                self.md.path().to_path_buf(),
            ));
            let batch = WrittenBatch {
                keys,
                intent_of,
                written,
                local_error: None,
                linked: true,
                fetch_error: None,
            };
            self.finish_batch(batch, barrier, fr).await?;
        }
        let mut rest = rest;
        rest.extend(fallback);
        rest.sort_by_key(|(u, _)| *u);
        Ok(rest)
    }

    /// Chooses a Maildir key for each message of `batch` and records a download intent for
    /// each (before any file exists, so a crash leaves nothing unaccounted for).
    fn announce_downloads(&mut self, batch: &[(Uid, Flags)]) -> Result<AnnouncedBatch, Error> {
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
        let ids = self.db.apply(self.fid, &intents)?;
        let intent_of: BTreeMap<Uid, i64> = keys.keys().copied().zip(ids).collect();
        Ok((keys, intent_of))
    }

    /// Announces a batch, fetches it and writes every message to `tmp/` (not yet durable).
    async fn fetch_batch(&mut self, batch: &[(Uid, Flags)]) -> Result<WrittenBatch, Error> {
        let (keys, intent_of) = self.announce_downloads(batch)?;
        let uids: Vec<Uid> = keys.keys().copied().collect();
        let mut written = Vec::new();
        let mut local_error: Option<maildir::MaildirError> = None;
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
                    Ok(()) => written.push(Written {
                        uid: m.uid,
                        flags,
                        message_id: crate::message::message_id(m.body),
                        object_id: m.object_id,
                        size: m.size.unwrap_or(m.body.len() as u32),
                    }),
                    Err(e) => local_error = Some(e),
                }
                Ok(())
            })
            .await;
        let mut batch = WrittenBatch {
            keys,
            intent_of,
            written,
            local_error,
            linked: false,
            fetch_error: None,
        };
        match fetched {
            Ok(()) => Ok(batch),
            // What arrived whole before the break is kept (finish_batch publishes it and rolls
            // back the rest): a daily download limit then costs no message twice.
            Err(e) if !batch.written.is_empty() => {
                batch.fetch_error = Some(e.into());
                Ok(batch)
            }
            Err(e) => {
                // Nothing of this batch is published; roll its intents back now.
                let mut changes = Vec::new();
                for (u, id) in &batch.intent_of {
                    if let Some((key, _)) = batch.keys.get(u) {
                        self.md.remove_tmp(key);
                    }
                    changes.push(Change::RemoveIntent(*id));
                }
                self.db.apply(self.fid, &changes)?;
                Err(e.into())
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
    ) -> Result<(), Error> {
        barrier
            .await
            .map_err(|e| Error::LocalState(format!("durability barrier failed: {e}")))?
            .map_err(Error::io("syncfs on", self.md.path()))?;
        let mut changes = Vec::new();
        let mut linked = std::collections::BTreeSet::new();
        for Written {
            uid,
            flags,
            message_id,
            object_id,
            size,
        } in batch.written
        {
            let Some((key, _)) = batch.keys.get(&uid) else {
                continue; // written only for UIDs of this batch
            };
            let msg = self.md.publish(key, &flags)?;
            if let Some((sink, source)) = &self.index {
                sink.published(
                    source,
                    &msg.key.0,
                    format!("{}/{}", msg.sub.dir(), msg.file_name),
                );
            }
            self.near.insert(key.clone(), msg);
            linked.insert(uid);
            if batch.linked {
                fr.linked += 1;
            } else {
                fr.downloaded += 1;
                fr.bytes_down += u64::from(size);
            }
            changes.push(Change::Link {
                far: uid,
                near: key.clone(),
                far_flags: flags.clone(),
                flags,
                message_id,
                size: Some(size),
                object_id,
            });
        }
        // The renames are durable before the state says so.
        self.md.sync_dirs()?;
        for (u, id) in &batch.intent_of {
            if !linked.contains(u) {
                // Not delivered (expunged meanwhile, or a local error): roll the intent back.
                if let Some((key, _)) = batch.keys.get(u) {
                    self.md.remove_tmp(key);
                }
            }
            changes.push(Change::RemoveIntent(*id));
        }
        self.db.apply(self.fid, &changes)?;
        Ok(())
    }

    async fn uploads(&mut self, plan: &Plan, fr: &mut FolderReport) -> Result<(), Error> {
        // The server's APPENDLIMIT bounds uploads as max_size does: a message it would refuse
        // is not sent (and said), where sending it would cost its whole size for a NO.
        let limit = match (self.max_size, self.conn.append_limit()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let (uploads, large) = planner::split_by_size(
            &plan.uploads,
            |key| {
                let msg = self.near.get(key)?;
                let meta = std::fs::metadata(self.md.message_path(msg)).ok()?;
                Some(meta.len())
            },
            limit,
        );
        fr.too_large
            .extend(large.into_iter().map(|(key, size)| crate::model::TooLarge {
                side: crate::model::Side::Near,
                item: key.to_string(),
                size,
            }));
        // Messages the server refused before are not offered again while their file keeps its
        // size (the refusal was reported then; `status` lists them).
        let refused_before = if self.fid < 0 {
            BTreeMap::new()
        } else {
            self.db.refused_uploads(self.fid)?
        };
        let size_of = |key: &NearKey| {
            let msg = self.near.get(key)?;
            std::fs::metadata(self.md.message_path(msg))
                .ok()
                .map(|m| m.len())
        };
        let (uploads, mut cleared) = planner::split_refused(uploads, &refused_before, size_of);
        cleared.extend(
            refused_before
                .keys()
                .filter(|k| !self.near.contains_key(&NearKey((*k).clone())))
                .cloned(),
        );
        // CRLF on the wire: a little more than the file (LF).
        let allowed = super::budget::allow(self.budgets.up.as_ref(), uploads, |(key, _)| {
            size_of(key).map_or(0, |n| n.saturating_add(n / 32))
        });
        fr.deferred += allowed.deferred;
        fr.notes.extend(allowed.note);
        let bytes_before = fr.bytes_up;
        let result = self.upload_batches(allowed.items, cleared, fr).await;
        if let Some(budget) = &self.budgets.up {
            let moved = fr.bytes_up.saturating_sub(bytes_before);
            budget.settle(self.db, allowed.reserved, moved, crate::clock::unix_now())?;
        }
        result
    }

    /// Uploads `uploads` in batches (see [`Executor::uploads`]).
    async fn upload_batches(
        &mut self,
        uploads: Vec<(NearKey, Flags)>,
        cleared: Vec<String>,
        fr: &mut FolderReport,
    ) -> Result<(), Error> {
        let mut refused_now: Vec<(String, u64, String)> = Vec::new();
        let total = uploads.len();
        let mut sent = 0;
        for batch in upload_batches(self.md, self.near, &uploads) {
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
            let ids = self.db.apply(
                self.fid,
                &pending
                    .iter()
                    .map(|p| Change::AddIntent(p.intent.clone()))
                    .collect::<Vec<_>>(),
            )?;
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
            let results = self.conn.append_many(self.wire, &items).await?;
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
                            object_id: None,
                        });
                        changes.push(Change::RemoveIntent(p.intent.id));
                        fr.uploaded += 1;
                        fr.bytes_up += p.intent.size.map_or(0, u64::from);
                    }
                    Ok(_) => unresolved.push(p.intent),
                    Err(e) => {
                        // Refused by the server: nothing was stored there. Said once; not
                        // offered again until the file changes.
                        fr.error = Some(format!(
                            "upload of {} refused: {e}; kept locally and not offered again while the file is unchanged (arctern status lists it)",
                            p.intent.near_key
                        ));
                        let size = self
                            .near
                            .get(&p.intent.near_key)
                            .and_then(|m| std::fs::metadata(self.md.message_path(m)).ok())
                            .map_or(0, |m| m.len());
                        refused_now.push((p.intent.near_key.0.clone(), size, e.to_string()));
                        changes.push(Change::RemoveIntent(p.intent.id));
                    }
                }
            }
            self.db.apply(self.fid, &changes)?;
            if !unresolved.is_empty() {
                // No APPENDUID (server without UIDPLUS): find the new UIDs by content.
                let found =
                    recover::resolve_uploads(self.conn, self.db, self.fid, &unresolved).await?;
                fr.uploaded += found;
            }
        }
        if self.fid >= 0 {
            self.db.update_refused_uploads(
                self.fid,
                &refused_now,
                &cleared,
                crate::clock::unix_now(),
            )?;
        }
        Ok(())
    }
}
