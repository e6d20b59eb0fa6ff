//! Integration tests: the arctern binary against a real, private Dovecot per test.

#![allow(clippy::unwrap_used)]

mod support;

mod adopt;
mod budgets;
mod courier;
mod cyrus;
mod daemon;
mod failures;
mod fastpath;
mod gmail;
mod gmail_labels;
mod hostile;
mod labels;
mod mbox;
mod mirror;
mod moves;
mod oauth2;
mod pop3;
mod push;
mod readers;
mod safety;
mod search;
mod smtp;
mod tls;
