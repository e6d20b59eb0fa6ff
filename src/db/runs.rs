//! The account's run history: when it last ran, last succeeded and last failed (and why), and
//! counters that only grow. Read by `arctern status` and written to the metrics file.

use super::{DbError, StateDb};
use rusqlite::{OptionalExtension, params};

/// The recorded history (all zeros / `None` before the first run).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunHistory {
    /// Unix time the last run started.
    pub last_attempt: Option<i64>,
    /// Unix time of the last run without errors.
    pub last_success: Option<i64>,
    /// Unix time of the last run with an error.
    pub last_failure: Option<i64>,
    /// What went wrong then.
    pub last_error: Option<String>,
    /// Runs so far.
    pub runs_total: u64,
    /// Runs with an error so far.
    pub failures_total: u64,
    /// Messages copied into the Maildir so far.
    pub messages_down_total: u64,
    /// Messages copied to the server so far.
    pub messages_up_total: u64,
    /// Bytes copied into the Maildir so far.
    pub bytes_down_total: u64,
    /// Bytes copied to the server so far.
    pub bytes_up_total: u64,
    /// How long the last run took, in milliseconds.
    pub last_duration_ms: Option<u64>,
    /// Unix time the last run finished.
    pub last_finished: Option<i64>,
    /// Whether the last run ended without errors.
    pub last_ok: Option<bool>,
}

/// One finished run.
#[derive(Clone, Debug, Default)]
pub struct RunOutcome {
    /// Unix time it started.
    pub started: i64,
    /// Its error, if any (the first one).
    pub error: Option<String>,
    /// Messages into the Maildir.
    pub messages_down: u64,
    /// Messages to the server.
    pub messages_up: u64,
    /// Bytes into the Maildir.
    pub bytes_down: u64,
    /// Bytes to the server.
    pub bytes_up: u64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Unix time it finished (the caller's clock: the database has none of its own).
    pub finished: i64,
    /// The run's report as JSON (what `status` can show of the last run).
    pub report: String,
}

impl StateDb {
    /// The run history.
    pub fn run_history(&self) -> Result<RunHistory, DbError> {
        let row = self
            .conn
            .query_row(
                "SELECT last_attempt, last_success, last_failure, last_error, runs_total,
                        failures_total, messages_down_total, messages_up_total, bytes_down_total,
                        bytes_up_total, last_duration_ms, last_finished, last_ok
                 FROM account_runs WHERE id = 1",
                [],
                |r| {
                    Ok(RunHistory {
                        last_attempt: r.get(0)?,
                        last_success: r.get(1)?,
                        last_failure: r.get(2)?,
                        last_error: r.get(3)?,
                        runs_total: r.get::<_, i64>(4)? as u64,
                        failures_total: r.get::<_, i64>(5)? as u64,
                        messages_down_total: r.get::<_, i64>(6)? as u64,
                        messages_up_total: r.get::<_, i64>(7)? as u64,
                        bytes_down_total: r.get::<_, i64>(8)? as u64,
                        bytes_up_total: r.get::<_, i64>(9)? as u64,
                        last_duration_ms: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
                        last_finished: r.get(11)?,
                        last_ok: r.get(12)?,
                    })
                },
            )
            .optional()
            .map_err(self.err("read run history"))?;
        Ok(row.unwrap_or_default())
    }

    /// Adds a finished run to the history.
    pub fn add_to_history(&self, run: &RunOutcome) -> Result<(), DbError> {
        let failed = run.error.is_some();
        let now = run.finished;
        self.conn
            .execute(
                "INSERT INTO account_runs (id, last_attempt, last_success, last_failure, last_error,
                    runs_total, failures_total, messages_down_total, messages_up_total,
                    bytes_down_total, bytes_up_total, last_duration_ms, last_finished, last_ok,
                    last_report)
                 VALUES (1, ?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT(id) DO UPDATE SET
                    last_attempt = ?1,
                    last_success = COALESCE(?2, last_success),
                    last_failure = COALESCE(?3, last_failure),
                    last_error = COALESCE(?4, last_error),
                    runs_total = runs_total + 1,
                    failures_total = failures_total + ?5,
                    messages_down_total = messages_down_total + ?6,
                    messages_up_total = messages_up_total + ?7,
                    bytes_down_total = bytes_down_total + ?8,
                    bytes_up_total = bytes_up_total + ?9,
                    last_duration_ms = ?10,
                    last_finished = ?11,
                    last_ok = ?12,
                    last_report = ?13",
                params![
                    run.started,
                    (!failed).then_some(now),
                    failed.then_some(now),
                    run.error,
                    i64::from(failed),
                    run.messages_down as i64,
                    run.messages_up as i64,
                    run.bytes_down as i64,
                    run.bytes_up as i64,
                    run.duration_ms as i64,
                    now,
                    !failed,
                    run.report,
                ],
            )
            .map_err(self.err("record run history"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_accumulates_and_keeps_the_last_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(&dir.path().join("a.sqlite3")).unwrap();
        assert_eq!(db.run_history().unwrap(), RunHistory::default());
        db.add_to_history(&RunOutcome {
            started: 10,
            messages_down: 3,
            bytes_down: 300,
            duration_ms: 5,
            ..Default::default()
        })
        .unwrap();
        db.add_to_history(&RunOutcome {
            started: 20,
            error: Some("login refused".into()),
            ..Default::default()
        })
        .unwrap();
        db.add_to_history(&RunOutcome {
            started: 30,
            messages_up: 2,
            bytes_up: 20,
            duration_ms: 7,
            ..Default::default()
        })
        .unwrap();
        let h = db.run_history().unwrap();
        assert_eq!(h.last_attempt, Some(30));
        assert_eq!(h.last_ok, Some(true));
        assert!(h.last_success.is_some() && h.last_failure.is_some());
        assert_eq!(h.last_error.as_deref(), Some("login refused"));
        assert_eq!((h.runs_total, h.failures_total), (3, 1));
        assert_eq!((h.messages_down_total, h.messages_up_total), (3, 2));
        assert_eq!((h.bytes_down_total, h.bytes_up_total), (300, 20));
        assert_eq!(h.last_duration_ms, Some(7));
    }
}
