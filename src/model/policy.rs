//! The policy a config gives a sync, as plain values the planner takes: which way changes flow,
//! where deletions are carried out, and how folder names map to directories.

/// How the two sides are kept in step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    /// Changes flow both ways.
    TwoWay,
    /// Server → Maildir only; the server is never changed.
    Pull,
    /// Maildir → server only; the Maildir is never changed.
    Push,
}

/// Where deletions are carried out when a message disappears from the other side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpungePolicy {
    /// Deleted on the server → deleted locally, and the other way round (a true mirror).
    Both,
    /// Only server deletions are applied locally; local deletions never touch the server.
    Near,
    /// Only local deletions are applied on the server; the local archive keeps everything.
    Far,
    /// Deletions are never propagated; each side keeps what the other deleted.
    None,
}

impl ExpungePolicy {
    /// True when a message deleted on the server is also deleted locally.
    pub fn deletes_near(self) -> bool {
        matches!(self, ExpungePolicy::Both | ExpungePolicy::Near)
    }
    /// True when a message deleted locally is also deleted on the server.
    pub fn deletes_far(self) -> bool {
        matches!(self, ExpungePolicy::Both | ExpungePolicy::Far)
    }
}

/// How folder names map to directories under the Maildir root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Dovecot/Courier Maildir++: INBOX is the root, `A/B` is `<root>/.A.B`.
    #[serde(rename = "maildir++")]
    MaildirPlusPlus,
    /// Nested directories: `A/B` is `<root>/A/B`, INBOX is `<root>/INBOX`.
    Verbatim,
    /// Maildir++ with folder names in modified UTF-7 on disk, as mbsync and offlineimap keep
    /// them (`.Entw&APw-rfe`): the account key `utf7_names = true`.
    #[serde(skip)]
    MaildirPlusPlusUtf7,
    /// Verbatim with folder names in modified UTF-7 on disk (`utf7_names = true`).
    #[serde(skip)]
    VerbatimUtf7,
}

impl Layout {
    /// Maildir++ (INBOX at the root, one dot-directory per folder), whatever the name encoding.
    pub fn is_maildir_plus_plus(self) -> bool {
        matches!(self, Layout::MaildirPlusPlus | Layout::MaildirPlusPlusUtf7)
    }

    /// True when folder names are kept in modified UTF-7 on disk.
    pub fn utf7_names(self) -> bool {
        matches!(self, Layout::MaildirPlusPlusUtf7 | Layout::VerbatimUtf7)
    }

    /// The same layout with folder names in modified UTF-7 on disk.
    pub fn with_utf7_names(self) -> Layout {
        if self.is_maildir_plus_plus() {
            Layout::MaildirPlusPlusUtf7
        } else {
            Layout::VerbatimUtf7
        }
    }
}

/// How the planner may change each side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Direction.
    pub mode: SyncMode,
    /// Deletion propagation.
    pub expunge: ExpungePolicy,
}

impl Policy {
    /// True when the plan may change `side`.
    pub fn may_write(&self, side: super::Side) -> bool {
        match side {
            super::Side::Far => self.mode != SyncMode::Pull,
            super::Side::Near => self.mode != SyncMode::Push,
        }
    }
}
