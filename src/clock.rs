//! The wall clock, in one place. The planner and the state database take `now` as a value;
//! the engine, the index and the CLI read it here.

/// Seconds since the Unix epoch.
///
/// `ARCTERN_NOW` (Unix seconds) overrides the clock, for testing time-based policies such as
/// POP3's `delete_after_days`.
pub fn unix_now() -> i64 {
    if let Some(now) = std::env::var("ARCTERN_NOW")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return now;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A jitter value in 0..1 from the clock's nanoseconds (good enough to spread reconnects).
pub fn jitter() -> f64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(n % 1000) / 1000.0
}
