//! When an account wakes up in the daemon: a full resync every `interval`, change reports (IDLE
//! on the server, inotify on the Maildir) gathered for a short debounce so a burst of changes
//! costs one sync (the delays after failures are [`crate::sync::backoff`]'s). Everything here runs
//! on tokio's clock, so the tests drive it with paused time instead of sleeping.

use std::collections::BTreeSet;
use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant, sleep_until};

/// A change report from a watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The server reported a change in this folder (IDLE), or a watcher reconnected after a
    /// failure (changes may have been missed).
    Server(String),
    /// Something changed in the Maildir.
    Local,
}

/// Why the account woke up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The full resync is due.
    Interval,
    /// Changes were reported: server folders, and whether the Maildir changed.
    Changes {
        /// Folders the server reported.
        server: BTreeSet<String>,
        /// The Maildir changed.
        local: bool,
    },
    /// Shutdown was requested.
    Stop,
}

/// The account's timetable.
#[derive(Debug)]
pub struct Timetable {
    /// When the next full resync is due.
    pub next_full: Instant,
    /// Quiet time after the last change report before syncing.
    pub debounce: Duration,
}

impl Timetable {
    /// A timetable whose first full sync is due at once.
    pub fn new(debounce: Duration) -> Timetable {
        Timetable {
            next_full: Instant::now(),
            debounce,
        }
    }

    /// Waits for the next reason to sync. Change reports are gathered until `debounce` passes
    /// without a new one (at most five times `debounce` in all, so a steady stream of changes
    /// still gets synced).
    pub async fn next_wake(
        &self,
        triggers: &mut mpsc::Receiver<Trigger>,
        stop: &mut watch::Receiver<bool>,
    ) -> Wake {
        if *stop.borrow() {
            return Wake::Stop;
        }
        let first = tokio::select! {
            _ = sleep_until(self.next_full) => return Wake::Interval,
            t = triggers.recv() => match t {
                Some(t) => t,
                // Every watcher is gone: only the interval is left.
                None => {
                    tokio::select! {
                        _ = sleep_until(self.next_full) => return Wake::Interval,
                        _ = stop.changed() => return Wake::Stop,
                    }
                }
            },
            _ = stop.changed() => return Wake::Stop,
        };
        let mut server = BTreeSet::new();
        let mut local = false;
        let mut add = |t: Trigger| match t {
            Trigger::Server(f) => {
                server.insert(f);
            }
            Trigger::Local => local = true,
        };
        add(first);
        let limit = Instant::now() + self.debounce * 5;
        let mut quiet_until = Instant::now() + self.debounce;
        loop {
            tokio::select! {
                _ = sleep_until(quiet_until.min(limit)) => break,
                t = triggers.recv() => match t {
                    Some(t) => {
                        add(t);
                        quiet_until = Instant::now() + self.debounce;
                    }
                    None => break,
                },
                _ = stop.changed() => return Wake::Stop,
            }
        }
        Wake::Changes { server, local }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channels() -> (
        mpsc::Sender<Trigger>,
        mpsc::Receiver<Trigger>,
        watch::Sender<bool>,
        watch::Receiver<bool>,
    ) {
        let (tx, rx) = mpsc::channel(16);
        let (stop_tx, stop_rx) = watch::channel(false);
        (tx, rx, stop_tx, stop_rx)
    }

    #[tokio::test(start_paused = true)]
    async fn the_full_resync_comes_when_the_interval_is_due() {
        let (_tx, mut rx, _s, mut stop) = channels();
        let start = Instant::now();
        let mut t = Timetable::new(Duration::from_millis(500));
        assert_eq!(t.next_wake(&mut rx, &mut stop).await, Wake::Interval);
        assert_eq!(start.elapsed(), Duration::ZERO, "the first sync is at once");
        t.next_full = Instant::now() + Duration::from_secs(300);
        assert_eq!(t.next_wake(&mut rx, &mut stop).await, Wake::Interval);
        assert_eq!(start.elapsed(), Duration::from_secs(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_is_one_wake_after_the_debounce() {
        let (tx, mut rx, _s, mut stop) = channels();
        let mut t = Timetable::new(Duration::from_millis(500));
        t.next_full = Instant::now() + Duration::from_secs(300);
        let start = Instant::now();
        tokio::spawn(async move {
            tx.send(Trigger::Server("INBOX".into())).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.send(Trigger::Local).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.send(Trigger::Server("Lists/rust".into())).await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let wake = t.next_wake(&mut rx, &mut stop).await;
        assert_eq!(
            wake,
            Wake::Changes {
                server: ["INBOX".to_string(), "Lists/rust".to_string()].into(),
                local: true
            }
        );
        // 400 ms of reports, then 500 ms of quiet.
        assert_eq!(start.elapsed(), Duration::from_millis(900));
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_of_changes_is_synced_after_five_debounces() {
        let (tx, mut rx, _s, mut stop) = channels();
        let mut t = Timetable::new(Duration::from_millis(500));
        t.next_full = Instant::now() + Duration::from_secs(300);
        let start = Instant::now();
        tokio::spawn(async move {
            loop {
                if tx.send(Trigger::Local).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let wake = t.next_wake(&mut rx, &mut stop).await;
        assert!(matches!(wake, Wake::Changes { local: true, .. }));
        assert_eq!(start.elapsed(), Duration::from_millis(2500));
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_the_wait_at_once() {
        let (_tx, mut rx, stop_tx, mut stop) = channels();
        let mut t = Timetable::new(Duration::from_millis(500));
        t.next_full = Instant::now() + Duration::from_secs(300);
        let start = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(7)).await;
            stop_tx.send(true).unwrap();
        });
        assert_eq!(t.next_wake(&mut rx, &mut stop).await, Wake::Stop);
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }
}
