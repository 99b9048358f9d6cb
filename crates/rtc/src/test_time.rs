//! Simulated time for the pure modules' tests.
use std::time::{Duration, Instant};

/// `ms` milliseconds after `start`.
pub(crate) fn at(start: Instant, ms: u64) -> Instant {
    start + Duration::from_millis(ms)
}
