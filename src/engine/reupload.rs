//! Re-uploading an account's local Maildir to an IMAP target (`push`, `migrate`), and comparing
//! the two (`verify`).
//!
//! Per folder: map the name (folder_map, then special use), create the target folder if needed,
//! settle the intents a killed run left (find the copy by size and SHA-256 among UIDs at or above
//! the UIDNEXT recorded before the APPEND), skip what is recorded or already on the target (same
//! Message-ID and size, or the same bytes), then upload the rest in pipelined batches, each
//! message announced as an intent first and recorded with its UID after. A rerun therefore
//! uploads only what is missing, and a kill at any moment leaves nothing duplicated.

use super::error::{Context, Error};
use crate::config::{ImapConfig, Layout, Target, TargetKind};
use crate::db::StateDb;
use crate::db::reupload::{ReuploadRow, ReuploadState};
use crate::model::{Evidence, NearKey, Uid};
use crate::names::{FolderName, FolderPatterns};
use crate::store::eol;
use crate::store::imap::{self, ImapConn};
use crate::store::maildir::{MaildirFolder, NearMessage, layout};
use crate::sync::recovery::UploadEvidence;
use crate::sync::reupload::{self as plan, Comparison, Identity, SpecialUse};
use sha2::Digest;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::Path;

/// At most this many messages per APPEND batch...
const BATCH: usize = 100;
/// ...and about this many bytes: a batch is held in memory while it is sent.
const BATCH_BYTES: u64 = 32 * 1024 * 1024;

/// Splits messages into batches of at most [`BATCH`] messages and about [`BATCH_BYTES`] bytes
/// (a larger message travels alone).
pub fn batches<'m>(md: &MaildirFolder, msgs: &[&'m NearMessage]) -> Vec<Vec<&'m NearMessage>> {
    let mut out: Vec<Vec<&NearMessage>> = Vec::new();
    let mut bytes = 0u64;
    for m in msgs {
        let size = std::fs::metadata(md.message_path(m)).map_or(0, |x| x.len());
        let full = out
            .last()
            .is_none_or(|b| b.len() >= BATCH || bytes + size > BATCH_BYTES);
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        out.last_mut().expect("a batch").push(m);
        bytes += size;
    }
    out
}

/// The local side of a push: an account's Maildir.
#[derive(Clone, Debug)]
pub struct LocalSide<'a> {
    /// Account name (names the state database).
    pub account: &'a str,
    /// Maildir root.
    pub root: &'a Path,
    /// Its layout.
    pub layout: Layout,
}

impl LocalSide<'_> {
    /// Opens one of the account's local folders and lists its messages.
    pub(crate) fn open_folder(
        &self,
        folder: &FolderName,
    ) -> Result<(MaildirFolder, BTreeMap<NearKey, NearMessage>), Error> {
        let path =
            layout::folder_path(self.root, self.layout, folder).map_err(Error::FolderName)?;
        let md = MaildirFolder::open(&path)?;
        let near = md.scan()?;
        Ok((md, near))
    }
}

/// What happened in one folder.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReuploadFolderReport {
    /// Local folder.
    pub folder: String,
    /// Target folder.
    pub target_folder: String,
    /// Uploaded in this run.
    pub uploaded: usize,
    /// Found already on the target.
    pub present: usize,
    /// Recorded as uploaded by an earlier run.
    pub earlier: usize,
    /// Recorded as uploaded or present, but no longer on the target (deleted there since):
    /// checked again, and uploaded again where missing (what `verify` would report).
    pub gone: usize,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Messages the target refused, with its answer.
    pub rejected: Vec<String>,
    /// What went wrong, if the folder failed.
    pub error: Option<String>,
    /// In a dry run: what would happen.
    pub planned: Option<String>,
    /// SMTP: messages whose delivery an interrupted run left unknown, sent again because no
    /// `confirm_via` mailbox could say whether they had arrived.
    pub unconfirmed: Vec<String>,
    /// SMTP: messages whose connection broke after the whole message was sent; the next run
    /// settles them.
    pub uncertain: Vec<String>,
    /// Not pushed, and why (Gmail's Starred, Important, Spam, Trash).
    pub skipped: Option<String>,
    /// Messages left for a later run by the target's daily `upload_budget`, and the note.
    pub deferred: usize,
    /// What the budget note says, when messages were deferred.
    pub deferred_note: Option<String>,
}

/// A target server's folders: canonical name → wire name, and the special-use ones.
pub(crate) struct TargetListing {
    names: crate::names::ServerNames,
    pub(crate) by_name: BTreeMap<String, String>,
    special: HashMap<SpecialUse, String>,
}

/// Lists a target server's folders.
pub(crate) async fn list_target(conn: &mut ImapConn) -> Result<TargetListing, Error> {
    let listed = conn.folders().await?;
    let mut listing = TargetListing {
        names: listed.names,
        by_name: BTreeMap::new(),
        special: HashMap::new(),
    };
    for (name, e) in listed.by_name {
        if let Some(u) = e.special_use {
            listing.special.entry(u).or_insert_with(|| name.to_string());
        }
        listing.by_name.insert(name.to_string(), e.wire_name);
    }
    Ok(listing)
}

/// The local folders selected by `patterns`.
pub(crate) fn local_folders(
    local: &LocalSide<'_>,
    patterns: &[String],
) -> Result<Vec<FolderName>, Error> {
    if !local.root.exists() {
        return Err(Error::Config(format!(
            "account {}: the Maildir {} does not exist: nothing to push",
            local.account,
            local.root.display()
        )));
    }
    let (folders, problems) = layout::list_folders(local.root, local.layout).map_err(|e| {
        Error::LocalState(format!("cannot list Maildir {}: {e}", local.root.display()))
    })?;
    for p in problems {
        tracing::warn!(account = local.account, "local folder skipped: {p}");
    }
    let patterns = if patterns.is_empty() {
        vec!["*".to_string()]
    } else {
        patterns.to_vec()
    };
    let p = FolderPatterns::new(&patterns);
    Ok(folders.into_iter().filter(|f| p.selects(f)).collect())
}

/// The local folders `patterns` select, and a logged-in connection to the IMAP target (with
/// what opens more).
async fn open_target<'t>(
    local: &LocalSide<'_>,
    target: &'t Target,
    patterns: &[String],
) -> Result<OpenTarget<'t>, Error> {
    let cfg = imap_of(target)?;
    let folders = local_folders(local, patterns)?;
    let (conn, password) = super::credentials::imap_login(cfg, &target.name)
        .await
        .context(format!("target {}", target.name))?;
    Ok(OpenTarget {
        folders,
        conn,
        cfg,
        password,
    })
}

/// What [`open_target`] opened.
struct OpenTarget<'t> {
    folders: Vec<FolderName>,
    conn: ImapConn,
    cfg: &'t ImapConfig,
    password: crate::config::Secret,
}

fn imap_of(target: &Target) -> Result<&ImapConfig, Error> {
    match &target.kind {
        TargetKind::Imap(c) => Ok(c),
        TargetKind::Smtp(_) => Err(Error::Config(format!(
            "target {} is not an IMAP target",
            target.name
        ))),
    }
}

/// Identity of a local message's bytes (LF on disk; compared with CRLF sizes and hashes).
/// A local message as the target would know it.
struct LocalIdentity {
    /// Its identity as sent.
    id: Identity,
    /// Its identity as a server that normalises line ends stores it, when that differs.
    stored_as: Option<Identity>,
    /// Its bytes with CRLF line ends.
    crlf: Vec<u8>,
}

fn local_identity(raw: &[u8]) -> LocalIdentity {
    let crlf = eol::lf_to_crlf(raw);
    let (id, stored_as) = match crate::message::message_id(raw) {
        Some(mid) => (
            Identity::IdSize(mid.clone(), crlf.len() as u32),
            plan::normalised_size(&crlf).map(|size| Identity::IdSize(mid, size)),
        ),
        None => (Identity::Hash(sha2::Sha256::digest(&crlf).to_vec()), None),
    };
    LocalIdentity {
        id,
        stored_as,
        crlf,
    }
}

/// Compares the stored header sections of the target's copies of `at_risk` messages (same
/// Message-ID and size, header with bytes servers rewrite keeping the size) with the local
/// ones; each that differs is counted altered in `c`, with how.
async fn header_changes(
    conn: &mut ImapConn,
    evidence: &[Evidence],
    at_risk: &HashMap<Identity, Vec<u8>>,
    c: &mut plan::Comparison,
) -> Result<(), Error> {
    if at_risk.is_empty() {
        return Ok(());
    }
    let wanted: Vec<(Uid, Identity)> = evidence
        .iter()
        .filter_map(|e| {
            let id = Identity::IdSize(e.message_id.clone()?, e.size);
            at_risk.contains_key(&id).then_some((e.uid, id))
        })
        .collect();
    let uids: Vec<Uid> = wanted.iter().map(|(u, _)| *u).collect();
    let stored = conn.fetch_headers(&uids).await?;
    let mut seen = HashSet::new();
    for (uid, id) in wanted {
        let (Some(sent), Some(got)) = (at_risk.get(&id), stored.get(&uid)) else {
            continue;
        };
        // One local message, one comparison (a duplicated copy is counted as such already).
        if !seen.insert(id.clone()) {
            continue;
        }
        if let (Some(how), Identity::IdSize(mid, size)) = (plan::header_change(sent, got), &id) {
            c.header_altered(mid, *size, how);
        }
    }
    Ok(())
}

/// Identities of the target folder's messages (the selected one): Message-ID and size, and for
/// messages without a Message-ID whose size matches one of `hash_sizes`, the SHA-256 of their
/// bytes. `exclude` are UIDs already accounted for.
async fn target_identities(
    conn: &mut ImapConn,
    exists: u32,
    hash_sizes: &HashSet<u32>,
    exclude: &HashSet<u32>,
) -> Result<(Vec<Identity>, Vec<Evidence>), Error> {
    if exists == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let evidence = conn.fetch_evidence("1:*").await?;
    let mut ids = Vec::new();
    let mut to_hash = Vec::new();
    for e in &evidence {
        if exclude.contains(&e.uid.0) {
            continue;
        }
        match &e.message_id {
            Some(m) => ids.push(Identity::IdSize(m.clone(), e.size)),
            None if hash_sizes.contains(&e.size) => to_hash.push(e.uid),
            None => ids.push(Identity::Hash(Vec::new())),
        }
    }
    if !to_hash.is_empty() {
        conn.fetch_bodies(&to_hash, |m| {
            ids.push(Identity::Hash(sha2::Sha256::digest(m.body).to_vec()));
            Ok(())
        })
        .await?;
    }
    Ok((ids, evidence))
}

/// A local folder as a push or verify handles it.
struct PlannedFolder {
    folder: FolderName,
    /// The target folder.
    target: String,
    /// Maildir keys left out (All Mail's labelled messages, which go with their labels).
    exclude: HashSet<String>,
}

/// Where each selected local folder goes. For an account whose server had the label model
/// (the state recorded a `\All` folder: Gmail), by the special use the server gave each folder
/// ([`plan::push_role`]): All Mail's unlabelled messages into Archive, Sent and Drafts into the
/// target's own, Starred and Important not at all, Spam and Trash only when named. Returns the
/// folders to push and the reports of those left out.
fn plan_folders(
    state: Option<&StateDb>,
    local: &LocalSide<'_>,
    folders: Vec<FolderName>,
    patterns: &[String],
    target: &Target,
    listing: &TargetListing,
) -> Result<(Vec<PlannedFolder>, Vec<ReuploadFolderReport>), Error> {
    let uses = match state {
        Some(db) => db.special_uses()?,
        None => BTreeMap::new(),
    };
    let label_model = uses.values().any(|u| *u == SpecialUse::All);
    let mut planned = Vec::new();
    let mut skipped = Vec::new();
    for folder in folders {
        let named = patterns.iter().any(|p| p == folder.as_str());
        let by_name = || plan::target_folder(folder.as_str(), &target.folder_map, &listing.special);
        let special_target = |u: SpecialUse| {
            target
                .folder_map
                .get(folder.as_str())
                .cloned()
                .unwrap_or_else(|| {
                    listing
                        .special
                        .get(&u)
                        .cloned()
                        .unwrap_or_else(|| plan::default_name(u).to_string())
                })
        };
        let (target_name, exclude) =
            match plan::push_role(uses.get(folder.as_str()).copied(), label_model, named) {
                plan::PushRole::AsIs => (by_name(), HashSet::new()),
                plan::PushRole::Into(u) => (special_target(u), HashSet::new()),
                plan::PushRole::Unlabelled => {
                    let exclude = match state {
                        Some(db) => labelled_keys(db, local, &folder)?,
                        None => HashSet::new(),
                    };
                    (special_target(SpecialUse::Archive), exclude)
                }
                plan::PushRole::Skip(why) => {
                    skipped.push(ReuploadFolderReport {
                        folder: folder.to_string(),
                        target_folder: String::new(),
                        skipped: Some(why.to_string()),
                        ..Default::default()
                    });
                    continue;
                }
            };
        planned.push(PlannedFolder {
            folder,
            target: target_name,
            exclude,
        });
    }
    Ok((planned, skipped))
}

/// All Mail's messages that are in another folder too: the state's Message-ID and size, and
/// the files' inodes (a pull stores them as hard links).
fn labelled_keys(
    db: &StateDb,
    local: &LocalSide<'_>,
    all_mail: &FolderName,
) -> Result<HashSet<String>, Error> {
    use std::os::unix::fs::MetadataExt;
    let mut keys = db.keys_also_elsewhere(all_mail.as_str())?;
    let (folders, _) = layout::list_folders(local.root, local.layout).map_err(|e| {
        Error::LocalState(format!("cannot list Maildir {}: {e}", local.root.display()))
    })?;
    let inode = |md: &MaildirFolder, m: &NearMessage| {
        std::fs::metadata(md.message_path(m))
            .ok()
            .filter(|meta| meta.nlink() > 1)
            .map(|meta| (meta.dev(), meta.ino()))
    };
    let mut elsewhere = HashSet::new();
    for f in folders.iter().filter(|f| *f != all_mail) {
        let (md, near) = local.open_folder(f)?;
        elsewhere.extend(near.values().filter_map(|m| inode(&md, m)));
    }
    let (md, near) = local.open_folder(all_mail)?;
    for m in near.values() {
        if inode(&md, m).is_some_and(|i| elsewhere.contains(&i)) {
            keys.insert(m.key.0.clone());
        }
    }
    Ok(keys)
}

/// Pushes an account's Maildir to an IMAP target.
///
/// Folders go up over at most the target's `connections` IMAP connections at once, in the units
/// [`plan::upload_units`] makes (one per target folder, biggest first: an intent's UIDNEXT
/// assumes one writer per folder). A server appends on one connection at a time: two
/// connections into different folders (a bare client against Dovecot, 10,000 messages, 1.4 GB)
/// took 12.2 s where one took 18.0 s; arctern itself with 4 took 8.3 s. The connections share
/// this task and the state database; each SQLite write is a complete transaction, never held
/// across a wait.
pub async fn reupload(
    db: &StateDb,
    local: &LocalSide<'_>,
    target: &Target,
    patterns: &[String],
    dry_run: bool,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<ReuploadFolderReport>, Error> {
    let OpenTarget {
        folders,
        mut conn,
        cfg,
        password,
    } = open_target(local, target, patterns).await?;
    let listing = RefCell::new(list_target(&mut conn).await?);
    let budget = super::budget::Budget::open(
        db,
        crate::db::TransferDirection::Up,
        &target.name,
        target.upload_budget,
        crate::clock::unix_now(),
    )?;
    let (planned, skipped) = plan_folders(
        Some(db),
        local,
        folders,
        patterns,
        target,
        &listing.borrow(),
    )?;
    let excluded: HashMap<FolderName, HashSet<String>> = planned
        .iter()
        .filter(|p| !p.exclude.is_empty())
        .map(|p| (p.folder.clone(), p.exclude.clone()))
        .collect();
    let no_exclusions = HashSet::new();
    let mut sized = Vec::with_capacity(planned.len());
    for p in planned {
        let size = layout::folder_path(local.root, local.layout, &p.folder)
            .map(|path| entries_in(&path))
            .unwrap_or(0);
        sized.push((p.folder, p.target, size));
    }
    let units = plan::upload_units(sized);
    let workers = usize::from(target.connections).min(units.len()).max(1);
    let queue = RefCell::new(VecDeque::from(units));
    let reports = RefCell::new(Vec::new());
    let work = |mut conn: Option<ImapConn>| {
        let (queue, reports, listing, password) = (&queue, &reports, &listing, &password);
        let (excluded, no_exclusions, budget) = (&excluded, &no_exclusions, budget.as_ref());
        async move {
            if conn.is_none() {
                // An extra connection the server refuses only means fewer at once.
                match imap::connect(cfg, password).await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        tracing::warn!("target {}: an extra connection failed: {e}", target.name);
                        return Ok(());
                    }
                }
            }
            let Some(mut conn) = conn else { return Ok(()) };
            loop {
                let Some((tname, folders)) = queue.borrow_mut().pop_front() else {
                    break;
                };
                for folder in folders {
                    let mut fr = ReuploadFolderReport {
                        folder: folder.to_string(),
                        target_folder: tname.clone(),
                        ..Default::default()
                    };
                    if conn.is_poisoned() {
                        conn = imap::connect(cfg, password)
                            .await
                            .context(format!("target {}", target.name))?;
                    }
                    let exclude = excluded.get(&folder).unwrap_or(no_exclusions);
                    if let Err(e) = reupload_folder(
                        db, local, target, &mut conn, listing, &folder, &tname, exclude, budget,
                        dry_run, progress, &mut fr,
                    )
                    .await
                    {
                        fr.error = Some(e.to_string());
                    }
                    reports.borrow_mut().push(fr);
                }
            }
            conn.logout().await;
            Ok::<(), Error>(())
        }
    };
    let first = work(Some(conn));
    let extra = (1..workers).map(|_| work(None));
    let (first, extra) =
        futures_util::future::join(first, futures_util::future::join_all(extra)).await;
    first?;
    for e in extra {
        e?;
    }
    let mut reports = reports.into_inner();
    reports.extend(skipped);
    reports.sort_by(|a, b| a.folder.cmp(&b.folder));
    Ok(reports)
}

/// For a target that takes messages, not folders (SMTP): of a label-model account's folders,
/// those a push leaves out (Starred, Important; Spam and Trash unless `patterns` name them),
/// as reports saying why, and the rest. Every other folder goes; a message in several of them
/// is sent once (the SMTP records compare SHA-256).
pub(crate) fn without_skipped_roles(
    db: &StateDb,
    folders: Vec<FolderName>,
    patterns: &[String],
) -> Result<(Vec<FolderName>, Vec<ReuploadFolderReport>), Error> {
    let uses = db.special_uses()?;
    let label_model = uses.values().any(|u| *u == SpecialUse::All);
    let mut kept = Vec::new();
    let mut skipped = Vec::new();
    for folder in folders {
        let named = patterns.iter().any(|p| p == folder.as_str());
        match plan::push_role(uses.get(folder.as_str()).copied(), label_model, named) {
            plan::PushRole::Skip(why) => skipped.push(ReuploadFolderReport {
                folder: folder.to_string(),
                skipped: Some(why.to_string()),
                ..Default::default()
            }),
            _ => kept.push(folder),
        }
    }
    Ok((kept, skipped))
}

/// How many entries a Maildir folder's `cur/` and `new/` hold (its size for scheduling).
fn entries_in(path: &Path) -> u64 {
    ["cur", "new"]
        .iter()
        .filter_map(|d| std::fs::read_dir(path.join(d)).ok())
        .map(|r| r.count() as u64)
        .sum()
}

#[allow(clippy::too_many_arguments)]
async fn reupload_folder(
    db: &StateDb,
    local: &LocalSide<'_>,
    target: &Target,
    conn: &mut ImapConn,
    listing: &RefCell<TargetListing>,
    folder: &FolderName,
    tname: &str,
    exclude: &HashSet<String>,
    budget: Option<&super::budget::Budget>,
    dry_run: bool,
    progress: &indicatif::ProgressBar,
    fr: &mut ReuploadFolderReport,
) -> Result<(), Error> {
    let (md, mut near) = local.open_folder(folder)?;
    near.retain(|k, _| !exclude.contains(&k.0));
    let target_name = FolderName::parse(tname)
        .map_err(|e| Error::FolderName(format!("target folder {tname:?}: {e}")))?;
    let known = listing.borrow().by_name.get(tname).cloned();
    let wire = match known {
        Some(w) => w,
        None => {
            let wire = listing
                .borrow()
                .names
                .encode(&target_name)
                .map_err(|e| Error::FolderName(format!("target folder {tname:?}: {e}")))?;
            if dry_run {
                fr.planned = Some(format!(
                    "create {tname} on the target and upload {} message(s)",
                    near.len()
                ));
                return Ok(());
            }
            conn.create(&wire).await?;
            listing
                .borrow_mut()
                .by_name
                .insert(tname.to_string(), wire.clone());
            wire
        }
    };
    let sel = conn.select(&wire).await?;
    let validity = sel.uidvalidity.0;
    let mut rows = db.reupload_rows(&target.name, folder.as_str())?;

    // Rows of another UIDVALIDITY (the target folder was recreated) prove nothing any more.
    let stale: Vec<String> =
        rows.values()
            .filter(|r| match &r.state {
                ReuploadState::Intent { uidvalidity, .. }
                | ReuploadState::Done { uidvalidity, .. } => *uidvalidity != validity,
                ReuploadState::Present => r.target_folder != tname,
            })
            .map(|r| r.near_key.clone())
            .collect();
    if !stale.is_empty() && !dry_run {
        db.forget_reupload_rows(&target.name, folder.as_str(), &stale)?;
        for k in &stale {
            rows.remove(k);
        }
    }
    // Intents of a killed run: find their copies, or forget them. Its pipelined APPENDs may
    // still be landing on the target: wait for the folder to stop growing first.
    let place = IntentPlace {
        target: &target.name,
        folder: folder.as_str(),
        target_folder: tname,
        wire: &wire,
        validity,
    };
    if !dry_run
        && rows
            .values()
            .any(|r| matches!(r.state, ReuploadState::Intent { .. }))
    {
        settle_intents(db, conn, &place, &mut rows, true).await?;
    }

    if !dry_run && !rows.is_empty() {
        fr.gone = forget_gone(db, conn, &place, &sel, &mut rows).await?;
    }

    let pending: Vec<&NearMessage> = near
        .values()
        .filter(|m| !rows.contains_key(&m.key.0))
        .collect();
    fr.earlier = near.len() - pending.len();
    if pending.is_empty() {
        return Ok(());
    }
    let missing: HashSet<usize> = if sel.exists == 0 {
        // An empty target folder holds none of them: no need to read every file to identify
        // it first (a migration into a new account then reads each message once, not twice).
        (0..pending.len()).collect()
    } else {
        // Identify the pending local messages, and the target's messages.
        // Each file is read once: its identity, and for messages without a Message-ID the CRLF size
        // whose target copies must be hashed to compare.
        let mut local_ids = Vec::with_capacity(pending.len());
        let mut stored_as = Vec::with_capacity(pending.len());
        let mut hash_sizes = HashSet::new();
        for m in &pending {
            let raw = md.read(m)?;
            let local = local_identity(&raw);
            if matches!(local.id, Identity::Hash(_)) {
                hash_sizes.insert(local.crlf.len() as u32);
            }
            local_ids.push(local.id);
            stored_as.push(local.stored_as);
        }
        let claimed = claimed_uids(&rows);
        let (target_ids, _) = target_identities(conn, sel.exists, &hash_sizes, &claimed).await?;
        plan::missing_on_target(&local_ids, &stored_as, &target_ids)
            .into_iter()
            .collect()
    };
    let present: Vec<ReuploadRow> = pending
        .iter()
        .enumerate()
        .filter(|(i, _)| !missing.contains(i))
        .map(|(_, m)| ReuploadRow {
            near_key: m.key.0.clone(),
            target_folder: tname.to_string(),
            state: ReuploadState::Present,
        })
        .collect();
    fr.present = present.len();
    let uploads: Vec<&NearMessage> = pending
        .iter()
        .enumerate()
        .filter(|(i, _)| missing.contains(i))
        .map(|(_, m)| *m)
        .collect();
    // CRLF on the wire: a little more than the file (LF).
    let wire_size = |m: &&NearMessage| {
        std::fs::metadata(md.message_path(m)).map_or(0, |x| x.len().saturating_add(x.len() / 32))
    };
    let allowed = super::budget::allow(budget.filter(|_| !dry_run), uploads, wire_size);
    fr.deferred = allowed.deferred;
    fr.deferred_note = allowed.note;
    let uploads = allowed.items;
    if dry_run {
        fr.planned = Some(format!(
            "upload {} message(s); {} already on the target",
            uploads.len(),
            present.len()
        ));
        return Ok(());
    }
    db.put_reupload_rows(
        &target.name,
        folder.as_str(),
        &present,
        crate::clock::unix_now(),
    )?;

    let mut uidnext = sel.uidnext.unwrap_or(1);
    let batches = batches(&md, &uploads);
    progress.inc_length(
        uploads
            .iter()
            .map(|m| std::fs::metadata(md.message_path(m)).map_or(0, |x| x.len()))
            .sum(),
    );
    // The outcome of a batch is committed together with the next batch's intents: one fsync
    // per batch instead of two. A kill in between leaves intents whose copies the next run
    // finds by size and hash, as after any interruption.
    let mut pending_done: Vec<ReuploadRow> = Vec::new();
    for batch in batches {
        progress.set_message(format!(
            "{folder} → {tname}: {}/{} messages",
            fr.uploaded,
            uploads.len()
        ));
        let mut items = Vec::with_capacity(batch.len());
        let mut intents = Vec::with_capacity(batch.len());
        for m in &batch {
            let raw = match md.read(m) {
                Ok(r) => r,
                Err(e) => {
                    fr.rejected
                        .push(format!("{}: cannot read: {e}", m.file_name));
                    continue;
                }
            };
            let crlf = eol::lf_to_crlf(&raw);
            intents.push(ReuploadRow {
                near_key: m.key.0.clone(),
                target_folder: tname.to_string(),
                state: ReuploadState::Intent {
                    uidvalidity: validity,
                    uidnext,
                    size: crlf.len() as u32,
                    sha256: sha2::Sha256::digest(&crlf).to_vec(),
                },
            });
            let date = md.mtime(m).and_then(imap::format_internal_date);
            items.push((m.flags.clone(), date, crlf));
        }
        let mut commit = std::mem::take(&mut pending_done);
        commit.extend(intents.iter().cloned());
        db.put_reupload_rows(
            &target.name,
            folder.as_str(),
            &commit,
            crate::clock::unix_now(),
        )?;
        let sizes: Vec<u64> = items.iter().map(|i| i.2.len() as u64).collect();
        // The bar counts file bytes (LF), as its length does.
        progress.inc(
            batch
                .iter()
                .map(|m| std::fs::metadata(md.message_path(m)).map_or(0, |x| x.len()))
                .sum(),
        );
        let reserved: u64 = batch.iter().map(wire_size).sum();
        let results = conn.append_many(&wire, &items).await;
        if let Some(b) = budget {
            let moved = match &results {
                Ok(r) => r
                    .iter()
                    .zip(&items)
                    .filter(|(r, _)| r.is_ok())
                    .map(|(_, i)| i.2.len() as u64)
                    .sum(),
                Err(_) => 0,
            };
            b.settle(db, reserved, moved, crate::clock::unix_now())?;
        }
        let results = results?;
        let mut done = Vec::new();
        let mut refused = Vec::new();
        let mut unresolved = false;
        for ((intent, result), size) in intents.iter().zip(results).zip(sizes) {
            match result {
                Ok(Some((v, uid))) if v.0 == validity => {
                    uidnext = uidnext.max(uid.0 + 1);
                    done.push(ReuploadRow {
                        near_key: intent.near_key.clone(),
                        target_folder: tname.to_string(),
                        state: ReuploadState::Done {
                            uidvalidity: validity,
                            uid: Some(uid.0),
                        },
                    });
                    fr.uploaded += 1;
                    fr.bytes += size;
                }
                Ok(_) => unresolved = true, // no APPENDUID: found by content below
                Err(e) => {
                    let file = near
                        .get(&crate::model::NearKey(intent.near_key.clone()))
                        .map_or(intent.near_key.clone(), |m| m.file_name.clone());
                    fr.rejected.push(format!("{folder}/{file}: {e}"));
                    refused.push(intent.near_key.clone());
                }
            }
        }
        if unresolved || !refused.is_empty() {
            db.put_reupload_rows(
                &target.name,
                folder.as_str(),
                &done,
                crate::clock::unix_now(),
            )?;
            db.forget_reupload_rows(&target.name, folder.as_str(), &refused)?;
        } else {
            pending_done = done;
        }
        if unresolved {
            let before = rows_done(db, &target.name, folder.as_str())?;
            rows = db.reupload_rows(&target.name, folder.as_str())?;
            settle_intents(db, conn, &place, &mut rows, false).await?;
            let after = rows_done(db, &target.name, folder.as_str())?;
            fr.uploaded += after.saturating_sub(before);
            uidnext = conn.status(&wire).await?.uidnext.unwrap_or(uidnext);
        }
    }
    db.put_reupload_rows(
        &target.name,
        folder.as_str(),
        &pending_done,
        crate::clock::unix_now(),
    )?;
    Ok(())
}

/// Target UIDs the records already account for.
fn claimed_uids(rows: &HashMap<String, ReuploadRow>) -> HashSet<u32> {
    rows.values()
        .filter_map(|r| match r.state {
            ReuploadState::Done { uid, .. } => uid,
            _ => None,
        })
        .collect()
}

fn rows_done(db: &StateDb, target: &str, folder: &str) -> Result<usize, Error> {
    Ok(db
        .reupload_rows(target, folder)?
        .values()
        .filter(|r| matches!(r.state, ReuploadState::Done { .. }))
        .count())
}

/// Finds the target copies of intents (UIDs at or above the recorded UIDNEXT, same size and
/// SHA-256, not claimed by another row): found → done, else forgotten (uploaded again unless
/// the target has it by then).
/// Where a folder's re-upload intents live: the target, the local folder, the target folder
/// (its name and wire name) and its UIDVALIDITY.
struct IntentPlace<'a> {
    target: &'a str,
    folder: &'a str,
    target_folder: &'a str,
    wire: &'a str,
    validity: u32,
}

async fn settle_intents(
    db: &StateDb,
    conn: &mut ImapConn,
    place: &IntentPlace<'_>,
    rows: &mut HashMap<String, ReuploadRow>,
    after_crash: bool,
) -> Result<(), Error> {
    let IntentPlace {
        target,
        folder,
        target_folder: tname,
        wire,
        validity,
    } = *place;
    let intents: Vec<(String, u32, u32, Vec<u8>)> = rows
        .values()
        .filter_map(|r| match &r.state {
            ReuploadState::Intent {
                uidvalidity,
                uidnext,
                size,
                sha256,
            } if *uidvalidity == validity => {
                Some((r.near_key.clone(), *uidnext, *size, sha256.clone()))
            }
            _ => None,
        })
        .collect();
    if intents.is_empty() {
        return Ok(());
    }
    let evidence: Vec<Option<UploadEvidence>> = intents
        .iter()
        .map(|(_, uidnext, size, sha256)| {
            Some(UploadEvidence {
                uidnext: *uidnext,
                size: *size,
                sha256: sha256.clone(),
            })
        })
        .collect();
    let claimed: BTreeSet<Uid> = claimed_uids(rows).into_iter().map(Uid).collect();
    // After a crash the killed run's APPENDs may still be landing; right after our own APPENDs
    // (no APPENDUID) everything has been answered: one look.
    let hits = if after_crash {
        super::recover::find_crashed_uploads(conn, wire, &evidence, &claimed).await?
    } else {
        super::recover::look_for_copies(conn, &evidence, &claimed).await?
    };
    let mut found = Vec::new();
    let mut lost = Vec::new();
    for ((key, _, _, _), hit) in intents.into_iter().zip(hits) {
        match hit {
            Some(uid) => found.push(ReuploadRow {
                near_key: key,
                target_folder: tname.to_string(),
                state: ReuploadState::Done {
                    uidvalidity: validity,
                    uid: Some(uid.0),
                },
            }),
            None => lost.push(key),
        }
    }
    db.put_reupload_rows(target, folder, &found, crate::clock::unix_now())?;
    db.forget_reupload_rows(target, folder, &lost)?;
    for r in found {
        rows.insert(r.near_key.clone(), r);
    }
    for k in lost {
        rows.remove(&k);
    }
    Ok(())
}

/// One folder's verification.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyReport {
    /// Local folder.
    pub folder: String,
    /// Target folder.
    pub target_folder: String,
    /// The comparison; `None` when the target folder does not exist.
    pub comparison: Option<Comparison>,
    /// Local message count.
    pub local: usize,
}

/// Forgets the records of messages no longer on the target (deleted there since they were
/// pushed; which ones is [`plan::gone_records`]'s decision), so this run checks them again and
/// uploads the missing ones. Returns how many records were dropped.
async fn forget_gone(
    db: &StateDb,
    conn: &mut ImapConn,
    place: &IntentPlace<'_>,
    sel: &imap::SelectInfo,
    rows: &mut HashMap<String, ReuploadRow>,
) -> Result<usize, Error> {
    let listing = conn.fetch_all_flags(sel.exists).await?;
    let records: Vec<(String, Option<u32>)> = rows
        .values()
        .filter_map(|r| match r.state {
            ReuploadState::Done { uid, .. } => Some((r.near_key.clone(), uid)),
            ReuploadState::Present => Some((r.near_key.clone(), None)),
            ReuploadState::Intent { .. } => None,
        })
        .collect();
    let listed: BTreeSet<Uid> = listing.keys().copied().collect();
    let gone = plan::gone_records(&records, &listed);
    if gone.is_empty() {
        return Ok(0);
    }
    db.forget_reupload_rows(place.target, place.folder, &gone)?;
    for k in &gone {
        rows.remove(k);
    }
    Ok(gone.len())
}

/// Compares every selected local folder with its target folder.
pub async fn verify(
    state: Option<&StateDb>,
    local: &LocalSide<'_>,
    target: &Target,
    patterns: &[String],
) -> Result<Vec<VerifyReport>, Error> {
    let OpenTarget {
        folders, mut conn, ..
    } = open_target(local, target, patterns).await?;
    let listing = list_target(&mut conn).await?;
    let (planned, _) = plan_folders(state, local, folders, patterns, target, &listing)?;
    let mut out = Vec::new();
    for PlannedFolder {
        folder,
        target: tname,
        exclude,
    } in planned
    {
        let (md, mut near) = local.open_folder(&folder)?;
        near.retain(|k, _| !exclude.contains(&k.0));
        let mut local_ids = Vec::with_capacity(near.len());
        let mut hash_sizes = HashSet::new();
        // Normalised sizes (to say how an altered copy differs), and the header sections
        // servers may rewrite keeping the size, by identity.
        let mut normalised: HashMap<(String, u32), u32> = HashMap::new();
        let mut at_risk: HashMap<Identity, Vec<u8>> = HashMap::new();
        for m in near.values() {
            let raw = md.read(m)?;
            let local = local_identity(&raw);
            if matches!(local.id, Identity::Hash(_)) {
                hash_sizes.insert(local.crlf.len() as u32);
            }
            if let (Identity::IdSize(mid, size), Some(Identity::IdSize(_, n))) =
                (&local.id, &local.stored_as)
            {
                normalised.insert((mid.clone(), *size), *n);
            }
            let header = super::labels::header_section(&local.crlf);
            if matches!(local.id, Identity::IdSize(..)) && plan::header_at_risk(header) {
                at_risk.insert(local.id.clone(), header.to_vec());
            }
            local_ids.push(local.id);
        }
        let comparison = match listing.by_name.get(&tname) {
            None => None,
            Some(wire) => {
                let sel = conn.select(wire).await?;
                let (ids, evidence) =
                    target_identities(&mut conn, sel.exists, &hash_sizes, &HashSet::new()).await?;
                let mut c = plan::compare(&local_ids, &ids);
                for a in &mut c.altered {
                    if normalised.get(&(a.message_id.clone(), a.local_size)) == Some(&a.target_size)
                    {
                        a.how = Some("bare CRs removed or a final CRLF added".into());
                    }
                }
                header_changes(&mut conn, &evidence, &at_risk, &mut c).await?;
                Some(c)
            }
        };
        out.push(VerifyReport {
            folder: folder.to_string(),
            target_folder: tname,
            comparison,
            local: local_ids.len(),
        });
    }
    conn.logout().await;
    Ok(out)
}
