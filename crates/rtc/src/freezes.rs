//! Video freezes as getStats counts them (`freezeCount`, `totalFreezesDuration` in
//! webrtc-stats): an interval between two frames of at least max(3 × the average interval,
//! the average + 150 ms), the average being over the last 30 intervals. Pure: time is passed
//! in, so the rule is tested on made-up arrivals.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const AVERAGE_OVER: usize = 30;
const FREEZE_MARGIN: Duration = Duration::from_millis(150);

#[derive(Debug, Default, Clone)]
pub struct FreezeCounter {
    last: Option<Instant>,
    /// The last intervals that were not freezes: a freeze left in would raise the average
    /// and hide the next one.
    recent: VecDeque<Duration>,
    pub count: u64,
    pub total: Duration,
}

impl FreezeCounter {
    /// A frame was shown at `at`.
    pub fn frame(&mut self, at: Instant) {
        let Some(last) = self.last.replace(at) else {
            return;
        };
        let interval = at.saturating_duration_since(last);
        if !self.recent.is_empty() {
            let average = self.recent.iter().sum::<Duration>() / self.recent.len() as u32;
            if interval >= (average * 3).max(average + FREEZE_MARGIN) {
                self.count += 1;
                self.total += interval;
                tracing::debug!(ms = interval.as_millis() as u64, "freeze");
                return;
            }
        }
        if self.recent.len() == AVERAGE_OVER {
            self.recent.pop_front();
        }
        self.recent.push_back(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames `gaps_ms` apart after the one at `at`; returns the last one's time.
    fn frames(counter: &mut FreezeCounter, mut at: Instant, gaps_ms: &[u64]) -> Instant {
        for &gap in gaps_ms {
            at += Duration::from_millis(gap);
            counter.frame(at);
        }
        at
    }

    #[test]
    fn steady_frames_are_no_freeze_and_a_long_gap_is_one() {
        let mut counter = FreezeCounter::default();
        let start = Instant::now();
        counter.frame(start);
        let at = frames(&mut counter, start, &[33; 60]);
        assert_eq!(counter.count, 0);
        // 33 ms frames: a gap counts from 183 ms (33 + 150), not from 99 ms (3 × 33).
        let at = frames(&mut counter, at, &[150]);
        assert_eq!(counter.count, 0, "150 ms is a hiccup, not a freeze");
        frames(&mut counter, at, &[33, 33, 400, 33]);
        assert_eq!(counter.count, 1);
        assert_eq!(counter.total, Duration::from_millis(400));
    }

    #[test]
    fn at_low_frame_rates_three_intervals_are_needed() {
        let mut counter = FreezeCounter::default();
        let start = Instant::now();
        counter.frame(start);
        // 5 fps: 200 ms apart; a freeze needs 600 ms.
        let at = frames(&mut counter, start, &[200; 10]);
        let at = frames(&mut counter, at, &[550]);
        assert_eq!(counter.count, 0);
        // The 550 ms interval now counts in the average (about 232 ms): 700 ms is a freeze.
        frames(&mut counter, at, &[200, 700]);
        assert_eq!(counter.count, 1);
    }

    #[test]
    fn one_freeze_does_not_hide_the_next() {
        let mut counter = FreezeCounter::default();
        let start = Instant::now();
        counter.frame(start);
        let at = frames(&mut counter, start, &[33; 30]);
        frames(&mut counter, at, &[2000, 33, 33, 300]);
        assert_eq!(counter.count, 2);
    }
}
