//! What a run did, per folder and per account, and the one-line summary printed for cron.

use std::time::Duration;

/// What happened in one folder.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FolderReport {
    /// Canonical folder name.
    pub folder: String,
    /// Messages copied server → Maildir.
    pub downloaded: usize,
    /// Label model: messages stored in another folder, hard-linked instead of downloaded.
    pub linked: usize,
    /// Messages copied Maildir → server.
    pub uploaded: usize,
    /// Bytes copied server → Maildir (as the server counts them, CRLF).
    pub bytes_down: u64,
    /// Bytes copied Maildir → server (CRLF).
    pub bytes_up: u64,
    /// Flag changes applied locally.
    pub flags_near: usize,
    /// Flag changes applied on the server.
    pub flags_far: usize,
    /// Local messages deleted (expunged on the server).
    pub deleted_near: usize,
    /// Server messages deleted (removed locally).
    pub deleted_far: usize,
    /// Skipped: provably unchanged on both sides since the last sync.
    pub unchanged: bool,
    /// Interrupted operations from an earlier run that were completed or rolled back.
    pub recovered: usize,
    /// Things worth knowing that are not errors (UIDVALIDITY re-pairing, folders created).
    pub notes: Vec<String>,
    /// Messages left for a later run by a daily transfer budget (said in `notes`).
    pub deferred: usize,
    /// Why the folder failed, if it did.
    pub error: Option<String>,
    /// In `--dry-run`, the planned actions.
    pub planned: Vec<String>,
    /// Messages left alone because they are larger than the account's `max_size`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub too_large: Vec<crate::model::TooLarge>,
}

/// What happened in one account.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct AccountReport {
    /// Account name.
    pub account: String,
    /// Per folder, in order.
    pub folders: Vec<FolderReport>,
    /// An error that stopped the whole account (connection, login, lock, state).
    pub fatal: Option<String>,
    /// A POP3 account (the summary line then speaks of the maildrop).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pop3: bool,
    /// For a POP3 account: stored messages the server still keeps (None when not contacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pop3_kept: Option<usize>,
    /// Wall time.
    #[serde(skip)]
    pub elapsed: Duration,
}

impl AccountReport {
    /// Sum of a per-folder counter.
    pub fn total(&self, f: impl Fn(&FolderReport) -> usize) -> usize {
        self.folders.iter().map(f).sum()
    }

    /// True when some folder failed or the account failed.
    pub fn has_errors(&self) -> bool {
        self.fatal.is_some() || self.folders.iter().any(|f| f.error.is_some())
    }

    /// `work: +120 ↓ +3 ↑ flags 17 ↓ 2 ↑ deleted 4 ↓ 0 ↑ in 2.1s` (↓ = into the Maildir).
    pub fn summary_line(&self) -> String {
        if self.pop3 {
            let kept = self
                .pop3_kept
                .map_or(String::new(), |k| format!(", {k} kept there"));
            let mut line = format!(
                "{}: +{} ↓ (POP3) deleted {} on server{kept} in {:.1}s",
                self.account,
                self.total(|f| f.downloaded),
                self.total(|f| f.deleted_far),
                self.elapsed.as_secs_f64()
            );
            if self.folders.iter().any(|f| f.error.is_some()) {
                line.push_str(" (failed)");
            }
            if let Some(e) = &self.fatal {
                line.push_str(&format!(" FAILED: {e}"));
            }
            return line;
        }
        let linked = self.total(|f| f.linked);
        let linked = if linked > 0 {
            format!(", {linked} already stored (linked)")
        } else {
            String::new()
        };
        let deferred = self.total(|f| f.deferred);
        let linked = if deferred > 0 {
            format!("{linked}, {deferred} left for a later run (daily budget)")
        } else {
            linked
        };
        let mut line = format!(
            "{}: +{} ↓ +{} ↑ flags {} ↓ {} ↑ deleted {} ↓ {} ↑{linked} in {:.1}s",
            self.account,
            self.total(|f| f.downloaded),
            self.total(|f| f.uploaded),
            self.total(|f| f.flags_near),
            self.total(|f| f.flags_far),
            self.total(|f| f.deleted_near),
            self.total(|f| f.deleted_far),
            self.elapsed.as_secs_f64()
        );
        let failed = self.folders.iter().filter(|f| f.error.is_some()).count();
        if failed > 0 {
            line.push_str(&format!(" ({failed} folder(s) failed)"));
        }
        if let Some(e) = &self.fatal {
            line.push_str(&format!(" FAILED: {e}"));
        }
        line
    }
}
