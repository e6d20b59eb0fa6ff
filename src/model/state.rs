//! Sync state as values: the rows linking a server message to a Maildir file, the intents
//! announced before an effect, and the unchanged-folder fingerprint. The state database stores
//! them, the planner reads them; neither owns them.

use super::{Flags, NearKey, Uid, UidValidity};

/// Opaque id of a state row (the database row id).
pub type RowId = i64;

/// One row of synced state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateRow {
    /// The row's id.
    pub id: RowId,
    /// The server UID, if the message is (meant to be) on the server.
    pub far: Option<Uid>,
    /// The Maildir key, if the message is (meant to be) local.
    pub near: Option<NearKey>,
    /// Flags as of the last sync.
    pub flags: Flags,
}

/// What must hold for a folder to be skipped without SELECT: the server's STATUS and the
/// Maildir's directory mtimes as they were when the folder was last found in sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// Server message count.
    pub exists: u32,
    /// Server UIDNEXT.
    pub uidnext: u32,
    /// Server HIGHESTMODSEQ (CONDSTORE, RFC 7162).
    pub modseq: u64,
    /// mtime of `cur/` in nanoseconds.
    pub cur_mtime: i64,
    /// mtime of `new/` in nanoseconds.
    pub new_mtime: i64,
}

/// What kind of effect an intent announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntentKind {
    /// A server message being written into the Maildir under a chosen key.
    Download,
    /// A local message being APPENDed to the server.
    Upload,
}

/// An effect announced before it happens, so a crash in between can be reconciled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    /// Row id (0 before insertion).
    pub id: i64,
    /// Download or upload.
    pub kind: IntentKind,
    /// The server UID (downloads).
    pub far_uid: Option<Uid>,
    /// The Maildir key: chosen before a download, the source of an upload.
    pub near_key: NearKey,
    /// UIDVALIDITY when the intent was recorded.
    pub uidvalidity: Option<UidValidity>,
    /// The folder's UIDNEXT before an upload: the new UID is at least this.
    pub uidnext: Option<u32>,
    /// Flags written with the message.
    pub flags: Flags,
    /// Message-ID evidence.
    pub message_id: Option<String>,
    /// Size on the server (CRLF).
    pub size: Option<u32>,
    /// SHA-256 of the bytes sent (uploads).
    pub sha256: Option<Vec<u8>>,
}
