//! Pulling a POP3 maildrop into a Maildir folder, crash-safe.
//!
//! Order per batch of messages: intents in SQLite (identity → new Maildir key), then RETR
//! streamed into `tmp/` files, one durability barrier for the batch, renames into `new/`, a
//! directory fsync, then "stored" in SQLite. Only then may a DELE be sent, and deletions take
//! effect only at QUIT (RFC 1939 UPDATE state), so a kill or a dropped connection at any point
//! loses nothing; an intent left behind is settled by the next run (file published → stored,
//! else forgotten and downloaded again), so nothing is duplicated either.

use super::error::Context;
use super::report::{AccountReport, FolderReport};
use super::{Error, SyncOptions};
use crate::clock::unix_now;
use crate::config::{Pop3Account, Pop3Identity};
use crate::db::StateDb;
use crate::db::pop3::{Pop3Change, Pop3Row};
use crate::model::{Flags, NearKey};
use crate::store::maildir::{self, MaildirFolder, layout};
use crate::store::pop3::proto::Expire;
use crate::store::pop3::{Pop3Conn, Pop3Error};
use crate::sync::pop3::{self as plan, Listed, Pop3Policy};
use std::collections::HashMap;
use std::io::Write;

/// Messages per batch: one intent commit, one pipelined RETR burst, one barrier, one commit.
const BATCH: usize = 100;

/// Pulls one POP3 account once its lock is held and its state database open (see
/// [`super::run`]). Never panics on bad data; everything goes into `report`, and a failure of
/// the account as a whole is returned.
pub async fn pull_account(
    account: &Pop3Account,
    db: &mut StateDb,
    options: SyncOptions,
    progress: &indicatif::ProgressBar,
    report: &mut AccountReport,
) -> Result<(), Error> {
    let mut fr = FolderReport {
        folder: account.folder.to_string(),
        ..Default::default()
    };
    let result = pull(account, db, options, progress, &mut fr, report).await;
    report.folders.push(fr);
    result
}

async fn pull(
    account: &Pop3Account,
    db: &mut StateDb,
    options: SyncOptions,
    progress: &indicatif::ProgressBar,
    fr: &mut FolderReport,
    report: &mut AccountReport,
) -> Result<(), Error> {
    let name = &account.name;
    let db: &StateDb = db;
    let mut rows = db.pop3_rows()?;

    // The Maildir folder. A root that held our mail before and is gone now is an error, never a
    // reason to download everything again.
    let root = &account.maildir;
    let ever_stored = rows.values().any(|r| r.stored);
    if !root.exists() && ever_stored {
        return Err(Error::LocalState(format!(
            "Maildir root {} is missing; it held mail pulled before, so arctern stops instead of downloading everything again",
            root.display()
        )));
    }
    let path = layout::folder_path(root, account.layout, &account.folder)
        .map_err(|e| Error::FolderName(format!("folder {}: {e}", account.folder)))?;
    // In a dry run a folder that does not exist yet is not created; downloads are only listed.
    let mut md = if path.join("cur").is_dir() {
        Some(MaildirFolder::open(&path)?)
    } else if options.dry_run {
        fr.planned
            .push(format!("create local folder {}", account.folder));
        None
    } else {
        std::fs::create_dir_all(root).map_err(Error::io("cannot create Maildir root", root))?;
        let subfolder = !account.folder.is_inbox() && account.layout.is_maildir_plus_plus();
        Some(MaildirFolder::create(&path, subfolder)?)
    };

    // Downloads a killed run left half-done.
    if let (false, Some(md)) = (options.dry_run, md.as_ref()) {
        fr.recovered += settle_intents(db, md, &mut rows)?;
    }

    // LOGIN-DELAY: a server that allows one login every N seconds is not asked again sooner.
    let now = unix_now();
    let delay = db.pop3_server_value("login_delay")?;
    let last = db.pop3_server_value("last_login")?;
    if let plan::LoginGate::Wait { delay, seconds } = plan::login_gate(now, last, delay) {
        fr.notes.push(format!(
            "server allows one login every {delay} s (LOGIN-DELAY); next pull possible in {seconds} s, skipped"
        ));
        return Ok(());
    }

    progress.set_message(format!("{name}: connecting"));
    let mut conn = super::credentials::pop3_login(&account.pop3, name).await?;
    remember_server_facts(db, &conn, now, options)?;
    note_server_facts(&conn, account, delay, fr);

    let result = transact(
        db,
        &mut conn,
        md.as_mut(),
        account,
        &mut rows,
        options,
        progress,
        fr,
    )
    .await;
    match result {
        Ok(deleted) => {
            // QUIT: the server carries out the DELEs now (and only now).
            match conn.quit().await {
                Ok(()) => {
                    if !options.dry_run && !deleted.is_empty() {
                        let now = unix_now();
                        let changes: Vec<Pop3Change> = deleted
                            .iter()
                            .map(|uid| Pop3Change::Deleted(uid.clone(), now))
                            .collect();
                        db.pop3_apply(&changes)?;
                        fr.deleted_far += deleted.len();
                    }
                }
                Err(e) => {
                    fr.error = Some(format!(
                        "QUIT failed ({e}): the server may not have deleted the {} message(s) marked for deletion; the next run tries again",
                        deleted.len()
                    ));
                }
            }
        }
        Err(e) => {
            // No QUIT: the server deletes nothing from this session.
            fr.error = Some(e.to_string());
        }
    }
    let rows = db.pop3_rows()?;
    report.pop3_kept = Some(rows.values().filter(|r| r.stored && r.on_server).count());
    Ok(())
}

/// Finishes or forgets the downloads a killed run left as intents.
fn settle_intents(
    db: &StateDb,
    md: &MaildirFolder,
    rows: &mut HashMap<String, Pop3Row>,
) -> Result<usize, Error> {
    let pending: Vec<(String, String)> = rows
        .values()
        .filter(|r| !r.stored)
        .filter_map(|r| Some((r.uid.clone(), r.near_key.clone()?)))
        .collect();
    if pending.is_empty() {
        return Ok(0);
    }
    let present = md.scan()?;
    let now = unix_now();
    let mut changes = Vec::new();
    for (uid, key) in &pending {
        if present.contains_key(&NearKey(key.clone())) {
            changes.push(Pop3Change::Stored(uid.clone(), now));
        } else {
            md.remove_tmp(&NearKey(key.clone()));
            changes.push(Pop3Change::Abandon(uid.clone()));
        }
    }
    db.pop3_apply(&changes)?;
    for c in &changes {
        if let Pop3Change::Stored(uid, _) = c
            && let Some(r) = rows.get_mut(uid)
        {
            r.stored = true;
        } else if let Pop3Change::Abandon(uid) = c
            && let Some(r) = rows.get_mut(uid)
        {
            r.near_key = None;
        }
    }
    Ok(changes.len())
}

fn remember_server_facts(
    db: &StateDb,
    conn: &Pop3Conn,
    now: i64,
    options: SyncOptions,
) -> Result<(), Error> {
    if options.dry_run {
        return Ok(());
    }
    let caps = conn.capabilities();
    db.set_pop3_server_value("last_login", Some(now))?;
    db.set_pop3_server_value("login_delay", caps.login_delay.map(|d| d as i64))?;
    db.set_pop3_server_value(
        "expire_days",
        match caps.expire {
            Some(Expire::Days(d)) => Some(i64::from(d)),
            Some(Expire::Never) => Some(-1),
            None => None,
        },
    )?;
    Ok(())
}

/// Reports LOGIN-DELAY (once: when it is new or changed since `recorded`, so cron does not
/// mail it every run) and EXPIRE where it contradicts the configuration.
fn note_server_facts(
    conn: &Pop3Conn,
    account: &Pop3Account,
    recorded: Option<i64>,
    fr: &mut FolderReport,
) {
    let caps = conn.capabilities();
    if let Some(delay) = caps.login_delay
        && delay > 0
        && recorded != Some(delay as i64)
    {
        fr.notes.push(format!(
            "server allows one login every {delay} s (LOGIN-DELAY); runs sooner than that are skipped"
        ));
    }
    match caps.expire {
        Some(Expire::Days(0)) if account.pop3.keep_on_server => fr.notes.push(
            "server deletes messages once retrieved (EXPIRE 0): keep_on_server cannot be honoured"
                .into(),
        ),
        Some(Expire::Days(d)) => {
            let wanted = account.pop3.delete_after_days;
            if account.pop3.keep_on_server && wanted.is_none_or(|w| w > d) {
                fr.notes.push(format!(
                    "server deletes retrieved messages after {d} day(s) (EXPIRE {d}), sooner than this account keeps them"
                ));
            }
        }
        _ => {}
    }
}

/// Listing, downloads and DELEs of one session. Returns the identities marked for deletion
/// (deleted once QUIT succeeds).
#[allow(clippy::too_many_arguments)]
async fn transact(
    db: &StateDb,
    conn: &mut Pop3Conn,
    md: Option<&mut MaildirFolder>,
    account: &Pop3Account,
    rows: &mut HashMap<String, Pop3Row>,
    options: SyncOptions,
    progress: &indicatif::ProgressBar,
    fr: &mut FolderReport,
) -> Result<Vec<String>, Error> {
    let name = &account.name;
    let listing = listing(conn, account)
        .await
        .context("listing the maildrop")?;
    let now = unix_now();
    if !options.dry_run {
        let mut changes: Vec<Pop3Change> = listing
            .iter()
            .map(|m| Pop3Change::Seen {
                uid: m.uid.clone(),
                size: m.size,
                now,
            })
            .collect();
        changes.extend(
            plan::gone(&listing, rows)
                .into_iter()
                .map(|u| Pop3Change::Gone(u.to_string())),
        );
        db.pop3_apply(&changes)?;
        *rows = db.pop3_rows()?;
    }

    let wanted: Vec<Listed> = plan::downloads(&listing, rows)
        .into_iter()
        .cloned()
        .collect();
    if let (false, Some(md)) = (options.dry_run, md) {
        let total = wanted.len();
        for (i, batch) in wanted.chunks(BATCH).enumerate() {
            progress.set_message(format!("{name}: ↓ {}/{total}", i * BATCH));
            download_batch(db, conn, md, batch, fr).await?;
        }
        *rows = db.pop3_rows()?;
    } else {
        fr.planned
            .push(format!("download {} message(s)", wanted.len()));
    }

    let policy = Pop3Policy {
        keep_on_server: account.pop3.keep_on_server,
        delete_after_days: account.pop3.delete_after_days,
        now: unix_now(),
    };
    let doomed = plan::deletions(&listing, rows, policy);
    if doomed.is_empty() {
        return Ok(Vec::new());
    }
    if options.dry_run {
        fr.planned
            .push(format!("delete {} message(s) on the server", doomed.len()));
        return Ok(Vec::new());
    }
    conn.dele_many(&doomed).await.context(
        "marking messages for deletion (nothing is deleted: the session ends without QUIT)",
    )?;
    let by_msgno: HashMap<u32, &str> = listing.iter().map(|m| (m.msgno, m.uid.as_str())).collect();
    Ok(doomed
        .iter()
        .filter_map(|n| by_msgno.get(n).map(|u| u.to_string()))
        .collect())
}

/// The maildrop's messages with their identities: UIDL, or (configured) a header hash.
async fn listing(conn: &mut Pop3Conn, account: &Pop3Account) -> Result<Vec<Listed>, Pop3Error> {
    let sizes: HashMap<u32, u64> = conn.list_all().await?.into_iter().collect();
    let ids: Vec<(u32, String)> = match account.pop3.identify_by {
        Pop3Identity::Uidl => {
            if conn.capabilities().known && !conn.capabilities().uidl {
                return Err(no_uidl(&account.name));
            }
            match conn.uidl_all().await {
                Err(Pop3Error::Refused { .. }) => return Err(no_uidl(&account.name)),
                other => other?,
            }
        }
        Pop3Identity::HeaderHash => {
            let mut ids = Vec::with_capacity(sizes.len());
            let mut numbers: Vec<u32> = sizes.keys().copied().collect();
            numbers.sort_unstable();
            for n in numbers {
                let header = conn.top_header(n).await?;
                let size = sizes.get(&n).copied().unwrap_or_default();
                ids.push((n, header_identity(&header, size)));
            }
            ids
        }
    };
    let mut out = Vec::with_capacity(ids.len());
    for (msgno, uid) in ids {
        let Some(size) = sizes.get(&msgno) else {
            return Err(Pop3Error::Protocol {
                command: "UIDL".into(),
                message: format!("message {msgno} is in UIDL but not in LIST"),
            });
        };
        out.push(Listed {
            msgno,
            uid,
            size: *size,
        });
    }
    Ok(out)
}

fn no_uidl(account: &str) -> Pop3Error {
    Pop3Error::Config(format!(
        "account {account}: the server does not support UIDL, so arctern cannot tell which messages it already has; set identify_by = \"header-hash\" in [accounts.{account}.pop3] to identify messages by a hash of their headers and size"
    ))
}

/// `h:` and the SHA-256 of the header and size, in hex (fits UIDL's 70 characters).
fn header_identity(header: &[u8], size: u64) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(header);
    h.update(size.to_be_bytes());
    format!("h:{}", crate::model::hex(&h.finalize()))
}

/// One batch: intents, pipelined RETR into `tmp/`, barrier, publish, directory fsync, stored.
async fn download_batch(
    db: &StateDb,
    conn: &mut Pop3Conn,
    md: &mut MaildirFolder,
    batch: &[Listed],
    fr: &mut FolderReport,
) -> Result<(), Error> {
    let keys: Vec<NearKey> = batch.iter().map(|_| maildir::new_key()).collect();
    let intents: Vec<Pop3Change> = batch
        .iter()
        .zip(&keys)
        .map(|(m, k)| Pop3Change::Intent(m.uid.clone(), k.0.clone()))
        .collect();
    db.pop3_apply(&intents)?;

    let by_msgno: HashMap<u32, usize> = batch
        .iter()
        .enumerate()
        .map(|(i, m)| (m.msgno, i))
        .collect();
    let numbers: Vec<u32> = batch.iter().map(|m| m.msgno).collect();
    // RETR is sent for our own numbers only, so every `n` has a key.
    let tmp_of = |n: u32| {
        by_msgno
            .get(&n)
            .and_then(|i| keys.get(*i))
            .map(|k| md.tmp_path(k))
            .ok_or_else(|| std::io::Error::other(format!("no download slot for message {n}")))
    };
    let results = conn
        .retr_many(
            &numbers,
            |n| {
                tmp_of(n)
                    .and_then(std::fs::File::create)
                    .map(|f| std::io::BufWriter::with_capacity(256 * 1024, f))
            },
            |_, mut w| w.flush(),
        )
        .await;
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            abandon(db, md, batch, &keys);
            return Err(e).context("downloading");
        }
    };

    let mut fetched = Vec::new();
    let mut failed = Vec::new();
    for ((m, key), result) in batch.iter().zip(&keys).zip(results) {
        match result {
            Ok(_) => fetched.push((m, key)),
            Err(e) => {
                fr.notes.push(format!(
                    "message {} ({}): not downloaded: {e}",
                    m.msgno, m.uid
                ));
                failed.push(m.uid.clone());
                md.remove_tmp(key);
            }
        }
    }
    if !failed.is_empty() {
        let changes: Vec<Pop3Change> = failed.into_iter().map(Pop3Change::Abandon).collect();
        db.pop3_apply(&changes)?;
    }
    if fetched.is_empty() {
        return Ok(());
    }
    maildir::durability::make_durable(md.path().join("tmp"))
        .await
        .map_err(Error::io("making downloads durable in", md.path()))?;
    for (_, key) in &fetched {
        md.publish(key, &Flags::new())?;
    }
    md.sync_dirs()?;
    let now = unix_now();
    let stored: Vec<Pop3Change> = fetched
        .iter()
        .map(|(m, _)| Pop3Change::Stored(m.uid.clone(), now))
        .collect();
    db.pop3_apply(&stored)?;
    fr.downloaded += fetched.len();
    fr.bytes_down += fetched.iter().map(|(m, _)| m.size).sum::<u64>();
    Ok(())
}

/// Rolls a failed batch back: its `tmp/` files removed, its intents forgotten.
fn abandon(db: &StateDb, md: &MaildirFolder, batch: &[Listed], keys: &[NearKey]) {
    for key in keys {
        md.remove_tmp(key);
    }
    let changes: Vec<Pop3Change> = batch
        .iter()
        .map(|m| Pop3Change::Abandon(m.uid.clone()))
        .collect();
    let _ = db.pop3_apply(&changes);
}
