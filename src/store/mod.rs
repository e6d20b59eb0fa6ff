//! The stores: the two kinds of mailbox arctern reads and writes. Each owns its protocol or file
//! format and nothing else; decisions about what to change come from the planner.

pub mod eol;
pub mod imap;
pub mod maildir;
pub mod pop3;
pub mod smtp;
pub mod tls;
