//! Remembering what a path carried before it narrowed, so that once the picture is back at full
//! size the prober asks for that rate again instead of leaving the estimate to creep back.
//!
//! The estimate may only climb at 8 % a second past what is sent (see `congestion`); after a
//! 20 s dip from 2 Mbit/s to 300 kbit/s a 640x480 call was back at full size with an estimate
//! of about 520 kbit/s, and took 13 s more to reach the 1.5 Mbit/s it had before. libwebrtc
//! probes after such a drop at 85 % of the estimate before it; so does this, in steps of at
//! most twice the estimate, and only after a drop from a level the estimate held for a while:
//! an estimate sawing on a full link (750 down to 520 kbit/s every few seconds on 600 kbit/s)
//! or a start rate the first feedback corrects is not a level the path ever carried.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long the estimate must have stayed at or above a level for the level to count.
const STEADY_FOR: Duration = Duration::from_secs(5);
/// A fall below this share of the steady level is a drop worth recovering from (libwebrtc's
/// figure for a large drop).
const LARGE_DROP: f64 = 0.66;
/// What the probes ask for, as a share of the level before the drop (libwebrtc's figure).
const RECOVERED: f64 = 0.85;
/// A cluster asks for at most this multiple of the estimate.
const STEP: f64 = 2.0;
/// A path that has not come back by then has changed for good (another network): the level is
/// forgotten rather than probed for through the rest of the call.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// How often an unchanged estimate is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
pub(crate) struct DropRecovery {
    /// Estimates of the last `STEADY_FOR`, and the last one before it (the value then).
    samples: VecDeque<(Instant, u32)>,
    /// The steady level before the last large drop, and when the drop came.
    before_drop: Option<(u32, Instant)>,
}

impl DropRecovery {
    /// The estimate is `target_bps` at `now`.
    pub(crate) fn update(&mut self, now: Instant, target_bps: u32) {
        if let Some(level) = self.steady_level(now) {
            let larger = self.before_drop.is_none_or(|(before, _)| level > before);
            if f64::from(target_bps) < LARGE_DROP * f64::from(level) && larger {
                self.before_drop = Some((level, now));
            }
        }
        if let Some((level, at)) = self.before_drop {
            let recovered = f64::from(target_bps) >= RECOVERED * f64::from(level);
            if recovered || now.saturating_duration_since(at) > FORGET_AFTER {
                self.before_drop = None;
            }
        }
        let changed = self.samples.back().is_none_or(|&(at, bps)| {
            bps != target_bps || now.saturating_duration_since(at) >= SAMPLE_EVERY
        });
        if changed {
            self.samples.push_back((now, target_bps));
        }
        // Keep the last sample from before the window: it is the value at the window's start.
        let start = now.checked_sub(STEADY_FOR);
        while self.samples.len() > 1 && start.is_some_and(|start| self.samples[1].0 <= start) {
            self.samples.pop_front();
        }
    }

    /// The lowest estimate of the last `STEADY_FOR`, once there is that much history.
    fn steady_level(&self, now: Instant) -> Option<u32> {
        let &(first, _) = self.samples.front()?;
        (now.saturating_duration_since(first) >= STEADY_FOR)
            .then(|| self.samples.iter().map(|&(_, bps)| bps).min())
            .flatten()
    }

    /// The rate to probe at for the level before a drop, given the estimate now; `None` when
    /// there was no drop, or the estimate is back.
    pub(crate) fn probe_rate(&self, target_bps: u32) -> Option<f64> {
        let (level, _) = self.before_drop?;
        let wanted = RECOVERED * f64::from(level);
        let target = f64::from(target_bps);
        (target < wanted).then(|| wanted.min(STEP * target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_time::at;

    /// Feeds `bps` every 100 ms from `from_ms` to `to_ms`.
    fn hold(recovery: &mut DropRecovery, start: Instant, from_ms: u64, to_ms: u64, bps: u32) {
        for ms in (from_ms..to_ms).step_by(100) {
            recovery.update(at(start, ms), bps);
        }
    }

    #[test]
    fn a_drop_from_a_steady_level_is_probed_back_in_steps() {
        let start = Instant::now();
        let mut recovery = DropRecovery::default();
        hold(&mut recovery, start, 0, 8_000, 1_500_000);
        assert_eq!(recovery.probe_rate(1_500_000), None, "no drop yet");
        hold(&mut recovery, start, 8_000, 30_000, 300_000);
        assert_eq!(
            recovery.probe_rate(300_000),
            Some(600_000.0),
            "twice the estimate"
        );
        assert_eq!(
            recovery.probe_rate(1_000_000),
            Some(0.85 * 1_500_000.0),
            "85 % of the level at most"
        );
        assert_eq!(recovery.probe_rate(1_300_000), None, "back");
        recovery.update(at(start, 30_000), 1_300_000);
        recovery.update(at(start, 31_000), 500_000);
        assert_eq!(
            recovery.probe_rate(500_000),
            None,
            "once back, the old level is done with"
        );
    }

    #[test]
    fn an_estimate_sawing_on_a_full_link_is_no_drop() {
        let start = Instant::now();
        let mut recovery = DropRecovery::default();
        for cycle in 0..10u64 {
            // 520 kbit/s climbing to 750, then a backoff: every 5 s on a 600 kbit/s link.
            for step in 0..50u64 {
                let bps = 520_000 + 4_600 * step as u32;
                recovery.update(at(start, cycle * 5_000 + step * 100), bps);
                assert_eq!(recovery.probe_rate(bps), None, "cycle {cycle} step {step}");
            }
        }
    }

    #[test]
    fn a_start_rate_corrected_by_the_first_feedback_is_no_level() {
        let start = Instant::now();
        let mut recovery = DropRecovery::default();
        hold(&mut recovery, start, 0, 1_000, 1_000_000);
        hold(&mut recovery, start, 1_000, 10_000, 480_000);
        assert_eq!(recovery.probe_rate(480_000), None);
    }

    #[test]
    fn a_second_fall_does_not_lower_the_level_to_recover() {
        let start = Instant::now();
        let mut recovery = DropRecovery::default();
        hold(&mut recovery, start, 0, 8_000, 1_500_000);
        hold(&mut recovery, start, 8_000, 14_000, 700_000);
        hold(&mut recovery, start, 14_000, 20_000, 240_000);
        assert_eq!(recovery.probe_rate(1_000_000), Some(0.85 * 1_500_000.0));
    }

    #[test]
    fn a_path_that_never_comes_back_is_forgotten() {
        let start = Instant::now();
        let mut recovery = DropRecovery::default();
        hold(&mut recovery, start, 0, 8_000, 1_500_000);
        hold(&mut recovery, start, 8_000, 60_000, 300_000);
        assert!(recovery.probe_rate(300_000).is_some());
        hold(&mut recovery, start, 60_000, 70_000, 300_000);
        assert_eq!(recovery.probe_rate(300_000), None);
    }
}
