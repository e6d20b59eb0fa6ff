//! The pure side of syncing: deciding, never acting. Given the last synced state and a snapshot of
//! each side, produce what must change. No I/O, no clock, no async; every function here is
//! deterministic, so the planner can be tested exhaustively without a server.

pub mod delta;
pub mod folders;
pub mod planner;
pub mod pop3;
pub mod push;
pub mod recovery;
pub mod repair;
pub mod smtp;
pub mod snapshot;
