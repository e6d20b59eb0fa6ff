//! The pure side of syncing: deciding, never acting. Given the last synced state and a snapshot of
//! each side, produce what must change. No I/O, no clock, no async; every function here is
//! deterministic, so the planner can be tested exhaustively without a server.
// Nothing a server or a file holds may make it panic: no indexing that could (tests may).
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

pub mod adopt;
pub mod backoff;
pub mod delta;
pub mod folders;
pub mod index_diff;
pub mod planner;
pub mod pop3;
pub mod recovery;
pub mod renames;
pub mod repair;
pub mod reupload;
pub mod smtp;
pub mod snapshot;
