//! Daily transfer budgets: a provider that counts the bytes an account downloads or uploads
//! over IMAP in a day (Gmail: 2,500 MB down and 500 MB up, then IMAP is locked for up to a
//! day) is asked for no more than the budget allows. What would go over it waits for a later
//! run, said in the report, instead of being cut off by the server in the middle of a fetch.
//! The bytes moved are recorded per hour in the state (`transfer_hours`), so the budget holds
//! across runs, and folders synced at once share it.

use crate::db::{DbError, StateDb, TransferDirection};
use std::sync::Mutex;

/// The window a budget is counted over.
pub const WINDOW_HOURS: i64 = 24;

/// One budget (a direction, to one server) for the length of a run.
#[derive(Debug)]
pub struct Budget {
    direction: TransferDirection,
    /// "" for the account's own server, else the target's name.
    peer: String,
    limit: u64,
    /// Bytes moved in the window before this run plus those reserved in it.
    used: Mutex<u64>,
}

/// The budgets of one account's run against its own server.
#[derive(Debug, Default)]
pub struct Budgets {
    /// `download_budget`.
    pub down: Option<Budget>,
    /// `upload_budget`.
    pub up: Option<Budget>,
}

impl Budgets {
    /// The account's budgets with what the state says was moved in the last 24 hours.
    pub fn open(
        db: &StateDb,
        download: Option<u64>,
        upload: Option<u64>,
        now: i64,
    ) -> Result<Budgets, DbError> {
        Ok(Budgets {
            down: Budget::open(db, TransferDirection::Down, "", download, now)?,
            up: Budget::open(db, TransferDirection::Up, "", upload, now)?,
        })
    }
}

/// Messages left for a later run by a budget: how many and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deferred {
    /// Messages.
    pub count: usize,
    /// Their bytes.
    pub bytes: u64,
}

impl Budget {
    /// The budget of `limit` bytes a day in `direction` to `peer`, with what the state says was
    /// moved in the last 24 hours; `None` without a limit.
    pub fn open(
        db: &StateDb,
        direction: TransferDirection,
        peer: &str,
        limit: Option<u64>,
        now: i64,
    ) -> Result<Option<Budget>, DbError> {
        let Some(limit) = limit else {
            return Ok(None);
        };
        let hour = now.div_euclid(3600);
        let used = db.transferred_since(direction, peer, hour.saturating_sub(WINDOW_HOURS - 1))?;
        Ok(Some(Budget {
            direction,
            peer: peer.to_string(),
            limit,
            used: Mutex::new(used),
        }))
    }

    /// Reserves the longest leading run of `items` that fits what is left; returns it and
    /// what is left over (deferred).
    pub fn reserve<T>(&self, items: Vec<T>, size: impl Fn(&T) -> u64) -> (Vec<T>, Deferred) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let sizes: Vec<u64> = items.iter().map(&size).collect();
        let (fit, taken) = leading_fit(&sizes, self.limit.saturating_sub(*used));
        *used = used.saturating_add(taken);
        let mut items = items;
        let rest = items.split_off(fit.min(items.len()));
        let deferred = Deferred {
            count: rest.len(),
            bytes: sizes.iter().skip(fit).sum(),
        };
        (items, deferred)
    }

    /// Records what a transfer that reserved `reserved` bytes moved (`moved`), and gives back
    /// the rest of the reservation.
    pub fn settle(&self, db: &StateDb, reserved: u64, moved: u64, now: i64) -> Result<(), DbError> {
        self.release(reserved.saturating_sub(moved));
        self.record(db, moved, now)
    }

    /// Gives back reserved bytes that were not moved (a failed transfer).
    pub fn release(&self, bytes: u64) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(bytes);
    }

    /// Records `bytes` moved now in the state.
    pub fn record(&self, db: &StateDb, bytes: u64, now: i64) -> Result<(), DbError> {
        if bytes == 0 {
            return Ok(());
        }
        db.add_transferred(self.direction, &self.peer, now.div_euclid(3600), bytes)
    }

    /// The note for messages left over: what waits and why.
    pub fn note(&self, deferred: Deferred) -> String {
        let what = match self.direction {
            TransferDirection::Down => "download",
            TransferDirection::Up => "upload",
        };
        format!(
            "{} message(s) ({:.1} MB) wait for a later run: the {what} budget of {:.0} MB a day ({what}_budget) is spent",
            deferred.count,
            deferred.bytes as f64 / 1e6,
            self.limit as f64 / 1e6
        )
    }
}

/// What a budget lets through now ([`allow`]).
#[derive(Debug)]
pub struct Allowed<T> {
    /// The items that go now.
    pub items: Vec<T>,
    /// The bytes reserved for them.
    pub reserved: u64,
    /// How many wait for a later run.
    pub deferred: usize,
    /// What to say about those, when there are any.
    pub note: Option<String>,
}

/// The leading `items` that `budget` (if any) has room for, reserved; the rest waits.
pub fn allow<T>(budget: Option<&Budget>, items: Vec<T>, size: impl Fn(&T) -> u64) -> Allowed<T> {
    let Some(budget) = budget else {
        return Allowed {
            items,
            reserved: 0,
            deferred: 0,
            note: None,
        };
    };
    let (items, later) = budget.reserve(items, &size);
    Allowed {
        reserved: items.iter().map(&size).sum(),
        items,
        deferred: later.count,
        note: (later.count > 0).then(|| budget.note(later)),
    }
}

/// How many leading `sizes` fit in `left` bytes, and their total. The first message that does
/// not fit stops the run of them, so mail keeps its order (oldest UIDs first); one larger than
/// the whole budget waits until the budget is raised (the note names the key to raise).
pub fn leading_fit(sizes: &[u64], left: u64) -> (usize, u64) {
    let mut total: u64 = 0;
    for (i, s) in sizes.iter().enumerate() {
        let next = total.saturating_add(*s);
        if next > left {
            return (i, total);
        }
        total = next;
    }
    (sizes.len(), total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_leading_messages_that_fit_are_taken() {
        assert_eq!(leading_fit(&[10, 20, 30], 35), (2, 30));
        assert_eq!(leading_fit(&[10, 20, 30], 60), (3, 60));
        assert_eq!(leading_fit(&[40, 1], 35), (0, 0));
        assert_eq!(leading_fit(&[], 0), (0, 0));
    }

    #[test]
    fn a_budget_holds_across_runs_and_is_shared() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(&dir.path().join("s.sqlite3")).unwrap();
        let now = 1_800_000_000;
        db.add_transferred(TransferDirection::Down, "", now / 3600 - 30, 900)
            .unwrap(); // outside the window
        db.add_transferred(TransferDirection::Down, "", now / 3600 - 2, 60)
            .unwrap();
        db.add_transferred(TransferDirection::Up, "", now / 3600, 500)
            .unwrap(); // another direction
        let b = Budget::open(&db, TransferDirection::Down, "", Some(100), now)
            .unwrap()
            .unwrap();
        let (take, later) = b.reserve(vec![30u64, 5, 10], |s| *s);
        assert_eq!(take, [30, 5]);
        assert_eq!(
            later,
            Deferred {
                count: 1,
                bytes: 10
            }
        );
        // A second folder of the same run finds the budget spent.
        let (take, later) = b.reserve(vec![10u64], |s| *s);
        assert!(take.is_empty() && later.count == 1);
        b.release(35);
        let (take, _) = b.reserve(vec![10u64], |s| *s);
        assert_eq!(take, [10]);
        assert!(
            Budget::open(&db, TransferDirection::Down, "", None, now)
                .unwrap()
                .is_none()
        );
    }

    proptest! {
        #[test]
        fn never_more_than_the_budget(sizes in proptest::collection::vec(0u64..1000, 0..40), left in 0u64..5000) {
            let (n, total) = leading_fit(&sizes, left);
            prop_assert!(total <= left);
            prop_assert_eq!(total, sizes[..n].iter().sum::<u64>());
            if n < sizes.len() {
                prop_assert!(total + sizes[n] > left);
            }
        }
    }
}
