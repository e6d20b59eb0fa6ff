//! arctern: a mailbox sync and archival engine.
//!
//! The architecture in a screenful:
//! - [`config`] reads the TOML into a validated [`config::Config`].
//! - [`sync`] is pure: the planner takes the last synced state and a complete snapshot of each
//!   side (`Far` = IMAP server, `Near` = Maildir) and returns a plan. No I/O, no clock.
//! - [`engine`] executes plans against the stores ([`store::imap`], [`store::maildir`]) and
//!   records results in [`db`], the SQLite state that is the source of truth.
//!
//! Invariants:
//! - *Unknown is not gone.* Only a complete, verified listing reaches the planner; an IMAP error
//!   poisons the connection instead of yielding an empty result, and a missing Maildir is an error.
//! - *Intent → effect → state.* Anything that could duplicate a message (download, APPEND) is
//!   recorded as an intent first and reconciled after a crash (`engine::recover`).
//! - *Identity is the UID pair.* Message-ID and size are only evidence for re-pairing after a
//!   UIDVALIDITY change.
//! - *Nothing a server sends becomes a path unchecked*: folder names pass [`names`].

pub mod cli;
pub mod config;
pub mod daemon;
pub mod db;
pub mod engine;
pub mod index;
pub mod message;
pub mod metrics;
pub mod model;
pub mod names;
pub mod search;
pub mod store;
pub mod sync;
