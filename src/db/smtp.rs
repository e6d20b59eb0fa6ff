//! Re-send state for SMTP targets: per target, local folder and Maildir key, whether the message
//! is being sent (an intent, written just before its DATA), was sent (with the server's reply),
//! failed (with the server's answer) or duplicates bytes already sent from another file.

pub use crate::model::{SmtpRow, SmtpState};

use super::{DbError, StateDb};
use rusqlite::params;
use std::collections::HashMap;

impl StateDb {
    /// Every row for an SMTP target, by (folder, Maildir key).
    pub fn smtp_rows(&self, target: &str) -> Result<HashMap<(String, String), SmtpRow>, DbError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT folder, near_key, state, sha256, message_id, size, detail
                 FROM smtp_sent WHERE target = ?1",
            )
            .map_err(self.err("read SMTP state"))?;
        let rows = st
            .query_map(params![target], |r| {
                let state: String = r.get(2)?;
                Ok(SmtpRow {
                    folder: r.get(0)?,
                    near_key: r.get(1)?,
                    state: SmtpState::parse(&state),
                    sha256: r.get(3)?,
                    message_id: r.get(4)?,
                    size: r.get::<_, i64>(5)? as u64,
                    detail: r.get(6)?,
                })
            })
            .map_err(self.err("read SMTP state"))?;
        let mut out = HashMap::new();
        for row in rows {
            let row = row.map_err(self.err("read SMTP state"))?;
            out.insert((row.folder.clone(), row.near_key.clone()), row);
        }
        Ok(out)
    }

    /// Records rows (replacing earlier ones for the same key) in one transaction, stamped `now`.
    pub fn put_smtp_rows(&self, target: &str, rows: &[SmtpRow], now: i64) -> Result<(), DbError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.in_transaction("record SMTP state", |tx| {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO smtp_sent
                   (target, folder, near_key, state, sha256, message_id, size, detail, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for r in rows {
                st.execute(params![
                    target,
                    r.folder,
                    r.near_key,
                    r.state.as_str(),
                    r.sha256,
                    r.message_id,
                    r.size as i64,
                    r.detail,
                    now
                ])?;
            }
            Ok(())
        })
    }

    /// Forgets rows (intents whose message did not arrive: it is sent again).
    pub fn forget_smtp_rows(&self, target: &str, keys: &[(String, String)]) -> Result<(), DbError> {
        self.in_transaction("forget SMTP state", |tx| {
            let mut st = tx.prepare_cached(
                "DELETE FROM smtp_sent WHERE target = ?1 AND folder = ?2 AND near_key = ?3",
            )?;
            for (folder, key) in keys {
                st.execute(params![target, folder, key])?;
            }
            Ok(())
        })
    }
}
