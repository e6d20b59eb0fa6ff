//! The POP3 planner, pure: from the server's listing and what the state knows, which messages
//! to download and, once copies are durable, which to delete on the server.
//!
//! The one rule that keeps mail safe: a message is deleted on the server only when the state
//! records its copy as stored. Everything else is policy: `keep_on_server` and
//! `delete_after_days` (counted from when the server first listed the message).

use crate::model::Pop3Row;
use std::collections::{HashMap, HashSet};

/// One message as the server lists it in this session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Message number in this session.
    pub msgno: u32,
    /// UIDL or header hash.
    pub uid: String,
    /// Size in octets (LIST).
    pub size: u64,
}

/// What to keep on the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pop3Policy {
    /// Leave messages on the server after download.
    pub keep_on_server: bool,
    /// Delete messages first seen more than this many days ago (even with `keep_on_server`).
    pub delete_after_days: Option<u32>,
    /// Now, in Unix seconds.
    pub now: i64,
}

/// The messages to download: listed, not stored, each identity once (a server listing one
/// UIDL twice gets one download), in message-number order.
pub fn downloads<'a>(listing: &'a [Listed], rows: &HashMap<String, Pop3Row>) -> Vec<&'a Listed> {
    let mut taken = HashSet::new();
    let mut out: Vec<&Listed> = listing
        .iter()
        .filter(|m| !rows.get(&m.uid).is_some_and(|r| r.stored))
        .filter(|m| taken.insert(m.uid.as_str()))
        .collect();
    out.sort_by_key(|m| m.msgno);
    out
}

/// The message numbers to delete on the server: stored copies the policy lets go. `rows`
/// must reflect this run's downloads; `first_seen` comes from the rows too.
pub fn deletions(
    listing: &[Listed],
    rows: &HashMap<String, Pop3Row>,
    policy: Pop3Policy,
) -> Vec<u32> {
    let mut out: Vec<u32> = listing
        .iter()
        .filter(|m| {
            let Some(row) = rows.get(&m.uid) else {
                return false;
            };
            if !row.stored {
                return false;
            }
            if !policy.keep_on_server {
                return true;
            }
            policy.delete_after_days.is_some_and(|days| {
                policy.now.saturating_sub(row.first_seen) >= i64::from(days) * 86_400
            })
        })
        .map(|m| m.msgno)
        .collect();
    out.sort_unstable();
    out
}

/// Identities the state knows as on the server that this listing no longer has.
pub fn gone<'a>(listing: &[Listed], rows: &'a HashMap<String, Pop3Row>) -> Vec<&'a str> {
    let listed: HashSet<&str> = listing.iter().map(|m| m.uid.as_str()).collect();
    let mut out: Vec<&str> = rows
        .values()
        .filter(|r| r.on_server && !listed.contains(r.uid.as_str()))
        .map(|r| r.uid.as_str())
        .collect();
    out.sort_unstable();
    out
}

/// Whether a login is allowed now under the server's LOGIN-DELAY (RFC 2449 §6.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginGate {
    /// Log in.
    Go,
    /// Not yet: the server allows one login every `delay` seconds; `seconds` are left.
    Wait {
        /// The server's LOGIN-DELAY.
        delay: i64,
        /// Seconds until the next login is allowed.
        seconds: i64,
    },
}

/// The LOGIN-DELAY gate: `last_login` and `delay` as recorded after the previous login. A last
/// login recorded in the future (the clock went back, or one run had it ahead) counts as now,
/// so the wait is never longer than one delay; a negative delay counts as none.
pub fn login_gate(now: i64, last_login: Option<i64>, delay: Option<i64>) -> LoginGate {
    let (Some(last), Some(delay)) = (last_login, delay) else {
        return LoginGate::Go;
    };
    let delay = delay.max(0);
    let last = last.min(now);
    let next = last.saturating_add(delay);
    if now < next {
        LoginGate::Wait {
            delay,
            seconds: next - now,
        }
    } else {
        LoginGate::Go
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn login_delay_gate_waits_at_most_one_delay() {
        assert_eq!(login_gate(1000, None, Some(300)), LoginGate::Go);
        assert_eq!(login_gate(1000, Some(900), None), LoginGate::Go);
        assert_eq!(
            login_gate(1000, Some(900), Some(300)),
            LoginGate::Wait {
                delay: 300,
                seconds: 200
            }
        );
        assert_eq!(login_gate(1200, Some(900), Some(300)), LoginGate::Go);
        // A last login 15 days in the future (a clock that went back) waits one delay, not
        // 15 days: it is clamped to now.
        assert_eq!(
            login_gate(1000, Some(1000 + 15 * 86_400), Some(300)),
            LoginGate::Wait {
                delay: 300,
                seconds: 300
            }
        );
        assert_eq!(
            login_gate(1000, Some(i64::MAX), Some(i64::MAX)),
            LoginGate::Wait {
                delay: i64::MAX,
                seconds: i64::MAX - 1000
            }
        );
    }

    fn row(uid: &str, stored: bool, first_seen: i64) -> Pop3Row {
        Pop3Row {
            uid: uid.into(),
            near_key: stored.then(|| format!("k-{uid}")),
            stored,
            first_seen,
            on_server: true,
        }
    }

    fn listed(n: u32, uid: &str) -> Listed {
        Listed {
            msgno: n,
            uid: uid.into(),
            size: 100,
        }
    }

    const DAY: i64 = 86_400;

    #[test]
    fn keep_mode_downloads_new_and_deletes_nothing() {
        let listing = vec![listed(1, "a"), listed(2, "b"), listed(3, "b")];
        let rows: HashMap<_, _> = [("a".to_string(), row("a", true, 0))].into();
        let d: Vec<u32> = downloads(&listing, &rows).iter().map(|m| m.msgno).collect();
        assert_eq!(d, vec![2], "stored a is skipped, b once");
        let policy = Pop3Policy {
            keep_on_server: true,
            delete_after_days: None,
            now: 100 * DAY,
        };
        assert!(deletions(&listing, &rows, policy).is_empty());
    }

    #[test]
    fn delete_after_days_counts_from_first_seen() {
        let listing = vec![listed(1, "old"), listed(2, "new"), listed(3, "unstored")];
        let rows: HashMap<_, _> = [
            ("old".to_string(), row("old", true, 0)),
            ("new".to_string(), row("new", true, 20 * DAY)),
            ("unstored".to_string(), row("unstored", false, 0)),
        ]
        .into();
        let policy = Pop3Policy {
            keep_on_server: true,
            delete_after_days: Some(30),
            now: 30 * DAY,
        };
        assert_eq!(deletions(&listing, &rows, policy), vec![1]);
        let policy = Pop3Policy {
            keep_on_server: false,
            delete_after_days: None,
            now: 0,
        };
        assert_eq!(deletions(&listing, &rows, policy), vec![1, 2]);
    }

    #[test]
    fn gone_lists_what_the_server_dropped() {
        let listing = vec![listed(1, "a")];
        let mut rows: HashMap<_, _> = [
            ("a".to_string(), row("a", true, 0)),
            ("b".to_string(), row("b", true, 0)),
        ]
        .into();
        assert_eq!(gone(&listing, &rows), vec!["b"]);
        rows.get_mut("b").unwrap().on_server = false;
        assert!(gone(&listing, &rows).is_empty());
    }

    proptest! {
        /// Whatever the listing, state and policy: nothing unstored is ever deleted, nothing
        /// stored is ever downloaded again, and every unstored identity is downloaded once.
        #[test]
        fn never_deletes_unstored_never_downloads_twice(
            entries in proptest::collection::vec((0u8..20, any::<bool>(), 0i64..100), 0..40),
            known in proptest::collection::vec((0u8..20, any::<bool>(), 0i64..100), 0..20),
            keep in any::<bool>(),
            days in proptest::option::of(0u32..60),
            now in 0i64..100,
        ) {
            let listing: Vec<Listed> = entries
                .iter()
                .enumerate()
                .map(|(i, (u, _, _))| listed(i as u32 + 1, &format!("u{u}")))
                .collect();
            let rows: HashMap<String, Pop3Row> = known
                .iter()
                .map(|(u, stored, seen)| (format!("u{u}"), row(&format!("u{u}"), *stored, seen * DAY)))
                .collect();
            let policy = Pop3Policy { keep_on_server: keep, delete_after_days: days, now: now * DAY };
            let d = downloads(&listing, &rows);
            let mut uids = HashSet::new();
            for m in &d {
                prop_assert!(!rows.get(&m.uid).is_some_and(|r| r.stored));
                prop_assert!(uids.insert(m.uid.clone()), "downloaded twice");
            }
            for m in &listing {
                if !rows.get(&m.uid).is_some_and(|r| r.stored) {
                    prop_assert!(uids.contains(&m.uid));
                }
            }
            for n in deletions(&listing, &rows, policy) {
                let m = listing.iter().find(|m| m.msgno == n).unwrap();
                prop_assert!(rows[&m.uid].stored);
            }
        }
    }
}
