//! The state database: one SQLite file per account, the source of truth for what was synced.
//!
//! WAL journal, `synchronous = FULL` (a committed intent survives power loss, not only a killed
//! process), foreign keys on, forward-only numbered migrations in [`migrations`]. Writes are
//! grouped into one transaction per batch through [`StateDb::apply`].
//!
//! rusqlite is synchronous: the engine calls it from its async task for short statements only.
// Nothing a server or a file holds may make it panic: no indexing that could (tests may).
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

pub mod foreign;
mod migrations;
pub mod pop3;
pub mod reupload;
pub mod runs;
pub mod smtp;

pub use crate::model::{Fingerprint, Intent, IntentKind, RowId, StateRow};
use crate::model::{Flags, NearKey, Side, Uid, UidValidity};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A state database operation failed. Not retryable without intervention.
#[derive(Debug, thiserror::Error)]
#[error("state database {path}: {what}: {source}")]
pub struct DbError {
    /// The database file.
    pub path: PathBuf,
    /// What was being done.
    pub what: String,
    /// SQLite's error.
    pub source: rusqlite::Error,
}

/// What a completed folder sync records (see [`StateDb::complete_folder`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FolderCompletion {
    /// The folder's UIDVALIDITY.
    pub uidvalidity: UidValidity,
    /// The server's UIDNEXT at SELECT time, when it said.
    pub uidnext: Option<u32>,
    /// Unix time of completion.
    pub now: i64,
    /// HIGHESTMODSEQ at SELECT time: everything up to it is now known.
    pub sync_modseq: Option<u64>,
    /// Present only when the run found the folder in sync and changed nothing.
    pub fingerprint: Option<Fingerprint>,
}

/// One folder's stored sync position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderRow {
    /// Row id.
    pub id: i64,
    /// Canonical folder name.
    pub name: String,
    /// UIDVALIDITY of the last sync.
    pub uidvalidity: Option<UidValidity>,
    /// UIDNEXT seen at the last sync.
    pub uidnext: Option<u32>,
    /// Unix time of the last completed sync.
    pub last_sync: Option<i64>,
    /// Messages on the server at the last sync.
    pub far_count: i64,
    /// Messages in the Maildir at the last sync.
    pub near_count: i64,
    /// The unchanged-folder fingerprint, when known.
    pub fingerprint: Option<Fingerprint>,
}

/// A linked message row with the evidence recorded for re-pairing.
#[derive(Clone, Debug)]
pub struct MessageRow {
    /// The planner's view.
    pub state: StateRow,
    /// Normalised Message-ID.
    pub message_id: Option<String>,
    /// RFC822.SIZE on the server.
    pub size: Option<u32>,
    /// The server's flags as last seen (`None` = unknown).
    pub far_flags: Option<Flags>,
}

/// Which way bytes went, for daily budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferDirection {
    /// From a server.
    Down,
    /// To a server.
    Up,
}

impl TransferDirection {
    fn as_str(self) -> &'static str {
        match self {
            TransferDirection::Down => "down",
            TransferDirection::Up => "up",
        }
    }
}

/// A stored copy of a message in one of the account's folders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCopy {
    /// Folder name.
    pub folder: String,
    /// Maildir key.
    pub key: String,
    /// The server's identity of the message, where it was recorded.
    pub object_id: Option<String>,
}

/// One change to the state, applied with others in a single transaction.
#[derive(Clone, Debug)]
pub enum Change {
    /// Link a server message and a Maildir file.
    Link {
        /// Server UID.
        far: Uid,
        /// Maildir key.
        near: NearKey,
        /// Synced flags.
        flags: Flags,
        /// The server's flags now.
        far_flags: Flags,
        /// Message-ID evidence.
        message_id: Option<String>,
        /// Server size.
        size: Option<u32>,
        /// The server's account-wide identity of the message (X-GM-MSGID, EMAILID), tagged.
        object_id: Option<String>,
    },
    /// New base flags for a row.
    SetFlags(RowId, Flags),
    /// The server's flags for a row, as now known.
    SetFarFlags(RowId, Flags),
    /// Drop a row.
    Delete(RowId),
    /// The message is gone from `Side::Near` (keep far) or `Side::Far` (keep near): drop that link.
    Detach(RowId, Side),
    /// Give a row a new server UID (after UIDVALIDITY re-pairing).
    Relink(RowId, Option<Uid>),
    /// Give a row a new Maildir key (its file was renamed by a mail reader).
    Rekey(RowId, NearKey),
    /// Record an intent.
    AddIntent(Intent),
    /// An intent was carried out or abandoned.
    RemoveIntent(i64),
}

/// The state database of one account.
pub struct StateDb {
    conn: Connection,
    path: PathBuf,
}

fn opt_uid(v: Option<i64>) -> Option<Uid> {
    v.and_then(|x| u32::try_from(x).ok()).map(Uid)
}

impl StateDb {
    /// Opens (creating and migrating as needed) the database at `path`.
    pub fn open(path: &Path) -> Result<StateDb, DbError> {
        let e = |what: &str| {
            let what = what.to_string();
            let path = path.to_path_buf();
            move |source| DbError { path, what, source }
        };
        let mut conn = Connection::open(path).map_err(e("open"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(e("set busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(e("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(e("set synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(e("enable foreign keys"))?;
        // A run opens several connections (one per folder worker); without this, each close
        // would checkpoint the WAL into the database with four more fsyncs. The WAL keeps every
        // commit durable on its own (synchronous = FULL), and SQLite's automatic checkpoint
        // (every 1,000 pages) keeps it from growing.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(e("disable checkpoint on close"))?;
        migrations::migrate(&mut conn).map_err(e("migrate schema"))?;
        Ok(StateDb {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing database read-only-in-spirit (for `status`); `None` when it does not exist.
    pub fn open_existing(path: &Path) -> Result<Option<StateDb>, DbError> {
        if !path.exists() {
            return Ok(None);
        }
        Self::open(path).map(Some)
    }

    /// Runs `work` in one transaction, committed when it succeeds; `what` names it in an error.
    fn in_transaction<T>(
        &self,
        what: &str,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, DbError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.err("begin"))?;
        let out = work(&tx).map_err(self.err(what))?;
        tx.commit().map_err(self.err("commit"))?;
        Ok(out)
    }

    fn err(&self, what: &str) -> impl FnOnce(rusqlite::Error) -> DbError {
        let path = self.path.clone();
        let what = what.to_string();
        move |source| DbError { path, what, source }
    }

    /// All folders with state.
    pub fn folders(&self) -> Result<Vec<FolderRow>, DbError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, name, uidvalidity, uidnext, last_sync, far_count, near_count,
                        skip_exists, skip_uidnext, skip_modseq, skip_cur_mtime, skip_new_mtime
                 FROM folders ORDER BY name",
            )
            .map_err(self.err("list folders"))?;
        let rows = st
            .query_map([], |r| {
                Ok(FolderRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    uidvalidity: r
                        .get::<_, Option<i64>>(2)?
                        .and_then(|v| u32::try_from(v).ok())
                        .map(UidValidity),
                    uidnext: r
                        .get::<_, Option<i64>>(3)?
                        .and_then(|v| u32::try_from(v).ok()),
                    last_sync: r.get(4)?,
                    far_count: r.get(5)?,
                    near_count: r.get(6)?,
                    fingerprint: match (
                        r.get::<_, Option<i64>>(7)?,
                        r.get::<_, Option<i64>>(8)?,
                        r.get::<_, Option<i64>>(9)?,
                        r.get::<_, Option<i64>>(10)?,
                        r.get::<_, Option<i64>>(11)?,
                    ) {
                        (Some(e), Some(u), Some(m), Some(c), Some(n)) => Some(Fingerprint {
                            exists: e as u32,
                            uidnext: u as u32,
                            modseq: m as u64,
                            cur_mtime: c,
                            new_mtime: n,
                        }),
                        _ => None,
                    },
                })
            })
            .map_err(self.err("list folders"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("list folders"))
    }

    /// The folder's row, created if missing.
    pub fn ensure_folder(&self, name: &str) -> Result<FolderRow, DbError> {
        self.conn
            .execute(
                "INSERT INTO folders (name) VALUES (?1) ON CONFLICT(name) DO NOTHING",
                [name],
            )
            .map_err(self.err("add folder"))?;
        self.folders()?
            .into_iter()
            .find(|f| f.name == name)
            .ok_or_else(|| DbError {
                path: self.path.clone(),
                what: format!("folder {name} vanished after insert"),
                source: rusqlite::Error::QueryReturnedNoRows,
            })
    }

    /// Records the special use of each listed server folder the state knows (`None` clears it).
    pub fn record_special_uses(
        &self,
        uses: &[(String, Option<crate::model::SpecialUse>)],
    ) -> Result<(), DbError> {
        // Read first: a run where nothing changed (nearly every run) writes nothing.
        let known = self.special_uses()?;
        let changed: Vec<_> = uses
            .iter()
            .filter(|(name, u)| known.get(name) != u.as_ref())
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.err("begin"))?;
        for (name, u) in changed {
            tx.execute(
                "UPDATE folders SET special_use = ?2 WHERE name = ?1 AND special_use IS NOT ?2",
                rusqlite::params![name, u.map(|u| u.as_str())],
            )
            .map_err(self.err("record special use"))?;
        }
        tx.commit().map_err(self.err("commit"))?;
        Ok(())
    }

    /// The special uses the server gave the account's folders, by folder name.
    pub fn special_uses(&self) -> Result<BTreeMap<String, crate::model::SpecialUse>, DbError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT name, special_use FROM folders WHERE special_use IS NOT NULL")
            .map_err(self.err("prepare special uses"))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(self.err("special uses"))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (name, text) = row.map_err(self.err("special uses"))?;
            if let Some(u) = crate::model::SpecialUse::parse(&text) {
                out.insert(name, u);
            }
        }
        Ok(out)
    }

    /// The Maildir keys of `folder`'s messages that the state also knows in another folder
    /// (same Message-ID and size): on a label-model account, the labelled ones.
    pub fn keys_also_elsewhere(
        &self,
        folder: &str,
    ) -> Result<std::collections::HashSet<String>, DbError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT a.near_key FROM messages a JOIN folders f ON f.id = a.folder_id
                 WHERE f.name = ?1 AND a.near_key IS NOT NULL AND a.message_id IS NOT NULL
                   AND EXISTS (SELECT 1 FROM messages b WHERE b.message_id = a.message_id
                               AND b.size = a.size AND b.folder_id != a.folder_id)",
            )
            .map_err(self.err("prepare keys elsewhere"))?;
        let rows = st
            .query_map([folder], |r| r.get::<_, String>(0))
            .map_err(self.err("keys elsewhere"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("keys elsewhere"))
    }

    /// The local copies (folder name, Maildir key) of messages with this Message-ID and server
    /// size, in any folder of the account.
    pub fn stored_copies(&self, message_id: &str, size: u32) -> Result<Vec<StoredCopy>, DbError> {
        self.copies_where(
            "m.message_id = ?1 AND m.size = ?2",
            rusqlite::params![message_id, size],
        )
    }

    /// The stored copies (folder name, Maildir key) of the message the server names
    /// `object_id` (X-GM-MSGID, EMAILID, tagged as recorded).
    pub fn copies_by_object_id(&self, object_id: &str) -> Result<Vec<StoredCopy>, DbError> {
        self.copies_where("m.object_id = ?1", rusqlite::params![object_id])
    }

    fn copies_where(
        &self,
        condition: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<StoredCopy>, DbError> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT f.name, m.near_key, m.object_id FROM messages m JOIN folders f ON f.id = m.folder_id
                 WHERE {condition} AND m.near_key IS NOT NULL"
            ))
            .map_err(self.err("prepare stored copies"))?;
        let rows = st
            .query_map(params, |r| {
                Ok(StoredCopy {
                    folder: r.get(0)?,
                    key: r.get(1)?,
                    object_id: r.get(2)?,
                })
            })
            .map_err(self.err("stored copies"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("stored copies"))
    }

    /// Bytes moved in `direction` to or from `peer` in the hours from `first_hour` (unix hour)
    /// on.
    pub fn transferred_since(
        &self,
        direction: TransferDirection,
        peer: &str,
        first_hour: i64,
    ) -> Result<u64, DbError> {
        let total: i64 = self
            .conn
            .query_row(
                "SELECT COALESCE(SUM(bytes), 0) FROM transfer_hours WHERE direction = ?1 AND peer = ?2 AND hour >= ?3",
                params![direction.as_str(), peer, first_hour],
                |r| r.get(0),
            )
            .map_err(self.err("read transfer_hours"))?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Adds `bytes` moved in `hour` (unix hour); forgets hours older than two days.
    pub fn add_transferred(
        &self,
        direction: TransferDirection,
        peer: &str,
        hour: i64,
        bytes: u64,
    ) -> Result<(), DbError> {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.in_transaction("record transfer_hours", |tx| {
            tx.execute(
                "INSERT INTO transfer_hours (direction, peer, hour, bytes) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (direction, peer, hour) DO UPDATE SET bytes = bytes + excluded.bytes",
                params![direction.as_str(), peer, hour, bytes],
            )?;
            tx.execute(
                "DELETE FROM transfer_hours WHERE hour < ?1",
                params![hour.saturating_sub(48)],
            )?;
            Ok(())
        })
    }

    /// Renames a folder in the state, with what push and SMTP recorded under its name, in one
    /// transaction (the folder's local directory was renamed the same way).
    pub fn rename_folder(&self, old: &str, new: &str) -> Result<(), DbError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.err("begin"))?;
        for sql in [
            "UPDATE folders SET name = ?2 WHERE name = ?1",
            "UPDATE pushed SET folder = ?2 WHERE folder = ?1",
            "UPDATE smtp_sent SET folder = ?2 WHERE folder = ?1",
        ] {
            tx.execute(sql, [old, new])
                .map_err(self.err("rename folder"))?;
        }
        tx.commit().map_err(self.err("commit"))?;
        Ok(())
    }

    /// Drops a folder and all its rows.
    pub fn forget_folder(&self, folder: i64) -> Result<(), DbError> {
        self.conn
            .execute("DELETE FROM folders WHERE id = ?1", [folder])
            .map_err(self.err("forget folder"))?;
        Ok(())
    }

    /// Records a completed sync of a folder, in one transaction: its UIDVALIDITY and UIDNEXT,
    /// the time, the message counts, the HIGHESTMODSEQ the next run may start from, and its
    /// unchanged-folder fingerprint (or none).
    pub fn complete_folder(&self, folder: i64, done: &FolderCompletion) -> Result<(), DbError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.err("begin"))?;
        tx.execute(
            "UPDATE folders SET uidvalidity = ?2, uidnext = ?3, last_sync = ?4,
               far_count = (SELECT count(*) FROM messages WHERE folder_id = ?1 AND far_uid IS NOT NULL),
               near_count = (SELECT count(*) FROM messages WHERE folder_id = ?1 AND near_key IS NOT NULL),
               sync_modseq = ?5
             WHERE id = ?1",
            params![
                folder,
                done.uidvalidity.0,
                done.uidnext,
                done.now,
                done.sync_modseq.map(|m| m as i64)
            ],
        )
        .map_err(self.err("record folder sync"))?;
        Self::write_fingerprint(&tx, folder, done.fingerprint)
            .map_err(self.err("store folder fingerprint"))?;
        tx.commit().map_err(self.err("commit folder sync"))
    }

    /// The HIGHESTMODSEQ at the start of the last completed sync of a folder.
    pub fn sync_modseq(&self, folder: i64) -> Result<Option<u64>, DbError> {
        self.conn
            .query_row(
                "SELECT sync_modseq FROM folders WHERE id = ?1",
                [folder],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()
            .map(|v| v.flatten().map(|m| m as u64))
            .map_err(self.err("read sync modseq"))
    }

    fn write_fingerprint(
        conn: &Connection,
        folder: i64,
        f: Option<Fingerprint>,
    ) -> rusqlite::Result<()> {
        conn.execute(
            "UPDATE folders SET skip_exists = ?2, skip_uidnext = ?3, skip_modseq = ?4,
               skip_cur_mtime = ?5, skip_new_mtime = ?6 WHERE id = ?1",
            params![
                folder,
                f.map(|f| f.exists),
                f.map(|f| f.uidnext),
                f.map(|f| f.modseq as i64),
                f.map(|f| f.cur_mtime),
                f.map(|f| f.new_mtime)
            ],
        )?;
        Ok(())
    }

    /// Records a folder's unchanged-folder fingerprint (after its sync completed).
    pub fn set_fingerprint(&self, folder: i64, f: Fingerprint) -> Result<(), DbError> {
        Self::write_fingerprint(&self.conn, folder, Some(f))
            .map_err(self.err("store folder fingerprint"))
    }

    /// Sets a folder's UIDVALIDITY (first sync or after re-pairing).
    pub fn set_uidvalidity(&self, folder: i64, v: UidValidity) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE folders SET uidvalidity = ?2 WHERE id = ?1",
                params![folder, v.0],
            )
            .map_err(self.err("set uidvalidity"))?;
        Ok(())
    }

    /// Every message row of a folder.
    pub fn messages(&self, folder: i64) -> Result<Vec<MessageRow>, DbError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, far_uid, near_key, flags, message_id, size, far_flags FROM messages
                 WHERE folder_id = ?1 ORDER BY id",
            )
            .map_err(self.err("read messages"))?;
        let rows = st
            .query_map([folder], |r| {
                Ok(MessageRow {
                    state: StateRow {
                        id: r.get(0)?,
                        far: opt_uid(r.get(1)?),
                        near: r.get::<_, Option<String>>(2)?.map(NearKey),
                        flags: Flags::from_db(&r.get::<_, String>(3)?),
                    },
                    message_id: r.get(4)?,
                    size: r
                        .get::<_, Option<i64>>(5)?
                        .and_then(|v| u32::try_from(v).ok()),
                    far_flags: r.get::<_, Option<String>>(6)?.map(|f| Flags::from_db(&f)),
                })
            })
            .map_err(self.err("read messages"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("read messages"))
    }

    /// Unfinished intents of a folder.
    pub fn intents(&self, folder: i64) -> Result<Vec<Intent>, DbError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, kind, far_uid, near_key, uidvalidity, uidnext, flags, message_id, size, sha256
                 FROM intents WHERE folder_id = ?1 ORDER BY id",
            )
            .map_err(self.err("read intents"))?;
        let rows = st
            .query_map([folder], |r| {
                Ok(Intent {
                    id: r.get(0)?,
                    kind: if r.get::<_, String>(1)? == "upload" {
                        IntentKind::Upload
                    } else {
                        IntentKind::Download
                    },
                    far_uid: opt_uid(r.get(2)?),
                    near_key: NearKey(r.get(3)?),
                    uidvalidity: r
                        .get::<_, Option<i64>>(4)?
                        .and_then(|v| u32::try_from(v).ok())
                        .map(UidValidity),
                    uidnext: r
                        .get::<_, Option<i64>>(5)?
                        .and_then(|v| u32::try_from(v).ok()),
                    flags: Flags::from_db(&r.get::<_, String>(6)?),
                    message_id: r.get(7)?,
                    size: r
                        .get::<_, Option<i64>>(8)?
                        .and_then(|v| u32::try_from(v).ok()),
                    sha256: r.get(9)?,
                })
            })
            .map_err(self.err("read intents"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("read intents"))
    }

    /// Number of unfinished intents across all folders.
    pub fn intent_count(&self, folder: i64) -> Result<i64, DbError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM intents WHERE folder_id = ?1",
                [folder],
                |r| r.get(0),
            )
            .map_err(self.err("count intents"))
    }

    /// Applies changes to one folder in one transaction; returns the ids of added intents in
    /// order.
    pub fn apply(&mut self, folder: i64, changes: &[Change]) -> Result<Vec<i64>, DbError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.path.clone();
        let e = move |what: &'static str| {
            let path = path.clone();
            move |source| DbError {
                path,
                what: what.to_string(),
                source,
            }
        };
        let tx = self.conn.transaction().map_err(e("begin"))?;
        let mut intent_ids = Vec::new();
        for change in changes {
            match change {
                Change::Link {
                    far,
                    near,
                    flags,
                    far_flags,
                    message_id,
                    size,
                    object_id,
                } => {
                    tx.prepare_cached(
                        "INSERT INTO messages (folder_id, far_uid, near_key, flags, message_id, size, far_flags, object_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            folder,
                            far.0,
                            near.0,
                            flags.to_db(),
                            message_id,
                            size,
                            far_flags.to_db(),
                            object_id
                        ])
                    })
                    .map_err(e("link message"))?;
                }
                Change::SetFarFlags(row, flags) => {
                    tx.prepare_cached("UPDATE messages SET far_flags = ?2 WHERE id = ?1")
                        .and_then(|mut s| s.execute(params![row, flags.to_db()]))
                        .map_err(e("update server flags"))?;
                }
                Change::SetFlags(row, flags) => {
                    tx.prepare_cached("UPDATE messages SET flags = ?2 WHERE id = ?1")
                        .and_then(|mut s| s.execute(params![row, flags.to_db()]))
                        .map_err(e("update flags"))?;
                }
                Change::Delete(row) => {
                    tx.prepare_cached("DELETE FROM messages WHERE id = ?1")
                        .and_then(|mut s| s.execute([row]))
                        .map_err(e("delete message row"))?;
                }
                Change::Detach(row, side) => {
                    let sql = match side {
                        Side::Near => "UPDATE messages SET far_uid = NULL WHERE id = ?1",
                        Side::Far => "UPDATE messages SET near_key = NULL WHERE id = ?1",
                    };
                    tx.prepare_cached(sql)
                        .and_then(|mut s| s.execute([row]))
                        .map_err(e("detach message row"))?;
                }
                Change::Relink(row, uid) => {
                    tx.prepare_cached(
                        "UPDATE messages SET far_uid = ?2, far_flags = NULL WHERE id = ?1",
                    )
                    .and_then(|mut s| s.execute(params![row, uid.map(|u| u.0)]))
                    .map_err(e("relink message row"))?;
                }
                Change::Rekey(row, key) => {
                    tx.prepare_cached("UPDATE messages SET near_key = ?2 WHERE id = ?1")
                        .and_then(|mut s| s.execute(params![row, key.0]))
                        .map_err(e("rekey message row"))?;
                }
                Change::AddIntent(i) => {
                    tx.prepare_cached(
                        "INSERT INTO intents (folder_id, kind, far_uid, near_key, uidvalidity, uidnext,
                                              flags, message_id, size, sha256)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            folder,
                            match i.kind {
                                IntentKind::Download => "download",
                                IntentKind::Upload => "upload",
                            },
                            i.far_uid.map(|u| u.0),
                            i.near_key.0,
                            i.uidvalidity.map(|v| v.0),
                            i.uidnext,
                            i.flags.to_db(),
                            i.message_id,
                            i.size,
                            i.sha256,
                        ])
                    })
                    .map_err(e("record intent"))?;
                    intent_ids.push(tx.last_insert_rowid());
                }
                Change::RemoveIntent(id) => {
                    tx.prepare_cached("DELETE FROM intents WHERE id = ?1")
                        .and_then(|mut s| s.execute([id]))
                        .map_err(e("remove intent"))?;
                }
            }
        }
        tx.commit().map_err(e("commit"))?;
        Ok(intent_ids)
    }

    /// Replaces the folder's list of messages left alone for being larger than `max_size`.
    pub fn set_too_large(
        &self,
        folder: i64,
        items: &[crate::model::TooLarge],
    ) -> Result<(), DbError> {
        // Nearly always nothing to record and nothing recorded: no write, no fsync.
        if items.is_empty() && self.too_large(folder)?.is_empty() {
            return Ok(());
        }
        self.in_transaction("record too_large", |tx| {
            tx.execute("DELETE FROM too_large WHERE folder_id = ?1", params![folder])?;
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO too_large (folder_id, side, item, size) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for t in items {
                let side = match t.side {
                    crate::model::Side::Far => "far",
                    crate::model::Side::Near => "near",
                };
                st.execute(params![folder, side, t.item, i64::try_from(t.size).unwrap_or(i64::MAX)])?;
            }
            Ok(())
        })
    }

    /// The folder's messages left alone for being larger than `max_size` at its last sync.
    pub fn too_large(&self, folder: i64) -> Result<Vec<crate::model::TooLarge>, DbError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT side, item, size FROM too_large WHERE folder_id = ?1 ORDER BY side, item",
            )
            .map_err(self.err("read too_large"))?;
        let rows = stmt
            .query_map(params![folder], |r| {
                let side: String = r.get(0)?;
                Ok(crate::model::TooLarge {
                    side: if side == "near" {
                        crate::model::Side::Near
                    } else {
                        crate::model::Side::Far
                    },
                    item: r.get(1)?,
                    size: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })
            .map_err(self.err("read too_large"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("read too_large"))
    }

    /// The folder's local messages the server refused to store: key → (file size when
    /// refused, the server's answer).
    pub fn refused_uploads(&self, folder: i64) -> Result<BTreeMap<String, (u64, String)>, DbError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT near_key, size, reason FROM refused_uploads WHERE folder_id = ?1",
            )
            .map_err(self.err("read refused_uploads"))?;
        let rows = stmt
            .query_map(params![folder], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (r.get::<_, i64>(1)?.max(0) as u64, r.get::<_, String>(2)?),
                ))
            })
            .map_err(self.err("read refused_uploads"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("read refused_uploads"))
    }

    /// Records refusals (`(key, file size, answer)`) and forgets `cleared` keys (the file
    /// changed, was deleted, or was accepted after all).
    pub fn update_refused_uploads(
        &self,
        folder: i64,
        refused: &[(String, u64, String)],
        cleared: &[String],
        now: i64,
    ) -> Result<(), DbError> {
        if refused.is_empty() && cleared.is_empty() {
            return Ok(());
        }
        self.in_transaction("record refused_uploads", |tx| {
            let mut del = tx.prepare_cached(
                "DELETE FROM refused_uploads WHERE folder_id = ?1 AND near_key = ?2",
            )?;
            for k in cleared {
                del.execute(params![folder, k])?;
            }
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO refused_uploads (folder_id, near_key, size, reason, refused_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (k, size, reason) in refused {
                ins.execute(params![folder, k, i64::try_from(*size).unwrap_or(i64::MAX), reason, now])?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Flag;

    #[test]
    fn links_intents_and_detaches_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = StateDb::open(&dir.path().join("a.sqlite3")).unwrap();
        let f = db.ensure_folder("INBOX").unwrap();
        assert_eq!(db.ensure_folder("INBOX").unwrap().id, f.id);
        let flags: Flags = [Flag::Seen].into_iter().collect();
        let ids = db
            .apply(
                f.id,
                &[
                    Change::Link {
                        far: Uid(5),
                        near: NearKey("k".into()),
                        flags: flags.clone(),
                        far_flags: flags.clone(),
                        message_id: Some("m@x".into()),
                        size: Some(10),
                        object_id: None,
                    },
                    Change::AddIntent(Intent {
                        id: 0,
                        kind: IntentKind::Upload,
                        far_uid: None,
                        near_key: NearKey("u".into()),
                        uidvalidity: Some(UidValidity(7)),
                        uidnext: Some(9),
                        flags: Flags::new(),
                        message_id: None,
                        size: Some(3),
                        sha256: Some(vec![1, 2]),
                    }),
                ],
            )
            .unwrap();
        assert_eq!(ids.len(), 1);
        let rows = db.messages(f.id).unwrap();
        assert_eq!(rows[0].state.far, Some(Uid(5)));
        assert_eq!(rows[0].state.flags, flags);
        let intents = db.intents(f.id).unwrap();
        assert_eq!(intents[0].uidnext, Some(9));
        assert_eq!(intents[0].sha256, Some(vec![1, 2]));
        db.apply(
            f.id,
            &[
                Change::Detach(rows[0].state.id, Side::Near),
                Change::RemoveIntent(ids[0]),
            ],
        )
        .unwrap();
        assert_eq!(db.messages(f.id).unwrap()[0].state.far, None);
        assert!(db.intents(f.id).unwrap().is_empty());
        // Reopening runs no migration twice.
        drop(db);
        let db = StateDb::open(&dir.path().join("a.sqlite3")).unwrap();
        assert_eq!(db.folders().unwrap().len(), 1);
    }
}
