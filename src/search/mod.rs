//! Searching the archive: the query language ([`query`]), pure. Running queries against the
//! index is [`crate::index::search`].

pub mod query;
