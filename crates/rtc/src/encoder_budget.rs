//! Skipping frames the link has no room for.
//!
//! The pacer sends at the congestion controller's estimate and queues the rest; an encoder
//! that overshoots (a keyframe, a scene OpenH264's rate control misjudges, a target below what
//! it can reach at this size) fills that queue, and every frame behind it arrives late by the
//! queue's length. Measured on a link narrowed from 2 Mbit/s to 300 kbit/s: 295 kbit/s of
//! output against a 100 kbit/s estimate, frames 17 s late. So the encoder's output is metered
//! like the link: a bucket drained at the target, and while it holds more than a short
//! allowance, captured frames are skipped rather than encoded.
use std::time::{Duration, Instant};

/// How much the encoder may be ahead of the link before frames are skipped.
const ALLOWANCE: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
pub(crate) struct EncoderBudget {
    /// Bits produced and not yet drained at the target.
    backlog_bits: f64,
    last: Option<Instant>,
}

impl EncoderBudget {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Whether a frame may be encoded now, at `target_bps`.
    pub(crate) fn allows(&mut self, now: Instant, target_bps: u32) -> bool {
        let elapsed = self
            .last
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        self.last = Some(now);
        let target = f64::from(target_bps.max(1));
        self.backlog_bits = (self.backlog_bits - target * elapsed.as_secs_f64()).max(0.0);
        self.backlog_bits <= target * ALLOWANCE.as_secs_f64()
    }

    /// An encoded frame of `bytes` left the encoder.
    pub(crate) fn spent(&mut self, bytes: usize) {
        self.backlog_bits += bytes as f64 * 8.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_time::at;

    #[test]
    fn frames_within_the_target_are_all_encoded() {
        let mut budget = EncoderBudget::new();
        let start = Instant::now();
        // 30 fps of 400-byte frames is 96 kbit/s, under a 100 kbit/s target.
        for frame in 0..300 {
            assert!(
                budget.allows(at(start, frame * 33), 100_000),
                "frame {frame}"
            );
            budget.spent(400);
        }
    }

    #[test]
    fn a_big_keyframe_skips_frames_until_the_link_has_carried_it() {
        let mut budget = EncoderBudget::new();
        let start = Instant::now();
        assert!(budget.allows(start, 100_000));
        budget.spent(20_000); // 160 kbit: 1.6 s at 100 kbit/s
        let allowed: Vec<u64> = (1..60)
            .map(|frame| frame * 33)
            .filter(|&ms| budget.allows(at(start, ms), 100_000))
            .collect();
        // Encoding resumes once 1.6 s less the 250 ms allowance have drained.
        assert_eq!(allowed.first(), Some(&1353), "{allowed:?}");
    }

    #[test]
    fn an_overshooting_encoder_is_held_to_the_target_on_average() {
        let mut budget = EncoderBudget::new();
        let start = Instant::now();
        let mut sent_bits = 0.0;
        // Frames of 1 kB at 30 fps would be 240 kbit/s; the target is 100 kbit/s.
        for frame in 0..300u64 {
            if budget.allows(at(start, frame * 33), 100_000) {
                budget.spent(1000);
                sent_bits += 8000.0;
            }
        }
        let rate = sent_bits / 9.9;
        assert!((90_000.0..=110_000.0).contains(&rate), "{rate:.0} bit/s");
    }
}
