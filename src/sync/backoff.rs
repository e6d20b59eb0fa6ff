//! Retrying after a failure, decided purely: exponential backoff with jitter, one rule for SMTP
//! answers that say "try later", the daemon's account runs and its IDLE watchers. The jitter
//! value comes from the caller ([`crate::clock::jitter`]), so every delay here is reproducible.

use std::time::Duration;

/// The longest wait between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// The wait before attempt `attempt` (1 = the first retry): `initial` doubled each time, capped
/// at [`MAX_RETRY_DELAY`], then spread by up to ±20 % with `jitter` in 0..=1 (so many clients
/// told "try later" at once do not all come back together).
pub fn retry_delay(attempt: u32, initial: Duration, jitter: f64) -> Duration {
    let doubled = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let base = doubled.min(MAX_RETRY_DELAY);
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    base.mul_f64(factor)
}

/// Exponential backoff with jitter for reconnecting after failures: 1 s, 2 s, 4 s, … up to the
/// cap, each spread by ±20 %.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `initial`.
    pub fn new(initial: Duration) -> Backoff {
        Backoff {
            initial,
            attempt: 0,
        }
    }

    /// The wait before the next attempt; `jitter` in 0..=1.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        retry_delay(self.attempt, self.initial, jitter)
    }

    /// After a success: start from `initial` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let s = Duration::from_secs(2);
        assert_eq!(retry_delay(1, s, 0.5), Duration::from_secs(2));
        assert_eq!(retry_delay(2, s, 0.5), Duration::from_secs(4));
        assert_eq!(retry_delay(3, s, 0.5), Duration::from_secs(8));
        assert_eq!(retry_delay(30, s, 0.5), MAX_RETRY_DELAY);
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1));
        let waits: Vec<u64> = (0..12).map(|_| b.next_delay(0.5).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(b.failures(), 12);
        b.reset();
        assert_eq!(b.next_delay(0.5), Duration::from_secs(1));
        // Jitter spreads a wait by at most 20 % either way.
        let lo = Backoff::new(Duration::from_secs(10)).next_delay(0.0);
        let hi = Backoff::new(Duration::from_secs(10)).next_delay(1.0);
        assert_eq!((lo, hi), (Duration::from_secs(8), Duration::from_secs(12)));
    }

    proptest! {
        #[test]
        fn jitter_stays_within_twenty_percent(attempt in 1u32..40, ms in 1u64..10_000, j in 0.0f64..=1.0) {
            let initial = Duration::from_millis(ms);
            let d = retry_delay(attempt, initial, j);
            let base = retry_delay(attempt, initial, 0.5);
            prop_assert!(d >= base.mul_f64(0.8) - Duration::from_micros(1));
            prop_assert!(d <= base.mul_f64(1.2) + Duration::from_micros(1));
            prop_assert!(d <= MAX_RETRY_DELAY.mul_f64(1.2) + Duration::from_micros(1));
        }
    }
}
