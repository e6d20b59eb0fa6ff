//! POP3 state: which message identities were seen, stored and deleted, and what the server
//! said about login delays. Same database file and durability as the IMAP state.

pub use crate::model::Pop3Row;

use super::{DbError, StateDb};
use rusqlite::{OptionalExtension, params};
use std::collections::HashMap;

/// One change to the POP3 state, applied with others in a single transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pop3Change {
    /// The server lists this identity (first time: records `first_seen`).
    Seen {
        /// Identity.
        uid: String,
        /// Size from LIST.
        size: u64,
        /// Now.
        now: i64,
    },
    /// The server no longer lists it.
    Gone(String),
    /// A download is starting into this Maildir key (the intent).
    Intent(String, String),
    /// The download is durable in the Maildir.
    Stored(String, i64),
    /// The download did not happen; forget the key.
    Abandon(String),
    /// The server confirmed the deletion (QUIT after DELE).
    Deleted(String, i64),
}

impl StateDb {
    /// Every POP3 row, by identity.
    pub fn pop3_rows(&self) -> Result<HashMap<String, Pop3Row>, DbError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT uid, near_key, stored, first_seen, on_server FROM pop3_messages",
            )
            .map_err(self.err("read POP3 state"))?;
        let rows = st
            .query_map([], |r| {
                Ok(Pop3Row {
                    uid: r.get(0)?,
                    near_key: r.get(1)?,
                    stored: r.get(2)?,
                    first_seen: r.get(3)?,
                    on_server: r.get(4)?,
                })
            })
            .map_err(self.err("read POP3 state"))?;
        let mut out = HashMap::new();
        for row in rows {
            let row = row.map_err(self.err("read POP3 state"))?;
            out.insert(row.uid.clone(), row);
        }
        Ok(out)
    }

    /// Applies POP3 changes in one transaction.
    pub fn pop3_apply(&self, changes: &[Pop3Change]) -> Result<(), DbError> {
        if changes.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.err("begin"))?;
        for c in changes {
            let result = match c {
                Pop3Change::Seen { uid, size, now } => tx.execute(
                    "INSERT INTO pop3_messages (uid, size, first_seen, on_server) VALUES (?1, ?2, ?3, 1)
                     ON CONFLICT(uid) DO UPDATE SET on_server = 1",
                    params![uid, *size as i64, now],
                ),
                Pop3Change::Gone(uid) => tx.execute(
                    "UPDATE pop3_messages SET on_server = 0 WHERE uid = ?1",
                    [uid],
                ),
                Pop3Change::Intent(uid, key) => tx.execute(
                    "UPDATE pop3_messages SET near_key = ?2, stored = 0 WHERE uid = ?1",
                    params![uid, key],
                ),
                Pop3Change::Stored(uid, now) => tx.execute(
                    "UPDATE pop3_messages SET stored = 1, stored_at = ?2 WHERE uid = ?1",
                    params![uid, now],
                ),
                Pop3Change::Abandon(uid) => tx.execute(
                    "UPDATE pop3_messages SET near_key = NULL WHERE uid = ?1 AND stored = 0",
                    [uid],
                ),
                Pop3Change::Deleted(uid, now) => tx.execute(
                    "UPDATE pop3_messages SET on_server = 0, deleted_at = ?2 WHERE uid = ?1",
                    params![uid, now],
                ),
            };
            result.map_err(self.err("record POP3 change"))?;
        }
        tx.commit().map_err(self.err("commit POP3 changes"))
    }

    /// A remembered fact about the POP3 server (last login time, LOGIN-DELAY, EXPIRE).
    pub fn pop3_server_value(&self, key: &str) -> Result<Option<i64>, DbError> {
        self.conn
            .query_row("SELECT value FROM pop3_server WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map(Option::flatten)
            .map_err(self.err("read POP3 server facts"))
    }

    /// Remembers (or forgets, with `None`) a fact about the POP3 server.
    pub fn set_pop3_server_value(&self, key: &str, value: Option<i64>) -> Result<(), DbError> {
        self.conn
            .execute(
                "INSERT INTO pop3_server (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(self.err("store POP3 server facts"))?;
        Ok(())
    }

    /// (identities stored, of which still on the server) for `status`.
    pub fn pop3_counts(&self) -> Result<(i64, i64), DbError> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(sum(on_server), 0) FROM pop3_messages WHERE stored = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.err("count POP3 messages"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_stored_deleted_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(&dir.path().join("a.sqlite3")).unwrap();
        let seen = |uid: &str, now| Pop3Change::Seen {
            uid: uid.into(),
            size: 10,
            now,
        };
        db.pop3_apply(&[seen("a", 100), seen("b", 100)]).unwrap();
        // Seeing again keeps first_seen.
        db.pop3_apply(&[seen("a", 500)]).unwrap();
        db.pop3_apply(&[Pop3Change::Intent("a".into(), "k1".into())])
            .unwrap();
        let rows = db.pop3_rows().unwrap();
        assert_eq!(rows["a"].first_seen, 100);
        assert_eq!(rows["a"].near_key.as_deref(), Some("k1"));
        assert!(!rows["a"].stored);
        db.pop3_apply(&[
            Pop3Change::Stored("a".into(), 200),
            Pop3Change::Intent("b".into(), "k2".into()),
            Pop3Change::Abandon("b".into()),
        ])
        .unwrap();
        let rows = db.pop3_rows().unwrap();
        assert!(rows["a"].stored);
        assert_eq!(rows["b"].near_key, None);
        assert_eq!(db.pop3_counts().unwrap(), (1, 1));
        db.pop3_apply(&[Pop3Change::Deleted("a".into(), 300)])
            .unwrap();
        assert_eq!(db.pop3_counts().unwrap(), (1, 0));
        db.set_pop3_server_value("login_delay", Some(900)).unwrap();
        assert_eq!(db.pop3_server_value("login_delay").unwrap(), Some(900));
        assert_eq!(db.pop3_server_value("expire").unwrap(), None);
    }
}
