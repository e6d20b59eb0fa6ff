//! Pure decisions for re-sending over SMTP: what to do with each local message given what was
//! recorded, and when the next message may go under a `--rate` limit (how long to wait before
//! retrying a 4xx answer is [`crate::sync::backoff`]'s).

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
    fn pacing_spreads_messages_evenly() {
        assert_eq!(paced_offset(10, None), Duration::ZERO);
        assert_eq!(paced_offset(10, Some(2.0)), Duration::from_secs(5));
        assert_eq!(paced_offset(0, Some(0.5)), Duration::ZERO);
    }
}
