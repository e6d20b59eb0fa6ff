//! Re-sending an account's Maildir through an SMTP target (`push`, `migrate`, `verify` with an
//! `[targets.NAME.smtp]`).
//!
//! Each message goes unchanged (CRLF line ends, dot-stuffed on the wire) with the configured
//! envelope, oldest first. Before its DATA an intent is recorded; after the server's answer the
//! outcome (sent with the server's reply, or failed with its answer). 4xx answers are retried
//! with exponential backoff and jitter; 5xx answers are recorded and the run goes on. Files whose
//! bytes were already sent (the same message in two folders) are not sent twice.
//!
//! SMTP has no way to ask whether a message arrived, so an intent left by a killed run (the
//! server may or may not have accepted that message) is settled through the receiving mailbox
//! when `confirm_via` names it (an IMAP target): found by Message-ID → sent; otherwise it is sent
//! again, and the report says so (never lost; at worst one duplicate, named).

use super::error::{Context, Error};
use super::reupload::{
    LocalSide, ReuploadFolderReport, VerifyReport, list_target, local_folders,
    without_skipped_roles,
};
use crate::clock::jitter;
use crate::config::{SmtpConfig, Target, TargetKind};
use crate::db::StateDb;
use crate::db::smtp::{SmtpRow, SmtpState};
use crate::names::FolderName;
use crate::store::eol;
use crate::store::maildir::{MaildirFolder, NearMessage};
use crate::store::smtp::{self, SmtpConn, SmtpError};
use crate::sync::backoff::retry_delay;
use crate::sync::reupload::Comparison;
use crate::sync::smtp::{SmtpDecision, decide, paced_offset};
use sha2::Digest;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long the receiving mailbox must stay unchanged before unknown outcomes are settled (the
/// server may still be delivering what it accepted)...
const QUIET: Duration = Duration::from_millis(1500);
/// ...waiting at most this long.
const QUIET_LIMIT: Duration = Duration::from_secs(30);

/// Options of one SMTP push.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmtpReuploadOptions {
    /// Change nothing; report what would be sent.
    pub dry_run: bool,
    /// Messages per second, overriding the target's `rate`.
    pub rate: Option<f64>,
}

fn smtp_of(target: &Target) -> Result<&SmtpConfig, Error> {
    match &target.kind {
        TargetKind::Smtp(c) => Ok(c),
        TargetKind::Imap(_) => Err(Error::Config(format!(
            "target {} is not an SMTP target",
            target.name
        ))),
    }
}

/// Settles the intents a killed run left. Returns how many were sent again without
/// confirmation possible (reported to the user).
async fn settle_intents(
    db: &StateDb,
    target: &Target,
    cfg: &SmtpConfig,
    all_targets: &[&Target],
    rows: &mut HashMap<(String, String), SmtpRow>,
) -> Result<Vec<String>, Error> {
    let intents: Vec<SmtpRow> = rows
        .values()
        .filter(|r| r.state == SmtpState::Sending)
        .cloned()
        .collect();
    if intents.is_empty() {
        return Ok(Vec::new());
    }
    let found = match &cfg.confirm_via {
        Some(_) => mailbox_id_counts(cfg, all_targets, true).await?,
        None => HashMap::new(),
    };
    let mut confirmed = Vec::new();
    let mut forget = Vec::new();
    let mut unconfirmed = Vec::new();
    for mut r in intents {
        let key = (r.folder.clone(), r.near_key.clone());
        if r.message_id.as_ref().is_some_and(|m| found.contains_key(m)) {
            r.state = SmtpState::Sent;
            r.detail = Some(format!(
                "found in {}/{} after an interrupted run",
                cfg.confirm_via.as_deref().unwrap_or_default(),
                cfg.confirm_folder
            ));
            rows.insert(key, r.clone());
            confirmed.push(r);
        } else {
            if cfg.confirm_via.is_none() {
                unconfirmed.push(format!(
                    "{}/{} ({})",
                    r.folder,
                    r.near_key,
                    r.message_id.as_deref().unwrap_or("no Message-ID")
                ));
            }
            rows.remove(&key);
            forget.push(key);
        }
    }
    db.put_smtp_rows(&target.name, &confirmed, crate::clock::unix_now())?;
    db.forget_smtp_rows(&target.name, &forget)?;
    if !confirmed.is_empty() {
        tracing::info!(
            target = target.name,
            "{} message(s) of an interrupted run were delivered after all",
            confirmed.len()
        );
    }
    Ok(unconfirmed)
}

/// Oldest first (file mtime, then key): the receiving mailbox fills in date order.
fn in_send_order<'m>(
    md: &MaildirFolder,
    near: &'m std::collections::BTreeMap<crate::model::NearKey, NearMessage>,
) -> Vec<&'m NearMessage> {
    let mut v: Vec<(std::time::SystemTime, &NearMessage)> = near
        .values()
        .map(|m| (md.mtime(m).unwrap_or(std::time::UNIX_EPOCH), m))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key.0.cmp(&b.1.key.0)));
    v.into_iter().map(|(_, m)| m).collect()
}

struct Sender<'a> {
    cfg: &'a SmtpConfig,
    target: &'a Target,
    password: Option<crate::config::Secret>,
    conn: Option<SmtpConn>,
    rate: Option<f64>,
    started: Instant,
    attempts: u64,
    /// The server's answer once it said the sending limit is reached: nothing more is sent
    /// in this run.
    limit: Option<String>,
}

impl Sender<'_> {
    async fn conn(&mut self) -> Result<&mut SmtpConn, Error> {
        if self.conn.is_none() {
            let c = smtp::connect(self.cfg, self.password.as_ref())
                .await
                .context(format!("target {}", self.target.name))?;
            self.conn = Some(c);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    async fn pace(&mut self) {
        let offset = paced_offset(self.attempts, self.rate);
        let at = self
            .started
            .checked_add(offset)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        self.attempts += 1;
        tokio::time::sleep_until(at.into()).await;
    }
}

/// The outcome of one message.
enum Outcome {
    Sent(String),
    Failed(String),
    Uncertain(String),
    /// Not sent: the account's sending limit is reached (the server's answer).
    Limit(String),
}

/// Sends one message, retrying 4xx answers and broken connections with backoff.
async fn send_one(
    db: &StateDb,
    sender: &mut Sender<'_>,
    crlf: &[u8],
    intent: &SmtpRow,
) -> Result<Outcome, Error> {
    let mut attempt = 0u32;
    loop {
        sender.pace().await;
        let (from, to) = (&sender.cfg.envelope_from, &sender.cfg.envelope_to);
        let target = sender.target.name.clone();
        let conn = sender.conn().await?;
        let result = conn
            .send(from, to, crlf, || {
                db.put_smtp_rows(
                    &target,
                    std::slice::from_ref(intent),
                    crate::clock::unix_now(),
                )
                .map_err(|e| e.to_string())
            })
            .await;
        let e = match result {
            Ok(reply) => return Ok(Outcome::Sent(reply)),
            Err(e) => e,
        };
        if e.is_sending_limit() {
            db.forget_smtp_rows(
                &sender.target.name,
                &[(intent.folder.clone(), intent.near_key.clone())],
            )?;
            return Ok(Outcome::Limit(e.to_string()));
        }
        let retryable = match &e {
            SmtpError::Uncertain { message } => {
                sender.conn = None;
                return Ok(Outcome::Uncertain(message.clone()));
            }
            SmtpError::Auth { .. } => {
                return Err(e).context(format!("target {}", sender.target.name));
            }
            SmtpError::Transient { .. } => true,
            SmtpError::Connection { .. } | SmtpError::Connect { .. } => {
                sender.conn = None;
                tracing::warn!(target = sender.target.name, "{e}; reconnecting");
                true
            }
            SmtpError::Permanent { .. } | SmtpError::TooBig { .. } => false,
        };
        // Nothing was accepted: an intent written before a failed DATA is void.
        db.forget_smtp_rows(
            &sender.target.name,
            &[(intent.folder.clone(), intent.near_key.clone())],
        )?;
        if !retryable || attempt >= sender.cfg.max_retries {
            if matches!(e, SmtpError::Connection { .. } | SmtpError::Connect { .. }) {
                return Err(e).context(format!("target {}", sender.target.name));
            }
            let note = if retryable {
                format!(" (still after {} retries)", sender.cfg.max_retries)
            } else {
                String::new()
            };
            return Ok(Outcome::Failed(format!("{e}{note}")));
        }
        attempt += 1;
        let wait = retry_delay(attempt, sender.cfg.retry_initial, jitter());
        tracing::info!(
            target = sender.target.name,
            "{e}; trying again in {:.1}s (retry {attempt} of {})",
            wait.as_secs_f64(),
            sender.cfg.max_retries
        );
        tokio::time::sleep(wait).await;
    }
}

/// Re-sends an account's Maildir through an SMTP target. `all_targets` resolves `confirm_via`.
pub async fn reupload(
    db: &StateDb,
    local: &LocalSide<'_>,
    target: &Target,
    all_targets: &[&Target],
    patterns: &[String],
    opts: SmtpReuploadOptions,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<ReuploadFolderReport>, Error> {
    let cfg = smtp_of(target)?;
    let (folders, skipped) = without_skipped_roles(db, local_folders(local, patterns)?, patterns)?;
    let mut rows = db.smtp_rows(&target.name)?;
    let unconfirmed = if opts.dry_run {
        Vec::new()
    } else {
        settle_intents(db, target, cfg, all_targets, &mut rows).await?
    };
    for u in &unconfirmed {
        tracing::warn!(
            target = target.name,
            "sending {u} again: an interrupted run may have delivered it already (set confirm_via to check the receiving mailbox first)"
        );
    }
    let mut sent_hashes: HashSet<Vec<u8>> = rows
        .values()
        .filter(|r| r.state == SmtpState::Sent)
        .map(|r| r.sha256.clone())
        .collect();
    let password = match &cfg.login {
        Some(l) => Some(super::credentials::secret(l, &target.name, false).await?),
        None => None,
    };
    let mut sender = Sender {
        cfg,
        target,
        password,
        conn: None,
        rate: opts.rate.or(cfg.rate),
        started: Instant::now(),
        attempts: 0,
        limit: None,
    };
    let mut reports = Vec::new();
    for folder in folders {
        let mut fr = ReuploadFolderReport {
            folder: folder.to_string(),
            target_folder: cfg.envelope_to.join(","),
            ..Default::default()
        };
        let result = reupload_folder(
            db,
            local,
            &folder,
            &mut sender,
            &mut rows,
            &mut sent_hashes,
            opts.dry_run,
            progress,
            &mut fr,
        )
        .await;
        if let Err(e) = result {
            // The server cannot be reached or refuses the login: the rest would fail too. What
            // was sent is recorded; the next run goes on from there.
            if let Some(c) = sender.conn.take() {
                c.quit().await;
            }
            return Err(e);
        }
        reports.push(fr);
    }
    if let Some(first) = reports.first_mut() {
        first.unconfirmed = unconfirmed;
    }
    reports.extend(skipped);
    if let Some(c) = sender.conn.take() {
        c.quit().await;
    }
    Ok(reports)
}

#[allow(clippy::too_many_arguments)]
async fn reupload_folder(
    db: &StateDb,
    local: &LocalSide<'_>,
    folder: &FolderName,
    sender: &mut Sender<'_>,
    rows: &mut HashMap<(String, String), SmtpRow>,
    sent_hashes: &mut HashSet<Vec<u8>>,
    dry_run: bool,
    progress: &indicatif::ProgressBar,
    fr: &mut ReuploadFolderReport,
) -> Result<(), Error> {
    let (md, near) = local.open_folder(folder)?;
    let mut todo = Vec::new();
    for m in in_send_order(&md, &near) {
        match decide(rows.get(&(folder.to_string(), m.key.0.clone()))) {
            SmtpDecision::Done => fr.earlier += 1,
            SmtpDecision::Send | SmtpDecision::Retry(_) => todo.push(m),
        }
    }
    let pending_bytes: u64 = todo
        .iter()
        .map(|m| std::fs::metadata(md.message_path(m)).map_or(0, |x| x.len()))
        .sum();
    progress.inc_length(pending_bytes);
    let total = todo.len();
    for (i, m) in todo.into_iter().enumerate() {
        if let Some(answer) = &sender.limit {
            // This message and the rest of the folder wait (a later run sends them).
            let left = total.saturating_sub(i);
            fr.deferred = left;
            fr.deferred_note = Some(format!(
                "{left} message(s) wait for a later run: the server's sending limit is reached ({answer})"
            ));
            break;
        }
        progress.set_message(format!("{folder} → {}: {i}/{total}", sender.target.name));
        let raw = match md.read(m) {
            Ok(r) => r,
            Err(e) => {
                fr.rejected
                    .push(format!("{folder}/{}: cannot read: {e}", m.file_name));
                continue;
            }
        };
        progress.inc(raw.len() as u64);
        let crlf = eol::lf_to_crlf(&raw);
        let sha = sha2::Sha256::digest(&crlf).to_vec();
        let mut row = SmtpRow {
            folder: folder.to_string(),
            near_key: m.key.0.clone(),
            state: SmtpState::Sending,
            sha256: sha.clone(),
            message_id: crate::message::message_id(&raw),
            size: crlf.len() as u64,
            detail: None,
        };
        if sent_hashes.contains(&sha) {
            fr.present += 1;
            if !dry_run {
                row.state = SmtpState::Duplicate;
                row.detail = Some("the same bytes were sent from another file".into());
                db.put_smtp_rows(
                    &sender.target.name,
                    std::slice::from_ref(&row),
                    crate::clock::unix_now(),
                )?;
            }
            continue;
        }
        if dry_run {
            fr.uploaded += 1;
            fr.bytes += crlf.len() as u64;
            continue;
        }
        match send_one(db, sender, &crlf, &row).await? {
            Outcome::Sent(reply) => {
                row.state = SmtpState::Sent;
                row.detail = Some(reply);
                sent_hashes.insert(sha);
                fr.uploaded += 1;
                fr.bytes += crlf.len() as u64;
            }
            Outcome::Failed(why) => {
                row.state = SmtpState::Failed;
                fr.rejected.push(format!("{folder}/{}: {why}", m.file_name));
                row.detail = Some(why);
            }
            Outcome::Limit(answer) => {
                sender.limit = Some(answer);
                let left = total.saturating_sub(i);
                fr.deferred = left;
                fr.deferred_note = Some(format!(
                    "{left} message(s) wait for a later run: the server's sending limit is reached ({})",
                    sender.limit.as_deref().unwrap_or_default()
                ));
                break;
            }
            Outcome::Uncertain(why) => {
                // The intent stays: the next run settles it.
                fr.uncertain
                    .push(format!("{folder}/{}: {why}", m.file_name));
                continue;
            }
        }
        db.put_smtp_rows(
            &sender.target.name,
            std::slice::from_ref(&row),
            crate::clock::unix_now(),
        )?;
        rows.insert((row.folder.clone(), row.near_key.clone()), row);
    }
    if dry_run {
        fr.planned = Some(format!(
            "send {} message(s) ({:.1} MB); {} were sent before, {} duplicate(s) of sent ones",
            fr.uploaded,
            fr.bytes as f64 / 1e6,
            fr.earlier,
            fr.present
        ));
        fr.uploaded = 0;
        fr.bytes = 0;
    }
    Ok(())
}

/// Compares each selected local folder with what the SMTP target received: by Message-ID in the
/// `confirm_via` mailbox when configured (messages without a Message-ID cannot be looked up and
/// count as matched when recorded as sent), else from arctern's records of what the server
/// accepted.
pub async fn verify(
    db: &StateDb,
    local: &LocalSide<'_>,
    target: &Target,
    all_targets: &[&Target],
    patterns: &[String],
) -> Result<Vec<VerifyReport>, Error> {
    let cfg = smtp_of(target)?;
    // What push leaves out is not looked for.
    let (folders, _) = without_skipped_roles(db, local_folders(local, patterns)?, patterns)?;
    let rows = db.smtp_rows(&target.name)?;
    let mailbox: Option<HashMap<String, usize>> = match &cfg.confirm_via {
        None => None,
        Some(_) => Some(mailbox_id_counts(cfg, all_targets, false).await?),
    };
    let mut out = Vec::new();
    for folder in folders {
        let (md, near) = local.open_folder(&folder)?;
        let mut c = Comparison::default();
        let mut local_ids: HashMap<String, usize> = HashMap::new();
        for m in near.values() {
            let recorded = rows
                .get(&(folder.to_string(), m.key.0.clone()))
                .is_some_and(|r| matches!(r.state, SmtpState::Sent | SmtpState::Duplicate));
            let mid = match &mailbox {
                Some(_) => {
                    let raw = md.read(m)?;
                    crate::message::message_id(&raw)
                }
                None => None,
            };
            match mid {
                Some(mid) => *local_ids.entry(mid).or_default() += 1,
                None if recorded => c.matched += 1,
                None => c.missing += 1,
            }
        }
        if let Some(found) = &mailbox {
            for (mid, here) in local_ids {
                let there = found.get(&mid).copied().unwrap_or(0);
                c.matched += here.min(there);
                c.missing += here.saturating_sub(there);
                c.duplicated += there.saturating_sub(here);
            }
        }
        out.push(VerifyReport {
            folder: folder.to_string(),
            target_folder: match &cfg.confirm_via {
                Some(v) => format!("{v}/{}", cfg.confirm_folder),
                None => format!("{} (arctern's records)", target.name),
            },
            comparison: Some(c),
            local: near.len(),
        });
    }
    Ok(out)
}

/// Message-IDs (with their number of copies) in the receiving folder of `confirm_via`; with
/// `wait_quiet`, read once the folder has stopped changing (accepted mail may still be on its
/// way through the server's queue).
async fn mailbox_id_counts(
    cfg: &SmtpConfig,
    all_targets: &[&Target],
    wait_quiet: bool,
) -> Result<HashMap<String, usize>, Error> {
    let via = cfg.confirm_via.as_deref().unwrap_or_default();
    let Some(TargetKind::Imap(icfg)) = all_targets.iter().find(|t| t.name == via).map(|t| &t.kind)
    else {
        return Err(Error::Config(format!(
            "confirm_via target {via:?} is not an IMAP target"
        )));
    };
    let (mut conn, _) = super::credentials::imap_login(icfg, via)
        .await
        .context(format!("confirm_via target {via}"))?;
    let listing = list_target(&mut conn).await?;
    let mut counts = HashMap::new();
    if let Some(wire) = listing.by_name.get(&cfg.confirm_folder) {
        if wait_quiet {
            conn.wait_until_quiet(wire, QUIET, QUIET_LIMIT).await?;
        }
        let sel = conn.select(wire).await?;
        if sel.exists > 0 {
            for e in conn.fetch_evidence("1:*").await? {
                if let Some(m) = e.message_id {
                    *counts.entry(m).or_default() += 1;
                }
            }
        }
    }
    conn.logout().await;
    Ok(counts)
}
