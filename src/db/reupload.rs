//! Re-upload state: per target, local folder and Maildir key, whether the message was uploaded
//! (and as which UID), found already present, or is being uploaded (an intent, settled after a
//! crash by size and SHA-256 among the UIDs at or above the recorded UIDNEXT).

use super::{DbError, StateDb};
use rusqlite::params;
use std::collections::HashMap;

/// What is recorded for one local message and one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReuploadState {
    /// An APPEND may be under way: the target's UIDNEXT before it, the CRLF size and SHA-256.
    Intent {
        /// Target UIDVALIDITY.
        uidvalidity: u32,
        /// Target UIDNEXT before the APPEND.
        uidnext: u32,
        /// Size with CRLF.
        size: u32,
        /// SHA-256 of the CRLF bytes.
        sha256: Vec<u8>,
    },
    /// Uploaded; the UID when the server said (APPENDUID) or it was found.
    Done {
        /// Target UIDVALIDITY.
        uidvalidity: u32,
        /// Target UID, when known.
        uid: Option<u32>,
    },
    /// The target already had it (same Message-ID and size, or same bytes).
    Present,
}

/// One row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReuploadRow {
    /// Maildir key.
    pub near_key: String,
    /// Target folder (canonical name).
    pub target_folder: String,
    /// State.
    pub state: ReuploadState,
}

impl StateDb {
    /// Every row for a target and local folder, by Maildir key.
    pub fn reupload_rows(
        &self,
        target: &str,
        folder: &str,
    ) -> Result<HashMap<String, ReuploadRow>, DbError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT near_key, target_folder, state, uidvalidity, uid, uidnext, size, sha256
                 FROM pushed WHERE target = ?1 AND folder = ?2",
            )
            .map_err(self.err("read push state"))?;
        let rows = st
            .query_map(params![target, folder], |r| {
                let state: String = r.get(2)?;
                let uidvalidity: Option<u32> = r.get(3)?;
                let state = match state.as_str() {
                    "intent" => ReuploadState::Intent {
                        uidvalidity: uidvalidity.unwrap_or(0),
                        uidnext: r.get::<_, Option<u32>>(5)?.unwrap_or(1),
                        size: r.get::<_, Option<u32>>(6)?.unwrap_or(0),
                        sha256: r.get::<_, Option<Vec<u8>>>(7)?.unwrap_or_default(),
                    },
                    "done" => ReuploadState::Done {
                        uidvalidity: uidvalidity.unwrap_or(0),
                        uid: r.get(4)?,
                    },
                    _ => ReuploadState::Present,
                };
                Ok(ReuploadRow {
                    near_key: r.get(0)?,
                    target_folder: r.get(1)?,
                    state,
                })
            })
            .map_err(self.err("read push state"))?;
        let mut out = HashMap::new();
        for row in rows {
            let row = row.map_err(self.err("read push state"))?;
            out.insert(row.near_key.clone(), row);
        }
        Ok(out)
    }

    /// Records rows (replacing earlier ones for the same key) in one transaction, stamped `now`.
    pub fn put_reupload_rows(
        &self,
        target: &str,
        folder: &str,
        rows: &[ReuploadRow],
        now: i64,
    ) -> Result<(), DbError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.in_transaction("record push state", |tx| {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO pushed
                   (target, folder, near_key, target_folder, state, uidvalidity, uid, uidnext, size, sha256, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for r in rows {
                let none: Option<u32> = None;
                let (state, v, uid, next, size, sha) = match &r.state {
                    ReuploadState::Intent {
                        uidvalidity,
                        uidnext,
                        size,
                        sha256,
                    } => (
                        "intent",
                        Some(*uidvalidity),
                        none,
                        Some(*uidnext),
                        Some(*size),
                        Some(sha256.as_slice()),
                    ),
                    ReuploadState::Done { uidvalidity, uid } => {
                        ("done", Some(*uidvalidity), *uid, none, none, None)
                    }
                    ReuploadState::Present => ("present", none, none, none, none, None),
                };
                st.execute(params![
                    target,
                    folder,
                    r.near_key,
                    r.target_folder,
                    state,
                    v,
                    uid,
                    next,
                    size,
                    sha,
                    now
                ])?;
            }
            Ok(())
        })
    }

    /// Forgets rows (intents that found nothing, or everything for a folder whose target
    /// UIDVALIDITY changed).
    pub fn forget_reupload_rows(
        &self,
        target: &str,
        folder: &str,
        keys: &[String],
    ) -> Result<(), DbError> {
        self.in_transaction("forget push state", |tx| {
            let mut st = tx.prepare_cached(
                "DELETE FROM pushed WHERE target = ?1 AND folder = ?2 AND near_key = ?3",
            )?;
            for k in keys {
                st.execute(params![target, folder, k])?;
            }
            Ok(())
        })
    }
}
