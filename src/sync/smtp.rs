//! Pure decisions for re-sending over SMTP: what to do with each local message given what was
//! recorded, how long to wait before retrying a 4xx answer, and when the next message may go
//! under a `--rate` limit.

use crate::model::{SmtpRow, SmtpState};
use std::time::Duration;

/// What to do with one local message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmtpDecision {
    /// Send it.
    Send,
    /// Send it again: an earlier run recorded this failure.
    Retry(String),
    /// Sent before (or the same bytes were sent from another file): nothing to do.
    Done,
}

/// The decision for a message whose recorded row is `row` (intents are settled before this).
pub fn decide(row: Option<&SmtpRow>) -> SmtpDecision {
    match row.map(|r| (r.state, r)) {
        None | Some((SmtpState::Sending, _)) => SmtpDecision::Send,
        Some((SmtpState::Failed, r)) => SmtpDecision::Retry(r.detail.clone().unwrap_or_default()),
        Some((SmtpState::Sent | SmtpState::Duplicate, _)) => SmtpDecision::Done,
    }
}

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

/// The longest wait pacing ever asks for: a rate so small that a message would wait longer is
/// taken as this (a tiny `--rate` such as `1e-300` made `n / rate` infinite, and
/// `Duration::from_secs_f64` panicked on it).
pub const MAX_PACED_OFFSET: Duration = Duration::from_secs(365 * 24 * 3600);

/// With at most `rate` messages per second, how long after the start message number `n`
/// (0-based) may go, at most [`MAX_PACED_OFFSET`]. No limit → always zero.
pub fn paced_offset(n: u64, rate: Option<f64>) -> Duration {
    match rate {
        Some(r) if r > 0.0 => Duration::try_from_secs_f64(n as f64 / r)
            .unwrap_or(MAX_PACED_OFFSET)
            .min(MAX_PACED_OFFSET),
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_tiny_rate_waits_long_but_never_panics() {
        assert_eq!(paced_offset(5, Some(1e-300)), MAX_PACED_OFFSET);
        assert_eq!(
            paced_offset(u64::MAX, Some(f64::MIN_POSITIVE)),
            MAX_PACED_OFFSET
        );
        assert_eq!(paced_offset(0, Some(1e-300)), Duration::ZERO);
        assert_eq!(paced_offset(3, Some(2.0)), Duration::from_millis(1500));
        assert_eq!(paced_offset(3, Some(f64::NAN)), Duration::ZERO);
    }

    fn row(state: SmtpState) -> SmtpRow {
        SmtpRow {
            folder: "INBOX".into(),
            near_key: "k".into(),
            state,
            sha256: vec![1],
            message_id: None,
            size: 1,
            detail: Some("552 too big".into()),
        }
    }

    #[test]
    fn only_unsent_messages_are_sent() {
        assert_eq!(decide(None), SmtpDecision::Send);
        assert_eq!(decide(Some(&row(SmtpState::Sending))), SmtpDecision::Send);
        assert_eq!(decide(Some(&row(SmtpState::Sent))), SmtpDecision::Done);
        assert_eq!(decide(Some(&row(SmtpState::Duplicate))), SmtpDecision::Done);
        assert_eq!(
            decide(Some(&row(SmtpState::Failed))),
            SmtpDecision::Retry("552 too big".into())
        );
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let s = Duration::from_secs(2);
        assert_eq!(retry_delay(1, s, 0.5), Duration::from_secs(2));
        assert_eq!(retry_delay(2, s, 0.5), Duration::from_secs(4));
        assert_eq!(retry_delay(3, s, 0.5), Duration::from_secs(8));
        assert_eq!(retry_delay(30, s, 0.5), MAX_RETRY_DELAY);
    }

    #[test]
    fn pacing_spreads_messages_evenly() {
        assert_eq!(paced_offset(10, None), Duration::ZERO);
        assert_eq!(paced_offset(10, Some(2.0)), Duration::from_secs(5));
        assert_eq!(paced_offset(0, Some(0.5)), Duration::ZERO);
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
