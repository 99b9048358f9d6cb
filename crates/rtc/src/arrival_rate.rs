//! The rate the far end receives at, measured on its own clock.
//!
//! webrtc-rs's `RateCalculator` stamps every acknowledged packet with the instant its feedback
//! reached the sender. Feedback comes in batches (every 100 ms from webrtc-rs, Chromium alike),
//! so a 500 ms window read as a batch comes in holds six batches but spans only the five
//! intervals between them: it reads 1.2 × what the path carries, more when feedback bunches.
//! Measured on a 600 kbit/s link: 700 to 840 kbit/s. Congestion control backs off to 85 % of
//! this figure, which put the "backoff" at or above the link's rate, so
//! the queue it was meant to drain stayed, and with it a round trip long enough to turn every
//! repaired loss into a freeze.
//!
//! Here each packet counts at its arrival time as the receiver reported it (what libwebrtc's
//! acknowledged-bitrate estimator reads), and the first packet of the window only opens the
//! span: n packets are n - 1 intervals.
use std::collections::VecDeque;
use std::time::Duration;

/// How far back the rate is measured: long enough that a burst passed at line rate by a token
/// bucket is averaged with the link's real pace, short enough to follow a change within a second.
const WINDOW: Duration = Duration::from_millis(500);

/// A span shorter than this measures a burst, not a rate.
const MIN_SPAN: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
pub(crate) struct ArrivalRate {
    /// Arrived packets in the window: arrival time on the receiver's clock, and size in bytes.
    samples: VecDeque<(Duration, usize)>,
    bytes: usize,
    latest: Duration,
}

impl ArrivalRate {
    /// A packet of `size` bytes arrived at `arrival` on the receiver's clock.
    pub(crate) fn add(&mut self, arrival: Duration, size: usize) {
        // Reordered reports come in arrival order within a batch, but the queue is kept in the
        // order they were told: the span runs from the oldest kept to the latest seen.
        self.latest = self.latest.max(arrival);
        self.samples.push_back((arrival, size));
        self.bytes += size;
        let cutoff = self.latest.saturating_sub(WINDOW);
        while let Some(&(at, size)) = self.samples.front() {
            if at >= cutoff {
                break;
            }
            self.samples.pop_front();
            self.bytes -= size;
        }
    }

    /// Bits per second, or `None` while the window spans too little to say.
    pub(crate) fn bits_per_second(&self) -> Option<f64> {
        let &(first, first_size) = self.samples.front()?;
        let span = self.latest.saturating_sub(first);
        (span >= MIN_SPAN).then(|| (self.bytes - first_size) as f64 * 8.0 / span.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A steady stream of `bps` in 1 200-byte packets for `seconds`, from `start`.
    fn stream(rate: &mut ArrivalRate, start: Duration, bps: f64, seconds: f64) -> Duration {
        let interval = Duration::from_secs_f64(1_200.0 * 8.0 / bps);
        let mut at = start;
        while at < start + Duration::from_secs_f64(seconds) {
            rate.add(at, 1_200);
            at += interval;
        }
        at
    }

    fn within(actual: Option<f64>, expected: f64, tolerance: f64) -> bool {
        actual.is_some_and(|actual| (actual - expected).abs() <= expected * tolerance)
    }

    #[test]
    fn a_steady_stream_reads_its_own_rate() {
        let mut rate = ArrivalRate::default();
        stream(&mut rate, Duration::ZERO, 600_000.0, 2.0);
        assert!(
            within(rate.bits_per_second(), 600_000.0, 0.02),
            "{:?}",
            rate.bits_per_second()
        );
    }

    /// The library's calculator, fed the same stream in 100 ms batches of feedback, reads a
    /// fifth over the rate (the reason this module exists); arrival times do not.
    #[test]
    fn feedback_in_batches_does_not_inflate_the_rate() {
        let start = std::time::Instant::now();
        let mut ours = ArrivalRate::default();
        let mut library = rtc::interceptor::RateCalculator::default();
        let interval = Duration::from_secs_f64(1_200.0 * 8.0 / 600_000.0);
        let mut arrival = Duration::ZERO;
        for batch in 1..=20u32 {
            let fed_back = start + Duration::from_millis(100) * batch;
            while arrival < Duration::from_millis(100) * batch {
                ours.add(arrival, 1_200);
                library.add(fed_back, 1_200);
                arrival += interval;
            }
        }
        let now = start + Duration::from_secs(2);
        let inflated = library.rate_bits_per_second(now).expect("a rate");
        assert!(inflated > 1.15 * 600_000.0, "{inflated}");
        assert!(
            within(ours.bits_per_second(), 600_000.0, 0.02),
            "{:?}",
            ours.bits_per_second()
        );
    }

    #[test]
    fn it_follows_a_change_within_the_window() {
        let mut rate = ArrivalRate::default();
        let at = stream(&mut rate, Duration::ZERO, 2_000_000.0, 2.0);
        stream(&mut rate, at, 300_000.0, 0.6);
        assert!(
            within(rate.bits_per_second(), 300_000.0, 0.05),
            "{:?}",
            rate.bits_per_second()
        );
    }

    #[test]
    fn a_burst_is_not_a_rate() {
        let mut rate = ArrivalRate::default();
        assert_eq!(rate.bits_per_second(), None);
        // Six packets back to back, as a token bucket passes them: no span to measure over.
        for i in 0..6 {
            rate.add(Duration::from_micros(100 * i), 1_200);
        }
        assert_eq!(rate.bits_per_second(), None);
    }
}
