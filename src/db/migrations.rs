//! Forward-only schema migrations, numbered by `PRAGMA user_version`. Never edit a shipped step:
//! add a new one.

use rusqlite::Connection;

const STEPS: &[&str] = &[
    // 1: folders, linked messages, intents, runs.
    "CREATE TABLE folders (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        uidvalidity INTEGER,
        uidnext INTEGER,
        highestmodseq INTEGER,
        last_sync INTEGER,
        far_count INTEGER NOT NULL DEFAULT 0,
        near_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        far_uid INTEGER,
        near_key TEXT,
        flags TEXT NOT NULL,
        message_id TEXT,
        size INTEGER
    );
    CREATE UNIQUE INDEX messages_far ON messages(folder_id, far_uid) WHERE far_uid IS NOT NULL;
    CREATE UNIQUE INDEX messages_near ON messages(folder_id, near_key) WHERE near_key IS NOT NULL;
    CREATE TABLE intents (
        id INTEGER PRIMARY KEY,
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('download', 'upload')),
        far_uid INTEGER,
        near_key TEXT NOT NULL,
        uidvalidity INTEGER,
        uidnext INTEGER,
        flags TEXT NOT NULL,
        message_id TEXT,
        size INTEGER,
        sha256 BLOB
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started INTEGER NOT NULL,
        finished INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        summary TEXT NOT NULL
    );",
    // 2: what a folder looked like on both sides when it was last fully in sync, so an unchanged
    // folder can be skipped (NULL = unknown: do the full sync).
    "ALTER TABLE folders ADD COLUMN skip_exists INTEGER;
    ALTER TABLE folders ADD COLUMN skip_uidnext INTEGER;
    ALTER TABLE folders ADD COLUMN skip_modseq INTEGER;
    ALTER TABLE folders ADD COLUMN skip_cur_mtime INTEGER;
    ALTER TABLE folders ADD COLUMN skip_new_mtime INTEGER;",
    // 3: the server's flags per message and the HIGHESTMODSEQ of the last completed sync, so a
    // resync asks only for what changed since (CONDSTORE/QRESYNC, RFC 7162).
    "ALTER TABLE messages ADD COLUMN far_flags TEXT;
    ALTER TABLE folders ADD COLUMN sync_modseq INTEGER;",
    // 4: POP3 maildrops. One row per message identity (UIDL, or a header hash): when it was
    // first listed, whether our copy is stored (near_key set and stored = 0 is an intent: a
    // download under way), whether the server still lists it, when we deleted it there.
    "CREATE TABLE pop3_messages (
        uid TEXT PRIMARY KEY,
        near_key TEXT,
        stored INTEGER NOT NULL DEFAULT 0,
        size INTEGER,
        first_seen INTEGER NOT NULL,
        stored_at INTEGER,
        on_server INTEGER NOT NULL DEFAULT 1,
        deleted_at INTEGER
    );
    CREATE TABLE pop3_server (
        key TEXT PRIMARY KEY,
        value INTEGER
    );",
    // 5: re-uploads to targets (push/migrate). One row per (target, local folder, Maildir key):
    // 'intent' before an APPEND (with the target's UIDNEXT, size and SHA-256 to find the copy
    // after a crash), 'done' with the target UID, 'present' when the target already had it.
    "CREATE TABLE pushed (
        target TEXT NOT NULL,
        folder TEXT NOT NULL,
        near_key TEXT NOT NULL,
        target_folder TEXT NOT NULL,
        state TEXT NOT NULL,
        uidvalidity INTEGER,
        uid INTEGER,
        uidnext INTEGER,
        size INTEGER,
        sha256 BLOB,
        at INTEGER NOT NULL,
        PRIMARY KEY (target, folder, near_key)
    );",
    // 6: a folder's rows without reading every folder's: the partial indexes of step 1 cannot
    // serve `WHERE folder_id = ?` (their WHERE clauses are not implied), so loading one folder
    // scanned the whole table (100,000 rows for each folder of a big account).
    "CREATE INDEX messages_folder ON messages(folder_id, id);",
    // 7: re-sends to SMTP targets. One row per (target, local folder, Maildir key): 'sending'
    // while the message's DATA is under way (after a crash: delivered or not, settled through
    // the receiving mailbox when one is configured), 'sent' with the server's reply, 'failed'
    // with the server's answer (5xx, or 4xx after the retries), 'duplicate' when the same bytes
    // were sent from another file. sha256 finds those duplicates; message_id settles intents.
    "CREATE TABLE smtp_sent (
        target TEXT NOT NULL,
        folder TEXT NOT NULL,
        near_key TEXT NOT NULL,
        state TEXT NOT NULL,
        sha256 BLOB NOT NULL,
        message_id TEXT,
        size INTEGER NOT NULL,
        detail TEXT,
        at INTEGER NOT NULL,
        PRIMARY KEY (target, folder, near_key)
    );
    CREATE INDEX smtp_sent_hash ON smtp_sent(target, sha256);",
    // 8: the account's run history for `status` and the metrics file: last attempt, last
    // success, the last failure and why, and counters that only grow (messages and bytes each
    // way, failed runs), kept across restarts.
    "CREATE TABLE account_runs (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_attempt INTEGER,
        last_success INTEGER,
        last_failure INTEGER,
        last_error TEXT,
        runs_total INTEGER NOT NULL DEFAULT 0,
        failures_total INTEGER NOT NULL DEFAULT 0,
        messages_down_total INTEGER NOT NULL DEFAULT 0,
        messages_up_total INTEGER NOT NULL DEFAULT 0,
        bytes_down_total INTEGER NOT NULL DEFAULT 0,
        bytes_up_total INTEGER NOT NULL DEFAULT 0,
        last_duration_ms INTEGER
    );",
    // 9: one run-history table: the last run's finish time, outcome and report move into
    // account_runs (runs is dropped); messages left alone for being larger than max_size, per
    // folder, replaced at each sync of the folder (for `status`); the never-read
    // folders.highestmodseq goes (sync_modseq is the one in use).
    "ALTER TABLE account_runs ADD COLUMN last_finished INTEGER;
    ALTER TABLE account_runs ADD COLUMN last_ok INTEGER;
    ALTER TABLE account_runs ADD COLUMN last_report TEXT;
    INSERT INTO account_runs (id, last_finished, last_ok, last_report)
        SELECT 1, finished, ok, summary FROM runs WHERE true ORDER BY id DESC LIMIT 1
        ON CONFLICT(id) DO UPDATE SET last_finished = excluded.last_finished,
            last_ok = excluded.last_ok, last_report = excluded.last_report;
    DROP TABLE runs;
    ALTER TABLE folders DROP COLUMN highestmodseq;
    CREATE TABLE too_large (
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        side TEXT NOT NULL CHECK (side IN ('far', 'near')),
        item TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (folder_id, side, item)
    );",
    // 10: local messages the server refused to store (a NUL byte on Cyrus, over a size
    // limit...): not offered again while the file keeps its size, so a refusal is reported
    // once instead of failing every later sync.
    "CREATE TABLE refused_uploads (
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        near_key TEXT NOT NULL,
        size INTEGER NOT NULL,
        reason TEXT NOT NULL,
        refused_at INTEGER NOT NULL,
        PRIMARY KEY (folder_id, near_key)
    );",
    // 11: finding a message already stored in another folder of the account by Message-ID and
    // size (label-model servers show every message in several folders: stored once, linked).
    "CREATE INDEX messages_identity ON messages(message_id, size) WHERE message_id IS NOT NULL;",
    // 12: the server folder's special use (RFC 6154: \All, \Sent, ...), so that a push of the
    // Maildir later knows Gmail's All Mail, Starred and Sent Mail whatever their names.
    "ALTER TABLE folders ADD COLUMN special_use TEXT;",
    // 13: a message's account-wide identity where the server gives one (Gmail's X-GM-MSGID,
    // RFC 8474's EMAILID): a label-model account links its other folders' files by it.
    "ALTER TABLE messages ADD COLUMN object_id TEXT;
     CREATE INDEX messages_object ON messages(object_id) WHERE object_id IS NOT NULL;",
    // 14: bytes moved per hour, by direction and peer ('' = the account's server, else a
    // target's name), for providers' daily budgets (Gmail: 2,500 MB down, 500 MB up).
    "CREATE TABLE transfer_hours (
        direction TEXT NOT NULL,
        peer TEXT NOT NULL,
        hour INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (direction, peer, hour)
    );",
];

/// Brings the schema up to date, one transaction per step.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in STEPS.iter().enumerate().skip(current.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
